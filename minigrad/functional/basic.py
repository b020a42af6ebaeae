"""Functional forms of the activations, ``linear``, ``dropout``, ``embedding``, ``pad`` and ``one_hot``."""
from __future__ import annotations

import numpy as np

from minigrad import ops
from minigrad.checks import describe, numeric_array
from minigrad.checks import number as _number
from minigrad.kernels import embedding as embedding_kernel
from minigrad.kernels import linear as linear_kernel
from minigrad.random import Generator, _rng
from minigrad.tensor import Tensor, where


def relu(x: Tensor) -> Tensor:
    return x.relu()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return x.gelu(approximate=approximate)


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    return x.softplus(beta=beta, threshold=threshold)


def _float_input(fn: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {describe(x)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be a floating-point tensor, got dtype {x.dtype}")
    return x




def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """ELU(x) = x for x > 0, else α·(eˣ − 1) (Clevert et al., 2015)."""
    return ops.Elu.apply(_float_input("elu", x), alpha=_number("elu", "alpha", alpha), input_scale=1.0)


def celu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """CELU(x) = max(0, x) + min(0, α·(exp(x/α) − 1)) (Barron, 2017): ELU of x/α scaled back, smooth at 0 for any α."""
    alpha = _number("celu", "alpha", alpha)
    if alpha == 0:
        raise ValueError("celu: alpha must be nonzero (the input is divided by it), got 0")
    return ops.Elu.apply(_float_input("celu", x), alpha=alpha, input_scale=1.0 / alpha)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, else negative_slope·x."""
    slope = _number("leaky_relu", "negative_slope", negative_slope)
    return ops.LeakyRelu.apply(_float_input("leaky_relu", x), slope=slope)


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """x clipped to [min_val, max_val]; the gradient is 0 at the corners (torch.clamp keeps it there)."""
    lo, hi = _number("hardtanh", "min_val", min_val), _number("hardtanh", "max_val", max_val)
    if lo > hi:
        raise ValueError(f"hardtanh: min_val ({lo}) must not be greater than max_val ({hi})")
    return ops.Hardtanh.apply(_float_input("hardtanh", x), lo=lo, hi=hi)


def relu6(x: Tensor) -> Tensor:
    """min(max(0, x), 6) = hardtanh(x, 0, 6) (MobileNet's activation)."""
    return hardtanh(x, 0.0, 6.0)


def hardswish(x: Tensor) -> Tensor:
    """x·relu6(x + 3)/6 (MobileNetV3): 0 for x ≤ −3, x for x ≥ 3, a parabola between."""
    return ops.Hardswish.apply(_float_input("hardswish", x))


def softsign(x: Tensor) -> Tensor:
    """x / (1 + |x|), ±1 at ±inf."""
    return ops.Softsign.apply(_float_input("softsign", x))


def mish(x: Tensor) -> Tensor:
    """Mish(x) = x·tanh(softplus(x)) (Misra, 2019).

    Above 20, tanh(softplus(x)) is already 1 in float32 and float64, so mish(x) = x there exactly; below −1e4,
    softplus(x) is already 0. Computing the formula on x clamped to [−1e4, 20] therefore changes no finite result
    and gives the limits at ±inf (mish(−inf) = −0, mish'(+inf) = 1) instead of inf·0 = NaN."""
    x = _float_input("mish", x)
    xc = x.clamp(-ops.GELU_FLAT, 20.0)
    return where(x > 20.0, x, xc * xc.softplus().tanh())


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.log_softmax(dim)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x Wᵀ + b with W of shape (out_features, in_features), as torch.nn.functional.linear."""
    if not isinstance(x, Tensor):
        x = weight._lift(x)
    if x.ndim == 0 or weight.ndim != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not fit weight of shape {weight.shape} "
                         "(the input's last dimension must equal in_features = weight.shape[1])")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias has shape {bias.shape}, expected ({weight.shape[0]},)")
    tensors = (x, weight) if bias is None else (x, weight, bias)
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) > 1:
        if x.dtype.kind != "f" and len({weight.dtype} | ({bias.dtype} if bias is not None else set())) == 1:
            tensors = (x.astype(weight.dtype),) + tensors[1:]
        else:
            raise TypeError(f"linear: mixed dtypes {sorted(str(d) for d in dtypes)}; cast with .float()/.double()")
    return linear_kernel.linear(*tensors)


def dropout(x: Tensor, p: float = 0.5, training: bool = True, generator: Generator | None = None) -> Tensor:
    """Inverted dropout: zero each element with probability p, scale the rest by 1/(1-p)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = _rng(generator).random(x.shape) >= p
    return x * Tensor._wrap((keep * (1.0 / (1.0 - p))).astype(x.dtype))


def embedding(input, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` picked by integer ids; no gradient flows into the ``padding_idx`` row."""
    ids = input.data if isinstance(input, Tensor) else numeric_array("embedding", "ids", input)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {ids.dtype}")
    num = weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= num):
        raise IndexError(f"embedding: ids must lie in [0, {num}), got min {ids.min()} and max {ids.max()}")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += num
    return embedding_kernel.embedding(weight, ids, padding_idx)


def pad(x: Tensor, pad: tuple, value: float = 0.0) -> Tensor:
    """Constant padding with PyTorch's argument order: (left, right) for the last dimension,
    then (top, bottom) for the one before, and so on."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of pad sizes for at most {x.ndim} dims, got {pad}")
    if any(int(p) < 0 for p in pad):
        raise ValueError(f"pad: negative padding is not supported, got {pad}")
    width = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        width[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    return ops.Pad.apply(x, pad_width=tuple(width), value=value)


def one_hot(ids, num_classes: int) -> Tensor:
    ids = ids.data if isinstance(ids, Tensor) else numeric_array("one_hot", "ids", ids)
    if ids.dtype.kind not in "iu":
        raise TypeError(f"one_hot: ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise IndexError(f"one_hot: ids must lie in [0, {num_classes})")
    return Tensor._wrap(np.eye(num_classes, dtype=np.int64)[ids])
