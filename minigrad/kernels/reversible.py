"""Reversible residual layers (book § 4.9; Gomez et al. 2017, "The Reversible Residual Network"; Reformer § 3):
activations are recomputed in the backward pass instead of stored, so memory does not grow with depth.

A reversible layer keeps two streams and updates each from the other,

    y₁ = x₁ + F(x₂),      y₂ = x₂ + G(y₁)               (Reformer eq. 9; F = attention, G = feed-forward)

so its inputs follow from its outputs:  x₂ = y₂ − G(y₁),  x₁ = y₁ − F(x₂). The kernel runs a stack of such
layers without recording a graph and keeps only the last outputs. Its backward walks the stack from the
top: for each layer it recomputes G(y₁) with a small local graph, back-propagates dy₂ through it
(dy₁ += ∂G/∂y₁ᵀ dy₂), reconstructs x₂, recomputes F(x₂) likewise (dx₂ = dy₂ + ∂F/∂x₂ᵀ dy₁), reconstructs
x₁, and frees the local graph — at any time one layer's activations exist, whatever the depth.

Each sub-layer is called as ``f(x, memo)``. ``memo`` is one dict per call, the same in the forward pass and
in its recomputation: the kernel stores the random-number states in it (so dropout draws the same masks
again) and a sub-layer may store what it must not recompute differently (LSH attention keeps its buckets:
hashing the reconstructed input, equal to rounding, could flip a near-tie).

The reference (``reversible_layers_reference``) is the same stack run normally: every activation stored.
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function, enable_grad, is_grad_enabled, no_grad
from minigrad.kernels import using_reference


def _replay(fn, x, memo: dict, generators):
    """``fn(x, memo)``: the first time, note the random states in ``memo``; afterwards draw from the same states
    again, then put the generators back where they were."""
    if "rng" not in memo:
        memo["rng"] = [(gen, gen.get_state()) for gen in generators]
        return fn(x, memo)
    current = [(gen, gen.get_state()) for gen in generators]
    for gen, state in memo["rng"]:
        gen.set_state(state)
    try:
        return fn(x, memo)
    finally:
        for gen, state in current:
            gen.set_state(state)


def _run(x1, x2, steps, memos, generators):
    """y₁ = x₁ + F(x₂), y₂ = x₂ + G(y₁) for every layer; ``memos`` one (memo_F, memo_G) pair per layer."""
    for (f, g), (memo_f, memo_g) in zip(steps, memos):
        x1 = x1 + _replay(f, x2, memo_f, generators)
        x2 = x2 + _replay(g, x1, memo_g, generators)
    return x1, x2


def reversible_layers_reference(x1, x2, steps, generators=()):
    """The stack without reversibility: every layer's activations stay in the graph. → [y₁ ; y₂] (…, 2H)."""
    from minigrad.tensor import cat

    y1, y2 = _run(x1, x2, steps, [({}, {}) for _ in steps], _generators(generators))
    return cat([y1, y2], dim=-1)


def _generators(extra):
    from minigrad.random import default_generator

    return [default_generator] + [g for g in extra if g is not default_generator]


class ReversibleLayers(Function):
    """A stack of reversible layers in one node: forward without a graph, backward by reconstruction."""

    def forward(self, x1, x2, *parameters, steps, generators):
        from minigrad.tensor import Tensor

        self.steps, self.generators = steps, generators
        self.memos = [({}, {}) for _ in steps]
        with no_grad():
            y1, y2 = _run(Tensor._wrap(x1), Tensor._wrap(x2), steps, self.memos, generators)
        return self.save_output(np.concatenate([y1.data, y2.data], axis=-1))

    def backward(self, g):
        from minigrad.autograd import grad
        from minigrad.tensor import Tensor

        if is_grad_enabled():  # create_graph: differentiate the stored-activation stack instead
            return _reference_backward(self, g)
        H = g.shape[-1] // 2
        y = self.output()
        a, b = y[..., :H], y[..., H:]  # the outputs (y₁, y₂) of the layer being undone
        da, db = g[..., :H], g[..., H:]
        params = [p for p, need in zip(self.inputs[2:], self.needs_input_grad[2:]) if need]
        param_grads = [None] * len(params)
        for (f, g_), (memo_f, memo_g) in zip(reversed(self.steps), reversed(self.memos)):
            # y₂ = x₂ + G(y₁): gradients through G, then x₂ = y₂ − G(y₁)
            with enable_grad():
                a_t = Tensor(a, requires_grad=True)
                out = _replay(g_, a_t, memo_g, self.generators)
                grads = grad(out, [a_t] + params, grad_outputs=db, allow_unused=True)
            b = b - out.data
            da = _plus(da, grads[0])  # dL/dy₁ = dy₁ + ∂G/∂y₁ᵀ dy₂
            _add(param_grads, grads[1:])
            # y₁ = x₁ + F(x₂): gradients through F, then x₁ = y₁ − F(x₂)
            with enable_grad():
                b_t = Tensor(b, requires_grad=True)
                out = _replay(f, b_t, memo_f, self.generators)
                grads = grad(out, [b_t] + params, grad_outputs=da, allow_unused=True)
            a = a - out.data
            db = _plus(db, grads[0])  # dL/dx₂ = dy₂ + ∂F/∂x₂ᵀ dL/dy₁
            _add(param_grads, grads[1:])
        grads = iter(param_grads)
        rest = [next(grads) if need else None for need in self.needs_input_grad[2:]]
        return (da if self.needs_input_grad[0] else None, db if self.needs_input_grad[1] else None, *rest)


def _plus(total: np.ndarray, gr) -> np.ndarray:
    return total if gr is None else total + gr.data


def _add(total: list, grads) -> None:
    for i, gr in enumerate(grads):
        if gr is not None:
            total[i] = gr.data if total[i] is None else total[i] + gr.data


def _reference_backward(node: Function, g):
    """``create_graph``: re-run the stack with its recorded random states, as a graph, and differentiate it."""
    from minigrad.autograd import grad
    from minigrad.tensor import cat

    args = node.args()
    with enable_grad():
        args = (args[0].clone(), args[1].clone(), *args[2:])  # own nodes: x₁ and x₂ may be one tensor
        y1, y2 = _run(args[0], args[1], node.steps, node.memos, node.generators)
        wanted = [t for t, need in zip(args, node.needs_input_grad) if need]
        grads = iter(grad((cat([y1, y2], dim=-1) * g).sum(), wanted, create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in node.needs_input_grad)


def reversible_inverse(y, steps, memos=None, generators=()):
    """The stack's inputs [x₁ ; x₂] from its outputs ``y`` = [y₁ ; y₂]: x₂ = y₂ − G(y₁), x₁ = y₁ − F(x₂), from
    the top layer down (no graph). ``memos``: the (memo_F, memo_G) of the forward pass, if it had any."""
    from minigrad.tensor import Tensor, cat

    y = y if isinstance(y, Tensor) else Tensor(np.asarray(y))
    H = y.shape[-1] // 2
    memos = [({}, {}) for _ in steps] if memos is None else list(memos)
    gens = _generators(generators)
    with no_grad():
        a, b = y[..., :H], y[..., H:]
        for (f, g), (memo_f, memo_g) in zip(reversed(steps), reversed(memos)):
            b = b - _replay(g, a, memo_g, gens)
            a = a - _replay(f, b, memo_f, gens)
        return cat([a, b], dim=-1)


def reversible_layers(x1, x2, steps, parameters, generators=()):
    """Run reversible layers y₁ = x₁ + F(x₂), y₂ = x₂ + G(y₁) (module docstring) → [y₁ ; y₂] (…, 2H).

    ``steps``: one (F, G) pair per layer, each a callable ``f(x, memo) -> Tensor`` of the shape of x.
    ``parameters``: every Tensor F and G read that may need a gradient (the kernel returns their gradients).
    ``generators``: random streams the sub-layers draw from besides the global one (replayed in backward)."""
    from minigrad.tensor import Tensor

    fn = "reversible_layers"
    for name, x in (("x1", x1), ("x2", x2)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{fn}: {name} must be a Tensor, got {type(x).__name__}")
    if x1.shape != x2.shape:
        raise ValueError(f"{fn}: the two streams must have one shape, got x1 {x1.shape} and x2 {x2.shape}")
    steps = [tuple(step) for step in steps]
    if any(len(step) != 2 or not all(callable(s) for s in step) for step in steps):
        raise TypeError(f"{fn}: steps must be (F, G) pairs of callables f(x, memo)")
    gens = _generators(generators)
    if using_reference():
        return reversible_layers_reference(x1, x2, steps, generators)
    params = [p for p in parameters if isinstance(p, Tensor) and p.requires_grad]
    return ReversibleLayers.apply(x1, x2, *params, steps=steps, generators=gens)


__all__ = ["ReversibleLayers", "reversible_inverse", "reversible_layers", "reversible_layers_reference"]
