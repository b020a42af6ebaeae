"""Scale and zero point: the affine map between real numbers and 8-bit integers.

Book concept (appendix, "quantization"): a real value ``x`` is stored as an integer ``q``

    x ≈ scale · (q − zero_point)                                   (dequantize)
    q = clamp(round(x / scale + zero_point), q_min, q_max)         (quantize)

``scale`` is the real step between neighbouring integers and ``zero_point`` is the integer that
represents the real 0.0 *exactly* (so zero padding and ReLU zeros cost no error).

Conventions (all chosen to give the same integers as PyTorch's ``torch.quantize_per_tensor`` /
``torch.quantize_per_channel`` and the ``torch.ao`` observers):

* scales are float32 values, zero points are integers inside the dtype's range;
* ``round`` is round-half-to-even (``np.rint``) of ``x / scale + zero_point``;
* ``x / scale`` is computed as ``x · (1 / scale)`` with the reciprocal taken once in float32,
  as FBGEMM does. The float32 roundings then follow torch exactly: per tensor,
  ``x · inv + zero_point`` is one fused multiply-add (a single rounding to float32, emulated
  here with an exact float64 product); per channel, the product is rounded to float32 before
  the zero point is added. Both can differ from a true division by one unit when
  ``x / scale`` lies within a float32 rounding error of a half-integer.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "integer_range",
    "choose_qparams",
    "choose_qparams_per_channel",
    "quantize",
    "dequantize",
    "quantize_per_channel",
    "dequantize_per_channel",
]

# Smallest scale we hand out (float32 machine epsilon, as torch.ao's observers): a degenerate
# range such as "all zeros" would otherwise give scale 0 and a division by zero.
SCALE_EPS = float(np.finfo(np.float32).eps)

_QDTYPES = {"int8": np.dtype(np.int8), "uint8": np.dtype(np.uint8)}


def _qdtype(dtype, fn: str) -> np.dtype:
    """Normalise ``'int8' | 'uint8' | np.int8 | np.uint8`` to a NumPy dtype, or raise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _QDTYPES.values():
        raise TypeError(f"{fn}: dtype must be 'int8' or 'uint8', got {dtype!r}")
    return dt


def integer_range(dtype="int8", narrow_range: bool = False) -> tuple[int, int]:
    """The integer grid ``[q_min, q_max]`` of an 8-bit dtype.

    int8 → [−128, 127], uint8 → [0, 255]. ``narrow_range`` drops the lowest code
    (int8 → [−127, 127], uint8 → [1, 255]) so a symmetric grid is exactly symmetric
    (the TFLite/gemmlowp weight convention).
    """
    info = np.iinfo(_qdtype(dtype, "integer_range"))
    return int(info.min) + int(bool(narrow_range)), int(info.max)


# ------------------------------------------------------------------------------------------
# choosing scale and zero point
# ------------------------------------------------------------------------------------------

def _as_float32_range(x_min, x_max, fn: str) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(x_min, dtype=np.float64)
    hi = np.asarray(x_max, dtype=np.float64)
    if lo.shape != hi.shape:
        raise ValueError(f"{fn}: x_min and x_max must have the same shape, got {lo.shape} and {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError(f"{fn}: x_min and x_max must be finite, got {x_min!r} and {x_max!r}")
    if np.any(lo > hi):
        raise ValueError(f"{fn}: x_min must be <= x_max, got x_min={x_min!r}, x_max={x_max!r}")
    # float32 like the torch.ao observers, so scales and zero points match theirs bit for bit
    return lo.astype(np.float32), hi.astype(np.float32)


def _choose_qparams_arrays(lo, hi, dtype, symmetric, narrow_range):
    """Vectorised core of :func:`choose_qparams` (float32 arithmetic throughout)."""
    q_min, q_max = integer_range(dtype, narrow_range)
    # The range must contain 0.0 so that 0.0 is representable exactly (as zero_point).
    lo = np.minimum(lo, np.float32(0))
    hi = np.maximum(hi, np.float32(0))
    eps = np.float32(SCALE_EPS)
    if symmetric:
        # scale = max(|x_min|, |x_max|) / ((q_max − q_min) / 2),  zero_point = middle of the grid
        amax = np.maximum(-lo, hi)
        scale = np.maximum(amax / np.float32((q_max - q_min) / 2), eps)
        mid = 0 if np.dtype(dtype) == np.int8 else 128
        zero_point = np.full(lo.shape, mid, dtype=np.int64)
    else:
        # scale = (x_max − x_min) / (q_max − q_min)
        # zero_point = q_min − round(x_min / scale)   (round half to even, then clamp)
        scale = np.maximum((hi - lo) / np.float32(q_max - q_min), eps)
        zero_point = q_min - np.rint(lo / scale).astype(np.int64)
        zero_point = np.clip(zero_point, q_min, q_max)
    return scale.astype(np.float32), zero_point


def choose_qparams(x_min, x_max, dtype="int8", symmetric: bool = False,
                   narrow_range: bool = False) -> tuple[float, int]:
    """Scale and zero point for a real range ``[x_min, x_max]`` (per tensor).

    Asymmetric (affine) quantization, the book's formula::

        x_min ← min(x_min, 0),  x_max ← max(x_max, 0)          # 0.0 must be representable
        scale      = (x_max − x_min) / (q_max − q_min)
        zero_point = q_min − round_half_even(x_min / scale),  clamped to [q_min, q_max]

    so ``x_min`` maps to ``q_min`` and 0.0 maps to ``zero_point`` exactly. Symmetric
    quantization uses ``scale = max(|x_min|, |x_max|) / ((q_max − q_min) / 2)`` with
    zero_point 0 (int8) or 128 (uint8). Worked example from the book: x ∈ [−100, 80], int8 →
    scale = 180 / 255 = 0.70588…, zero_point = −128 − round(−141.67) = −128 + 142 = 14, so
    −100 → −128, 0 → 14, 80 → 127.

    A degenerate range (``x_min == x_max``, e.g. all zeros) gets the float32 epsilon as its
    scale instead of 0, which avoids the division by zero (torch.ao does the same).
    Arithmetic is float32, so the results equal torch.ao's ``MinMaxObserver``.

    Returns ``(scale: float, zero_point: int)``.
    """
    dt = _qdtype(dtype, "choose_qparams")
    lo, hi = _as_float32_range(x_min, x_max, "choose_qparams")
    if lo.ndim != 0:
        raise ValueError(f"choose_qparams: x_min and x_max must be scalars, got shape {lo.shape}; "
                         "use choose_qparams_per_channel for arrays")
    scale, zero_point = _choose_qparams_arrays(lo, hi, dt, symmetric, narrow_range)
    return float(scale), int(zero_point)


def choose_qparams_per_channel(x_mins, x_maxs, dtype="int8", symmetric: bool = False,
                               narrow_range: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`choose_qparams` for each channel: one ``(scale, zero_point)`` per min/max pair.

    Per-channel quantization gives every output row of a weight matrix its own grid, so one
    row with large weights does not coarsen the grid of all the others.
    Returns ``(scales: float32 (C,), zero_points: int32 (C,))``.
    """
    dt = _qdtype(dtype, "choose_qparams_per_channel")
    lo, hi = _as_float32_range(x_mins, x_maxs, "choose_qparams_per_channel")
    if lo.ndim != 1:
        raise ValueError(f"choose_qparams_per_channel: x_mins and x_maxs must be 1-D, got shape {lo.shape}")
    scale, zero_point = _choose_qparams_arrays(lo, hi, dt, symmetric, narrow_range)
    return scale, zero_point.astype(np.int32)


# ------------------------------------------------------------------------------------------
# quantize / dequantize
# ------------------------------------------------------------------------------------------

def _float_input(x, fn: str) -> np.ndarray:
    x = np.asarray(getattr(x, "data", x) if not isinstance(x, np.ndarray) else x)
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: x must be a floating-point array, got dtype {x.dtype}")
    return x


def _check_zero_point(zero_point, q_min, q_max, fn: str) -> np.ndarray:
    zp = np.asarray(zero_point)
    if zp.dtype.kind not in "iu":
        raise TypeError(f"{fn}: zero_point must be an integer, got {zero_point!r} (dtype {zp.dtype})")
    if np.any(zp < q_min) or np.any(zp > q_max):
        raise ValueError(f"{fn}: zero_point must lie in [{q_min}, {q_max}], got {zero_point!r}")
    return zp.astype(np.int32)


def _check_scale(scale, fn: str) -> np.ndarray:
    s = np.asarray(scale, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        s32 = s.astype(np.float32)                       # scales are float32 (as torch's)
    if not (np.all(np.isfinite(s32)) and np.all(s32 > 0)):
        raise ValueError(f"{fn}: scale must be finite and > 0 in float32, got {scale!r}")
    return s32


def _quantize_core(x, inv_scale, zero_point, q_min, q_max, dt, fn, fused):
    # q = clamp(round_half_even(x · (1/scale) + zero_point), q_min, q_max)
    with np.errstate(over="ignore"):           # beyond float32: ±inf, clamped below
        if fused:
            # one rounding of x·inv + zp to float32 (FBGEMM's fused multiply-add, torch per
            # tensor): the float32·float32 product is exact in float64
            t = np.multiply(x.astype(np.float32, copy=False), inv_scale.astype(np.float64), dtype=np.float64)
            t += zero_point
            t = t.astype(np.float32)
        else:
            # x·inv rounded to float32, then + zp rounded again (torch per channel)
            t = np.multiply(x, inv_scale, dtype=np.float32)
            t += zero_point.astype(np.float32)
    np.rint(t, out=t)
    np.clip(t, q_min, q_max, out=t)
    if np.isnan(t).any():
        raise ValueError(f"{fn}: x contains NaN, which has no quantized value")
    return t.astype(dt)


def quantize(x, scale, zero_point, dtype="int8", narrow_range: bool = False) -> np.ndarray:
    """Quantize a float array per tensor: ``q = clamp(round(x / scale + zero_point))``.

    Round half to even, with ``x / scale`` computed as ``x · float32(1 / scale)``; values
    outside the representable range are clamped to ``q_min`` / ``q_max`` (±inf too), NaN is an
    error. Gives the same integers as ``torch.quantize_per_tensor(x, scale, zero_point, dtype)``.
    Accepts an ndarray or any object with a ``.data`` ndarray (a minigrad Tensor).
    """
    fn = "quantize"
    dt = _qdtype(dtype, fn)
    x = _float_input(x, fn)
    s = _check_scale(scale, fn)
    if s.ndim != 0:
        raise ValueError(f"{fn}: scale must be a scalar, got shape {s.shape}; use quantize_per_channel")
    q_min, q_max = integer_range(dt, narrow_range)
    zp = _check_zero_point(zero_point, q_min, q_max, fn)
    if zp.ndim != 0:
        raise ValueError(f"{fn}: zero_point must be a scalar, got shape {zp.shape}")
    inv_scale = np.float32(1) / s
    return _quantize_core(x, inv_scale, zp, q_min, q_max, dt, fn, fused=True)


def _check_qarray(q, fn: str, name: str = "q") -> np.ndarray:
    q = np.asarray(q)
    if q.dtype not in _QDTYPES.values():
        raise TypeError(f"{fn}: {name} must be an int8 or uint8 array, got dtype {q.dtype}")
    return q


def dequantize(q, scale, zero_point) -> np.ndarray:
    """Back to real numbers: ``x̂ = scale · (q − zero_point)`` (float32, as torch's dequantize).

    ``q`` is cast to int32 before the zero point is subtracted — int8 arithmetic would
    silently wrap around.
    """
    fn = "dequantize"
    q = _check_qarray(q, fn)
    s = _check_scale(scale, fn)
    if s.ndim != 0:
        raise ValueError(f"{fn}: scale must be a scalar, got shape {s.shape}; use dequantize_per_channel")
    q_min, q_max = integer_range(q.dtype)
    zp = _check_zero_point(zero_point, q_min, q_max, fn)
    if zp.ndim != 0:
        raise ValueError(f"{fn}: zero_point must be a scalar, got shape {zp.shape}")
    return (q.astype(np.int32) - zp).astype(np.float32) * s


def _channel_params(shape, scales, zero_points, axis, q_min, q_max, fn):
    """Validate per-channel parameters and reshape them to broadcast along ``axis``."""
    ndim = len(shape)
    if not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: axis must be an int in [{-ndim}, {ndim}) for an array of shape "
                         f"{tuple(shape)}, got {axis!r}")
    axis = int(axis) % ndim
    s = _check_scale(scales, fn)
    zp = _check_zero_point(zero_points, q_min, q_max, fn)
    n = shape[axis]
    if s.shape != (n,) or zp.shape != (n,):
        raise ValueError(f"{fn}: scales and zero_points must have shape ({n},) (size of axis {axis} "
                         f"of shape {tuple(shape)}), got {s.shape} and {zp.shape}")
    bshape = [1] * ndim
    bshape[axis] = n
    return s.reshape(bshape), zp.reshape(bshape)


def quantize_per_channel(x, scales, zero_points, axis: int, dtype="int8",
                         narrow_range: bool = False) -> np.ndarray:
    """Per-channel quantization: channel ``c`` along ``axis`` uses ``scales[c]``, ``zero_points[c]``.

    ``q[..., c, ...] = clamp(round(x[..., c, ...] / scales[c] + zero_points[c]))`` — the same
    integers as ``torch.quantize_per_channel(x, scales, zero_points, axis, dtype)``.
    """
    fn = "quantize_per_channel"
    dt = _qdtype(dtype, fn)
    x = _float_input(x, fn)
    if x.ndim == 0:
        raise ValueError(f"{fn}: x must have at least one dimension, got a scalar")
    q_min, q_max = integer_range(dt, narrow_range)
    s, zp = _channel_params(x.shape, scales, zero_points, axis, q_min, q_max, fn)
    return _quantize_core(x, np.float32(1) / s, zp, q_min, q_max, dt, fn, fused=False)


def dequantize_per_channel(q, scales, zero_points, axis: int) -> np.ndarray:
    """Inverse of :func:`quantize_per_channel`: ``x̂[..., c, ...] = scales[c] · (q − zero_points[c])``."""
    fn = "dequantize_per_channel"
    q = _check_qarray(q, fn)
    if q.ndim == 0:
        raise ValueError(f"{fn}: q must have at least one dimension, got a scalar")
    q_min, q_max = integer_range(q.dtype)
    s, zp = _channel_params(q.shape, scales, zero_points, axis, q_min, q_max, fn)
    return (q.astype(np.int32) - zp).astype(np.float32) * s
