"""SwiGLU (Shazeer, 2020, "GLU Variants Improve Transformer"), the gate of every Llama feed-forward layer:

    SwiGLU(a, b) = silu(a) ⊙ b,    silu(a) = a·σ(a) = a / (1 + e⁻ᵃ)        (a = x W_gate, b = x W_up)

The reference is that line in Tensor ops (sigmoid, two products: three nodes and three arrays the
size of the layer). The kernel is one ``Function``: the forward runs in place in a single buffer,
and the backward recomputes σ(a) instead of keeping it,

    d/db = g ⊙ silu(a),    d/da = g ⊙ b ⊙ σ(a)·(1 + a·(1 − σ(a)))       (silu'(a) = σ + a·σ·(1 − σ)).
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function, is_grad_enabled
from minigrad.kernels import using_reference


def swiglu_reference(a, b):
    """silu(a) ⊙ b = a·σ(a)·b in plain Tensor ops."""
    return a * a.sigmoid() * b


def _sigmoid(a: np.ndarray) -> np.ndarray:
    """σ(a) = 1 / (1 + e⁻ᵃ) in a new array of a's dtype (e⁻ᵃ overflows to inf for a ≪ 0: σ = 0, right)."""
    s = np.negative(a)
    with np.errstate(over="ignore"):
        np.exp(s, out=s)
    s += a.dtype.type(1)
    np.reciprocal(s, out=s)
    return s


class SwiGLUFunction(Function):
    """silu(a) ⊙ b in one node;  d/db = g ⊙ silu(a),  d/da = g ⊙ b ⊙ σ(a)(1 + a(1 − σ(a))) (module docstring)."""

    def forward(self, a, b):
        out = _sigmoid(a)
        out *= a
        out *= b
        return out

    def backward(self, g):
        a, b = self.args()
        if is_grad_enabled():  # create_graph: the same rule, in differentiable Tensor ops
            s = a.sigmoid()
            da = g * b * s * (1.0 + a * (1.0 - s))
            return da, g * a * s
        s = _sigmoid(a)
        need_a, need_b = self.needs_input_grad
        db = g * a * s if need_b else None  # g ⊙ silu(a)
        da = None
        if need_a:
            da = 1.0 - s
            da *= a
            da += 1.0
            da *= s
            da *= b
            da *= g
        return da, db


def swiglu(a, b):
    """silu(a) ⊙ b for two Tensors of one shape and dtype (checked by the caller): the kernel or its reference."""
    if using_reference():
        return swiglu_reference(a, b)
    return SwiGLUFunction.apply(a, b)


__all__ = ["SwiGLUFunction", "swiglu", "swiglu_reference"]
