"""Reading a SentencePiece ``.model`` file by hand: protobuf wire format, ``ModelProto``, charsmap.

A ``.model`` file is one serialized protobuf message, ``sentencepiece.ModelProto`` (its schema is
``sentencepiece_model.proto`` in the SentencePiece sources). We read it without the protobuf
library; the wire format is small:

* a message is a sequence of fields, each ``tag`` then ``value``; ``tag = field_number << 3 |
  wire_type`` is a *varint* (7 bits per byte, little end first, high bit set on all bytes but the
  last);
* wire type 0 is a varint (int32, enums and bools; a negative int32 takes ten bytes, two's
  complement on 64 bits), 1 eight little-endian bytes, 2 a varint length then that many bytes
  (strings, bytes and sub-messages), 5 four little-endian bytes (a float), 3/4 open and close an
  old-style group;
* a field that appears twice keeps its last value; a sub-message that appears twice is merged,
  which is exactly what parsing the two byte strings one after the other gives; fields we do not
  know are skipped (so files written by newer SentencePiece versions still load), and so are
  enum values we do not know, as protobuf does.

The fields read here (the ones that change how text is tokenized, and a few for inspection):

    ModelProto       1 pieces (repeated SentencePiece)  2 trainer_spec  3 normalizer_spec
                     5 denormalizer_spec
    SentencePiece    1 piece  2 score (float)  3 type (NORMAL=1 UNKNOWN=2 CONTROL=3
                     USER_DEFINED=4 UNUSED=5 BYTE=6)
    TrainerSpec      3 model_type (UNIGRAM=1 BPE=2 WORD=3 CHAR=4)  4 vocab_size
                     24 treat_whitespace_as_suffix  26 allow_whitespace_only_pieces
                     25 split_digits  30 control_symbols  31 user_defined_symbols
                     35 byte_fallback  40-43 unk/bos/eos/pad id  44 unk_surface
                     45-48 unk/bos/eos/pad piece
    NormalizerSpec   1 name  2 precompiled_charsmap  3 add_dummy_prefix
                     4 remove_extra_whitespaces  5 escape_whitespaces  6 normalization_rule_tsv

**The precompiled charsmap** is SentencePiece's normalization rule compiled to bytes::

    <trie size: uint32 little-endian> <double-array trie: trie size bytes> <normalized strings>

The trie (Darts-clone) maps UTF-8 byte strings (the source side of each rule, e.g. "ﬁ") to an
offset into the pool of NUL-terminated normalized strings ("fi"). Each trie unit is a uint32:
bits 0-7 the label (the byte that leads to this unit), bit 8 "a key ends here", bits 10-31 the
offset to the children (shifted left by 8 more when bit 9 is set); a leaf unit has bit 31 set and
its low 31 bits are the value. The child of unit ``p`` for byte ``c`` sits at ``p ^ offset(p) ^ c``
and is real only if its label is ``c``. The default ``nmt_nfkc`` table holds about 225,000
rules (most of them sequences of Hangul jamo), too many to list into a dict at every load; we
walk the trie instead, one character at a time, and remember each step (``PrecompiledCharsMap``).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SentencePieceModelError", "PieceType", "ModelType", "Piece", "TrainerSpec", "NormalizerSpec",
    "ModelProto", "parse_model_proto", "read_varint", "iter_fields", "PrecompiledCharsMap",
]


class SentencePieceModelError(ValueError):
    """The bytes given are not a (usable) SentencePiece model."""


class PieceType(enum.IntEnum):
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


class ModelType(enum.IntEnum):
    UNIGRAM = 1
    BPE = 2
    WORD = 3
    CHAR = 4


VARINT, FIXED64, LENGTH_DELIMITED, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5  # wire types


# ----------------------------------------------------------------------------------------------
# The wire format.
# ----------------------------------------------------------------------------------------------

# The two ways bytes fail to be a message, named the same everywhere.
TRUNCATED = "truncated, or not a SentencePiece model"
MALFORMED = "not a SentencePiece model (malformed protobuf)"


def read_varint(data: bytes, pos: int, where: str, base: int = 0) -> tuple[int, int]:
    """The varint starting at ``data[pos]`` and the position after it (at most 10 bytes, 64 bits)."""
    if pos < len(data) and data[pos] < 0x80:  # one byte: most tags and lengths
        return data[pos], pos + 1
    value = 0
    for count in range(10):
        if pos >= len(data):
            raise SentencePieceModelError(f"{where}: {TRUNCATED}: the varint at byte {base + pos - count} "
                                          f"runs past the end of the data")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * count)
        if byte < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, pos
    raise SentencePieceModelError(f"{where}: {MALFORMED}: the varint at byte {base + pos - 10} is "
                                  f"longer than 10 bytes")


def _read_value(data: bytes, pos: int, number: int, wire: int, where: str, base: int, start: int):
    """(value, position after it) of a field whose tag ended at ``pos``; groups give value None."""
    end = len(data)
    if wire == VARINT:
        return read_varint(data, pos, where, base)
    if wire == LENGTH_DELIMITED:
        length, pos = read_varint(data, pos, where, base)
        if length > end - pos:
            raise SentencePieceModelError(f"{where}: {TRUNCATED}: field {number} at byte {base + start} "
                                          f"declares {length} bytes but only {end - pos} remain")
        return data[pos:pos + length], pos + length
    if wire in (FIXED32, FIXED64):
        size = 4 if wire == FIXED32 else 8
        if size > end - pos:
            raise SentencePieceModelError(f"{where}: {TRUNCATED}: the {size}-byte field {number} at byte "
                                          f"{base + start} has only {end - pos} bytes left")
        return int.from_bytes(data[pos:pos + size], "little"), pos + size
    if wire == START_GROUP:  # an old-style group: fields up to the matching end-group tag
        while True:
            if pos >= end:
                raise SentencePieceModelError(f"{where}: {TRUNCATED}: group {number} opened at byte "
                                              f"{base + start} is never closed")
            inner_start = pos
            tag, pos = read_varint(data, pos, where, base)
            inner, inner_wire = tag >> 3, tag & 7
            if inner_wire == END_GROUP:
                if inner != number:
                    raise SentencePieceModelError(
                        f"{where}: {MALFORMED}: group {number} opened at byte {base + start} is closed "
                        f"by the end-group tag of field {inner} at byte {base + inner_start}")
                return None, pos
            _check_field_number(inner, where, base + inner_start)
            _, pos = _read_value(data, pos, inner, inner_wire, where, base, inner_start)
    raise SentencePieceModelError(f"{where}: {MALFORMED}: field {number} at byte {base + start} has wire "
                                  f"type {wire}, which is not valid here")


def _check_field_number(number: int, where: str, offset: int) -> None:
    if number == 0:
        raise SentencePieceModelError(f"{where}: {MALFORMED}: field number 0 at byte {offset}")


def iter_fields(data: bytes, where: str, base: int = 0):
    """Yield ``(field_number, wire_type, value, offset, value_offset)`` for each field of one message.

    ``value`` is an int for varint / 32-bit / 64-bit fields and a bytes object for length-delimited
    ones (groups are skipped whole, value None). ``base`` is the offset of ``data`` in the file, so
    that ``offset`` (where the field starts) and ``value_offset`` (where a length-delimited value
    starts) point at the right byte in error messages.
    """
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = read_varint(data, pos, where, base)
        number, wire = tag >> 3, tag & 7
        _check_field_number(number, where, base + start)
        value, pos = _read_value(data, pos, number, wire, where, base, start)
        yield number, wire, value, base + start, base + pos - (len(value) if wire == LENGTH_DELIMITED else 0)


def _int32(value: int) -> int:
    """A varint read as protobuf's int32: the low 32 bits, two's complement."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _text(value: bytes, what: str, where: str, offset: int) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SentencePieceModelError(f"{where}: {what} at byte {offset} is not valid UTF-8 "
                                      f"({error.reason} at its byte {error.start})") from None


def _float_from_bits(bits: int) -> float:
    """The float32 whose little-endian bytes are the fixed32 ``bits`` (exact as a Python float)."""
    return struct.unpack("<f", bits.to_bytes(4, "little"))[0]


# ----------------------------------------------------------------------------------------------
# The messages (only the fields that change tokenization; the rest are skipped).
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    piece: str
    score: float
    type: PieceType


@dataclass
class TrainerSpec:
    model_type: ModelType = ModelType.UNIGRAM
    vocab_size: int = 8000
    treat_whitespace_as_suffix: bool = False
    allow_whitespace_only_pieces: bool = False
    split_digits: bool = False
    control_symbols: list[str] = field(default_factory=list)
    user_defined_symbols: list[str] = field(default_factory=list)
    byte_fallback: bool = False
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = -1
    # None when the file does not set it; the library then writes " \u2047 " for <unk>.
    unk_surface: str | None = None
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    pad_piece: str = "<pad>"


@dataclass
class NormalizerSpec:
    name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True
    normalization_rule_tsv: str = ""


@dataclass
class ModelProto:
    pieces: list[Piece]
    trainer_spec: TrainerSpec
    normalizer_spec: NormalizerSpec
    denormalizer_spec: NormalizerSpec | None = None


# field number -> (attribute, kind); kinds: int32, bool, str, bytes, repeated-str, or an IntEnum.
_TRAINER_FIELDS = {
    3: ("model_type", ModelType), 4: ("vocab_size", "int32"), 24: ("treat_whitespace_as_suffix", "bool"),
    26: ("allow_whitespace_only_pieces", "bool"), 25: ("split_digits", "bool"),
    30: ("control_symbols", "repeated-str"), 31: ("user_defined_symbols", "repeated-str"),
    35: ("byte_fallback", "bool"), 40: ("unk_id", "int32"), 41: ("bos_id", "int32"),
    42: ("eos_id", "int32"), 43: ("pad_id", "int32"), 44: ("unk_surface", "str"),
    45: ("unk_piece", "str"), 46: ("bos_piece", "str"), 47: ("eos_piece", "str"), 48: ("pad_piece", "str"),
}
_NORMALIZER_FIELDS = {
    1: ("name", "str"), 2: ("precompiled_charsmap", "bytes"), 3: ("add_dummy_prefix", "bool"),
    4: ("remove_extra_whitespaces", "bool"), 5: ("escape_whitespaces", "bool"),
    6: ("normalization_rule_tsv", "str"),
}
_WIRE_OF_KIND = {"int32": VARINT, "bool": VARINT, "str": LENGTH_DELIMITED, "bytes": LENGTH_DELIMITED,
                 "repeated-str": LENGTH_DELIMITED}


def _parse_message(message, data: bytes, schema: dict, name: str, where: str, base: int):
    """Fill the dataclass ``message`` from ``data`` following ``schema``; unknown fields are skipped.

    A known field number with an unexpected wire type is skipped too, as protobuf's own parser
    treats it as an unknown field.
    """
    for number, wire, value, offset, _ in iter_fields(data, where, base):
        if number not in schema:
            continue
        attribute, kind = schema[number]
        expected = VARINT if isinstance(kind, type) else _WIRE_OF_KIND[kind]
        if wire != expected:
            continue
        if kind == "int32":
            setattr(message, attribute, _int32(value))
        elif kind == "bool":
            setattr(message, attribute, value != 0)
        elif kind == "str":
            setattr(message, attribute, _text(value, f"{name}.{attribute}", where, offset))
        elif kind == "bytes":
            setattr(message, attribute, bytes(value))
        elif kind == "repeated-str":
            getattr(message, attribute).append(_text(value, f"{name}.{attribute}", where, offset))
        else:
            setattr(message, attribute, _enum(kind, _int32(value), getattr(message, attribute)))
    return message


def _enum(kind, value: int, default):
    """A proto2 enum field: a value the schema does not know is set aside; the field keeps its value.

    That is what protobuf (and so the library) does, e.g. with a piece type written by a newer
    SentencePiece; we follow it so that every file the library reads, we read the same way.
    """
    try:
        return kind(value)
    except ValueError:
        return default


def _parse_piece(data: bytes, index: int, where: str, base: int) -> Piece:
    piece, score, piece_type = None, 0.0, PieceType.NORMAL
    for number, wire, value, offset, _ in iter_fields(data, where, base):
        if number == 1 and wire == LENGTH_DELIMITED:
            piece = _text(value, f"piece {index}", where, offset)
        elif number == 2 and wire == FIXED32:
            score = _float_from_bits(value)
        elif number == 3 and wire == VARINT:
            piece_type = _enum(PieceType, _int32(value), piece_type)
    if not piece:
        raise SentencePieceModelError(f"{where}: piece {index} (byte {base}) has an empty or missing "
                                      f"string; every piece needs one")
    return Piece(piece, score, piece_type)


def parse_model_proto(data: bytes, where: str = "parse_model_proto") -> ModelProto:
    """The ``ModelProto`` in ``data``; a ``SentencePieceModelError`` naming ``where`` if it is not one."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"{where}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    pieces: list[Piece] = []
    # Sub-messages are merged when repeated: keep each one's chunks and parse them together.
    chunks: dict[int, list[tuple[bytes, int]]] = {2: [], 3: [], 5: []}
    for number, wire, value, _, value_offset in iter_fields(data, where):
        if wire != LENGTH_DELIMITED:
            continue
        if number == 1:
            pieces.append(_parse_piece(value, len(pieces), where, value_offset))
        elif number in chunks:
            chunks[number].append((value, value_offset))
    if not pieces:
        raise SentencePieceModelError(f"{where}: not a SentencePiece model: no pieces found in "
                                      f"{len(data)} bytes")

    def merged(number: int, message, schema: dict, name: str):
        for chunk, offset in chunks[number]:
            _parse_message(message, chunk, schema, name, where, offset)
        return message

    trainer = merged(2, TrainerSpec(), _TRAINER_FIELDS, "trainer_spec")
    normalizer = merged(3, NormalizerSpec(), _NORMALIZER_FIELDS, "normalizer_spec")
    denormalizer = merged(5, NormalizerSpec(), _NORMALIZER_FIELDS, "denormalizer_spec") if chunks[5] else None
    return ModelProto(pieces, trainer, normalizer, denormalizer)


# ----------------------------------------------------------------------------------------------
# The precompiled charsmap.
# ----------------------------------------------------------------------------------------------


_LABEL_MASK = 0x800000FF  # a unit's label; leaf units have bit 31 set, so they never match a byte
_LEAF_BIT = 1 << 31
_NO_MATCH = (-1, None)


def _unit_offset(unit: int) -> int:
    """Distance from a unit to its children: bits 10-31, shifted left by 8 when bit 9 is set."""
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


def _utf8_length(lead: int) -> int:
    """Bytes of the UTF-8 character that starts with byte ``lead`` (0: not a lead byte)."""
    if lead < 0x80:
        return 1
    return 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF8 else 0


class PrecompiledCharsMap:
    """SentencePiece's compiled normalization rules, with the longest-match look-up its normalizer does.

    ``longest_match(text, start)`` walks the trie one input character at a time from ``start``
    and returns the target of the longest rule whose source is a prefix of ``text[start:]``, with
    the number of characters it covers (``("fi", 1)`` for "ﬁ..."), or None. Each step (trie node,
    character) -> next node is computed once from the units and then remembered, so the byte-level
    walk costs one dict look-up per character after warm-up.

    The trie is over UTF-8 bytes; we walk whole characters, which gives the same matches because
    every rule source is a string of whole characters (a source ending inside a character is
    never found here; SentencePiece's builder writes none).

    ``first_chars`` are the characters some rule starts with: ``single_chars`` have a rule of
    their own, ``longer_first_chars`` start longer rules, and ``ascii_continuations`` are the
    ASCII characters that can follow those (none in the standard tables: second characters are
    combining marks, jamo and the like). The normalizer builds from them a regex that finds the
    next position where a rule may apply and copies the text in between as it is.
    """

    def __init__(self, blob: bytes, where: str = "PrecompiledCharsMap"):
        self._where = where
        if len(blob) <= 4:
            self._broken(f"{len(blob)} bytes, fewer than its 4-byte header needs")
        trie_size = int.from_bytes(blob[:4], "little")
        # Darts-clone allocates units in blocks of 256; with that and the offset check below,
        # every child index a walk can compute lies inside the array.
        if trie_size == 0 or trie_size % 1024 or trie_size > len(blob) - 4:
            self._broken(f"its trie claims {trie_size} bytes; expected a positive multiple of 1024 "
                         f"(256 four-byte units) of at most {len(blob) - 4}")
        units = np.frombuffer(blob, dtype="<u4", count=trie_size // 4, offset=4).astype(np.int64)
        pool = blob[4 + trie_size:]
        offsets = (units >> 10) << ((units & (1 << 9)) >> 6)
        labels = units & _LABEL_MASK
        size = len(units)
        if labels[0] != 0 or (units[0] >> 8) & 1 or offsets[0] == 0 or (offsets[0] | 0xFF) >= size:
            self._broken("its root unit is not a valid trie root")
        inner = (labels <= 0xFF) & (offsets != 0)
        outside = np.nonzero(inner & (((np.arange(size) ^ offsets) | 0xFF) >= size))[0]
        if outside.size:
            self._broken(f"unit {int(outside[0])} points outside the {size}-unit trie")
        # A unit that says "a key ends here" must lead to a leaf unit (bit 31 set).
        ending = np.nonzero((labels <= 0xFF) & (((units >> 8) & 1) == 1))[0]
        leaf_units = ending ^ offsets[ending]
        not_leaf = ending[(leaf_units >= size) | (units[np.minimum(leaf_units, size - 1)] < _LEAF_BIT)]
        if not_leaf.size:
            self._broken(f"unit {int(not_leaf[0])} marks the end of a rule but has no leaf unit")
        self._units = units.tolist()
        self._targets = self._read_targets(units, pool)
        self._steps: dict[tuple[int, str], tuple[int, str | None]] = {}
        self._first_level(offsets, labels)

    def _broken(self, why: str):
        raise SentencePieceModelError(f"{self._where}: the precompiled charsmap is broken: {why}")

    def _read_targets(self, units: np.ndarray, pool: bytes) -> dict[int, str]:
        """The normalized string of every leaf value: the pool from that offset to the next NUL."""
        targets = {}
        for value in np.unique(units[units >= _LEAF_BIT] & 0x7FFFFFFF).tolist():
            end = pool.find(b"\0", value)
            if value >= len(pool) or end < 0:
                self._broken(f"a rule points at byte {value} of the {len(pool)}-byte string pool, "
                             f"outside any NUL-terminated string")
            targets[value] = _text(pool[value:end], "a normalized string", self._where, value)
        return targets

    def _first_level(self, offsets: np.ndarray, labels: np.ndarray) -> None:
        """Find the characters rules start with, and the prefilter regex (one NumPy step per byte)."""
        byte_values = np.arange(1, 256, dtype=np.int64)
        frontier, prefixes = np.zeros(1, dtype=np.int64), [b""]
        first_nodes: dict[str, int] = {}
        for _ in range(4):  # a character is at most 4 bytes
            if not prefixes:
                break
            children = (frontier ^ offsets[frontier])[:, None] ^ byte_values[None, :]
            parent_index, byte_index = np.nonzero(labels[children] == byte_values[None, :])
            next_frontier, next_prefixes = [], []
            for parent, byte, node in zip(parent_index.tolist(), (byte_index + 1).tolist(),
                                          children[parent_index, byte_index].tolist()):
                prefix = prefixes[parent] + bytes((byte,))
                length = _utf8_length(prefix[0])
                if len(prefix) < length:
                    next_frontier.append(node)
                    next_prefixes.append(prefix)
                elif len(prefix) == length:
                    try:
                        first_nodes[prefix.decode("utf-8")] = node
                    except UnicodeDecodeError:
                        pass  # a source that is not UTF-8 can never match a str
            frontier, prefixes = np.array(next_frontier, dtype=np.int64), next_prefixes
        self.first_chars = frozenset(first_nodes)
        single = [c for c, node in first_nodes.items() if (self._units[node] >> 8) & 1]
        nodes = np.array(list(first_nodes.values()), dtype=np.int64).reshape(-1)
        children = (nodes ^ offsets[nodes])[:, None] ^ byte_values[None, :]
        real = labels[children] == byte_values[None, :]
        longer = [c for c, has_child in zip(first_nodes, real.any(axis=1).tolist()) if has_child]
        ascii_next = sorted({chr(b) for b in (np.nonzero(real[:, :127].any(axis=0))[0] + 1).tolist()})
        self.single_chars = frozenset(single)
        self.longer_first_chars = frozenset(longer)
        self.ascii_continuations = frozenset(ascii_next)

    def _step(self, node: int, char: str) -> tuple[int, str | None]:
        """(node reached from ``node`` by the UTF-8 bytes of ``char``, or -1; the rule target there)."""
        units = self._units
        for byte in char.encode("utf-8", "surrogatepass"):
            child = node ^ _unit_offset(units[node]) ^ byte
            if units[child] & _LABEL_MASK != byte:
                return _NO_MATCH
            node = child
        unit = units[node]
        if not (unit >> 8) & 1:
            return node, None
        value = units[node ^ _unit_offset(unit)] & 0x7FFFFFFF
        target = self._targets.get(value)
        if target is None:
            self._broken(f"a rule's leaf at unit {node ^ _unit_offset(unit)} is not a leaf unit")
        return node, target

    def longest_match(self, text: str, start: int) -> tuple[str, int] | None:
        """(target, characters covered) of the longest rule matching at ``text[start]``, or None."""
        steps, node, position, best = self._steps, 0, start, None
        end = len(text)
        while position < end:
            key = (node, text[position])
            step = steps.get(key)
            if step is None:
                step = steps[key] = self._step(node, text[position])
            node, target = step
            if node < 0:
                break
            position += 1
            if target is not None:
                best = (target, position - start)
        return best
