"""Rotary position embeddings (RoPE; Su et al., 2021, RoFormer § 3.4.2), the positions of every Llama:
the query and key of the token at position p are rotated, pair of features by pair, by the angles p·θ_i,

    x' = x ⊙ cos + rotate_half(x) ⊙ sin,     rotate_half([x₁, x₂]) = [−x₂, x₁],
    θ_i = base^(−2i/d),   cos = cos(p·[θ, θ]),   sin = sin(p·[θ, θ])         (i = 0 … d/2 − 1)

so q'·k' depends on the positions only through their difference (a rotation by p_q·θ against one by
p_k·θ). Feature i is paired with feature i + d/2 (the "half-split" layout of GPT-NeoX and Hugging Face;
llama.cpp pairs neighbours 2i, 2i + 1 and permutes the Q/K weights to match — ``models.llama`` undoes
that). cos and sin are constants here; only x is differentiated. The map is linear in x, x' = (C + S·R)x
with R the rotate_half matrix, so its backward is the transpose,

    dx = g ⊙ cos + Rᵀ(g ⊙ sin),     Rᵀ[y₁, y₂] = [y₂, −y₁].
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.kernels import using_reference
from minigrad.ops import xp
from minigrad.tensor import cat


def rotate_half_reference(x):
    """[x₁, x₂] → [−x₂, x₁] over the last dimension, in Tensor ops."""
    h = x.shape[-1] // 2
    return cat([-x[..., h:], x[..., :h]], dim=-1)


def rotary_reference(x, cos, sin):
    """x ⊙ cos + rotate_half(x) ⊙ sin in plain Tensor ops (``cos``/``sin`` arrays broadcast against x)."""
    return x * cos + rotate_half_reference(x) * sin


class RotaryFunction(Function):
    """x' = x ⊙ cos + rotate_half(x) ⊙ sin in one pass;  dx = g ⊙ cos + Rᵀ(g ⊙ sin) (module docstring)."""

    def forward(self, x, *, cos, sin):
        self.cos, self.sin = cos, sin
        h = x.shape[-1] // 2
        out = x * cos  # (…, d), the broadcast shape
        out[..., :h] -= x[..., h:] * sin[..., :h]
        out[..., h:] += x[..., :h] * sin[..., h:]
        return out

    def backward(self, g):
        h = g.shape[-1] // 2
        gs = g * self.sin
        return g * self.cos + xp().cat([gs[..., h:], -gs[..., :h]], -1)  # works on arrays and Tensors alike


def rotary(x, cos: np.ndarray, sin: np.ndarray):
    """RoPE of the Tensor ``x`` (…, d) with ``cos``/``sin`` arrays broadcastable to it (d even, checked by
    the caller): the kernel or its reference."""
    if using_reference():
        return rotary_reference(x, cos, sin)
    return RotaryFunction.apply(x, cos=cos, sin=sin)


__all__ = ["RotaryFunction", "rotary", "rotary_reference", "rotate_half_reference"]
