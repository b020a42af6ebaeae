"""GGUF files, read and written by hand: the format llama.cpp stores quantized models in.

A GGUF file (version 3; all numbers little-endian) is four sections, one after the other:

    header        "GGUF"  u32 version  u64 tensor_count  u64 metadata_count
    metadata      metadata_count × (string key, u32 value_type, value)
    tensor infos  tensor_count × (string name, u32 n_dims, n_dims × u64 dim,
                                  u32 tensor_type, u64 offset)
    (zero padding up to a multiple of the alignment)
    data          each tensor's bytes at data_start + offset, padded to the alignment

``string`` is a u64 byte length and that many UTF-8 bytes (no terminating 0). A value is one of
the :class:`ValueType` scalars, a string, or an ARRAY: u32 item type, u64 count, the items
(which may themselves be strings or arrays). The alignment is the metadata value
``general.alignment`` (a UINT32 power of two) or 32; every tensor offset is a multiple of it.

**Dims are stored innermost first** (ggml's ``ne[0]`` is the length of a row). A weight that
NumPy sees as ``(out_features, in_features)`` is stored as dims ``[in_features, out_features]``;
:class:`GGUFFile` reverses them, so every shape here is in NumPy (row-major) order. The tensor
types and their block layouts are explained in :mod:`quant.blocks`.

The reader memory-maps the file: parsing reads only the bytes before the data section,
``tensor(name)`` is a read-only view of the mapped bytes (nothing is copied until
``dequantize``), and a malformed
file gets a :class:`GGUFError` naming the file, the field and the expected vs actual values,
never an IndexError from deep inside.

* ``GGUFFile(path)`` — ``.metadata`` (key → value), ``.metadata_types``, ``.tensors`` (name →
  :class:`TensorInfo`), ``.tensor(name)`` (raw view), ``.dequantize(name)`` (float32).
* ``write_gguf(path, tensors, metadata)`` — a version-3 file from named arrays (quantized on the
  way to the types asked for), written atomically.
"""

from __future__ import annotations

import enum
import math
import struct
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np

from minigrad.serialization import _atomic_write

from .blocks import (SUPPORTED_TYPES, TensorType, block_layout, byte_shape, dequantize_blocks,
                     quantize_blocks, tensor_nbytes, tensor_type, value_shape)

__all__ = ["GGUFError", "ValueType", "TensorType", "TensorInfo", "GGUFFile", "write_gguf",
           "GGUF_MAGIC", "GGUF_VERSION", "DEFAULT_ALIGNMENT"]

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
READABLE_VERSIONS = (2, 3)      # v2 has v3's layout (v3 only added big-endian files); v1 used u32 counts
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4                    # GGML_MAX_DIMS
MAX_NAME_BYTES = 63             # GGML_MAX_NAME is 64 including the terminating 0


class GGUFError(ValueError):
    """A file that is not a well-formed GGUF file (wrong magic, truncated, out-of-range field)."""


class ValueType(enum.IntEnum):
    """Metadata value types (``gguf_type`` in ggml's gguf.h)."""
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# little-endian NumPy dtype of each fixed-size value type (BOOL is one byte, 0 or 1)
_SCALAR_DTYPES = {
    ValueType.UINT8: np.dtype("<u1"), ValueType.INT8: np.dtype("<i1"),
    ValueType.UINT16: np.dtype("<u2"), ValueType.INT16: np.dtype("<i2"),
    ValueType.UINT32: np.dtype("<u4"), ValueType.INT32: np.dtype("<i4"),
    ValueType.UINT64: np.dtype("<u8"), ValueType.INT64: np.dtype("<i8"),
    ValueType.FLOAT32: np.dtype("<f4"), ValueType.FLOAT64: np.dtype("<f8"),
    ValueType.BOOL: np.dtype("<u1"),
}
_STRUCTS = {vt: struct.Struct("<" + code) for vt, code in zip(
    (ValueType.UINT8, ValueType.INT8, ValueType.UINT16, ValueType.INT16, ValueType.UINT32, ValueType.INT32,
     ValueType.UINT64, ValueType.INT64, ValueType.FLOAT32, ValueType.FLOAT64, ValueType.BOOL), "BbHhIiQqfd?")}
_U32, _U64 = _STRUCTS[ValueType.UINT32], _STRUCTS[ValueType.UINT64]


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


class TensorInfo(NamedTuple):
    """One tensor of a GGUF file. ``shape`` is in NumPy order (the file's dims reversed);
    ``offset`` is the absolute byte position of its data in the file."""
    name: str
    shape: tuple[int, ...]
    type: TensorType
    offset: int
    nbytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def dims(self) -> tuple[int, ...]:
        """The dims as GGUF stores them, innermost first."""
        return self.shape[::-1]


# ------------------------------------------------------------------------------------------
# reading
# ------------------------------------------------------------------------------------------

class _Reader:
    """Sequential little-endian reads from the mapped bytes, each one bounds-checked, so a
    truncated file is reported with the field that runs past its end."""

    def __init__(self, buf, path: str, fn: str):
        self.buf, self.path, self.fn = buf, path, fn
        self.size = len(buf)
        self.pos = 0

    def error(self, message: str) -> GGUFError:
        return GGUFError(f"{self.fn}: {self.path!r}: {message}")

    def need(self, n: int, what) -> int:
        """Claim the next ``n`` bytes; ``what`` names the field (a str, or a callable making
        one, so hot loops build no message unless they fail)."""
        start = self.pos
        if n > self.size - start:
            raise self.error(f"truncated in {_name(what)}: needs bytes [{start}, {start + n}) "
                             f"but the file has {self.size} bytes")
        self.pos = start + n
        return start

    def scalar(self, vtype: ValueType, what):
        fmt = _STRUCTS[vtype]
        return fmt.unpack_from(self.buf, self.need(fmt.size, what))[0]

    def string(self, what) -> str:
        n = _U64.unpack_from(self.buf, self.need(8, what))[0]
        start = self.need(n, what)
        try:
            return str(self.buf[start:start + n], "utf-8")
        except UnicodeDecodeError as err:
            raise self.error(f"{_name(what)} is not valid UTF-8 ({err.reason} at byte {start + err.start})") from None

    def value_type(self, what) -> ValueType:
        raw = self.scalar(ValueType.UINT32, what)
        if raw > max(ValueType):
            raise self.error(f"{_name(what)} is {raw}, outside the value types 0..{max(ValueType)} "
                             f"({', '.join(t.name for t in ValueType)})")
        return ValueType(raw)

    def value(self, vtype: ValueType, what):
        """One metadata value; returns ``(value, type)`` with arrays' type ``(ARRAY, item type)``."""
        if vtype == ValueType.STRING:
            return self.string(what), vtype
        if vtype != ValueType.ARRAY:
            return self.scalar(vtype, what), vtype           # struct gives int / float / bool
        item_type = self.value_type(lambda: f"{_name(what)} array item type")
        count = self.scalar(ValueType.UINT64, lambda: f"{_name(what)} array length")
        # Every item takes at least one byte (8 for a string's length), so a count the rest of
        # the file cannot hold is a truncation, found before any allocation or long loop.
        least = 8 if item_type in (ValueType.STRING, ValueType.ARRAY) else _SCALAR_DTYPES[item_type].itemsize
        if count * least > self.size - self.pos:
            raise self.error(f"truncated in {_name(what)}: an array of {count} {item_type.name} needs "
                             f"at least {count * least} bytes from byte {self.pos}, but the file has "
                             f"{self.size} bytes")
        if item_type in _SCALAR_DTYPES:
            dt = _SCALAR_DTYPES[item_type]
            start = self.need(count * dt.itemsize, what)
            items = np.frombuffer(self.buf, dtype=dt, count=count, offset=start)
            items = items != 0 if item_type == ValueType.BOOL else items.astype(dt.newbyteorder("="))
            return items, (ValueType.ARRAY, item_type)
        if item_type == ValueType.STRING:
            return [self.string(lambda i=i: f"{_name(what)} item {i}") for i in range(count)], \
                (ValueType.ARRAY, item_type)
        # An array of arrays: each item is an ARRAY value (its own item type, count, items).
        # The spec records the first item's; an empty one leaves the inner item type unknown.
        items, specs = [], []
        for i in range(count):
            item, item_spec = self.value(ValueType.ARRAY, lambda i=i: f"{_name(what)} item {i}")
            items.append(item)
            specs.append(item_spec)
        return items, (ValueType.ARRAY, specs[0] if specs else ValueType.ARRAY)


def _name(what) -> str:
    return what() if callable(what) else what


class GGUFFile:
    """A memory-mapped GGUF file (version 2 or 3, little-endian)::

        f = GGUFFile("model.gguf")
        f.metadata["llama.block_count"]              # 30
        f.tensors["blk.0.attn_q.weight"]             # TensorInfo(shape=(576, 576), type=Q4_1, …)
        f.dequantize("blk.0.attn_q.weight")          # float32 (576, 576)

    Attributes: ``path``, ``version``, ``alignment``, ``data_offset`` (where the data section
    starts), ``metadata`` (key → value: Python int / float / bool / str for scalars, a NumPy
    array for arrays of numbers or bools, a list for arrays of strings or of arrays),
    ``metadata_types`` (key → :class:`ValueType`, or ``(ValueType.ARRAY, item type)``) and
    ``tensors`` (name → :class:`TensorInfo`, in file order). Arrays from ``tensor()`` stay
    valid after ``close()`` (they keep the mapping alive).
    """

    def __init__(self, path):
        fn = "GGUFFile"
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{fn}: no such file: {str(path)!r}")
        if path.is_dir():
            raise IsADirectoryError(f"{fn}: {str(path)!r} is a folder, expected a .gguf file")
        self.path = path
        size = path.stat().st_size
        # np.memmap refuses empty files; an empty file is simply a truncated header
        self._map = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        r = _Reader(memoryview(self._map), str(path), fn)
        self._parse_header(r)
        self._parse_metadata(r)
        infos = self._parse_tensor_infos(r)
        self.data_offset = _align(r.pos, self.alignment)
        self.tensors = self._place_tensors(r, infos)

    # -- parsing -----------------------------------------------------------------------
    def _parse_header(self, r: _Reader) -> None:
        magic = bytes(r.buf[:4])
        if not GGUF_MAGIC.startswith(magic):
            raise r.error(f"not a GGUF file: the magic is {magic!r}, expected {GGUF_MAGIC!r}")
        r.need(4, "the header (magic)")            # shorter than 4 bytes but starting like one: truncated
        version = r.scalar(ValueType.UINT32, "the header (version)")
        if version not in READABLE_VERSIONS:
            swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
            hint = " (a big-endian file, which this reader does not read)" if swapped in READABLE_VERSIONS else ""
            raise r.error(f"unsupported GGUF version {version}{hint}; this reader reads versions "
                          f"{', '.join(map(str, READABLE_VERSIONS))}")
        self.version = version
        self._n_tensors = r.scalar(ValueType.UINT64, "the header (tensor count)")
        self._n_metadata = r.scalar(ValueType.UINT64, "the header (metadata count)")

    def _parse_metadata(self, r: _Reader) -> None:
        self.metadata, self.metadata_types = {}, {}
        for i in range(self._n_metadata):
            key = r.string(lambda i=i: f"metadata entry {i} (its key)")
            if key in self.metadata:
                raise r.error(f"metadata key {key!r} appears twice (entry {i})")
            what = f"metadata {key!r:.80}"
            vtype = r.value_type(f"{what} (its value type)")
            self.metadata[key], self.metadata_types[key] = r.value(vtype, f"{what} value")
        self.alignment = DEFAULT_ALIGNMENT
        if "general.alignment" in self.metadata:
            alignment, vtype = self.metadata["general.alignment"], self.metadata_types["general.alignment"]
            if vtype != ValueType.UINT32 or alignment == 0 or alignment & (alignment - 1):
                raise r.error(f"general.alignment must be a UINT32 power of two, got {alignment!r} "
                              f"({getattr(vtype, 'name', vtype)})")
            self.alignment = alignment

    def _parse_tensor_infos(self, r: _Reader) -> list[tuple]:
        infos, names = [], set()
        for i in range(self._n_tensors):
            name = r.string(lambda i=i: f"tensor info {i} (its name)")
            what = f"tensor info {i} ({name!r:.80})"
            if name in names:
                raise r.error(f"tensor name {name!r} appears twice (tensor info {i})")
            names.add(name)
            n_dims = r.scalar(ValueType.UINT32, f"{what} dim count")
            if n_dims > MAX_DIMS:
                raise r.error(f"{what} has {n_dims} dims, at most {MAX_DIMS} are allowed")
            dims = [r.scalar(ValueType.UINT64, f"{what} dims") for _ in range(n_dims)]
            raw_type = r.scalar(ValueType.UINT32, f"{what} type")
            try:
                ttype = TensorType(raw_type)
            except ValueError:
                raise r.error(f"{what} has tensor type {raw_type}, which is not a known ggml type "
                              f"(known: {', '.join(f'{t.name}={t.value}' for t in TensorType)})") from None
            offset = r.scalar(ValueType.UINT64, f"{what} offset")
            infos.append((name, tuple(reversed(dims)), ttype, offset, what))
        return infos

    def _place_tensors(self, r: _Reader, infos) -> dict[str, TensorInfo]:
        tensors = {}
        for name, shape, ttype, offset, what in infos:
            block_size = block_layout(ttype)[0]
            if (shape[-1] if shape else 1) % block_size:
                raise r.error(f"{what}: a {ttype.name} row must hold whole blocks of {block_size} values, "
                              f"got innermost dim {shape[-1]} (shape {shape})")
            if offset % self.alignment:
                raise r.error(f"{what}: offset {offset} is not a multiple of the alignment {self.alignment}")
            nbytes = tensor_nbytes(shape, ttype)
            start = self.data_offset + offset
            if start + nbytes > r.size:
                raise r.error(f"{what}: its {ttype.name} data (shape {shape}, {nbytes} bytes) spans bytes "
                              f"[{start}, {start + nbytes}), outside the file of {r.size} bytes "
                              "(truncated data section, or a corrupt offset or dims)")
            tensors[name] = TensorInfo(name, shape, ttype, start, nbytes)
        ordered = sorted(tensors.values(), key=lambda t: t.offset)
        for a, b in zip(ordered, ordered[1:]):
            if b.offset < a.offset + a.nbytes:
                raise r.error(f"tensor {b.name!r} (bytes [{b.offset}, {b.offset + b.nbytes})) overlaps "
                              f"tensor {a.name!r} (bytes [{a.offset}, {a.offset + a.nbytes}))")
        return tensors

    # -- access ------------------------------------------------------------------------
    def _info(self, name: str, fn: str) -> TensorInfo:
        if self._map is None:
            raise ValueError(f"{fn}: {str(self.path)!r} is closed")
        try:
            return self.tensors[name]
        except KeyError:
            some = ", ".join(repr(n) for n in list(self.tensors)[:3])
            raise KeyError(f"{fn}: no tensor named {name!r} in {str(self.path)!r} "
                           f"({len(self.tensors)} tensors, e.g. {some})") from None

    def tensor(self, name: str) -> np.ndarray:
        """The tensor's bytes as stored, as a read-only view of the mapped file (no copy):
        float32 / float16 / integer values in ``shape`` for the plain types, uint8 blocks in
        ``byte_shape(shape, type)`` (one row of packed blocks per row) for the block types."""
        info = self._info(name, "GGUFFile.tensor")
        raw = np.asarray(self._map[info.offset:info.offset + info.nbytes])
        plain = {TensorType.F32: "<f4", TensorType.F16: "<f2", TensorType.F64: "<f8",
                 TensorType.I8: "<i1", TensorType.I16: "<i2", TensorType.I32: "<i4", TensorType.I64: "<i8"}
        if info.type in plain:
            return raw.view(plain[info.type]).reshape(info.shape)
        return raw.reshape(byte_shape(info.shape or (1,), info.type))

    def dequantize(self, name: str) -> np.ndarray:
        """The tensor as a new float32 array of ``shape`` (NumPy order)."""
        info = self._info(name, "GGUFFile.dequantize")
        if info.type not in SUPPORTED_TYPES:
            raise NotImplementedError(f"GGUFFile.dequantize: tensor {name!r} is {info.type.name}; supported: "
                                      f"{', '.join(t.name for t in SUPPORTED_TYPES)}")
        return dequantize_blocks(self.tensor(name), info.type, info.shape)

    def close(self) -> None:
        """Drop this object's reference to the mapping (views already handed out keep it)."""
        self._map = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        census: dict[str, int] = {}
        for info in self.tensors.values():
            census[info.type.name] = census.get(info.type.name, 0) + 1
        types = ", ".join(f"{n} {t}" for t, n in census.items())
        return (f"GGUFFile({str(self.path)!r}: v{self.version}, {len(self.metadata)} metadata, "
                f"{len(self.tensors)} tensors ({types}))")


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------

def _type_spec(spec, key: str, item: bool = False):
    """Normalise a metadata type: a ValueType, its id or name, or ``(ARRAY, item type)``. As an
    item type, a bare ARRAY means "arrays of unknown items" (only an empty array can have it)."""
    if isinstance(spec, (tuple, list)):
        if len(spec) != 2 or _type_spec(spec[0], key, item=True) != ValueType.ARRAY:
            raise ValueError(f"write_gguf: metadata type for {key!r} must be a ValueType or "
                             f"(ValueType.ARRAY, item type), got {spec!r}")
        return ValueType.ARRAY, _type_spec(spec[1], key, item=True)
    try:
        vtype = ValueType[spec.upper()] if isinstance(spec, str) else ValueType(spec)
    except (KeyError, ValueError):
        raise ValueError(f"write_gguf: unknown metadata type {spec!r} for {key!r} "
                         f"(known: {', '.join(t.name for t in ValueType)})") from None
    if vtype == ValueType.ARRAY and not item:
        raise ValueError(f"write_gguf: an ARRAY type for {key!r} must name its items: (ValueType.ARRAY, item type)")
    return vtype


# NumPy dtype (kind, itemsize) → value type, to type NumPy scalars and arrays
_NUMPY_TYPES = {(dt.kind, dt.itemsize): vt for vt, dt in _SCALAR_DTYPES.items() if vt != ValueType.BOOL}
_INT_TYPES = (ValueType.INT32, ValueType.INT64, ValueType.UINT64)


def _int_type(values, key: str) -> ValueType:
    """The smallest of INT32, INT64, UINT64 that holds every int in ``values``."""
    lo, hi = min(values), max(values)
    for vtype in _INT_TYPES:
        info = np.iinfo(_SCALAR_DTYPES[vtype])
        if info.min <= lo and hi <= info.max:
            return vtype
    raise ValueError(f"write_gguf: metadata {key!r} holds an int that does not fit in 64 bits")


def _infer_type(value, key: str):
    """The type of a value given without one (the rules are in ``write_gguf``'s docstring)."""
    if isinstance(value, (bool, np.bool_)):
        return ValueType.BOOL
    if isinstance(value, np.generic) and (value.dtype.kind, value.dtype.itemsize) in _NUMPY_TYPES:
        return _NUMPY_TYPES[value.dtype.kind, value.dtype.itemsize]
    if isinstance(value, int):
        return _int_type([value], key)
    if isinstance(value, float):
        return ValueType.FLOAT32
    if isinstance(value, str):
        return ValueType.STRING
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise ValueError(f"write_gguf: metadata {key!r} must be a 1-D array, got shape {value.shape}")
        if value.dtype == np.bool_:
            return ValueType.ARRAY, ValueType.BOOL
        if value.dtype.kind == "U":
            return ValueType.ARRAY, ValueType.STRING
        if (value.dtype.kind, value.dtype.itemsize) in _NUMPY_TYPES:
            return ValueType.ARRAY, _NUMPY_TYPES[value.dtype.kind, value.dtype.itemsize]
        raise TypeError(f"write_gguf: metadata {key!r} has dtype {value.dtype}, which GGUF cannot store")
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"write_gguf: the empty list {key!r} needs its item type in metadata_types")
        plain_numbers = all(type(v) in (int, float) for v in value)
        if plain_numbers and all(type(v) is int for v in value):
            return ValueType.ARRAY, _int_type(value, key)
        if plain_numbers:
            return ValueType.ARRAY, ValueType.FLOAT32
        specs = [_infer_type(v, key) for v in value]
        if any(spec != specs[0] for spec in specs):
            raise TypeError(f"write_gguf: metadata {key!r} mixes item types {sorted({str(s) for s in specs})}; "
                            "a GGUF array has one item type (give it in metadata_types)")
        return ValueType.ARRAY, specs[0]
    raise TypeError(f"write_gguf: cannot store metadata {key!r} of type {type(value).__name__} "
                    "(bool, int, float, str, NumPy scalars, 1-D arrays and lists are supported)")


def _encode(out: bytearray, value, spec, key: str) -> None:
    """Append ``value`` encoded as ``spec`` (without its leading type id) to ``out``."""
    if spec == ValueType.STRING:
        if not isinstance(value, str):
            raise TypeError(f"write_gguf: metadata {key!r} is STRING, got a {type(value).__name__}: {value!r:.80}")
        data = value.encode("utf-8")
        out += _U64.pack(len(data)) + data
    elif isinstance(spec, tuple) or spec == ValueType.ARRAY:
        if not isinstance(value, (list, tuple, np.ndarray)) or isinstance(value, np.ndarray) and value.ndim != 1:
            raise TypeError(f"write_gguf: metadata {key!r} is an ARRAY, so its value must be a list, tuple "
                            f"or 1-D array, got {value!r:.80}")
        item_spec = spec[1] if isinstance(spec, tuple) else None
        if item_spec is None and len(value):
            raise ValueError(f"write_gguf: metadata {key!r}: a non-empty array needs its item type")
        out += _U32.pack(ValueType.ARRAY if item_spec is None or isinstance(item_spec, tuple) else item_spec)
        out += _U64.pack(len(value))
        if not isinstance(item_spec, tuple) and item_spec in _SCALAR_DTYPES:
            out += _scalar_array(value, item_spec, key).tobytes()
        else:
            for item in value:
                _encode(out, item, item_spec, key)
    else:
        out += _scalar_array([value], spec, key).tobytes()


def _kind(value) -> str:
    """'b' bool, 'i' integer, 'f' float, '?' anything else (NumPy's kind letters)."""
    if isinstance(value, (bool, np.bool_)):
        return "b"
    return "i" if isinstance(value, (int, np.integer)) else "f" if isinstance(value, (float, np.floating)) else "?"


def _scalar_array(values, vtype: ValueType, key: str) -> np.ndarray:
    """``values`` as little-endian ``vtype`` items, refusing anything that would change on the way:
    a bool where a number is expected (or the reverse), a non-integer or out-of-range value for an
    integer type, a finite number that overflows FLOAT32."""
    dt = _SCALAR_DTYPES[vtype]
    if isinstance(values, np.ndarray):
        kinds = {values.dtype.kind.replace("u", "i")} if values.size else set()
    else:
        kinds = {_kind(v) for v in values}
    allowed = {"b"} if vtype == ValueType.BOOL else {"i"} if dt.kind in "iu" else {"i", "f"}
    if not kinds <= allowed:
        raise ValueError(f"write_gguf: metadata {key!r} cannot be stored as {vtype.name}: not all values are "
                         f"{'bools' if 'b' in allowed else 'integers' if allowed == {'i'} else 'numbers'} "
                         f"(value {values!r:.80})")
    if vtype == ValueType.BOOL:
        return np.asarray(values, dtype=np.bool_).astype(dt)
    if dt.kind in "iu":
        ints = [int(v) for v in (values.tolist() if isinstance(values, np.ndarray) else values)]
        info = np.iinfo(dt)
        bad = [v for v in ints if not info.min <= v <= info.max]
        if bad:
            raise ValueError(f"write_gguf: metadata {key!r} cannot be stored as {vtype.name}: "
                             f"{bad[0]} is outside [{info.min}, {info.max}]")
        return np.array(ints, dtype=dt)
    wide = np.asarray(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        narrow = wide.astype(dt)
    if np.any(np.isinf(narrow) & np.isfinite(wide)):
        raise ValueError(f"write_gguf: metadata {key!r} = {values!r:.80} overflows {vtype.name}")
    return narrow


def _tensor_plan(name: str, array, requested, fn: str):
    """``(shape, type, bytes)`` for one tensor: float arrays are converted to the requested type
    (default F32, or F16 for float16 arrays); a uint8 array with a block type is taken as
    already-packed blocks in ``byte_shape`` (what ``quantize_blocks`` and ``GGUFFile.tensor`` give)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"{fn}: tensor names must be non-empty strings, got {name!r}")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"{fn}: tensor name {name!r} is {len(name.encode('utf-8'))} bytes; ggml refuses names "
                         f"longer than {MAX_NAME_BYTES}")
    array = array if isinstance(array, np.ndarray) else np.asarray(getattr(array, "data", array))
    default = TensorType.F16 if array.dtype == np.float16 else TensorType.F32
    ttype = default if requested is None else tensor_type(requested, fn)
    if ttype not in SUPPORTED_TYPES:
        raise NotImplementedError(f"{fn}: tensor {name!r}: writing {ttype.name} is not implemented "
                                  f"(supported: {', '.join(t.name for t in SUPPORTED_TYPES)})")
    if array.dtype == np.uint8 and ttype not in (TensorType.F32, TensorType.F16):
        shape, data = value_shape(array.shape, ttype), array
    elif array.dtype.kind == "f":
        shape, data = array.shape, quantize_blocks(array, ttype)
    else:
        raise TypeError(f"{fn}: tensor {name!r} has dtype {array.dtype}; give float values, or uint8 "
                        "packed blocks together with a block type")
    if not 1 <= len(shape) <= MAX_DIMS:
        raise ValueError(f"{fn}: tensor {name!r} has shape {shape}; GGUF tensors have 1 to {MAX_DIMS} dims")
    if ttype in (TensorType.F32, TensorType.F16):
        data = data.astype("<f4" if ttype == TensorType.F32 else "<f2", copy=False)   # GGUF is little-endian
    return shape, ttype, np.ascontiguousarray(data).view(np.uint8).reshape(-1)


def write_gguf(path, tensors: Mapping | None = None, metadata: Mapping | None = None, *,
               tensor_types: Mapping | None = None, metadata_types: Mapping | None = None,
               alignment: int | None = None) -> None:
    """Write a GGUF version-3 file, atomically (a temporary file renamed over ``path``).

    ``tensors``: name → array in NumPy order. Float arrays are stored as ``tensor_types[name]``
    (F32, F16, Q8_0, Q4_0 or Q4_1; default F32, or F16 for float16 arrays), quantized here; a
    uint8 array with a block type is stored as already-packed blocks. ``metadata``: key →
    value, typed by ``metadata_types[key]`` (a :class:`ValueType`, or ``(ValueType.ARRAY, item
    type)`` — exactly what ``GGUFFile.metadata_types`` holds, so a file read can be written back)
    or, when absent, by the value: bool → BOOL, int → INT32 (INT64 / UINT64 if it does not fit),
    float → FLOAT32 (llama.cpp's convention: a Python float loses precision), str → STRING,
    NumPy scalars and 1-D arrays → their dtype, lists → ARRAY of their items' type (ints with a
    float: FLOAT32). ``alignment`` (default: the metadata's
    ``general.alignment``, else 32) is written as ``general.alignment`` when it is not 32.
    Tensors are written in the mapping's order, each padded to the alignment.
    """
    fn = "write_gguf"
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{fn}: folder {str(path.parent)!r} does not exist (for {str(path)!r})")
    metadata = dict(metadata or {})
    metadata_types = dict(metadata_types or {})
    tensor_types = dict(tensor_types or {})
    unknown = set(tensor_types) - set(tensors or {})
    if unknown:
        raise KeyError(f"{fn}: tensor_types names tensors that are not given: {sorted(unknown)}")

    given = metadata.get("general.alignment")
    if alignment is None:
        alignment = DEFAULT_ALIGNMENT if given is None else given
    elif given is not None and given != alignment:
        raise ValueError(f"{fn}: alignment={alignment} but metadata general.alignment={given}")
    if isinstance(alignment, bool) or not isinstance(alignment, (int, np.integer)) or alignment <= 0 \
            or alignment & (alignment - 1) or alignment >= 2 ** 32:
        raise ValueError(f"{fn}: alignment must be a power of two below 2**32, got {alignment!r}")
    alignment = int(alignment)
    if given is not None or alignment != DEFAULT_ALIGNMENT:
        metadata["general.alignment"] = alignment
        metadata_types["general.alignment"] = ValueType.UINT32

    head = bytearray(GGUF_MAGIC)
    head += _U32.pack(GGUF_VERSION) + _U64.pack(len(tensors or {})) + _U64.pack(len(metadata))
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"{fn}: metadata keys must be strings, got {key!r}")
        spec = _type_spec(metadata_types[key], key) if key in metadata_types else _infer_type(value, key)
        _encode(head, key, ValueType.STRING, key)
        head += _U32.pack(spec[0] if isinstance(spec, tuple) else spec)
        _encode(head, value, spec, key)

    plans, offset = [], 0
    for name, array in (tensors or {}).items():
        shape, ttype, data = _tensor_plan(name, array, tensor_types.get(name), fn)
        _encode(head, name, ValueType.STRING, name)
        head += _U32.pack(len(shape)) + b"".join(_U64.pack(n) for n in reversed(shape))
        head += _U32.pack(ttype) + _U64.pack(offset)
        plans.append(data)
        offset += _align(data.size, alignment)
    head += bytes(_align(len(head), alignment) - len(head))

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(head)
            for data in plans:
                f.write(memoryview(data))
                f.write(bytes(_align(data.size, alignment) - data.size))

    _atomic_write(path, write)
