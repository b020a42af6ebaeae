"""SentencePiece (unigram) tokenization by hand, equal to the ``sentencepiece`` library (book § 4.5).

ALBERT, T5 and XLNet do not split on spaces first as BERT does: SentencePiece (Kudo & Richardson
2018) treats the text as one stream of characters in which a space is just the character ``▁``
(U+2581), so "Hello world" and "Helloworld" are both segmented by the same model, and decoding is
lossless (``▁`` -> space). A ``.model`` file holds everything: the pieces with their scores, the
normalization rules and the options (read in ``models.text.sentencepiece_model``, protobuf by hand).
Encoding has three stages:

1. **Normalization** (``Normalizer``): from left to right, at each position the longest rule of the
   model's compiled rule table (the default ``nmt_nfkc``: NFKC plus a few NMT fixes — fullwidth
   ``Ａ`` -> ``A``, ``ﬁ`` -> ``fi``, tabs and newlines -> space, control characters dropped) is
   applied, or the character is copied; user-defined symbols are copied untouched. Then leading,
   trailing and repeated spaces are removed, one space is put in front ("dummy prefix", so that
   "world" and "hello world" both contain ``▁world``) and every space becomes ``▁``.

2. **Segmentation** (unigram language model, Kudo 2018): each piece has a score, its log
   probability; the segmentation is the one with the highest total score, found by Viterbi over
   the lattice of all pieces that match somewhere in the text. A character no piece covers
   becomes the unknown piece with score ``min score - 10`` (SentencePiece's unk penalty); a
   user-defined symbol of n UTF-8 bytes scores ``0.1 n - 0.1``, more than any normal piece
   (log probabilities are negative), so it is nearly always chosen — but it is a lattice node
   like any other, not a greedy pre-split. Scores are added in single precision, as in the
   library, so that ties (the same pieces in another order) resolve the same way.

3. **Output**: consecutive unknown characters are merged into one unknown piece; when the model
   has byte pieces (``byte_fallback``) an unknown character becomes its UTF-8 bytes ``<0xE2>
   <0x98> <0x83>`` instead.

``decode`` reverses it: control pieces (``<s>``, ``</s>``) vanish, ``▁`` becomes a space (the
first one is dropped), ``<unk>`` becomes " ⁇ ", and runs of byte pieces are reassembled into
UTF-8 (bytes that form no character give U+FFFD each).

Only unigram models are supported (BPE/word/char models are refused with a clear error). The
library's sampling (subword regularization) and n-best are not implemented.
"""
from __future__ import annotations

import math
import os
import re
from array import array
from pathlib import Path

import numpy as np

from models.text.sentencepiece_model import (ModelProto, ModelType, NormalizerSpec, PieceType,
                                             PrecompiledCharsMap, SentencePieceModelError,
                                             parse_model_proto)

__all__ = ["SentencePieceModel", "Normalizer", "SentencePieceModelError", "SPACE_SYMBOL"]

SPACE_SYMBOL = "\u2581"
DEFAULT_UNK_SURFACE = " \u2047 "
UNK_PENALTY = 10.0
FLT_MAX = 3.4028234663852886e+38
# A user-defined symbol of n UTF-8 bytes scores float32(n * 0.1 - 0.1) in the lattice. Measured on
# sentencepiece 0.2.3 with hand-built models (the threshold score at which a normal piece wins,
# down to the last float32 bit); older releases used n * max(FLT_MIN, max score) - 0.1, about -0.1.
USER_DEFINED_BONUS = 0.1
MAX_PIECE_BYTES = 8000              # the library refuses longer pieces
BYTE_PIECES = tuple(f"<0x{b:02X}>" for b in range(256))


def _float32(value: float) -> float:
    """``value`` rounded to single precision (an array('f') slot does the C cast)."""
    slot = array("f", [value])
    return slot[0]


def _check_text(text, where: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{where}: text must be a str, got {type(text).__name__}")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"{where}: text must be encodable as UTF-8; it has the lone surrogate "
                             f"U+{ord(text[error.start]):04X} at position {error.start}") from None


_SPACE_RUNS = re.compile(" {2,}")


def _char_class(chars) -> str:
    """The inside of a regex class ``[...]`` matching ``chars`` and every character beyond U+FFFF.

    Python's regex engine tests a class of characters below U+10000 with one table look-up, but a
    class holding a single character beyond that is scanned item by item (thousands of items for
    a rule table). Characters beyond U+FFFF are rare in text; stopping at all of them costs a
    look-up that finds nothing.
    """
    return "".join(re.escape(c) for c in sorted(chars) if c <= "\uffff") + "\U00010000-\U0010ffff"


# ----------------------------------------------------------------------------------------------
# Stage 1: normalization.
# ----------------------------------------------------------------------------------------------

class Normalizer:
    """SentencePiece's normalizer: rule table, user-defined symbols kept as they are, whitespace.

    ``normalize("  Ｈello\\tworld ")`` -> ``"▁Hello▁world"`` with the default ``nmt_nfkc`` rules.
    """

    def __init__(self, spec: NormalizerSpec, treat_whitespace_as_suffix: bool = False,
                 user_defined_symbols=(), where: str = "Normalizer"):
        self.spec = spec
        self.name = spec.name
        self.add_dummy_prefix = spec.add_dummy_prefix
        self.remove_extra_whitespaces = spec.remove_extra_whitespaces
        self.escape_whitespaces = spec.escape_whitespaces
        self.treat_whitespace_as_suffix = bool(treat_whitespace_as_suffix)
        self.charsmap = (PrecompiledCharsMap(spec.precompiled_charsmap, where)
                         if spec.precompiled_charsmap else None)
        self.user_defined_symbols = frozenset(user_defined_symbols)
        lengths: dict[str, set[int]] = {}
        for symbol in self.user_defined_symbols:
            lengths.setdefault(symbol[0], set()).add(len(symbol))
        # Longest first: the library's prefix matcher keeps the longest user symbol that matches.
        self._user_lengths = {c: sorted(ls, reverse=True) for c, ls in lengths.items()}
        # Usually no rule and no user symbol starts with a space; spaces can then stay inside the
        # runs of text that are copied as they are, and the whitespace rules apply to whole runs.
        self._space_is_plain = " " not in self._user_lengths and (
            self.charsmap is None or " " not in self.charsmap.first_chars)
        self._prefilter = self._build_prefilter()

    def _build_prefilter(self):
        """A regex for the next position that may need more than copying one character.

        That is the start of a user-defined symbol, a character with a rule of its own, or the
        first character of a longer rule followed by a character that could continue it (the
        second characters of longer rules are combining marks, jamo and the like: non-ASCII, plus
        any ASCII ones the table has); a space too, when some rule or symbol starts with one.
        """
        single = set(self._user_lengths) | (set() if self._space_is_plain else {" "})
        alternatives = []
        if self.charsmap is not None:
            single |= self.charsmap.single_chars
            if self.charsmap.longer_first_chars:
                following = "[^\\x00-\\x7f]"
                if self.charsmap.ascii_continuations:
                    ascii_next = "".join(re.escape(c) for c in sorted(self.charsmap.ascii_continuations))
                    following += f"|[{ascii_next}]"
                alternatives.append(f"[{_char_class(self.charsmap.longer_first_chars)}](?={following})")
        alternatives.insert(0, f"[{_char_class(single)}]")
        return re.compile("|".join(alternatives))

    def _prefix(self, text: str, start: int) -> tuple[str, int]:
        """The library's NormalizePrefix: (normalized text, characters consumed) at ``start``."""
        lengths = self._user_lengths.get(text[start])
        if lengths:
            for length in lengths:
                candidate = text[start:start + length]
                if candidate in self.user_defined_symbols:
                    return candidate, length
        if self.charsmap is not None:
            match = self.charsmap.longest_match(text, start)
            if match is not None:
                return match
        return text[start], 1

    def segments(self, text: str) -> list[tuple[str, bool]]:
        """The text as (unit, plain) pairs: each rule's output alone, runs copied as they are in one.

        The library normalizes one prefix at a time, and its whitespace rules look at prefix
        boundaries (a rule's output that starts with a space loses it after a space), so rule
        outputs stay apart. A plain run is a string of one-character units copied as they are;
        ``_normalize`` applies the per-character rules to it in one go.
        """
        out = []
        position, end = 0, len(text)
        search = self._prefilter.search
        while position < end:
            found = search(text, position)
            stop = found.start() if found else end
            if stop > position:
                out.append((text[position:stop], True))
            if stop >= end:
                break
            normalized, consumed = self._prefix(text, stop)
            out.append((normalized, False))
            position = stop + consumed
        return out

    def normalize(self, text: str) -> str:
        _check_text(text, "Normalizer.normalize")
        return self._normalize(text)

    def _normalize(self, text: str) -> str:
        units = self.segments(text)
        remove = self.remove_extra_whitespaces
        first = 0
        while remove and first < len(units):  # leading units that are exactly " " are dropped
            unit, plain = units[first]
            if plain and unit.lstrip(" "):
                units[first] = (unit.lstrip(" "), True)
                break
            if not plain and unit != " ":
                break
            first += 1
        if first == len(units):
            return ""
        space = SPACE_SYMBOL if self.escape_whitespaces else " "
        out = [space] if self.add_dummy_prefix and not self.treat_whitespace_as_suffix else []
        after_space = remove
        for unit, plain in units[first:]:
            if plain and remove and "  " in unit:
                unit = _SPACE_RUNS.sub(" ", unit)  # in a run each space is a unit: one survives
            if after_space:
                unit = unit.lstrip(" ")
            if unit:
                out.append(unit.replace(" ", SPACE_SYMBOL) if self.escape_whitespaces else unit)
                after_space = unit.endswith(" ")
            if not remove:
                after_space = False
        normalized = "".join(out)
        if remove:
            normalized = normalized.rstrip(space)  # also a "▁" that was in the input text
        if self.add_dummy_prefix and self.treat_whitespace_as_suffix:
            normalized += space
        return normalized


def _decode_bytes(data: bytes) -> str:
    """UTF-8 as the library reassembles byte pieces: every byte that starts no valid character -> U+FFFD."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out, position = [], 0
    while position < len(data):
        lead = data[position]
        length = 1 if lead < 0x80 else 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else \
            4 if 0xF0 <= lead < 0xF8 else 0
        character = None
        if length and position + length <= len(data):
            try:
                character = data[position:position + length].decode("utf-8")
            except UnicodeDecodeError:
                pass
        if character is None:
            out.append("\ufffd")  # one per byte; Python's "replace" would take a whole maximal subpart
            position += 1
        else:
            out.append(character)
            position += length
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# The model: pieces, Viterbi segmentation, decoding.
# ----------------------------------------------------------------------------------------------

class SentencePieceModel:
    """A SentencePiece unigram model read from its ``.model`` file; ids equal the library's.

    >>> sp = SentencePieceModel.load("spiece.model")            # doctest: +SKIP
    >>> sp.encode_as_pieces("Hello world.")                     # doctest: +SKIP
    ['▁Hello', '▁world', '.']
    """

    def __init__(self, proto: ModelProto, where: str = "SentencePieceModel"):
        if not isinstance(proto, ModelProto):
            raise TypeError(f"{where}: expected a ModelProto, got {type(proto).__name__}")
        self.proto = proto
        trainer = proto.trainer_spec
        if trainer.model_type != ModelType.UNIGRAM:
            raise SentencePieceModelError(
                f"{where}: only unigram models are supported; this model's type is "
                f"{trainer.model_type.name} (trainer_spec.model_type={int(trainer.model_type)})")
        self.pieces = [p.piece for p in proto.pieces]
        self.scores = [p.score for p in proto.pieces]
        self.types = [p.type for p in proto.pieces]
        self.byte_fallback = trainer.byte_fallback
        self._index_pieces(where)
        self._build_lattice_table()
        user_defined = [p for p, t in zip(self.pieces, self.types) if t == PieceType.USER_DEFINED]
        self.normalizer = Normalizer(proto.normalizer_spec, trainer.treat_whitespace_as_suffix, user_defined,
                                     where)
        # The library only de-normalizes when a denormalizer rule table is present.
        denormalizer = proto.denormalizer_spec
        self.denormalizer = (Normalizer(denormalizer, where=where)
                             if denormalizer is not None and denormalizer.precompiled_charsmap else None)
        surface = trainer.unk_surface
        self.unk_surface = DEFAULT_UNK_SURFACE if surface is None else surface

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_bytes(cls, data, where: str = "SentencePieceModel.from_bytes") -> "SentencePieceModel":
        """The model serialized in ``data`` (the bytes of a ``.model`` file)."""
        return cls(parse_model_proto(data, where), where)

    @classmethod
    def load(cls, path) -> "SentencePieceModel":
        """Read a ``.model`` file."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"SentencePieceModel.load: path must be a str or os.PathLike, "
                            f"got {type(path).__name__}")
        path = Path(path)
        where = f"SentencePieceModel.load({str(path)!r})"
        if not path.is_file():
            raise FileNotFoundError(f"{where}: no such file")
        return cls.from_bytes(path.read_bytes(), where)

    def _index_pieces(self, where: str) -> None:
        """The library's checks and its two look-up tables (InitializePieces)."""
        # NORMAL, USER_DEFINED and UNUSED pieces are segmentation candidates; UNKNOWN, CONTROL and
        # BYTE pieces are "reserved": found by piece_to_id but never matched in text.
        self._normal_ids: dict[str, int] = {}
        self._reserved_ids: dict[str, int] = {}
        self._unk_id = -1
        self._byte_ids = [-1] * 256
        self._byte_of_id: dict[int, int] = {}
        for i, (piece, piece_type) in enumerate(zip(self.pieces, self.types)):
            if len(piece.encode("utf-8")) >= MAX_PIECE_BYTES:
                raise SentencePieceModelError(f"{where}: piece {i} is {len(piece.encode())} bytes long; "
                                              f"the library allows fewer than {MAX_PIECE_BYTES}")
            if not math.isfinite(self.scores[i]):
                raise SentencePieceModelError(f"{where}: piece {i} ({piece!r}) has the score "
                                              f"{self.scores[i]}; scores must be finite")
            if "\0" in piece:
                raise SentencePieceModelError(f"{where}: piece {i} ({piece!r}) contains a NUL character")
            candidate = piece_type in (PieceType.NORMAL, PieceType.USER_DEFINED, PieceType.UNUSED)
            table = self._normal_ids if candidate else self._reserved_ids
            if piece in table:
                raise SentencePieceModelError(f"{where}: piece {piece!r} is defined twice "
                                              f"(ids {table[piece]} and {i})")
            table[piece] = i
            if piece_type == PieceType.UNKNOWN:
                if self._unk_id >= 0:
                    raise SentencePieceModelError(f"{where}: two unknown pieces: ids {self._unk_id} and {i}")
                self._unk_id = i
            elif piece_type == PieceType.BYTE:
                if not self.byte_fallback:
                    raise SentencePieceModelError(f"{where}: byte piece {piece!r} (id {i}) found although "
                                                  f"trainer_spec.byte_fallback is false")
                if piece not in _BYTE_OF_PIECE:
                    raise SentencePieceModelError(f"{where}: byte piece {i} is {piece!r}; byte pieces "
                                                  f"are named <0x00> ... <0xFF>")
                self._byte_ids[_BYTE_OF_PIECE[piece]] = i
                self._byte_of_id[i] = _BYTE_OF_PIECE[piece]
        if self._unk_id < 0 and not self.byte_fallback:
            # (With byte fallback the library does without: unknown characters become bytes, and
            # a string that is no piece gets the id -1.)
            raise SentencePieceModelError(f"{where}: the model has no unknown piece (type UNKNOWN); "
                                          f"one is needed unless byte_fallback is on")
        if self.byte_fallback and -1 in self._byte_ids:
            missing = [BYTE_PIECES[b] for b in range(256) if self._byte_ids[b] < 0]
            raise SentencePieceModelError(f"{where}: byte_fallback is on but {len(missing)} of the 256 "
                                          f"byte pieces are missing, e.g. {missing[:3]}")
        if not self._normal_ids:
            raise SentencePieceModelError(f"{where}: the model has no normal pieces to segment text with")

    def _build_lattice_table(self) -> None:
        """Every prefix of every candidate piece -> its id, or -1 when it is only a prefix.

        Walking text[i:i+1], text[i:i+2], ... through this dict until a miss is the trie walk of
        the library: it yields the pieces starting at ``i`` shortest first, and stops as soon as
        no piece can continue.
        """
        normal = [s for s, t in zip(self.scores, self.types) if t == PieceType.NORMAL]
        self.min_score = min([FLT_MAX] + normal)  # the library starts from FLT_MAX too
        self.unk_score = _float32(self.min_score - UNK_PENALTY)
        prefixes = {piece[:length] for piece in self._normal_ids for length in range(1, len(piece))}
        table = dict.fromkeys(prefixes, -1)
        lattice_scores = list(self.scores)
        for piece, i in self._normal_ids.items():
            piece_type = self.types[i]
            table[piece] = -1 if piece_type == PieceType.UNUSED else i
            if piece_type == PieceType.USER_DEFINED:
                lattice_scores[i] = _float32(len(piece.encode("utf-8")) * USER_DEFINED_BONUS - 0.1)
        self._table = table
        self._lattice_scores = lattice_scores

    # -- vocabulary ------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def __len__(self) -> int:
        return len(self.pieces)

    def __repr__(self) -> str:
        return (f"SentencePieceModel(vocab_size={self.vocab_size}, normalizer={self.normalizer.name!r}, "
                f"byte_fallback={self.byte_fallback}, unk_id={self.unk_id}, bos_id={self.bos_id}, "
                f"eos_id={self.eos_id}, pad_id={self.pad_id})")

    def piece_to_id(self, piece: str) -> int:
        """The id of ``piece``; the unknown id for a string that is no piece (as the library).

        (-1 in a byte-fallback model without an unknown piece.)
        """
        if not isinstance(piece, str):
            raise TypeError(f"SentencePieceModel.piece_to_id: piece must be a str, "
                            f"got {type(piece).__name__}")
        found = self._reserved_ids.get(piece)
        if found is None:
            found = self._normal_ids.get(piece, self._unk_id)
        return found

    def _check_id(self, i, where: str) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"SentencePieceModel.{where}: id must be an int, got {type(i).__name__}")
        if not 0 <= i < len(self.pieces):
            raise IndexError(f"SentencePieceModel.{where}: id must lie in [0, {len(self.pieces)}), "
                             f"got {int(i)}")
        return int(i)

    def id_to_piece(self, i: int) -> str:
        return self.pieces[self._check_id(i, "id_to_piece")]

    def get_score(self, i: int) -> float:
        return self.scores[self._check_id(i, "get_score")]

    def piece_type(self, i: int) -> PieceType:
        return self.types[self._check_id(i, "piece_type")]

    def is_unknown(self, i: int) -> bool:
        return self.piece_type(i) == PieceType.UNKNOWN

    def is_control(self, i: int) -> bool:
        return self.piece_type(i) == PieceType.CONTROL

    def is_unused(self, i: int) -> bool:
        return self.piece_type(i) == PieceType.UNUSED

    def is_byte(self, i: int) -> bool:
        return self.piece_type(i) == PieceType.BYTE

    def _special_id(self, piece: str, default: str, wanted: PieceType) -> int:
        """The library's unk_id()/bos_id()/...: the id of that piece if it has the right type, else -1."""
        i = self.piece_to_id(piece or default)
        return i if i >= 0 and self.types[i] == wanted else -1

    @property
    def unk_id(self) -> int:
        return self._special_id(self.proto.trainer_spec.unk_piece, "<unk>", PieceType.UNKNOWN)

    @property
    def bos_id(self) -> int:
        return self._special_id(self.proto.trainer_spec.bos_piece, "<s>", PieceType.CONTROL)

    @property
    def eos_id(self) -> int:
        return self._special_id(self.proto.trainer_spec.eos_piece, "</s>", PieceType.CONTROL)

    @property
    def pad_id(self) -> int:
        return self._special_id(self.proto.trainer_spec.pad_piece, "<pad>", PieceType.CONTROL)

    # -- encoding --------------------------------------------------------------------------------

    def normalize(self, text: str) -> str:
        """Stage 1 alone: ``"  Ｈello\\tworld"`` -> ``"▁Hello▁world"``."""
        _check_text(text, "SentencePieceModel.normalize")
        return self.normalizer._normalize(text)

    def _viterbi(self, text: str) -> list[tuple[str, int]]:
        """The best segmentation of normalized ``text`` as (piece, id), in the library's tie order.

        ``best[e]`` is the score of the best path covering ``text[:e]``. The library adds and
        compares in float32, and ties are common (the same pieces in another order, "▁ - --" and
        "▁ -- -"), so we round every sum to float32 before comparing, as it does: in double
        precision the two orders differ in the last bit and the other one wins. Candidates are
        tried by start position, then by length, the unknown piece last; a later candidate wins
        only with a strictly higher score.
        """
        end = len(text)
        best = array("f", bytes(4 * (end + 1)))
        start_of = [-1] * (end + 1)
        id_of = [0] * (end + 1)
        lookup, scores = self._table.get, self._lattice_scores
        unk_id, unk_score = self._unk_id, self.unk_score
        rounded = array("f", [0.0])
        for start in range(end):
            so_far = best[start]
            # The candidates from one start all end at different places, so only the order of
            # the starts matters: the one-character candidate (a piece, else the unknown
            # piece) can come first.
            i = lookup(text[start])
            rounded[0] = (scores[i] if i is not None and i >= 0 else unk_score) + so_far
            candidate = rounded[0]
            stop = start + 1
            if start_of[stop] < 0 or candidate > best[stop]:
                best[stop] = candidate
                start_of[stop] = start
                id_of[stop] = i if i is not None and i >= 0 else unk_id
            if i is None:
                continue  # no piece starts with this character
            for stop in range(start + 2, end + 1):
                i = lookup(text[start:stop])
                if i is None:
                    break
                if i >= 0:
                    rounded[0] = scores[i] + so_far
                    candidate = rounded[0]
                    if start_of[stop] < 0 or candidate > best[stop]:
                        best[stop] = candidate
                        start_of[stop] = start
                        id_of[stop] = i
        path = []
        while end > 0:
            start = start_of[end]
            path.append((text[start:end], id_of[end]))
            end = start
        path.reverse()
        return path

    def _encode(self, text: str, where: str) -> list[tuple[str, int]]:
        _check_text(text, where)
        normalized = self.normalizer._normalize(text)
        if not normalized:
            return []
        out: list[tuple[str, int]] = []
        previous_unknown = False
        unk_id = self._unk_id
        for piece, i in self._viterbi(normalized):
            unknown = i == unk_id
            if unknown and self.byte_fallback:
                out += [(BYTE_PIECES[b], self._byte_ids[b]) for b in piece.encode("utf-8")]
            elif unknown and previous_unknown:
                out[-1] = (out[-1][0] + piece, i)  # a run of unknown characters is one piece
            else:
                out.append((piece, i))
            previous_unknown = unknown
        return out

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` (no ``<s>``/``</s>`` added), equal to ``SentencePieceProcessor.encode``."""
        return [i for _, i in self._encode(text, "SentencePieceModel.encode")]

    def encode_as_pieces(self, text: str) -> list[str]:
        """Pieces of ``text``: ``"Hello world"`` -> ``["▁He", "llo", "▁world"]``."""
        return [piece for piece, _ in self._encode(text, "SentencePieceModel.encode_as_pieces")]

    def encode_with_pieces(self, text: str) -> list[tuple[str, int]]:
        """(piece, id) pairs; an unknown piece is the (normalized) text it covers."""
        return self._encode(text, "SentencePieceModel.encode_with_pieces")

    # -- decoding --------------------------------------------------------------------------------

    def decode(self, ids) -> str:
        """Text of ``ids`` (an int or a 1-D sequence of ints), equal to ``SentencePieceProcessor.decode``."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            ids = [ids]
        if isinstance(ids, np.ndarray):
            if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
                raise TypeError(f"SentencePieceModel.decode: ids must be 1-D integers, got an array of "
                                f"shape {ids.shape} and dtype {ids.dtype}")
            ids = ids.tolist()
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"SentencePieceModel.decode: ids must be an int or a sequence of ints, "
                            f"got {type(ids).__name__}")
        for position, i in enumerate(ids):
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise TypeError(f"SentencePieceModel.decode: ids must be ints; ids[{position}] is "
                                f"{type(i).__name__}")
            if not 0 <= i < len(self.pieces):
                raise IndexError(f"SentencePieceModel.decode: ids must lie in [0, {len(self.pieces)}); "
                                 f"ids[{position}] is {int(i)}")
        # The library turns ids into pieces and the pieces back into ids, and so do we.
        return self.decode_pieces([self.pieces[i] for i in ids])

    def decode_pieces(self, pieces) -> str:
        """Text of a list of piece strings (pieces that are in no vocabulary count as unknown)."""
        if isinstance(pieces, str) or not isinstance(pieces, (list, tuple)):
            raise TypeError(f"SentencePieceModel.decode_pieces: pieces must be a list of str, "
                            f"got {type(pieces).__name__}")
        for position, piece in enumerate(pieces):
            if not isinstance(piece, str):
                raise TypeError(f"SentencePieceModel.decode_pieces: pieces[{position}] is "
                                f"{type(piece).__name__}, not str")
        spec = self.normalizer.spec
        strip_first_space = spec.add_dummy_prefix or spec.remove_extra_whitespaces
        out: list[str] = []
        pending_bytes = bytearray()
        text_empty = True
        at_start, saw_start_space = True, False
        for piece in pieces:
            i = self.piece_to_id(piece)
            piece_type = self.types[i] if i >= 0 else PieceType.UNKNOWN
            if piece_type == PieceType.BYTE:
                pending_bytes.append(self._byte_of_id[i])
                continue
            if pending_bytes:
                out.append(_decode_bytes(bytes(pending_bytes)))
                pending_bytes.clear()
                text_empty = False
            if saw_start_space or not text_empty:
                at_start = False
            saw_start_space = False
            if piece_type == PieceType.CONTROL:
                surface = ""
            elif piece_type == PieceType.UNKNOWN:
                surface = self.unk_surface if i >= 0 and self.pieces[i] == piece else piece
            else:
                if at_start and strip_first_space and piece.startswith(SPACE_SYMBOL):
                    piece = piece[1:]
                    # With extra whitespace removed, every leading "▁" piece loses its "▁".
                    saw_start_space = not spec.remove_extra_whitespaces
                surface = piece.replace(SPACE_SYMBOL, " ")
            out.append(surface)
            text_empty = text_empty and not surface
        if pending_bytes:
            out.append(_decode_bytes(bytes(pending_bytes)))
        text = "".join(out)
        if self.denormalizer is not None:
            text = self.denormalizer._normalize(text)
        return text


_BYTE_OF_PIECE = {piece: b for b, piece in enumerate(BYTE_PIECES)}
