"""Block-wise quantization: ggml's F32, F16, Q8_0, Q4_0 and Q4_1 tensor formats, by hand.

Book concept (appendix, "quantization"): int8 quantization stores ``x ≈ scale · (q − zero_point)``
with **one scale per tensor** (``quant.qparams.quantize``) or **one scale per output channel**
(``quantize_per_channel``). One large weight then coarsens the grid of every weight that shares
its scale. ggml (llama.cpp, the GGUF files) shrinks the group instead: **one scale per 32
consecutive values** of a row — a *block*. A block is stored as its scale in float16, then the
32 small integers:

    Q8_0  d = max|x| / 127                 q = round_half_away(x / d) ∈ [−127, 127]   x̂ = d·q
    Q4_0  d = x_far / −8  (x_far: the value of largest magnitude, with its sign)
                                           q = min(15, ⌊x / d + 8.5⌋) ∈ [0, 15]        x̂ = d·(q − 8)
    Q4_1  d = (max − min) / 15,  m = min   q = min(15, ⌊(x − m) / d + 0.5⌋) ∈ [0, 15]   x̂ = d·q + m

Q8_0 is the appendix's symmetric int8 with the narrow range [−127, 127], per block. Q4_0 is
symmetric too, but its 16 codes −8…7 are lopsided, so the sign of ``d`` is chosen to put the
long side (−8) exactly on the farthest value. Q4_1 is the appendix's asymmetric (affine) scheme
with a real-valued offset ``m`` instead of an integer zero point: the 16 codes span the block's
[min, max] (up to the float16 rounding of ``d`` and ``m``), with no code spent outside it.

Cost, in bits per weight (the scale's 16 bits shared by 32 values add 0.5):

    format            bytes/block        bits/weight
    F32               4 per value        32
    F16               2 per value        16
    Q8_0              2 + 32     = 34     8.5
    Q4_1              2 + 2 + 16 = 20     5.0
    Q4_0              2 + 16     = 18     4.5
    int8 per tensor / per channel         8 (+ one scale per tensor or per row)

Error: rounding moves a value by at most ``d/2``, and ``d`` follows the range of 32 values, not
of a whole tensor. Relative RMS error ‖x̂ − x‖ / ‖x‖ on a 1024×1024 matrix of N(0, 1) weights,
without and with 0.1 % outliers of ±20 (these functions, and ``quant.qparams`` symmetric int8):

    scheme                 bits/weight   plain N(0,1)   with outliers
    int8, per tensor       8             0.0113         0.0385
    int8, per channel      8 (+ 1/row)   0.0078         0.0309
    Q8_0                   8.5           0.0054         0.0080
    Q4_1                   5             0.0782         0.0903
    Q4_0                   4.5           0.0860         0.1256

One outlier coarsens the grid of its whole tensor (or row) but only of its own 32-value block,
so Q8_0 barely notices outliers (4× better than per-channel int8 with them). 4-bit blocks have
16 levels instead of 256 and pay for it: ~10× the error of 8-bit, at 56–62 % of the size.

Packing. Within a block, Q8_0 stores the 32 codes as int8. Q4_0/Q4_1 put two 4-bit codes in a
byte in ggml's order: byte ``j`` (0…15) holds value ``j`` in its **low** nibble and value
``j + 16`` in its **high** nibble — so the low nibbles are the first 16 values and the high
nibbles the last 16. Blocks run along the innermost dimension (a row of a weight matrix, i.e.
the dimension a matrix–vector product sums over), which must therefore be a multiple of 32.

Exact rounding rules — the same bytes as the ``gguf`` Python package's ``gguf.quants``
(llama.cpp's NumPy port of ggml's reference C code), checked bit for bit in ``tests/test_gguf.py``:

* all arithmetic is float32; ``x / d`` is computed as ``x · (1/d)`` with the reciprocal taken
  once per block (0 when ``d == 0``, e.g. an all-zero block);
* the integers are chosen with the float32 ``d``; only afterwards is ``d`` (and ``m``) rounded to
  float16 for storage (round half to even), so the stored scale differs slightly from the
  one used to round;
* Q8_0 rounds half away from zero (C's ``roundf``); Q4_0/Q4_1 add 8.5 / 0.5 in float32 and
  truncate (C's float → int cast), i.e. round half up *after* the float32 addition has rounded;
* a block whose float32 scale is so small that ``1/d`` overflows (d < 2.9·10⁻³⁹: values around
  10⁻³⁷ and below), or whose range ``max − min`` overflows float32 (Q4_1), has non-finite scaled
  values, and ggml leaves their codes to an undefined float → int cast. Here they are 0 — what
  that cast gives on x86 — and the stored float16 scale is 0 (respectively inf) anyway;
* values beyond the float16 range of the scale (|x| > 65504·127 for Q8_0, 65504·8 for Q4_0,
  a range > 65504·15 or |min| > 65504 for Q4_1) give an infinite stored scale, as in ggml.
  NaN and ±inf inputs are refused: a block that holds one has no usable scale.

Dequantization is ``d·q`` (Q8_0, and Q4_0 with ``q − 8``) or ``d·q + m`` (Q4_1) in float32. A
float16 ``d`` has 11 significant bits and ``q`` at most 8, so the product ``d·q`` is exact in
float32; only Q4_1's sum ``+ m`` rounds (a fused multiply-add would give the same bits).
"""

from __future__ import annotations

import enum
import math

import numpy as np

__all__ = [
    "TensorType",
    "SUPPORTED_TYPES",
    "tensor_type",
    "block_layout",
    "bits_per_weight",
    "byte_shape",
    "value_shape",
    "tensor_nbytes",
    "quantize_blocks",
    "dequantize_blocks",
]


class TensorType(enum.IntEnum):
    """ggml's tensor type ids, as stored in a GGUF file's tensor infos (``ggml_type`` in ggml.h)."""
    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    BF16 = 30


# (values per block, bytes per block) of every type whose size this module knows, so that a
# GGUF file holding e.g. Q6_K tensors can still be opened and listed; only SUPPORTED_TYPES can
# be (de)quantized. Plain types are "blocks" of one value. K-quants use super-blocks of 256.
_LAYOUT = {
    TensorType.F32: (1, 4),
    TensorType.F16: (1, 2),
    TensorType.Q4_0: (32, 2 + 16),
    TensorType.Q4_1: (32, 2 + 2 + 16),
    TensorType.Q5_0: (32, 2 + 4 + 16),
    TensorType.Q5_1: (32, 2 + 2 + 4 + 16),
    TensorType.Q8_0: (32, 2 + 32),
    TensorType.Q8_1: (32, 4 + 4 + 32),
    TensorType.Q2_K: (256, 2 + 2 + 16 + 64),
    TensorType.Q3_K: (256, 2 + 64 + 32 + 12),
    TensorType.Q4_K: (256, 2 + 2 + 128 + 12),
    TensorType.Q5_K: (256, 2 + 2 + 128 + 32 + 12),
    TensorType.Q6_K: (256, 2 + 128 + 64 + 16),
    TensorType.Q8_K: (256, 4 + 256 + 32),
    TensorType.I8: (1, 1),
    TensorType.I16: (1, 2),
    TensorType.I32: (1, 4),
    TensorType.I64: (1, 8),
    TensorType.F64: (1, 8),
    TensorType.BF16: (1, 2),
}

SUPPORTED_TYPES = (TensorType.F32, TensorType.F16, TensorType.Q8_0, TensorType.Q4_0, TensorType.Q4_1)

_FLOAT_DTYPES = {TensorType.F32: np.dtype("<f4"), TensorType.F16: np.dtype("<f2")}

# Blocks handled per step: big enough to amortise NumPy's per-call cost, small enough that the
# temporaries (a few bytes per value) stay in cache.
_CHUNK_BLOCKS = 1 << 14


def tensor_type(value, fn: str = "tensor_type") -> TensorType:
    """A :class:`TensorType` from a TensorType, its id (``8``, or any IntEnum such as
    ``gguf.GGMLQuantizationType.Q8_0``) or its name (``"Q8_0"``, case-insensitive)."""
    if isinstance(value, str):
        try:
            return TensorType[value.upper()]
        except KeyError:
            raise ValueError(f"{fn}: unknown tensor type {value!r} "
                             f"(known: {', '.join(t.name for t in TensorType)})") from None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        try:
            return TensorType(int(value))
        except ValueError:
            raise ValueError(f"{fn}: unknown tensor type id {int(value)} (known ids: "
                             f"{', '.join(f'{t.name}={t.value}' for t in TensorType)})") from None
    raise TypeError(f"{fn}: tensor type must be a TensorType, an int id or a name, got {value!r}")


def block_layout(ttype) -> tuple[int, int]:
    """``(values per block, bytes per block)``: Q8_0 → (32, 34), F32 → (1, 4)."""
    return _LAYOUT[tensor_type(ttype, "block_layout")]


def bits_per_weight(ttype) -> float:
    """Storage cost of one value: ``8 · bytes per block / values per block`` (Q4_0 → 4.5)."""
    block_size, type_size = block_layout(ttype)
    return 8 * type_size / block_size


def byte_shape(shape, ttype) -> tuple[int, ...]:
    """Shape of the packed bytes of a tensor of ``shape`` (NumPy order): the last dimension
    becomes ``blocks per row · bytes per block``. Q8_0 (576, 1536) → (576, 1632)."""
    t = tensor_type(ttype, "byte_shape")
    block_size, type_size = _LAYOUT[t]
    shape = tuple(int(n) for n in shape)
    if not shape or shape[-1] % block_size:
        raise ValueError(f"byte_shape: a {t.name} tensor needs a last dimension that is a multiple of "
                         f"{block_size}, got shape {shape}")
    return (*shape[:-1], shape[-1] // block_size * type_size)


def value_shape(packed_shape, ttype) -> tuple[int, ...]:
    """Inverse of :func:`byte_shape`: the tensor shape of packed bytes of ``packed_shape``."""
    t = tensor_type(ttype, "value_shape")
    block_size, type_size = _LAYOUT[t]
    packed_shape = tuple(int(n) for n in packed_shape)
    if not packed_shape or packed_shape[-1] % type_size:
        raise ValueError(f"value_shape: packed {t.name} bytes need a last dimension that is a multiple of "
                         f"{type_size} (bytes per block), got shape {packed_shape}")
    return (*packed_shape[:-1], packed_shape[-1] // type_size * block_size)


def tensor_nbytes(shape, ttype) -> int:
    """Bytes taken by a tensor of ``shape`` in format ``ttype`` (a 0-d shape is one value).
    Python integers, so absurd sizes read from a corrupt file cannot overflow."""
    t = tensor_type(ttype, "tensor_nbytes")
    return math.prod(byte_shape(tuple(shape) or (1,), t))


# ------------------------------------------------------------------------------------------
# dequantize: packed blocks → float32
# ------------------------------------------------------------------------------------------

def _f16_column(blocks: np.ndarray, at: int) -> np.ndarray:
    """The float16 field at byte ``at`` of every block, as a float32 column ``(n, 1)``."""
    return blocks[:, at:at + 2].view("<f2").astype(np.float32)


def _unpack_nibbles(packed: np.ndarray) -> np.ndarray:
    """``(n, 16)`` bytes → ``(n, 32)`` codes: low nibbles are values 0…15, high nibbles 16…31."""
    codes = np.empty((packed.shape[0], 2, 16), dtype=np.uint8)
    np.bitwise_and(packed, 0x0F, out=codes[:, 0])
    np.right_shift(packed, 4, out=codes[:, 1])
    return codes.reshape(-1, 32)


def _dequantize_q8_0(blocks, out):
    # x̂ = d · q   (exact: an 11-bit d times an 8-bit q fits float32's 24 bits)
    np.multiply(blocks[:, 2:].view(np.int8), _f16_column(blocks, 0), out=out)


def _dequantize_q4_0(blocks, out):
    # x̂ = d · (q − 8)
    signed = _unpack_nibbles(blocks[:, 2:]).view(np.int8)
    signed -= 8
    np.multiply(signed, _f16_column(blocks, 0), out=out)


def _dequantize_q4_1(blocks, out):
    # x̂ = d · q + m   (the product is exact, the sum rounds to float32)
    np.multiply(_unpack_nibbles(blocks[:, 4:]), _f16_column(blocks, 0), out=out)
    out += _f16_column(blocks, 2)


_DEQUANTIZERS = {TensorType.Q8_0: _dequantize_q8_0, TensorType.Q4_0: _dequantize_q4_0,
                 TensorType.Q4_1: _dequantize_q4_1}


def _require_supported(t: TensorType, fn: str) -> None:
    if t not in SUPPORTED_TYPES:
        raise NotImplementedError(f"{fn}: {t.name} tensors are not implemented "
                                  f"(supported: {', '.join(s.name for s in SUPPORTED_TYPES)})")


def dequantize_blocks(raw, ttype, shape=None) -> np.ndarray:
    """Packed bytes of format ``ttype`` → a new float32 array of ``shape`` (NumPy order).

    ``raw`` is a uint8 array (as :func:`quantize_blocks` and ``GGUFFile.tensor`` return) or a
    bytes-like object; for F32 / F16 a float32 / float16 array is accepted too. Without
    ``shape``, the shape follows from ``raw.shape`` (its last dimension counts bytes, see
    :func:`value_shape`). Equal bit for bit to ``gguf.quants.dequantize``.
    """
    fn = "dequantize_blocks"
    t = tensor_type(ttype, fn)
    _require_supported(t, fn)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = np.frombuffer(raw, dtype=np.uint8)
    if not isinstance(raw, np.ndarray):
        raise TypeError(f"{fn}: raw must be a uint8 array or bytes, got {type(raw).__name__}")
    if t in _FLOAT_DTYPES and raw.dtype.kind == "f":
        if raw.dtype.itemsize != _FLOAT_DTYPES[t].itemsize:
            raise TypeError(f"{fn}: {t.name} data must be {_FLOAT_DTYPES[t]} or uint8 bytes, got dtype {raw.dtype}")
        if shape is not None and math.prod(shape) != raw.size:
            raise ValueError(f"{fn}: {raw.size} {t.name} values cannot have shape {tuple(shape)}")
        return raw.astype(np.float32).reshape(raw.shape if shape is None else tuple(shape))
    if raw.dtype != np.uint8:
        raise TypeError(f"{fn}: raw must hold uint8 bytes, got dtype {raw.dtype}")
    shape = value_shape(raw.shape, t) if shape is None else tuple(int(n) for n in shape)
    expected = tensor_nbytes(shape, t)
    if raw.size != expected:
        raise ValueError(f"{fn}: a {t.name} tensor of shape {shape} takes {expected} bytes, got {raw.size}")
    data = np.ascontiguousarray(raw).reshape(-1)
    if t in _FLOAT_DTYPES:
        return data.view(_FLOAT_DTYPES[t]).astype(np.float32).reshape(shape)
    block_size, type_size = _LAYOUT[t]
    blocks = data.reshape(-1, type_size)
    out = np.empty((blocks.shape[0], block_size), dtype=np.float32)
    kernel = _DEQUANTIZERS[t]
    with np.errstate(invalid="ignore", over="ignore"):     # inf·0 in a corrupt block gives NaN, as ggml
        for start in range(0, blocks.shape[0], _CHUNK_BLOCKS):
            stop = start + _CHUNK_BLOCKS
            kernel(blocks[start:stop], out[start:stop])
    return out.reshape(shape)


# ------------------------------------------------------------------------------------------
# quantize: float32 → packed blocks
# ------------------------------------------------------------------------------------------

def _reciprocal(d: np.ndarray) -> np.ndarray:
    """``1/d`` in float32, and 0 where ``d == 0`` (a constant block: every code is then the
    offset, and nothing is divided by zero)."""
    inv = np.zeros_like(d)
    np.divide(np.float32(1), d, out=inv, where=d != 0)
    return inv


def _finite_or_zero(t: np.ndarray) -> np.ndarray:
    # Only blocks whose float32 scale under- or overflows reach here with non-finite values
    # (see the module docstring); their code is 0, as x86's float → int cast gives.
    t[~np.isfinite(t)] = 0
    return t


def _round_half_away(t: np.ndarray) -> np.ndarray:
    """C's ``roundf``: to the nearest integer, halves away from zero. ``|t| − ⌊|t|⌋`` is exact in
    floating point, so the comparison with 0.5 is exact (adding 0.5 and truncating is not:
    0.49999997 + 0.5 rounds up to 1.0 in float32)."""
    magnitude = np.abs(t)
    whole = np.floor(magnitude)
    whole += (magnitude - whole) >= np.float32(0.5)
    return np.copysign(whole, t)


def _nibble_codes(t: np.ndarray) -> np.ndarray:
    """⌊t⌋ (t ≥ 0 here, so truncation) clipped to the 4-bit codes 0…15."""
    return np.clip(np.trunc(_finite_or_zero(t)), 0, 15).astype(np.uint8)


def _pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """``(n, 32)`` codes → ``(n, 16)`` bytes, value j in the low nibble and j + 16 in the high one."""
    return codes[:, :16] | (codes[:, 16:] << 4)


def _f16_bytes(v: np.ndarray) -> np.ndarray:
    """A float32 column ``(n, 1)`` rounded to float16 (half to even), as ``(n, 2)`` bytes."""
    return v.astype("<f2").view(np.uint8)


def _quantize_q8_0(x, out):
    d = np.abs(x).max(axis=1, keepdims=True) / np.float32(127)
    q = _round_half_away(_finite_or_zero(x * _reciprocal(d)))
    out[:, :2] = _f16_bytes(d)
    out[:, 2:] = q.astype(np.int8).view(np.uint8)


def _quantize_q4_0(x, out):
    # the value of largest magnitude, with its sign (the first one on a tie, as argmax)
    far = np.take_along_axis(x, np.abs(x).argmax(axis=1)[:, None], axis=1)
    d = far / np.float32(-8)
    codes = _nibble_codes(x * _reciprocal(d) + np.float32(8.5))
    out[:, :2] = _f16_bytes(d)
    out[:, 2:] = _pack_nibbles(codes)


def _quantize_q4_1(x, out):
    lo = x.min(axis=1, keepdims=True)
    hi = x.max(axis=1, keepdims=True)
    d = (hi - lo) / np.float32(15)
    codes = _nibble_codes((x - lo) * _reciprocal(d) + np.float32(0.5))
    out[:, :2] = _f16_bytes(d)
    out[:, 2:4] = _f16_bytes(lo)
    out[:, 4:] = _pack_nibbles(codes)


_QUANTIZERS = {TensorType.Q8_0: _quantize_q8_0, TensorType.Q4_0: _quantize_q4_0,
               TensorType.Q4_1: _quantize_q4_1}


def quantize_blocks(x, ttype) -> np.ndarray:
    """A float array → format ``ttype``: float32 / float16 values for F32 / F16, otherwise the
    packed uint8 blocks in the shape :func:`byte_shape` gives (``(*x.shape[:-1], bytes per row)``).

    Block formats need a last dimension that is a multiple of 32 and finite values; float64
    input is rounded to float32 first. Equal bit for bit to ``gguf.quants.quantize``.
    Accepts an ndarray or any object with a ``.data`` ndarray (a minigrad Tensor).
    """
    fn = "quantize_blocks"
    t = tensor_type(ttype, fn)
    _require_supported(t, fn)
    x = x if isinstance(x, np.ndarray) else np.asarray(getattr(x, "data", x))
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: x must be a floating-point array, got dtype {x.dtype}")
    if t in _FLOAT_DTYPES:
        with np.errstate(over="ignore"):          # beyond float16's 65504: inf, as a cast does
            return x.astype(np.float32 if t == TensorType.F32 else np.float16)
    packed_shape = byte_shape(x.shape, t)                 # raises unless the rows hold whole blocks
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(x32)
    if not finite.all():
        where = np.unravel_index(int(np.argmin(finite)), x.shape)
        raise ValueError(f"{fn}: x holds {x32[where]} at index {tuple(int(i) for i in where)}; "
                         f"{t.name} blocks need finite values")
    block_size, type_size = _LAYOUT[t]
    blocks = x32.reshape(-1, block_size)
    out = np.empty((blocks.shape[0], type_size), dtype=np.uint8)
    kernel = _QUANTIZERS[t]
    with np.errstate(over="ignore", invalid="ignore"):   # the degenerate blocks described above
        for start in range(0, blocks.shape[0], _CHUNK_BLOCKS):
            stop = start + _CHUNK_BLOCKS
            kernel(blocks[start:stop], out[start:stop])
    return out.reshape(packed_shape)
