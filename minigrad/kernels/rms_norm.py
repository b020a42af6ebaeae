"""RMSNorm (Zhang & Sennrich, 2019), the normalization of every Llama block:

    y = x / RMS(x) · γ,     RMS(x) = √(mean(x²) + ε)      over the last dimension

It is LayerNorm without the centring and without β: the paper found the re-centring contributes
little, and dropping it saves one reduction. The reference is those two lines in Tensor ops; the
kernel is one ``Function`` that keeps only r = 1/RMS(x) per row for its backward,

    x̂ = x·r,   dγ = Σ_rows g·x̂,   dx = r·(ĝ − x̂·mean(ĝ·x̂)),   ĝ = g·γ

(∂x̂_j/∂x_i = r·δ_ij − r³·x_i·x_j/n, since ∂r/∂x_i = −r³·x_i/n).
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function, is_grad_enabled
from minigrad.kernels import using_reference


def rms_norm_reference(x, weight, eps: float):
    """y = x · (mean(x²) + ε)^(−½) · γ over the last dimension (γ optional), in plain Tensor ops."""
    r = ((x * x).mean(axis=-1, keepdims=True) + eps).rsqrt()  # (…, 1)
    y = x * r
    return y if weight is None else y * weight


class RMSNormFunction(Function):
    """Fused RMSNorm over the last dimension, inputs (x[, γ]);  dx = r·(ĝ − x̂·mean(ĝ·x̂)) (module docstring).

    Under create_graph, r is recomputed from x with Tensor ops, so the rule is differentiable again."""

    def forward(self, x, *weight, eps):
        self.eps = eps
        n = x.shape[-1]
        # mean(x²) as a row-wise dot product: one pass, no (…, n) temporary for x²
        ms = np.einsum("...i,...i->...", x, x)[..., None] / x.dtype.type(n)
        self.rstd = 1.0 / np.sqrt(ms + x.dtype.type(eps))  # r, (…, 1)
        y = x * self.rstd
        if weight:
            y *= weight[0]
        return y

    def backward(self, g):
        x, *weight = self.args()
        if is_grad_enabled():  # create_graph: r as a differentiable function of x
            r = ((x * x).mean(axis=-1, keepdims=True) + self.eps) ** -0.5
        else:
            r = self.rstd
        xhat = x * r
        need = self.needs_input_grad
        ghat = g * weight[0] if weight else g
        dx = dw = None
        if need[0]:
            dx = (ghat - xhat * (ghat * xhat).mean(axis=-1, keepdims=True)) * r
        if weight and need[1]:
            lead = tuple(range(g.ndim - 1))
            dw = (g * xhat).sum(axis=lead) if lead else g * xhat
        return (dx, dw) if weight else dx


def rms_norm(x, weight, eps: float):
    """RMSNorm of the Tensor ``x`` over its last dimension (arguments checked by the caller): kernel or reference."""
    if using_reference():
        return rms_norm_reference(x, weight, eps)
    if weight is None:
        return RMSNormFunction.apply(x, eps=float(eps))
    return RMSNormFunction.apply(x, weight, eps=float(eps))


__all__ = ["RMSNormFunction", "rms_norm", "rms_norm_reference"]
