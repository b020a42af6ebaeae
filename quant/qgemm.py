"""Integer-only arithmetic: exact int8 GEMM with int32 accumulation, requantization, quantized add.

Book concept (appendix, "integer matrix multiplication"): with ``A ≈ s_a (a − z_a)`` and
``B ≈ s_b (b − z_b)`` the product is ``A·B ≈ s_a s_b · acc`` where

    acc_ij = Σ_k (a_ik − z_a)(b_kj − z_b)                                         (int32)
           = Σ_k a_ik b_kj − z_b Σ_k a_ik − z_a Σ_k b_kj + K z_a z_b

The second line is how integer hardware computes it (Jacob et al. 2018, "Quantization and
Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", eq. 7-8): one
raw integer product plus cheap row-sum / column-sum corrections. ``acc`` is then brought back
to 8 bits by *requantization* with ``M = s_a s_b / s_out`` stored as an int32 fixed-point
multiplier and a shift (gemmlowp), so no float is needed at inference time.

NumPy's integer matmul does not use BLAS and is two orders of magnitude slower than float
BLAS. The raw product ``Σ_k a_ik b_kj`` is therefore computed with float32 BLAS in blocks of K
small enough that every partial sum is an integer of magnitude at most 2^24 — exactly
representable in float32, so the result is *exact*, whatever order BLAS adds in.
"""

from __future__ import annotations

import numpy as np

from .qparams import _QDTYPES, _qdtype, integer_range

__all__ = [
    "qmatmul",
    "quantize_multiplier",
    "multiply_by_quantized_multiplier",
    "requantize",
    "requantize_fixed_point",
    "quantized_add",
]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
FLOAT32_EXACT = 2**24   # every integer of magnitude <= 2^24 is exact in float32
FLOAT64_EXACT = 2**53


# ------------------------------------------------------------------------------------------
# input checks
# ------------------------------------------------------------------------------------------

def _qarray(x, fn: str, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype not in _QDTYPES.values():
        got = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
        raise TypeError(f"{fn}: {name} must be an int8 or uint8 ndarray, got {got}")
    return x


def _int_param(value, fn: str, name: str, lo: int, hi: int, shapes=((),)) -> np.ndarray:
    """An integer scalar/vector in ``[lo, hi]`` whose shape is one of ``shapes``."""
    v = np.asarray(value)
    if v.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {name} must be an integer (or integer array), got {value!r}")
    if v.shape not in shapes:
        raise ValueError(f"{fn}: {name} must have shape {' or '.join(map(str, shapes))}, got {v.shape}")
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"{fn}: {name} must lie in [{lo}, {hi}], got {value!r}")
    return v.astype(np.int64)


def _centre(dtype) -> int:
    """Offset that centres a dtype's integers on 0: uint8 [0, 255] − 128 → [−128, 127]."""
    return 128 if dtype == np.uint8 else 0


def _absmax(x: np.ndarray, centre: int = 0) -> int:
    """``max|x − centre|`` from min/max (``np.abs(int8(−128))`` would wrap around)."""
    return 0 if x.size == 0 else max(abs(int(x.min()) - centre), abs(int(x.max()) - centre))


# ------------------------------------------------------------------------------------------
# exact integer GEMM
# ------------------------------------------------------------------------------------------

def exact_block_size(a_absmax: int, b_absmax: int) -> int:
    """Largest K-block for which float32 dot products of integers are provably exact.

    Every partial sum of ``k`` products is bounded by ``k · max|a| · max|b|``; if that is at
    most 2^24 all partial sums are integers that float32 represents exactly, so BLAS (any
    summation order, with or without FMA) returns the exact integer. For int8×int8 values
    (|.| ≤ 128) this is K ≤ 1024.
    """
    return FLOAT32_EXACT // max(a_absmax * b_absmax, 1)


def _as_float(x: np.ndarray, centre: int, dtype) -> np.ndarray:
    f = x.astype(dtype)
    if centre:
        f -= dtype(centre)
    return f


def _raw_int_products(a, c_a, a_max, b, c_b, b_max, blas_dtype) -> np.ndarray:
    """Exact ``Σ_k (a_ik − c_a)(b_kj − c_b)`` for integer ``a (M, K)``, ``b (K, N)`` via float BLAS.

    ``a_max``, ``b_max``: bounds on ``|a − c_a|`` and ``|b − c_b|``.
    """
    K = a.shape[1]
    if K * a_max * b_max > FLOAT64_EXACT:
        raise OverflowError(f"qmatmul: K={K} is too large for an exact product (K·max|a|·max|b| > 2^53)")
    if blas_dtype == np.float64:
        # one float64 GEMM: exact because every partial sum is an integer of at most 2^53
        return (_as_float(a, c_a, np.float64) @ _as_float(b, c_b, np.float64)).astype(np.int64)
    af, bf = _as_float(a, c_a, np.float32), _as_float(b, c_b, np.float32)
    block = exact_block_size(a_max, b_max)
    if block >= K:
        return (af @ bf).astype(np.int32)                         # (M, N), |values| <= 2^24
    # K too long for one exact float32 GEMM: equal exact blocks, summed exactly as integers
    n_blocks = -(-K // block)
    block = -(-K // n_blocks)
    acc_dtype = np.int32 if K * a_max * b_max <= INT32_MAX else np.int64
    acc = (af[:, :block] @ bf[:block]).astype(acc_dtype)
    for k0 in range(block, K, block):
        # the float32 block holds exact integers: add it to the integer accumulator in one pass
        np.add(acc, af[:, k0:k0 + block] @ bf[k0:k0 + block], out=acc, casting="unsafe")
    return acc


def qmatmul(a_q: np.ndarray, a_zero_point, b_q: np.ndarray, b_zero_point, *,
            b_col_sums=None, blas_dtype="auto") -> np.ndarray:
    """Exact int32 accumulator of ``(a_q − z_a) · (b_q − z_b)`` (Jacob et al. 2018, eq. 7-8).

        acc_ij = Σ_k a_ik b_kj − z_b,j Σ_k a_ik − z_a Σ_k b_kj + K z_a z_b,j

    uint8 operands are first centred (``a − 128``, ``z_a − 128``: the same differences), so
    every operand is in [−128, 127] and float32 BLAS stays exact for K-blocks of 1024.

    Args:
        a_q: int8/uint8 ``(..., K)`` — e.g. quantized activations (per-tensor zero point).
        a_zero_point: integer in ``a_q``'s dtype range.
        b_q: int8/uint8 ``(K, N)`` — e.g. the transposed quantized weight of a Linear.
        b_zero_point: integer, or ``(N,)`` integers for per-output-channel weights.
        b_col_sums: optional precomputed ``Σ_k b_kj`` ``(N,)`` of ``b_q`` as stored (constant
            for weights, saves one pass over them).
        blas_dtype: ``"auto"`` (float32 BLAS in provably exact K-blocks) or ``np.float64``
            (one float64 GEMM, exact up to 2^53; about twice as slow).

    Returns an int32 array ``(..., N)``, bit-identical to the int64 computation; raises
    ``OverflowError`` if the exact accumulator does not fit int32 (only for K > ~8000).
    """
    fn = "qmatmul"
    a = _qarray(a_q, fn, "a_q")
    b = _qarray(b_q, fn, "b_q")
    if a.ndim < 1 or b.ndim != 2:
        raise ValueError(f"{fn}: expected a_q (..., K) and b_q (K, N), got shapes {a.shape} and {b.shape}")
    K, N = b.shape
    if a.shape[-1] != K:
        raise ValueError(f"{fn}: inner dimensions differ: a_q {a.shape} vs b_q {b.shape}")
    if blas_dtype not in ("auto", np.float64):
        raise ValueError(f"{fn}: blas_dtype must be 'auto' or np.float64, got {blas_dtype!r}")
    z_a = int(_int_param(a_zero_point, fn, "a_zero_point", *integer_range(a.dtype)))
    z_b = _int_param(b_zero_point, fn, "b_zero_point", *integer_range(b.dtype), shapes=((), (N,)))
    if b_col_sums is not None:
        b_col_sums = _int_param(b_col_sums, fn, "b_col_sums", -(2**62), 2**62, shapes=((N,),))
    a2 = a.reshape(int(np.prod(a.shape[:-1])), K)                 # (M, K)

    # centred operands a' = a − c_a, b' = b − c_b and zero points z' = z − c
    c_a, c_b = _centre(a.dtype), _centre(b.dtype)
    z_a, z_b = z_a - c_a, z_b - c_b
    a_max, b_max = _absmax(a2, c_a), _absmax(b, c_b)
    raw = _raw_int_products(a2, c_a, a_max, b, c_b, b_max, blas_dtype)            # (M, N) Σ_k a'_ik b'_kj
    sum_dtype = np.int32 if K * 255 <= INT32_MAX else np.int64                     # int32 sums are faster
    row_sums = a2.sum(axis=1, dtype=sum_dtype).astype(np.int64) - c_a * K         # (M,)   Σ_k a'_ik
    if b_col_sums is None:
        b_col_sums = b.sum(axis=0, dtype=sum_dtype).astype(np.int64)
    col_sums = b_col_sums - c_b * K                                                # (N,)   Σ_k b'_kj

    # int32 arithmetic is safe when the sum of the four terms' bounds fits int32
    z_b_max = int(np.abs(z_b).max()) if z_b.size else 0
    bound = K * (a_max * b_max + z_b_max * a_max + abs(z_a) * b_max + abs(z_a) * z_b_max)
    work = np.int32 if bound <= INT32_MAX else np.int64

    acc = raw.astype(work, copy=False)
    if z_b.ndim == 0:
        acc -= (int(z_b) * row_sums).astype(work)[:, None]                 # z'_b Σ_k a'_ik
    else:
        acc -= np.multiply.outer(row_sums, z_b).astype(work)                 # z'_b,j Σ_k a'_ik
    acc -= (z_a * col_sums - K * z_a * z_b).astype(work)[None, :]         # z'_a Σ_k b'_kj − K z'_a z'_b,j

    if work is np.int64:
        if acc.size and (acc.min() < INT32_MIN or acc.max() > INT32_MAX):
            raise OverflowError(f"{fn}: the exact accumulator does not fit int32 (K={K})")
        acc = acc.astype(np.int32)
    return acc.reshape(a.shape[:-1] + (N,))


# ------------------------------------------------------------------------------------------
# fixed-point requantization (gemmlowp)
# ------------------------------------------------------------------------------------------

def quantize_multiplier(real_multiplier):
    """Represent a positive real multiplier as ``(int32 multiplier, right shift)``.

        real ≈ multiplier · 2^(−31 − right_shift),   multiplier ∈ [2^30, 2^31)

    (gemmlowp / TFLite ``QuantizeMultiplier``: the mantissa of ``frexp(real)`` in Q0.31,
    rounded half away from zero; relative error ≤ 2^−31.) ``right_shift`` is negative for
    multipliers ≥ 1 (a left shift). Multipliers below 2^−32 flush to ``(0, 0)`` — they map every
    int32 accumulator to 0 anyway. Accepts a scalar (returns Python ints) or an array
    (returns two int32 arrays of the same shape, e.g. per-channel).
    """
    fn = "quantize_multiplier"
    m = np.asarray(real_multiplier, dtype=np.float64)
    if not (np.all(np.isfinite(m)) and np.all(m > 0) and np.all(m < 2.0**31)):
        raise ValueError(f"{fn}: real_multiplier must be finite and in (0, 2^31), got {real_multiplier!r}")
    mantissa, exponent = np.frexp(m)                          # m = mantissa · 2^exponent, mantissa ∈ [0.5, 1)
    q = np.floor(mantissa * 2.0**31 + 0.5).astype(np.int64)   # exact in float64
    carry = q == 2**31                                        # mantissa rounded up to 1.0
    q = np.where(carry, 2**30, q)
    exponent = exponent + carry
    tiny = exponent < -31
    q = np.where(tiny, 0, q)
    right_shift = np.where(tiny, 0, -exponent)
    if m.ndim == 0:
        return int(q), int(right_shift)
    return q.astype(np.int32), right_shift.astype(np.int32)


def _fixed_point_multiply(x: np.ndarray, multiplier, right_shift) -> np.ndarray:
    """``round(x · multiplier · 2^(−31 − right_shift))`` with gemmlowp's exact rounding (int64)."""
    m = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(right_shift, dtype=np.int64)
    x = x.astype(np.int64)                                   # copy: modified in place below
    left = np.maximum(-shift, 0)
    if np.any(left):
        # multipliers >= 1: saturating left shift of the int32 input first (TFLite)
        x = np.clip(x << left, INT32_MIN, INT32_MAX)
    # SaturatingRoundingDoublingHighMul(x, m): high 32 bits of 2·x·m, rounded half up.
    # gemmlowp's "add nudge, truncate toward zero" equals floor((x·m + 2^30) / 2^31); it can only
    # saturate for x = m = −2^31, impossible here since m >= 0.
    x *= m
    x += 2**30
    x >>= 31
    # RoundingDivideByPOT(x, right_shift): x / 2^right_shift rounded half away from zero,
    # i.e. floor((x + 2^(r−1) − [x < 0]) / 2^r) for r > 0.
    right = np.maximum(shift, 0)
    if np.any(right):
        negative = (x < 0) & (right > 0)
        x += (np.int64(1) << right) >> 1
        x -= negative
        x >>= right
    return x


def multiply_by_quantized_multiplier(x, quantized_multiplier, right_shift) -> np.ndarray:
    """gemmlowp/TFLite ``MultiplyByQuantizedMultiplier`` on an int32 array → int64 array.

    Computes ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m), right_shift)``:
    ``x · m / 2^31`` rounded half up, then ``/ 2^right_shift`` rounded half away from zero.
    ``quantized_multiplier`` / ``right_shift`` broadcast against ``x`` (per channel: last axis).
    """
    fn = "multiply_by_quantized_multiplier"
    x = np.asarray(x)
    if x.dtype != np.int32:
        raise TypeError(f"{fn}: x must be an int32 array, got dtype {x.dtype}")
    m = np.asarray(quantized_multiplier)
    s = np.asarray(right_shift)
    if m.dtype.kind not in "iu" or s.dtype.kind not in "iu":
        raise TypeError(f"{fn}: quantized_multiplier and right_shift must be integers, "
                        f"got dtypes {m.dtype} and {s.dtype}")
    if m.size and (m.min() < 0 or m.max() > INT32_MAX):
        raise ValueError(f"{fn}: quantized_multiplier must lie in [0, 2^31), got {quantized_multiplier!r}")
    if s.size and (s.min() < -31 or s.max() > 62):
        raise ValueError(f"{fn}: right_shift must lie in [-31, 62], got {right_shift!r}")
    _check_broadcast(x.shape, (m.shape, s.shape), fn, "quantized_multiplier/right_shift")
    return _fixed_point_multiply(x, m, s)


def _check_broadcast(shape, other_shapes, fn, name):
    try:
        out = np.broadcast_shapes(shape, *other_shapes)
    except ValueError:
        out = None
    if out != tuple(shape):
        raise ValueError(f"{fn}: {name} of shape(s) {list(other_shapes)} must broadcast to the "
                         f"accumulator shape {tuple(shape)} (per-channel: shape (N,) for the last axis)")


def requantize_fixed_point(acc, quantized_multiplier, right_shift, out_zero_point,
                           dtype="int8", narrow_range: bool = False) -> np.ndarray:
    """Requantize with a precomputed ``(quantized_multiplier, right_shift)`` pair.

        q_out = clamp(z_out + MultiplyByQuantizedMultiplier(acc, m, shift), q_min, q_max)
    """
    fn = "requantize"
    dt = _qdtype(dtype, fn)
    q_min, q_max = integer_range(dt, narrow_range)
    z_out = int(_int_param(out_zero_point, fn, "out_zero_point", q_min, q_max))
    y = multiply_by_quantized_multiplier(acc, quantized_multiplier, right_shift)
    y += z_out
    np.clip(y, q_min, q_max, out=y)
    return y.astype(dt)


def requantize(acc, multiplier, out_zero_point, dtype="int8", narrow_range: bool = False) -> np.ndarray:
    """Bring an int32 accumulator back to 8 bits: ``q_out = clamp(z_out + round(M · acc))``.

    ``M = s_a · s_b / s_out`` (the real multiplier; a ``(N,)`` array for per-channel weights,
    broadcast along the last axis). It is applied in integer arithmetic only: ``M`` becomes an
    int32 fixed-point multiplier and a shift (:func:`quantize_multiplier`), then
    :func:`multiply_by_quantized_multiplier` (Jacob et al. 2018, section 2.2; gemmlowp).
    The result is within one unit of ``rint(M · acc) + z_out`` computed in float64.
    """
    acc = np.asarray(acc)
    if acc.dtype != np.int32:
        raise TypeError(f"requantize: acc must be an int32 array (a qmatmul accumulator), got dtype {acc.dtype}")
    qm, shift = quantize_multiplier(multiplier)
    return requantize_fixed_point(acc, qm, shift, out_zero_point, dtype, narrow_range)


# ------------------------------------------------------------------------------------------
# quantized addition (TFLite's integer-only Add)
# ------------------------------------------------------------------------------------------

ADD_LEFT_SHIFT = 20   # headroom bits: 8-bit inputs << 20 still fit int32 after the sum


def quantized_add(a_q, a_scale, a_zero_point, b_q, b_scale, b_zero_point,
                  out_scale, out_zero_point, dtype="int8") -> np.ndarray:
    """Add two quantized tensors with different scales, in integer arithmetic only.

        q_out = clamp(z_out + round((s_a / s_out)(a − z_a) + (s_b / s_out)(b − z_b)))

    As TFLite's quantized Add: both inputs (zero point removed, int32) are shifted left by 20
    bits, rescaled to the common scale ``2 · max(s_a, s_b) / 2^20`` with fixed-point multipliers
    below 1, added, and the sum is requantized to ``s_out``. Within one unit of the float64
    formula above. ``a_q`` and ``b_q`` broadcast against each other.
    """
    fn = "quantized_add"
    a = _qarray(np.asarray(a_q), fn, "a_q")
    b = _qarray(np.asarray(b_q), fn, "b_q")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{fn}: a_q {a.shape} and b_q {b.shape} do not broadcast") from None
    dt = _qdtype(dtype, fn)
    scales = []
    for name, s in (("a_scale", a_scale), ("b_scale", b_scale), ("out_scale", out_scale)):
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 0 or not np.isfinite(s) or s <= 0:
            raise ValueError(f"{fn}: {name} must be a finite scalar > 0, got {s!r}")
        scales.append(float(s))
    s_a, s_b, s_out = scales
    z_a = int(_int_param(a_zero_point, fn, "a_zero_point", *integer_range(a.dtype)))
    z_b = int(_int_param(b_zero_point, fn, "b_zero_point", *integer_range(b.dtype)))
    q_min, q_max = integer_range(dt)
    z_out = int(_int_param(out_zero_point, fn, "out_zero_point", q_min, q_max))

    twice_max = 2.0 * max(s_a, s_b)
    m_a = quantize_multiplier(s_a / twice_max)                       # ≤ 1/2
    m_b = quantize_multiplier(s_b / twice_max)
    m_out = quantize_multiplier(twice_max / (2**ADD_LEFT_SHIFT * s_out))
    # cast before subtracting zero points: int8 − int8 wraps around in NumPy
    a_shifted = (a.astype(np.int64) - z_a) << ADD_LEFT_SHIFT         # |.| < 2^28
    b_shifted = (b.astype(np.int64) - z_b) << ADD_LEFT_SHIFT
    total = _fixed_point_multiply(a_shifted, *m_a) + _fixed_point_multiply(b_shifted, *m_b)
    y = _fixed_point_multiply(total, *m_out)                         # (shape)
    y += z_out
    np.clip(y, q_min, q_max, out=y)
    return y.astype(dt)
