"""Layer normalization (Ba, Kiros & Hinton, 2016), as used in every Transformer block of the book:

    y = (x − μ) / √(σ² + ε) · γ + β,     μ, σ² = mean and biased variance over the normalized dims

The reference is those five lines in Tensor ops (the engine differentiates them); the kernel is one
``Function`` whose forward saves x̂ and 1/σ and whose backward is the closed form instead of a chain of
ten elementary nodes.
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function, is_grad_enabled
from minigrad.kernels import using_reference


def layer_norm_reference(x, weight, bias, axes: tuple, eps: float):
    """y = (x − μ) / √(σ² + ε) · γ + β over ``axes`` (γ, β optional), in plain Tensor ops."""
    mu = x.mean(axis=axes, keepdims=True)                       # (…, 1)
    var = ((x - mu) * (x - mu)).mean(axis=axes, keepdims=True)  # (…, 1), biased
    y = (x - mu) / (var + eps).sqrt()                           # x̂
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNormFunction(Function):
    """Fused layer norm over ``axes``, inputs (x[, γ][, β]);  dx = (ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) / σ, ĝ = g·γ (below).

    Backward, with n = number of normalized elements, x̂ = (x − μ)/σ and ĝ = g·γ:

        y = γ x̂ + β  ⇒  dβ = Σ_rows g,   dγ = Σ_rows g·x̂
        dx̂ = ĝ;  x̂ depends on x through μ and σ:
          ∂x̂_j/∂x_i = (δ_ij − 1/n − x̂_i x̂_j / n) / σ
        ⇒  dx = (1/σ) · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂))

    Under create_graph, x̂ and 1/σ are recomputed from x with Tensor ops, so the rule above is itself
    differentiable (second-order gradients).
    """

    def forward(self, x, *params, axes, eps, has_weight, has_bias):
        self.axes, self.eps, self.has_weight, self.has_bias = axes, eps, has_weight, has_bias
        self.inv_n = 1.0 / int(np.prod([x.shape[a] for a in axes]))  # 1/n
        mu = x.mean(axis=axes, keepdims=True)  # (..., 1)
        xc = x - mu  # (..., *normalized)
        var = np.mean(np.square(xc), axis=axes, keepdims=True)  # (..., 1)
        self.rstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)  # 1/σ, (..., 1)
        xc *= self.rstd
        self.xhat = xc  # x̂, kept for backward
        if not (has_weight or has_bias):
            return xc.copy()  # the saved x̂ must not be the output a caller may edit
        y = xc * params[0] if has_weight else xc.copy()
        if has_bias:
            y += params[-1]
        return y

    def _stats(self, x):
        """(x̂, 1/σ): the saved arrays, or (create_graph) differentiable recomputations from the Tensor x."""
        if not is_grad_enabled():
            return self.xhat, self.rstd
        mu = x.sum(axis=self.axes, keepdims=True) * self.inv_n
        xc = x - mu
        rstd = ((xc * xc).sum(axis=self.axes, keepdims=True) * self.inv_n + self.eps) ** -0.5
        return xc * rstd, rstd

    def backward(self, g):
        x, *params = self.args()
        xhat, rstd = self._stats(x)
        axes = self.axes
        lead = tuple(range(g.ndim - len(axes)))  # the batch dimensions, summed for γ and β
        n = self.inv_n
        need = self.needs_input_grad
        ghat = g * params[0] if self.has_weight else g  # ĝ = g·γ
        dx = dw = db = None
        if need[0]:
            mean_g = ghat.sum(axis=axes, keepdims=True) * n  # mean(ĝ)
            mean_gx = (ghat * xhat).sum(axis=axes, keepdims=True) * n  # mean(ĝ·x̂)
            dx = (ghat - mean_g - xhat * mean_gx) * rstd
        if self.has_weight and need[1]:
            dw = (g * xhat).sum(axis=lead) if lead else g * xhat
        if self.has_bias and need[-1]:
            db = g.sum(axis=lead) if lead else g
        grads = [dx]
        if self.has_weight:
            grads.append(dw)
        if self.has_bias:
            grads.append(db)
        return tuple(grads)


def layer_norm(x, weight, bias, axes: tuple, eps: float):
    """Layer norm of the Tensor ``x`` over ``axes`` (arguments already checked): the kernel or its reference."""
    if using_reference():
        return layer_norm_reference(x, weight, bias, axes, eps)
    params = [p for p in (weight, bias) if p is not None]
    return LayerNormFunction.apply(x, *params, axes=axes, eps=float(eps),
                                   has_weight=weight is not None, has_bias=bias is not None)


__all__ = ["LayerNormFunction", "layer_norm", "layer_norm_reference"]
