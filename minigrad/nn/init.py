"""Parameter initialisation (``torch.nn.init``'s functions, names and formulas).

Every function fills ``tensor.data`` in place and returns ``tensor``. Random ones take an optional
``generator=`` (a ``minigrad.Generator`` or a ``numpy.random.Generator``) and otherwise draw from
the global stream that ``minigrad.manual_seed`` resets. Values are drawn in float64 and rounded
to the tensor's dtype.

Why the scales: keeping the variance of activations (forward) or gradients (backward) constant
from layer to layer — Glorot & Bengio (2010) for tanh/linear layers ("xavier"), He et al. (2015)
for ReLU layers ("kaiming").
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.special import ndtr, ndtri

from minigrad.random import Generator, _rng
from minigrad.tensor import Tensor

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d", "sigmoid")


def _array(fn: str, tensor, need_float: bool = True) -> np.ndarray:
    """The array to fill in place (a Tensor's ``.data``, or an ndarray itself)."""
    if isinstance(tensor, Tensor):
        arr = tensor.data
    elif isinstance(tensor, np.ndarray):
        arr = tensor
    else:
        raise TypeError(f"{fn}: expected a Tensor (or numpy array), got {type(tensor).__name__}")
    if need_float and arr.dtype.kind != "f":
        raise TypeError(f"{fn}: expected a floating-point tensor, got dtype {arr.dtype}")
    return arr


def _generator(generator) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is not None and not isinstance(generator, Generator):
        raise TypeError(f"generator must be a minigrad.Generator or numpy Generator, got {type(generator).__name__}")
    return _rng(generator)


def calculate_gain(nonlinearity: str, param=None) -> float:
    """Recommended gain for a nonlinearity: 1 (linear, sigmoid), 5/3 (tanh), √2 (relu),
    √(2 / (1 + slope²)) (leaky_relu, slope default 0.01), 3/4 (selu)."""
    if nonlinearity in _LINEAR_FNS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r} "
                     f"(expected one of {', '.join(_LINEAR_FNS + ('tanh', 'relu', 'leaky_relu', 'selu'))})")


def _calculate_fan_in_and_fan_out(tensor) -> tuple[int, int]:
    """fan_in = shape[1]·receptive field, fan_out = shape[0]·receptive field, where the receptive
    field is the product of shape[2:] (1 for a Linear weight of shape (out, in))."""
    shape = _array("_calculate_fan_in_and_fan_out", tensor, need_float=False).shape
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
                         f"(got shape {shape})")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor, mode: str) -> int:
    mode = mode.lower() if isinstance(mode, str) else mode
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode!r} not supported, please use one of 'fan_in', 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# ----------------------------------------------------------------------------------------------
# Plain distributions and constants
# ----------------------------------------------------------------------------------------------
def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with U(a, b)."""
    arr = _array("uniform_", tensor)
    if not a <= b:
        raise ValueError(f"uniform_: expected a <= b, got a={a}, b={b}")
    arr[...] = _generator(generator).uniform(a, b, size=arr.shape)
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with N(mean, std²)."""
    arr = _array("normal_", tensor)
    if std < 0:
        raise ValueError(f"normal_: std must be non-negative, got {std}")
    arr[...] = _generator(generator).normal(mean, std, size=arr.shape)
    return tensor


def constant_(tensor, val: float):
    """Fill with ``val``."""
    _array("constant_", tensor, need_float=False)[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None):
    """Fill with N(mean, std²) truncated to [a, b] (BERT's initializer), by inverse-CDF sampling:

        u ~ U(Φ((a-μ)/σ), Φ((b-μ)/σ)),   x = μ + σ·Φ⁻¹(u),   then clipped to [a, b]
    """
    arr = _array("trunc_normal_", tensor)
    if not (a < b and std > 0):
        raise ValueError(f"trunc_normal_: expected a < b and std > 0, got a={a}, b={b}, std={std}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("trunc_normal_: mean is more than 2 std from [a, b]; "
                      "the distribution of values may be incorrect.", stacklevel=2)
    lo, hi = ndtr((a - mean) / std), ndtr((b - mean) / std)
    u = _generator(generator).uniform(lo, hi, size=arr.shape)
    arr[...] = np.clip(mean + std * ndtri(u), a, b)
    return tensor


# ----------------------------------------------------------------------------------------------
# Variance-preserving initialisations
# ----------------------------------------------------------------------------------------------
def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """Glorot & Bengio (2010): U(-a, a) with a = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std  # U(-a, a) has std a/√3
    return uniform_(tensor, -bound, bound, generator=generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """Glorot & Bengio (2010): N(0, std²) with std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator=generator)


def _kaiming_std(fn: str, tensor, a, mode, nonlinearity) -> float | None:
    arr = _array(fn, tensor)
    if 0 in arr.shape:
        warnings.warn(f"{fn}: initializing zero-element tensors is a no-op", stacklevel=3)
        return None
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None):
    """He et al. (2015): U(-bound, bound) with bound = gain·√(3 / fan_mode)
    (``a`` is the leaky-ReLU negative slope used by the gain)."""
    std = _kaiming_std("kaiming_uniform_", tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator=generator)


def kaiming_normal_(tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None):
    """He et al. (2015): N(0, std²) with std = gain / √fan_mode."""
    std = _kaiming_std("kaiming_normal_", tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator=generator)
