"""Layer normalization (Ba, Kiros & Hinton, 2016, "Layer Normalization"), as used in every
Transformer block of the book (ch. 3–5):

    y = (x − μ) / √(σ² + ε) · γ + β,     μ, σ² = mean and biased variance over the last dims

``layer_norm`` is one fused ``Function``: the forward saves x̂ and 1/σ, the backward is the
closed form below instead of a chain of ten elementary ops.
"""
from __future__ import annotations

import numbers

import numpy as np

from minigrad.nn import init
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.tensor import Function, Tensor


def _normalized_tuple(fn: str, normalized_shape) -> tuple:
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (normalized_shape,)
    try:
        shape = tuple(int(s) for s in normalized_shape)
    except TypeError:
        raise TypeError(f"{fn}: normalized_shape must be an int or a sequence of ints, "
                        f"got {normalized_shape!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"{fn}: normalized_shape must be a non-empty sequence of positive ints, got {shape}")
    return shape


class LayerNormFunction(Function):
    """Fused layer norm over the last ``k`` dimensions; inputs (x[, γ][, β]).

    Backward, with n = number of normalized elements, x̂ = (x − μ)/σ and ĝ = g·γ:

        y = γ x̂ + β  ⇒  dβ = Σ_rows g,   dγ = Σ_rows g·x̂
        dx̂ = ĝ;  x̂ depends on x through μ and σ:
          ∂x̂_j/∂x_i = (δ_ij − 1/n − x̂_i x̂_j / n) / σ
        ⇒  dx = (1/σ) · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂))

    Dual mode: when a graph is being built (create_graph=True), x̂ and 1/σ are recomputed from
    x with Tensor ops, so the rule above is itself differentiable (second-order gradients).
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
        """(x̂, 1/σ): the saved arrays, or differentiable recomputations from the Tensor x."""
        if not isinstance(x, Tensor):
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


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` dims (torch.nn.functional.layer_norm).

        y = (x − E[x]) / √(Var[x] + ε) · γ + β
    """
    shape = _normalized_tuple("layer_norm", normalized_shape)
    if not isinstance(x, Tensor):
        raise TypeError(f"layer_norm: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"layer_norm: input must be floating-point, got dtype {x.dtype}")
    k = len(shape)
    if x.ndim < k or tuple(x.shape[-k:]) != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with normalized_shape {shape}")
    if not eps > 0:
        raise ValueError(f"layer_norm: eps must be positive, got {eps}")
    inputs = [x]
    for name, p in (("weight", weight), ("bias", bias)):
        if p is None:
            continue
        if not isinstance(p, Tensor):
            raise TypeError(f"layer_norm: {name} must be a Tensor or None, got {type(p).__name__}")
        if tuple(p.shape) != shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected normalized_shape {shape}")
        if p.dtype != x.dtype:
            raise TypeError(f"layer_norm: {name} has dtype {p.dtype}, input has {x.dtype}")
        inputs.append(p)
    axes = tuple(range(x.ndim - k, x.ndim))
    return LayerNormFunction.apply(*inputs, axes=axes, eps=float(eps),
                                   has_weight=weight is not None, has_bias=bias is not None)


class LayerNorm(Module):
    """``LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)`` — torch.nn.LayerNorm.

        y = (x − E[x]) / √(Var[x] + ε) · γ + β      (γ = ``weight`` = 1, β = ``bias`` = 0 at init)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=None):
        super().__init__()
        self.normalized_shape = _normalized_tuple("LayerNorm", normalized_shape)
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be positive, got {eps}")
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"LayerNorm: dtype must be floating-point, got {dtype}")
        self.eps = float(eps)
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype=dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")
