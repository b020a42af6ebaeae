"""``layer_norm`` (torch.nn.functional.layer_norm): argument checks, then the kernel
(``minigrad/kernels/normalization.py``)."""
from __future__ import annotations

import numbers

from minigrad.kernels import normalization as kernel
from minigrad.tensor import Tensor


def normalized_tuple(fn: str, normalized_shape) -> tuple:
    """``normalized_shape`` (an int or a sequence of ints) as a tuple of positive ints."""
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


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Layer normalization over the trailing ``normalized_shape`` dims:

        y = (x − E[x]) / √(Var[x] + ε) · γ + β
    """
    shape = normalized_tuple("layer_norm", normalized_shape)
    if not isinstance(x, Tensor):
        raise TypeError(f"layer_norm: input must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"layer_norm: input must be floating-point, got dtype {x.dtype}")
    k = len(shape)
    if x.ndim < k or tuple(x.shape[-k:]) != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end with normalized_shape {shape}")
    if not eps > 0:
        raise ValueError(f"layer_norm: eps must be positive, got {eps}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is None:
            continue
        if not isinstance(p, Tensor):
            raise TypeError(f"layer_norm: {name} must be a Tensor or None, got {type(p).__name__}")
        if tuple(p.shape) != shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected normalized_shape {shape}")
        if p.dtype != x.dtype:
            raise TypeError(f"layer_norm: {name} has dtype {p.dtype}, input has {x.dtype}")
    axes = tuple(range(x.ndim - k, x.ndim))
    return kernel.layer_norm(x, weight, bias, axes, float(eps))


__all__ = ["layer_norm", "normalized_tuple"]
