"""Numerical gradient checks (float64 central differences), for users and for the tests.

    f'(x)·v ≈ (f(x + εv) − f(x − εv)) / 2ε        (error O(ε²))

The output is reduced to a scalar with fixed random weights u (L = Σ u ⊙ f(x)), so one backward
pass gives the whole analytic gradient ∇L. Small inputs are checked element by element; large
ones along a few random directions v (∇L·v against the difference quotient), which costs two
forward passes per direction whatever the size.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from minigrad.autograd import grad as autograd_grad
from minigrad.tensor import Tensor

FULL_CHECK_MAX_ELEMENTS = 2048


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with the numerical one."""


def _as_tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _check_inputs(inputs: Sequence, fn_name: str) -> list[int]:
    diff = []
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad:
            if t.dtype != np.float64:
                raise TypeError(f"{fn_name}: input {i} has dtype {t.dtype}; numerical checks need float64 "
                                "(use .double())")
            diff.append(i)
    if not diff:
        raise ValueError(f"{fn_name}: no input requires grad, nothing to check")
    return diff


def _scalarize(outputs: tuple, weights: list[np.ndarray]):
    total = None
    for out, w in zip(outputs, weights):
        if out is None:
            continue
        term = (out * Tensor._wrap(w)).sum()
        total = term if total is None else total + term
    return total


def _value(fn, inputs, weights) -> float:
    # no no_grad() here: for gradgradcheck, fn itself differentiates (create_graph=True)
    outs = _as_tuple(fn(*inputs))
    return float(sum(float(np.sum(o.data * w)) for o, w in zip(outs, weights) if o is not None))


def gradcheck(fn: Callable, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              mode: str = "auto", num_directions: int = 4, seed: int = 0) -> bool:
    """Compare the analytic gradient of ``fn`` at ``inputs`` with central differences.

    ``mode``: 'full' (every element), 'random' (random directions) or 'auto' (full for inputs of
    at most 2048 elements). Returns True, or raises GradcheckError naming the worst element.
    """
    inputs = _as_tuple(inputs)
    diff = _check_inputs(inputs, "gradcheck")
    rng = np.random.default_rng(seed)
    outputs = _as_tuple(fn(*inputs))
    for k, out in enumerate(outputs):
        if out is not None and not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: fn returned a {type(out).__name__} as output {k}, expected Tensor")
    weights = [rng.standard_normal(o.shape) if o is not None else None for o in outputs]
    loss = _scalarize(outputs, weights)
    if loss is None or not loss.requires_grad:
        raise GradcheckError("gradcheck: the outputs do not depend on any input that requires grad")
    analytic = autograd_grad(loss, [inputs[i] for i in diff], allow_unused=True)
    for i, g in zip(diff, analytic):
        x = inputs[i]
        a = np.zeros(x.shape) if g is None else g.data
        if a.shape != x.shape:
            raise GradcheckError(f"gradcheck: gradient of input {i} has shape {a.shape}, input has {x.shape}")
        full = mode == "full" or (mode == "auto" and x.data.size <= FULL_CHECK_MAX_ELEMENTS)
        if full:
            _check_full(fn, inputs, weights, i, a, eps, atol, rtol)
        else:
            _check_directions(fn, inputs, weights, i, a, eps, atol, rtol, num_directions, rng)
    return True


def _perturbed(fn, inputs, weights, i, delta) -> float:
    x = inputs[i]
    original = x.data
    x.data = original + delta
    try:
        return _value(fn, inputs, weights)
    finally:
        x.data = original


def _check_full(fn, inputs, weights, i, analytic, eps, atol, rtol):
    x = inputs[i]
    numeric = np.zeros(x.shape)
    delta = np.zeros(x.shape)
    flat_delta = delta.reshape(-1)
    for j in range(x.data.size):
        flat_delta[j] = eps
        plus = _perturbed(fn, inputs, weights, i, delta)
        flat_delta[j] = -eps
        minus = _perturbed(fn, inputs, weights, i, delta)
        flat_delta[j] = 0.0
        numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
    err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
    if err.size and err.max() > 0:
        worst = np.unravel_index(int(np.argmax(err)), err.shape)
        raise GradcheckError(
            f"gradcheck: input {i} (shape {x.shape}), element {tuple(int(w) for w in worst)}: "
            f"analytic {analytic[worst]:.10g} vs numerical {numeric[worst]:.10g} "
            f"(atol={atol}, rtol={rtol}; {int((err > 0).sum())} of {err.size} elements differ)"
        )


def _check_directions(fn, inputs, weights, i, analytic, eps, atol, rtol, num_directions, rng):
    x = inputs[i]
    for d in range(num_directions):
        v = rng.standard_normal(x.shape)
        v /= np.linalg.norm(v) or 1.0
        numeric = (_perturbed(fn, inputs, weights, i, eps * v) - _perturbed(fn, inputs, weights, i, -eps * v)) / (2 * eps)
        expected = float(np.sum(analytic * v))
        if abs(expected - numeric) > atol + rtol * abs(numeric):
            raise GradcheckError(
                f"gradcheck: input {i} (shape {x.shape}), random direction {d}: "
                f"analytic directional derivative {expected:.10g} vs numerical {numeric:.10g}"
            )


def gradgradcheck(fn: Callable, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  mode: str = "auto", seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of x ↦ ∇ₓ(Σ u ⊙ fn(x)), the first-order gradient
    built with ``create_graph=True``."""
    inputs = _as_tuple(inputs)
    diff = _check_inputs(inputs, "gradgradcheck")
    rng = np.random.default_rng(seed + 1)
    outputs = _as_tuple(fn(*inputs))
    weights = [rng.standard_normal(o.shape) if o is not None else None for o in outputs]

    def first_order(*xs):
        loss = _scalarize(_as_tuple(fn(*xs)), weights)
        grads = autograd_grad(loss, [xs[i] for i in diff], create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None and g.requires_grad)

    if not first_order(*inputs):
        return True  # the gradient does not depend on the inputs (a linear function)
    return gradcheck(first_order, inputs, eps=eps, atol=atol, rtol=rtol, mode=mode, seed=seed + 2)
