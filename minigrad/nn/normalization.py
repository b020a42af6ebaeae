"""Layer normalization (Ba, Kiros & Hinton, 2016, "Layer Normalization"), as used in every
Transformer block of the book (ch. 3–5):

    y = (x − μ) / √(σ² + ε) · γ + β,     μ, σ² = mean and biased variance over the last dims

The math and its fused kernel are in ``minigrad/kernels/normalization.py``.
"""
from __future__ import annotations

import numpy as np

from minigrad.functional.normalization import layer_norm, normalized_tuple
from minigrad.kernels.normalization import LayerNormFunction  # noqa: F401  (its old home)
from minigrad.nn import init
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.tensor import Tensor


class LayerNorm(Module):
    """``LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)`` — torch.nn.LayerNorm.

        y = (x − E[x]) / √(Var[x] + ε) · γ + β      (γ = ``weight`` = 1, β = ``bias`` = 0 at init)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=None):
        super().__init__()
        self.normalized_shape = normalized_tuple("LayerNorm", normalized_shape)
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
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)  # (…, *normalized_shape)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")
