"""SentencePiece unigram tokenizer (book § 4.5): equal to the ``sentencepiece`` library.

The reference is ``sentencepiece.SentencePieceProcessor`` (a test-only dependency), loaded from the
same ``.model`` files. Models are trained here, in a few seconds, with the library's trainer on
tiny shakespeare plus some Multi30k German (CPython's ``pydoc_data`` text when those are absent):

* ``nmt_nfkc``: the default normalization rules; ``nfkc_cf``: NFKC + case folding (another
  rule table); ``identity``: no rules;
* ``byte_fallback``: unknown characters become UTF-8 byte pieces;
* ``user_defined``: user-defined symbols (one of them, "ﬁ", is a character NFKC would change; one,
  "New York", contains a space and so can never match) and a control symbol;
* variants of the nmt_nfkc file with one normalizer or trainer option changed, made by appending a
  second ``normalizer_spec`` / ``trainer_spec`` to the file: protobuf merges repeated
  sub-messages, and both readers must agree on the merged result.

Every comparison is piece for piece and id for id, on real lines (tiny shakespeare, SST-2,
Multi30k German) and on hypothesis text built to hit normalization rules, unknown characters and
whitespace runs; decoding is compared on encoded text and on arbitrary id sequences.
"""
from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.text.sentencepiece import SPACE_SYMBOL, SentencePieceModel, SentencePieceModelError
from models.text.sentencepiece_model import PieceType, iter_fields, parse_model_proto, read_varint

spm = pytest.importorskip("sentencepiece")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHAKESPEARE = DATA / "tinyshakespeare" / "input.txt"
SST2 = DATA / "sst2"
MULTI30K = DATA / "multi30k"

USER_SYMBOLS = ["<sep>", "<mask>", "the", "☃", "ﬁ", "New York"]


# ----------------------------------------------------------------------------------------------
# A few lines of protobuf *writing*, to patch and to build model files.
# ----------------------------------------------------------------------------------------------

def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 values are written as 64-bit two's complement
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def field(number: int, value) -> bytes:
    """One field: an int is a varint, bytes/str length-delimited, a float a fixed32."""
    if isinstance(value, bool) or isinstance(value, int):
        return varint(number << 3) + varint(int(value))
    if isinstance(value, float):
        return varint(number << 3 | 5) + struct.pack("<f", value)
    value = value.encode("utf-8") if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(value)) + value


def piece_message(piece: str, score: float, piece_type: int = 1) -> bytes:
    return field(1, field(1, piece) + field(2, score) + field(3, piece_type))


def tiny_model(pieces, trainer=b"", normalizer=b"") -> bytes:
    """A hand-built ModelProto: ``pieces`` as (piece, score, type) triples."""
    return b"".join(piece_message(*p) for p in pieces) + field(2, trainer) + field(3, normalizer)


BASIC_PIECES = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3), ("▁a", -1.0, 1), ("a", -2.0, 1),
                ("b", -2.5, 1), ("▁", -3.0, 1)]


# ----------------------------------------------------------------------------------------------
# Corpora and models.
# ----------------------------------------------------------------------------------------------

def _read_lines(path: Path, gzipped: bool = False) -> list[str]:
    if not path.is_file():
        return []
    opener = gzip.open if gzipped else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def _fallback_corpus() -> list[str]:
    from pydoc_data.topics import topics
    return [line for key in sorted(topics) for line in topics[key].splitlines() if line.strip()]


def real_lines() -> dict[str, list[str]]:
    """The evaluation lines, by data set (absent data sets are left out)."""
    out = {}
    shakespeare = _read_lines(SHAKESPEARE)
    if shakespeare:
        out["tinyshakespeare"] = shakespeare[10_000:12_000]  # not the training lines
    sst = [line.split(" ", 1)[-1] for line in _read_lines(SST2 / "stsa.binary.dev")]
    if sst:
        out["sst2"] = sst[:1000]
    german = [line for name in ("val.de.gz", "test_2016_flickr.de.gz")
              for line in _read_lines(MULTI30K / name, True)]
    if german:
        out["multi30k.de"] = german[:2000]
    if not out:
        out["pydoc_topics"] = _fallback_corpus()[-2000:]
    return out


def training_lines() -> list[str]:
    shakespeare = _read_lines(SHAKESPEARE)[:3000]
    german = _read_lines(MULTI30K / "train.de.gz", True)[:1000]
    return shakespeare + german if shakespeare else _fallback_corpus()[:4000]


TRAINED = {
    "nmt_nfkc": {},
    "nfkc_cf": {"normalization_rule_name": "nfkc_cf"},
    "identity": {"normalization_rule_name": "identity"},
    "byte_fallback": {"byte_fallback": True},
    "user_defined": {"user_defined_symbols": USER_SYMBOLS, "control_symbols": ["<ctl>"], "pad_id": 3},
}
# Appended to the nmt_nfkc file: one more trainer_spec (2) or normalizer_spec (3), merged on load.
PATCHED = {
    "no_dummy_prefix": field(3, field(3, False)),
    "keep_whitespace": field(3, field(4, False)),
    "no_escape": field(3, field(5, False)),
    "keep_whitespace_no_prefix": field(3, field(3, False) + field(4, False)),
    "whitespace_suffix": field(2, field(24, True)),
    "unk_surface": field(2, field(44, "<?>")),
}


class Quiet(dict):
    """A dict whose repr is short: hypothesis prints the fixtures of a failing example."""

    def __repr__(self) -> str:
        return f"<{len(self)} entries: {', '.join(self)}>"


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("spm")
    lines = training_lines()
    files = Quiet()
    for name, options in TRAINED.items():
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(folder / name),
                                       vocab_size=800, num_threads=1, minloglevel=2, **options)
        files[name] = (folder / f"{name}.model").read_bytes()
    for name, patch in PATCHED.items():
        files[name] = files["nmt_nfkc"] + patch
    # A denormalizer: decoded text goes through the nmt_nfkc rules again (without dummy prefix).
    charsmap = parse_model_proto(files["nmt_nfkc"]).normalizer_spec.precompiled_charsmap
    files["denormalizer"] = files["nmt_nfkc"] + field(5, field(2, charsmap) + field(3, False))
    return files


@pytest.fixture(scope="module")
def models(model_files) -> dict[str, tuple[SentencePieceModel, object]]:
    out = Quiet()
    for name, data in model_files.items():
        reference = spm.SentencePieceProcessor()
        reference.LoadFromSerializedProto(data)
        out[name] = (SentencePieceModel.from_bytes(data), reference)
    return out


@pytest.fixture(scope="module")
def lines() -> dict[str, list[str]]:
    return Quiet(real_lines())


ALL_MODELS = list(TRAINED) + list(PATCHED) + ["denormalizer"]


def assert_same_encoding(ours: SentencePieceModel, reference, text: str) -> None:
    pairs = ours.encode_with_pieces(text)
    assert [p for p, _ in pairs] == reference.encode(text, out_type=str), text
    ids = [i for _, i in pairs]
    assert ids == reference.encode(text), text
    assert ours.decode(ids) == reference.decode(ids), text


# ----------------------------------------------------------------------------------------------
# The model file.
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_MODELS)
def test_vocabulary_equals_library(models, name):
    ours, reference = models[name]
    assert ours.vocab_size == len(ours) == reference.vocab_size()
    for i in range(ours.vocab_size):
        piece = reference.id_to_piece(i)
        assert ours.id_to_piece(i) == piece
        assert ours.piece_to_id(piece) == reference.piece_to_id(piece) == i
        assert ours.get_score(i) == reference.get_score(i)  # both the float32 of the file
        assert (ours.is_unknown(i), ours.is_control(i), ours.is_unused(i), ours.is_byte(i)) == (
            reference.is_unknown(i), reference.is_control(i), reference.is_unused(i), reference.is_byte(i))
    assert (ours.unk_id, ours.bos_id, ours.eos_id, ours.pad_id) == (
        reference.unk_id(), reference.bos_id(), reference.eos_id(), reference.pad_id())
    for missing in ("no such piece", "▁" * 30, ""):
        assert ours.piece_to_id(missing) == reference.piece_to_id(missing) == ours.unk_id


def test_fields_read_from_the_file(models):
    trained = {name: models[name][0] for name in TRAINED}
    assert trained["nmt_nfkc"].normalizer.name == "nmt_nfkc"
    identity = trained["identity"].normalizer
    assert identity.name == "identity" and identity.charsmap is None
    assert trained["nfkc_cf"].normalizer.charsmap is not None
    assert trained["byte_fallback"].byte_fallback and not trained["nmt_nfkc"].byte_fallback
    assert sum(trained["byte_fallback"].is_byte(i) for i in range(800)) == 256
    user = trained["user_defined"]
    assert user.proto.trainer_spec.user_defined_symbols == USER_SYMBOLS
    assert user.proto.trainer_spec.control_symbols == ["<ctl>"]
    assert [user.piece_type(user.piece_to_id(s)) for s in USER_SYMBOLS] == [PieceType.USER_DEFINED] * 6
    assert user.pad_id == 3 and trained["nmt_nfkc"].pad_id == -1
    spec = trained["nmt_nfkc"].proto.trainer_spec  # pad_id -1 is written as a 10-byte varint
    assert (spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id) == (0, 1, 2, -1)
    assert user.proto.trainer_spec.pad_id == 3
    assert trained["nmt_nfkc"].proto.trainer_spec.vocab_size == 800
    # The appended specs were merged into the first ones, not substituted for them.
    patched = models["keep_whitespace"][0].normalizer
    assert (patched.name, patched.add_dummy_prefix, patched.remove_extra_whitespaces) == (
        "nmt_nfkc", True, False)
    assert models["whitespace_suffix"][0].normalizer.treat_whitespace_as_suffix
    assert models["unk_surface"][0].unk_surface == "<?>" and trained["nmt_nfkc"].unk_surface == " \u2047 "
    assert models["denormalizer"][0].denormalizer is not None and trained["nmt_nfkc"].denormalizer is None
    assert models["denormalizer"][0].decode(models["denormalizer"][0].encode("ﬁ a")) == "fi▁a"


def test_load_from_path_equals_from_bytes(models, model_files, tmp_path):
    path = tmp_path / "m.model"
    path.write_bytes(model_files["user_defined"])
    loaded = SentencePieceModel.load(path)
    text = "The ☃ said: <sep> New York ﬁne!"
    ours, reference = models["user_defined"]
    assert loaded.encode(text) == ours.encode(text) == reference.encode(text)
    assert "vocab_size=800" in repr(loaded)


# ----------------------------------------------------------------------------------------------
# Parity on real text.
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ALL_MODELS)
def test_real_lines_equal_library(models, lines, name):
    ours, reference = models[name]
    texts = [t for dataset in lines.values() for t in dataset]
    if name not in TRAINED:
        texts = texts[::8]  # the options change whitespace handling only; an eighth suffices
    assert len(texts) >= 200
    for text in texts:
        assert_same_encoding(ours, reference, text)


@pytest.mark.parametrize("name", ["nmt_nfkc", "nfkc_cf", "identity", "keep_whitespace", "no_escape"])
def test_normalize_equals_library(models, lines, name):
    ours, reference = models[name]
    extra = ["  Ｈello\tworld  ﬁ ", "\u3000\u3000", "a\u0308\u0301 ㄱㅏ"]
    for text in lines[next(iter(lines))][:300] + extra:
        assert ours.normalize(text) == reference.normalize(text), text


def test_normalization_examples(models):
    nfkc = models["nmt_nfkc"][0]
    assert nfkc.normalize("  Ｈello\tworld  ﬁ ") == "▁Hello▁world▁fi"
    assert nfkc.normalize("   ") == "" and nfkc.normalize("") == ""
    assert models["identity"][0].normalize("Ｈi\tﬁ") == "▁Ｈi\tﬁ"
    assert models["keep_whitespace"][0].normalize(" a  b ") == "▁▁a▁▁b▁"
    assert models["whitespace_suffix"][0].normalize(" a b") == "a▁b▁"
    # user-defined symbols are not normalized: "ﬁ" stays one piece
    assert models["user_defined"][0].encode_as_pieces("ﬁ") == ["▁", "ﬁ"]
    assert models["nmt_nfkc"][0].encode_as_pieces("ﬁ")[-1] != "ﬁ"


# ----------------------------------------------------------------------------------------------
# Parity on generated text.
# ----------------------------------------------------------------------------------------------

# Characters NFKC (and the NMT rules) change: fullwidth forms, ligatures, circled and
# parenthesized forms, fractions, superscripts, halfwidth katakana, compatibility jamo,
# spaces of all widths, zero-width and control characters.
NFKC_CHANGES = ("ＡＢｚ０９！＃（）ﬀﬁﬂﬃﬄﬅﬆ①②⑴⒜㍿㌀½¼™℃№ⅰⅻ"
                "²³¹ªº´¨¯µ¸ｶﾞｷﾟ…‥"
                "\u3000\xa0\u2002\u200b\ufeff\u00ad\x01\x7f\x85")
COMBINING = "\u0300\u0301\u0308\u0327\u0338\u3099\u309a"
JAMO = "\u1100\u1161\u11a8\u3131\u314f\u3134\uffa1"
EMOJI = ["☃", "😀", "👍🏽", "\u200d", "❤️", "🇩🇪", "\U0010fffd"]
WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\u2028", "\u2581", "▁▁"]
WORDS = ["the", "Hello", "world", "Straße", "Äpfel", "ein", "Mann", "KING", "thee", "'s", "--", "."]
WORDS += USER_SYMBOLS

piece_of_text = st.one_of(
    st.sampled_from(list(NFKC_CHANGES) + list(COMBINING) + list(JAMO) + EMOJI + WHITESPACE + WORDS),
    st.characters(blacklist_categories=("Cs",)),  # anything, mostly unknown characters
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz äöüéA", min_size=1, max_size=8),
)
texts = st.lists(piece_of_text, max_size=25).map("".join)

PINNED = ["---", "aaaaaaa", "", "   ", "\u200b", "¨a", " ¨ a", "ﬁ", "a\u3000b", "☃☃ é", "<sep>the",
          "▁▁a▁", "\t\n", "\u1100\u1161\u11a8", "ㄱㅏㄱ", "A\u0300\u0301", "New York", "x\x00y",
          "\ufffd", "  ¨  ", "😀😀 a 😀", "ＡＢＣ ½ ①"]


@pytest.mark.parametrize("name", ALL_MODELS)
@settings(max_examples=100)
@given(text=texts)
@example(text="---")        # a tie ("▁ - --" / "▁ -- -"): resolved as the library only in float32
@example(text="wither'd")   # "▁wi the r": the user-defined symbol "the" beats "▁with er"
def test_generated_text_equals_library(models, name, text):
    ours, reference = models[name]
    assert_same_encoding(ours, reference, text)
    assert ours.normalize(text) == reference.normalize(text)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_pinned_texts_equal_library(models, name):
    ours, reference = models[name]
    for text in PINNED:
        assert_same_encoding(ours, reference, text)


def test_unknown_and_byte_pieces(models):
    nfkc, reference = models["nmt_nfkc"]
    pieces = nfkc.encode_as_pieces("a😀😀b")  # a run of unknown characters is one piece
    assert "😀😀" in pieces and nfkc.encode("a😀😀b").count(nfkc.unk_id) == 1
    assert nfkc.decode(nfkc.encode("a😀😀b")) == reference.decode(reference.encode("a😀😀b"))
    assert " \u2047 " in nfkc.decode(nfkc.encode("a😀😀b"))
    fallback = models["byte_fallback"][0]
    pieces = fallback.encode_as_pieces("😀")
    assert pieces[-4:] == ["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]
    assert fallback.decode(fallback.encode("x😀y☃")) == "x😀y☃"


# ----------------------------------------------------------------------------------------------
# Decoding arbitrary ids and pieces.
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["nmt_nfkc", "byte_fallback", "user_defined", "keep_whitespace",
                                  "keep_whitespace_no_prefix", "no_dummy_prefix", "no_escape", "unk_surface",
                                  "denormalizer"])
@settings(max_examples=100)
@given(data=st.data())
def test_decode_any_ids_equals_library(models, name, data):
    ours, reference = models[name]
    special = [i for i in range(ours.vocab_size) if ours.types[i] != PieceType.NORMAL][:300]
    spaces = [i for i in range(ours.vocab_size) if ours.pieces[i].startswith(SPACE_SYMBOL)]
    ids = data.draw(st.lists(st.one_of(st.integers(0, ours.vocab_size - 1), st.sampled_from(special),
                                       st.sampled_from(spaces)), max_size=12))
    assert ours.decode(ids) == reference.decode(ids)
    assert ours.decode(np.array(ids, dtype=np.int64)) == reference.decode(ids)
    strangers = data.draw(st.lists(st.sampled_from(["▁x", "zz", "▁"]), max_size=2))  # no pieces: unknown
    pieces = [ours.pieces[i] for i in ids] + strangers
    assert ours.decode_pieces(pieces) == reference.decode_pieces(pieces)


def test_decode_byte_runs():
    # The library maps every byte that starts no valid character to U+FFFD (one per byte).
    from models.text.sentencepiece import _decode_bytes
    assert _decode_bytes("é😀".encode()) == "é😀"
    assert _decode_bytes(b"\xe2\x82A") == "\ufffd\ufffdA"  # Python's "replace" would give one U+FFFD
    assert _decode_bytes(b"\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80") == "\ufffd" * 9


# ----------------------------------------------------------------------------------------------
# The wire format.
# ----------------------------------------------------------------------------------------------

@given(value=st.integers(0, (1 << 64) - 1))
def test_varint_round_trip(value):
    encoded = varint(value)
    assert read_varint(encoded + b"\xff", 0, "t") == (value, len(encoded))


def test_varint_errors():
    truncated = "truncated, or not a SentencePiece model: the varint at byte 0"
    with pytest.raises(SentencePieceModelError, match=truncated):
        read_varint(b"\x80\x80", 0, "t")
    with pytest.raises(SentencePieceModelError, match="longer than 10 bytes"):
        read_varint(b"\x80" * 11 + b"\x01", 0, "t")


def test_unknown_fields_of_every_wire_type_are_skipped(models, model_files):
    unknown = (varint(1000 << 3) + varint(7) + varint(1001 << 3 | 1) + bytes(8) + varint(1002 << 3 | 5)
               + bytes(4) + field(1003, b"junk") + varint(1004 << 3 | 3) + field(1, b"in a group")
               + varint(1005 << 3 | 3) + varint(1005 << 3 | 4) + varint(1004 << 3 | 4))
    # unknown fields at the top level, inside the trainer spec and inside one piece
    extra_piece = field(1, field(1, "zzz-extra") + unknown + field(2, -1.0))
    data = model_files["nmt_nfkc"] + unknown + field(2, unknown + field(9999, 5)) + extra_piece
    ours = SentencePieceModel.from_bytes(data)
    reference = spm.SentencePieceProcessor()
    reference.LoadFromSerializedProto(data)
    assert ours.vocab_size == reference.vocab_size() == 801
    for text in ["Hello, world!", "zzz-extra", "ＡＢ ☃"]:
        assert_same_encoding(ours, reference, text)
    fields = list(iter_fields(unknown, "t"))
    assert [(number, wire) for number, wire, *_ in fields] == [
        (1000, 0), (1001, 1), (1002, 5), (1003, 2), (1004, 3)]


def test_hand_built_model():
    # piece "c" has type 9, unknown to the schema: protobuf keeps such a value aside, so the piece
    # stays NORMAL; "d" is UNUSED: never matched, so "d" is unknown.
    pieces = BASIC_PIECES + [("c", -2.0, 9), ("d", -2.0, 5)]
    data = tiny_model(pieces, trainer=field(3, 1) + field(40, 0), normalizer=field(1, "identity"))
    ours = SentencePieceModel.from_bytes(data)
    reference = library_accepts(data)
    for text in ["a", "ab a", "ba c", "  aab  ", "☃", "cd dd"]:
        assert_same_encoding(ours, reference, text)
    assert ours.encode_as_pieces("ab a") == ["▁a", "b", "▁a"]
    assert ours.piece_type(7) == PieceType.NORMAL and ours.encode("c") == [6, 7]
    assert ours.encode_as_pieces("dd") == ["▁", "dd"] and ours.encode("dd") == [6, 0]


def test_byte_fallback_model_without_unknown_piece(model_files):
    # The library reads such a model: unknown characters become bytes, non-pieces get id -1.
    data = bytearray(model_files["byte_fallback"])
    assert data[0] == 0x0A  # the first piece, <unk>, as a length-delimited field 1 ...
    data[0] = 0x09          # ... becomes a 64-bit field 1 of the wrong type: skipped
    ours, reference = SentencePieceModel.from_bytes(bytes(data)), library_accepts(bytes(data))
    assert ours.unk_id == reference.unk_id() == -1
    assert ours.piece_to_id("zzzq") == reference.piece_to_id("zzzq") == -1
    for text in ["a☃b", "Hello 😀 world", ""]:
        assert_same_encoding(ours, reference, text)
    for pieces in (["▁zzzq", "▁a"], ["zzzq", "<s>", "▁a"], ["▁", "▁zz"]):
        assert ours.decode_pieces(pieces) == reference.decode_pieces(pieces)


def float32_window(center: float, steps: int = 2) -> list[float]:
    """``center`` as float32 and its ``steps`` float32 neighbours on each side."""
    values = [np.float32(center)]
    for _ in range(steps):
        below = np.nextafter(values[0], np.float32(-np.inf))
        values = [below] + values + [np.nextafter(values[-1], np.float32(np.inf))]
    return [float(v) for v in values]


@pytest.mark.parametrize("min_score", [-2.0, -7.25])
def test_unknown_penalty_threshold(min_score):
    """An unknown character costs min score - 10: find the float32 score where a piece covering it wins."""
    def unknown_wins(score):  # "▁a" + unknown "b" = 12 + min score - 10, against "▁ab"
        pieces = BASIC_PIECES[:3] + [("▁a", 12.0, 1), ("x", min_score, 1), ("▁ab", score, 1)]
        data = tiny_model(pieces, normalizer=field(1, "identity"))
        ours, reference = SentencePieceModel.from_bytes(data), library_accepts(data)
        assert ours.encode_as_pieces("ab") == reference.encode("ab", out_type=str)
        return ours.encode_as_pieces("ab") == ["▁a", "b"]
    outcomes = [unknown_wins(score) for score in float32_window(12.0 + min_score - 10.0)]
    assert outcomes == [True, True, False, False, False]  # a tie keeps the first candidate, "▁ab"


@pytest.mark.parametrize("symbol", ["qq", "qqq", "☃", "qqqqq"])
def test_user_defined_score_threshold(symbol):
    """A user symbol of n bytes is worth 0.1 n - 0.1: find the float32 score where a normal piece wins."""
    def user_wins(score, model):
        pieces = BASIC_PIECES[:3] + [("▁a", 0.0, 1), ("q", -9.0, 1), (symbol, 0.0, 4),
                                     ("▁a" + symbol, score, 1)]
        data = tiny_model(pieces, normalizer=field(1, "identity"))
        encoded = (model.from_bytes(data).encode_as_pieces("a" + symbol) if model is SentencePieceModel
                   else library_accepts(data).encode("a" + symbol, out_type=str))
        return encoded == ["▁a", symbol]
    nearby = float32_window(0.1 * len(symbol.encode()) - 0.1)
    outcomes = [user_wins(score, SentencePieceModel) for score in nearby]
    assert outcomes == [user_wins(score, None) for score in nearby]
    assert outcomes == [True, True, False, False, False]  # a tie keeps the first candidate


# ----------------------------------------------------------------------------------------------
# Errors.
# ----------------------------------------------------------------------------------------------

def library_accepts(data: bytes):
    reference = spm.SentencePieceProcessor()
    try:
        reference.LoadFromSerializedProto(data)
    except Exception:  # the library raises RuntimeError/OSError depending on the failure
        return None
    return reference


@pytest.mark.parametrize("name", ["nmt_nfkc", "byte_fallback"])
@settings(max_examples=40)
@given(fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_file(model_files, name, fraction):
    data = model_files[name]
    cut = data[:int(fraction * len(data))]
    reference = library_accepts(cut)
    try:
        ours = SentencePieceModel.from_bytes(cut)
    except SentencePieceModelError as error:
        assert "SentencePieceModel.from_bytes" in str(error)
        assert reference is None, f"we refuse a file the library loads: {error}"
        return
    # A cut between two pieces is a valid, smaller model (no specs: identity normalization).
    assert reference is not None, "we load a file the library refuses"
    for text in ["Hello world", "ＡＢ ☃ é"]:
        assert_same_encoding(ours, reference, text)


@pytest.mark.parametrize("name", ["nmt_nfkc", "byte_fallback"])
@settings(max_examples=50)
@given(data=st.data())
def test_flipped_bytes(model_files, name, data):
    original = model_files[name]
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    corrupted = bytearray(original)
    corrupted[position] ^= data.draw(st.integers(1, 255), label="xor")
    corrupted = bytes(corrupted)
    reference = library_accepts(corrupted)
    try:
        ours = SentencePieceModel.from_bytes(corrupted)
    except SentencePieceModelError as error:
        # Stricter than the library in one way only: strings must be valid UTF-8 (a Python str).
        assert reference is None or "not valid UTF-8" in str(error), str(error)
        return
    assert reference is not None, "we load a file the library refuses"
    for text in ["Hello world, said the KING.", "Ｈｅｌｌｏ ☃ ﬁ é ㄱㅏ"]:
        assert_same_encoding(ours, reference, text)


@pytest.mark.parametrize("data, match", [
    (b"", "no pieces found"),
    (b"# minigrad\n\nThe models of the book", r"malformed protobuf\): group 4 opened at byte 0 is closed"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), r"malformed protobuf\): field number 0 at byte 10"),
    (b'{"vocab": ["a", "b"]}', "truncated, or not a SentencePiece model"),
    (b"\x0a\xff\xff\xff\xff\x0f", "field 1 at byte 0 declares 4294967295 bytes but only 0 remain"),
    (b"\x08" + b"\x80" * 10, r"malformed protobuf\): the varint at byte 1 is longer than 10 bytes"),
    (b"\x00\x01", r"malformed protobuf\): field number 0 at byte 0"),
])
def test_not_a_model(data, match):
    with pytest.raises(SentencePieceModelError, match=match) as caught:
        SentencePieceModel.from_bytes(data)
    assert "SentencePieceModel.from_bytes" in str(caught.value)
    assert library_accepts(data) is None


def test_readme_is_not_a_model(tmp_path):
    readme = Path(__file__).resolve().parents[1] / "README.md"
    with pytest.raises(SentencePieceModelError, match=r"SentencePieceModel.load\('.*README.md'\)"):
        SentencePieceModel.load(readme)
    with pytest.raises(FileNotFoundError, match="no such file"):
        SentencePieceModel.load(tmp_path / "missing.model")
    with pytest.raises(TypeError, match="path must be a str"):
        SentencePieceModel.load(3)
    with pytest.raises(TypeError, match="expected bytes, got str"):
        SentencePieceModel.from_bytes("not bytes")


# The library refuses all these models but the BPE one (it reads BPE models).
@pytest.mark.parametrize("pieces, trainer, match", [
    (BASIC_PIECES[1:], b"", "no unknown piece .* unless byte_fallback is on"),
    (BASIC_PIECES + [("<unk2>", 0.0, 2)], b"", "two unknown pieces"),
    (BASIC_PIECES + [("a", -1.0, 1)], b"", "defined twice"),
    (BASIC_PIECES + [("<0x41>", 0.0, 6)], b"", "byte_fallback is false"),
    (BASIC_PIECES + [("<0x41>", 0.0, 6)], field(35, True), "255 of the 256 byte pieces are missing"),
    (BASIC_PIECES + [("<0x4G>", 0.0, 6)], field(35, True), "named <0x00>"),
    (BASIC_PIECES + [("c", math.nan, 1)], b"", "scores must be finite"),
    (BASIC_PIECES + [("", -1.0, 1)], b"", "empty or missing string"),
    (BASIC_PIECES + [("x\0y", -1.0, 1)], b"", "NUL"),
    (BASIC_PIECES, field(3, 2), "only unigram models are supported; this model's type is BPE"),
    (BASIC_PIECES[:3], b"", "no normal pieces"),
])
def test_invalid_models(pieces, trainer, match):
    data = tiny_model(pieces, trainer)
    with pytest.raises(SentencePieceModelError, match=match):
        SentencePieceModel.from_bytes(data)
    if "unigram" not in match:
        assert library_accepts(data) is None


def test_broken_charsmap(model_files):
    good = SentencePieceModel.from_bytes(model_files["nmt_nfkc"]).proto.normalizer_spec.precompiled_charsmap
    broken_root = good[:4] + struct.pack("<I", 0x80000000 | (0x200000 << 10)) + good[8:]
    cases = [(good[:3], "fewer than its 4-byte header"), (b"\xff\xff\xff\x7f" + good[4:], "trie claims"),
             (broken_root, "root unit"), (good[:len(good) - 1000], "string pool|outside")]
    for charsmap, match in cases:
        data = model_files["nmt_nfkc"] + field(3, field(2, charsmap))
        with pytest.raises(SentencePieceModelError, match=f"precompiled charsmap is broken: .*({match})"):
            SentencePieceModel.from_bytes(data)
        assert library_accepts(data) is None


def test_input_errors(models):
    ours = models["nmt_nfkc"][0]
    for method in (ours.encode, ours.encode_as_pieces, ours.normalize):
        expected = rf"SentencePieceModel\.{method.__name__}: text must be a str, got bytes"
        with pytest.raises(TypeError, match=expected):
            method(b"Hello")
        with pytest.raises(TypeError, match="got NoneType"):
            method(None)
    with pytest.raises(ValueError, match="lone surrogate U\\+D800 at position 1"):
        ours.encode("a\ud800b")
    out_of_range = r"SentencePieceModel\.decode: ids must lie in \[0, 800\); ids\[1\] is 800"
    with pytest.raises(IndexError, match=out_of_range):
        ours.decode([5, 800])
    with pytest.raises(IndexError, match=r"ids\[0\] is -1"):
        ours.decode([-1])
    with pytest.raises(TypeError, match=r"ids\[1\] is str"):
        ours.decode([5, "a"])
    with pytest.raises(TypeError, match="ids must be an int or a sequence of ints, got str"):
        ours.decode("▁a")
    with pytest.raises(TypeError, match="shape"):
        ours.decode(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(IndexError, match=r"id_to_piece: id must lie in \[0, 800\), got 800"):
        ours.id_to_piece(800)
    with pytest.raises(TypeError, match="id must be an int, got float"):
        ours.id_to_piece(1.0)
    with pytest.raises(TypeError, match=r"pieces\[0\] is int"):
        ours.decode_pieces([3])
    with pytest.raises(TypeError, match="piece must be a str"):
        ours.piece_to_id(3)
    assert ours.decode(5) == models["nmt_nfkc"][1].decode([5])
    assert ours.decode([]) == ""
