"""BERT's input pipeline: the basic step, WordPiece, and ``[CLS] A [SEP] B [SEP]`` (book chapter 4).

BERT never sees raw text. The book's § 4.2 input section splits a string in three stages, and this
module follows them one function per stage, so that ``BertTokenizer`` gives the same ids as
Hugging Face's ``BertTokenizer`` on the same ``vocab.txt``:

1. **Basic step** (Devlin et al. 2019, ``tokenization.py`` of the original BERT release)::

       raw text -> drop control / zero-width characters, whitespace -> " "
                -> spaces around CJK ideographs -> NFC
                -> split on whitespace -> lower-case, NFD + drop accents (category Mn)
                -> split off every punctuation character

2. **WordPiece** (Schuster & Nakajima 2012; Wu et al. 2016): each word is cut greedily into the
   longest vocabulary entries, left to right; a piece that does not start the word carries the
   ``##`` prefix. A word that cannot be covered (or is longer than 100 characters) becomes ``[UNK]``.

3. **Model inputs**: ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``, ``token_type_ids`` 0 for
   segment A and 1 for segment B, ``attention_mask`` 1 for real tokens and 0 for padding.

Every character keeps the span of the original characters it came from, so each token knows its
``(start, end)`` offsets in the input string — what extractive question answering needs to turn
a predicted token span back into an answer string.

How a vocabulary is learnt from a corpus is in ``models.text.wordpiece_train``.
"""
from __future__ import annotations

import functools
import json
import os
import re
import unicodedata
from pathlib import Path

from models.text.corpus import atomic_write_text
# The batch machinery (padding, truncation, BatchEncoding) is shared with the BPE tokenizers; the
# names below stay importable from this module.
from models.text.tokenizer_base import (NO_LIMIT, PADDING_STRATEGIES, TRUNCATION_STRATEGIES,  # noqa: F401
                                        BatchEncoding, BatchTokenizer, clean_up_tokenization,
                                        read_json_config, special_token_content, truncated_lengths)

# A character with its span in the original string: (char, start, end).
Char = tuple[str, int, int]

SPECIAL_TOKEN_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


# ----------------------------------------------------------------------------------------------
# Character classes of the original BERT code (all on unicodedata categories).
# ----------------------------------------------------------------------------------------------

def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, or any space separator (category Zs)."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """Control, format (zero-width joiners, soft hyphen...), unassigned: category C*, not \\t\\n\\r."""
    return char not in "\t\n\r" and unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """Every non-alphanumeric ASCII symbol (``$``, ``^``, backtick...) and category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_cjk_ideograph(char: str) -> bool:
    """The CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana, which use spaces)."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


# ----------------------------------------------------------------------------------------------
# Basic step, one function per stage; each maps a list of Chars to a list of Chars.
# ----------------------------------------------------------------------------------------------

def _text(chars: list[Char]) -> str:
    """The string of a list of Chars."""
    return "".join(c for c, _, _ in chars)


# Per-character answers are cached: the category look-ups dominate the run time otherwise.
_CLEAN_KIND: dict[str, str | None] = {}
_PUNCTUATION: dict[str, bool] = {}


def clean_text(text: str, offset: int = 0) -> list[Char]:
    """Drop NUL, U+FFFD and control characters; turn every whitespace character into ``" "``."""
    out = []
    kinds = _CLEAN_KIND
    for i, ch in enumerate(text, start=offset):
        kept = kinds.get(ch, "")
        if kept == "":
            drop = ch == "\0" or ch == "\ufffd" or is_control(ch)
            kept = kinds[ch] = None if drop else " " if is_whitespace(ch) else ch
        if kept is not None:
            out.append((kept, i, i + 1))
    return out


def space_cjk(chars: list[Char]) -> list[Char]:
    """Put spaces around each CJK ideograph: Chinese has no spaces, so every character is a word."""
    out = []
    for ch, start, end in chars:
        if ord(ch) >= 0x3400 and is_cjk_ideograph(ch):
            out += [(" ", start, start), (ch, start, end), (" ", end, end)]
        else:
            out.append((ch, start, end))
    return out


@functools.lru_cache(maxsize=1)
def _starters_that_compose() -> frozenset[str]:
    """Characters of combining class 0 that NFC can still merge into the previous character."""
    found = set()
    for cp in range(0x30000):  # every canonical pair lies below U+30000
        decomposition = unicodedata.decomposition(chr(cp))
        if not decomposition or decomposition.startswith("<"):
            continue
        parts = decomposition.split()
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp):
            second = chr(int(parts[1], 16))
            if unicodedata.combining(second) == 0:
                found.add(second)
    # Hangul syllables compose algorithmically: leading + vowel (+ trailing) jamo.
    found.update(chr(cp) for cp in range(0x1161, 0x1176))
    found.update(chr(cp) for cp in range(0x11A8, 0x11C3))
    return frozenset(found)


def _nfc_clusters(chars: list[Char]) -> list[list[Char]]:
    """Cut the text where NFC cannot compose across: before each starter that composes with nothing."""
    composes = _starters_that_compose()
    clusters: list[list[Char]] = []
    for item in chars:
        ch = item[0]
        if clusters and (unicodedata.combining(ch) or ch in composes):
            clusters[-1].append(item)
        else:
            clusters.append([item])
    return clusters


def compose_nfc(chars: list[Char], undone_by=None) -> list[Char]:
    """NFC, so one letter written two ways (``é`` or ``e`` + U+0301) gives one token.

    HF's python tokenizer applies NFC to the whole text; we compose cluster by cluster so every
    character keeps its own span. ``undone_by`` is the later normalisation (lower-case + NFD) when
    accents will be stripped: a cluster whose NFC form ends up identical after it is left as is,
    which keeps the per-character offsets of HF's fast tokenizer (that one never composes).
    """
    out: list[Char] = []
    for cluster in _nfc_clusters(chars):
        text = _text(cluster)
        composed = unicodedata.normalize("NFC", text)
        if composed == text or (undone_by is not None and undone_by(composed) == undone_by(text)):
            out += cluster
        else:
            start, end = cluster[0][1], cluster[-1][2]
            out += [(c, start, end) for c in composed]
    whole = unicodedata.normalize("NFC", _text(chars))
    if "".join(unicodedata.normalize("NFC", _text(c)) for c in _nfc_clusters(chars)) != whole:
        # A composition our clusters did not foresee: one span for the whole text, ids stay right.
        start, end = chars[0][1], chars[-1][2]
        out = [(c, start, end) for c in whole]
    return out


def split_on_whitespace(chars: list[Char]) -> list[list[Char]]:
    """Python's ``str.split()``: any ``isspace()`` character separates words (U+2028 too)."""
    words: list[list[Char]] = []
    current: list[Char] = []
    for item in chars:
        if item[0].isspace():
            if current:
                words.append(current)
                current = []
        else:
            current.append(item)
    if current:
        words.append(current)
    return words


def lowercase(word: list[Char], text: str) -> tuple[list[Char], str]:
    """``str.lower`` on the whole word (final sigma depends on context), spans kept per character."""
    lowered = text.lower()
    if lowered == text:
        return word, text
    if len(lowered) == len(text) and text.isascii():
        return [(c, s, e) for c, (_, s, e) in zip(lowered, word)], lowered
    out: list[Char] = []
    position = 0
    for ch, start, end in word:
        width = len(ch.lower())  # "İ" lower-cases to two characters
        out += [(c, start, end) for c in lowered[position:position + width]]
        position += width
    if position != len(lowered):  # defensive: keep the text right even if spans get coarse
        start, end = word[0][1], word[-1][2]
        return [(c, start, end) for c in lowered], lowered
    return out, lowered


def strip_accents(word: list[Char]) -> list[Char]:
    """NFD (canonical decomposition + canonical ordering), then drop nonspacing marks (Mn)."""
    decomposed: list[Char] = []
    for ch, start, end in word:
        if ch.isascii():
            decomposed.append((ch, start, end))
        else:
            decomposed += [(c, start, end) for c in unicodedata.normalize("NFD", ch)]
    _canonical_order(decomposed)
    return [item for item in decomposed if unicodedata.category(item[0]) != "Mn"]


def _canonical_order(chars: list[Char]) -> None:
    """Sort each run of combining marks by combining class (stable), in place — NFD's last step."""
    i = 0
    while i < len(chars):
        if unicodedata.combining(chars[i][0]) == 0:
            i += 1
            continue
        j = i
        while j < len(chars) and unicodedata.combining(chars[j][0]) != 0:
            j += 1
        chars[i:j] = sorted(chars[i:j], key=lambda item: unicodedata.combining(item[0]))
        i = j


def split_on_punctuation(word: list[Char]) -> list[list[Char]]:
    """Every punctuation character becomes a word of its own: ``"don't"`` -> don ' t."""
    pieces: list[list[Char]] = []
    after_punctuation = True
    cache = _PUNCTUATION
    for item in word:
        punctuation = cache.get(item[0])
        if punctuation is None:
            punctuation = cache[item[0]] = is_punctuation(item[0])
        if punctuation:
            pieces.append([item])
            after_punctuation = True
        else:
            if after_punctuation:
                pieces.append([])
            after_punctuation = False
            pieces[-1].append(item)
    return pieces


class BasicTokenizer:
    """Stage 1: split raw text into words (see the module docstring for the stages)."""

    def __init__(self, do_lower_case: bool = True, never_split=None, tokenize_chinese_chars: bool = True,
                 strip_accents: bool | None = None, do_split_on_punc: bool = True):
        self.do_lower_case = bool(do_lower_case)
        self.never_split = frozenset(never_split or ())
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        # None means "follow do_lower_case", as in the original (uncased) BERT.
        self.strip_accents = strip_accents
        self.do_split_on_punc = bool(do_split_on_punc)

    @property
    def strips_accents(self) -> bool:
        return bool(self.strip_accents) or (self.do_lower_case and self.strip_accents is not False)

    def tokenize(self, text: str) -> list[str]:
        return [word_text for word_text, _ in self.split_words(text)]

    def split_words(self, text: str, offset: int = 0, never_split=()) -> list[tuple[str, list[Char]]]:
        """Words of ``text`` as (word, [(char, start, end), ...]), spans shifted by ``offset``."""
        if not isinstance(text, str):
            raise TypeError(f"BasicTokenizer.tokenize: expected a str, got {type(text).__name__}")
        never_split = self.never_split.union(never_split)
        chars = clean_text(text, offset)
        ascii_only = text.isascii()
        if self.tokenize_chinese_chars and not ascii_only:
            chars = space_cjk(chars)
        was_nfc = ascii_only or unicodedata.is_normalized("NFC", _text(chars))
        if chars and not was_nfc:
            chars = compose_nfc(chars, self._normalise_for_compare if self.strips_accents else None)
        words = []
        for word in split_on_whitespace(chars):
            word_text = _text(word)
            key = word_text if was_nfc else unicodedata.normalize("NFC", word_text)
            if key in never_split:
                words.append(word if key == word_text else [(c, word[0][1], word[-1][2]) for c in key])
                continue
            if self.do_lower_case:
                word, word_text = lowercase(word, word_text)
            if self.strips_accents and not word_text.isascii():
                word = strip_accents(word)
                word_text = _text(word)
            if not self.do_split_on_punc or word_text in never_split:
                words.append(word)
            else:
                words += split_on_punctuation(word)
        return [(_text(word), word) for word in words if word]

    def _normalise_for_compare(self, text: str) -> str:
        return unicodedata.normalize("NFD", text.lower() if self.do_lower_case else text)


# ----------------------------------------------------------------------------------------------
# Stage 2: greedy longest-match-first WordPiece.
# ----------------------------------------------------------------------------------------------

class WordpieceTokenizer:
    """Cut one word into vocabulary pieces, longest match first (Wu et al. 2016, § 4.1).

    ``unaffable`` -> ``un ##aff ##able``: at each position take the longest vocabulary entry that
    matches (with the ``##`` prefix after the first piece); if some position matches nothing the
    whole word becomes ``[UNK]`` — BERT never emits a partly-unknown word.
    """

    def __init__(self, vocab, unk_token: str = "[UNK]", max_input_chars_per_word: int = 100,
                 prefix: str = "##"):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self.prefix = prefix
        # No entry is longer than this, so longer candidate pieces need not be looked up.
        self.longest_piece = max((len(t) - (len(prefix) if t.startswith(prefix) else 0) for t in vocab),
                                 default=0)

    def tokenize(self, word: str) -> list[str]:
        return [piece for piece, _, _ in self.split(word)]

    def split(self, word: str) -> list[tuple[str, int, int]]:
        """Pieces of ``word`` as (token, start, end) character positions inside the word."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [(self.unk_token, 0, n)]
        pieces = []
        start = 0
        while start < n:
            for end in range(min(n, start + self.longest_piece), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    break
            else:
                return [(self.unk_token, 0, n)]
            pieces.append((piece, start, end))
            start = end
        return pieces


# ----------------------------------------------------------------------------------------------
# Vocabulary files.
# ----------------------------------------------------------------------------------------------

def load_vocab(path) -> dict[str, int]:
    """``vocab.txt``: one token per line, the line number (from 0) is the token id."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_vocab: no vocabulary file at {str(path)!r}")
    with open(path, encoding="utf-8") as f:
        lines = [line[:-1] if line.endswith("\n") else line for line in f.readlines()]
    return vocab_from_tokens(lines, source=str(path))


def vocab_from_tokens(tokens, source: str = "vocab") -> dict[str, int]:
    """Token list -> {token: id}, rejecting an empty vocabulary, empty entries and duplicates."""
    tokens = list(tokens)
    if not tokens:
        raise ValueError(f"load_vocab: {source} is empty; expected one token per line")
    vocab: dict[str, int] = {}
    for index, token in enumerate(tokens):
        if not isinstance(token, str) or token == "":
            raise ValueError(f"load_vocab: {source} entry {index} (line {index + 1}) is empty or not a "
                             f"string: {token!r}")
        if token in vocab:
            raise ValueError(f"load_vocab: {source} has duplicate token {token!r} at lines "
                             f"{vocab[token] + 1} and {index + 1}")
        vocab[token] = index
    return vocab


# ----------------------------------------------------------------------------------------------
# Stage 3: BERT's model inputs.
# ----------------------------------------------------------------------------------------------

class BertTokenizer(BatchTokenizer):
    """Text -> BERT inputs and back, equal to HF ``BertTokenizer`` on the same vocabulary.

    ``tokenizer("A man eats.", "He is hungry.")`` gives ``[CLS] a man eats . [SEP] he is hungry .
    [SEP]`` as ``input_ids``, ``token_type_ids`` (segment A = 0, segment B = 1) and
    ``attention_mask``. Special tokens in the text (``"[MASK]"``) stay whole. The batch call
    (padding, truncation, NumPy arrays) is ``models.text.tokenizer_base.BatchTokenizer``'s.
    """

    def __init__(self, vocab, *, do_lower_case: bool = True, do_basic_tokenize: bool = True,
                 never_split=None, tokenize_chinese_chars: bool = True, strip_accents: bool | None = None,
                 unk_token: str = "[UNK]", sep_token: str = "[SEP]", pad_token: str = "[PAD]",
                 cls_token: str = "[CLS]", mask_token: str = "[MASK]", model_max_length: int | None = None,
                 padding_side: str = "right", truncation_side: str = "right",
                 clean_up_tokenization_spaces: bool = True, max_input_chars_per_word: int = 100):
        self.vocab = self._as_vocab(vocab)
        self.ids_to_tokens = sorted(self.vocab, key=self.vocab.__getitem__)
        specials = {"unk_token": unk_token, "sep_token": sep_token, "pad_token": pad_token,
                    "cls_token": cls_token, "mask_token": mask_token}
        bad = {k: v for k, v in specials.items() if not isinstance(v, str) or not v}
        if bad:
            raise TypeError(f"BertTokenizer: special tokens must be non-empty strings, got {bad}")
        missing = {k: v for k, v in specials.items() if v not in self.vocab}
        if missing:
            raise ValueError(f"BertTokenizer: special tokens {missing} are not in the vocabulary "
                             f"({len(self.vocab)} tokens)")
        for name, token in specials.items():
            setattr(self, name, token)
        self.unk_token_id, self.sep_token_id, self.pad_token_id, self.cls_token_id, self.mask_token_id = (
            self.vocab[specials[name]] for name in SPECIAL_TOKEN_NAMES)
        self.all_special_tokens = list(dict.fromkeys(specials.values()))
        self.all_special_ids = [self.vocab[t] for t in self.all_special_tokens]
        self.do_lower_case = bool(do_lower_case)
        self.do_basic_tokenize = bool(do_basic_tokenize)
        self.never_split = list(never_split) if never_split else None
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.strip_accents = strip_accents
        self.basic_tokenizer = BasicTokenizer(do_lower_case, never_split, tokenize_chinese_chars,
                                              strip_accents)
        self.wordpiece_tokenizer = WordpieceTokenizer(self.vocab, unk_token, int(max_input_chars_per_word))
        self._init_batch_options(model_max_length, padding_side, truncation_side)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        # Longest first, so "[MASK]" would win over a shorter special token that is its prefix.
        alternatives = sorted(self.all_special_tokens, key=len, reverse=True)
        self._special_pattern = re.compile("(" + "|".join(map(re.escape, alternatives)) + ")")

    @staticmethod
    def _as_vocab(vocab) -> dict[str, int]:
        if isinstance(vocab, (str, os.PathLike)):
            return load_vocab(vocab)
        if isinstance(vocab, dict):
            ids = sorted(vocab.values()) if all(isinstance(i, int) for i in vocab.values()) else None
            if ids != list(range(len(vocab))):
                raise ValueError("BertTokenizer: a vocab dict must map its tokens to the ids 0..n-1 "
                                 f"exactly once each; got {len(vocab)} tokens with ids "
                                 f"{sorted(vocab.values(), key=str)[:10]}...")
            return vocab_from_tokens(sorted(vocab, key=vocab.__getitem__))
        if isinstance(vocab, (list, tuple)):
            return vocab_from_tokens(vocab)
        raise TypeError(f"BertTokenizer: vocab must be a path, a token list or a dict, got {type(vocab).__name__}")

    # -- files -----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory, **overrides) -> "BertTokenizer":
        """Read ``vocab.txt`` and, when present, ``tokenizer_config.json`` / ``special_tokens_map.json``."""
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"BertTokenizer.from_pretrained: {str(directory)!r} is not a directory")
        vocab_file = directory / "vocab.txt"
        if not vocab_file.is_file():
            found = sorted(p.name for p in directory.iterdir())
            raise FileNotFoundError(f"BertTokenizer.from_pretrained: no vocab.txt in {str(directory)!r} "
                                    f"(found {found})")
        where = "BertTokenizer.from_pretrained"
        config = read_json_config(directory / "tokenizer_config.json", where)
        for name, value in read_json_config(directory / "special_tokens_map.json", where).items():
            config.setdefault(name, value)
        keys = ("do_lower_case", "do_basic_tokenize", "never_split", "tokenize_chinese_chars",
                "strip_accents", "model_max_length", "padding_side", "truncation_side",
                "clean_up_tokenization_spaces") + SPECIAL_TOKEN_NAMES
        kwargs = {k: config[k] for k in keys if config.get(k) is not None}
        for name in SPECIAL_TOKEN_NAMES:
            if name in kwargs:
                kwargs[name] = special_token_content(kwargs[name])
        if isinstance(kwargs.get("model_max_length"), float):
            kwargs["model_max_length"] = int(min(kwargs["model_max_length"], 2 * NO_LIMIT))
        kwargs.update(overrides)
        return cls(vocab_file, **kwargs)

    def save_pretrained(self, directory) -> tuple[str, ...]:
        """Write ``vocab.txt``, ``tokenizer_config.json``, ``special_tokens_map.json`` (HF can load them)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        special = {name: getattr(self, name) for name in SPECIAL_TOKEN_NAMES}
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.do_lower_case,
                  "do_basic_tokenize": self.do_basic_tokenize, "never_split": self.never_split,
                  "tokenize_chinese_chars": self.tokenize_chinese_chars, "strip_accents": self.strip_accents,
                  "padding_side": self.padding_side, "truncation_side": self.truncation_side,
                  "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces, **special}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        files = {"vocab.txt": "".join(t + "\n" for t in self.ids_to_tokens),
                 "tokenizer_config.json": json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                 "special_tokens_map.json": json.dumps(special, indent=2, ensure_ascii=False) + "\n"}
        for name, text in files.items():
            atomic_write_text(directory / name, text)
        return tuple(str(directory / name) for name in files)

    # -- tokens and ids --------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"BertTokenizer(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
                f"strip_accents={self.strip_accents}, model_max_length={self.model_max_length})")

    def tokenize(self, text: str) -> list[str]:
        """Stages 1 and 2: ``"Unaffable!"`` -> ``["una", "##ffa", "##ble", "!"]``."""
        return [token for token, _, _ in self.tokenize_with_offsets(text)]

    def tokenize_with_offsets(self, text: str) -> list[tuple[str, int, int]]:
        """Tokens with their ``(start, end)`` character span in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"BertTokenizer.tokenize: expected a str, got {type(text).__name__}")
        out = []
        position = 0
        # re.split with a group alternates plain text (even indices) and special tokens (odd).
        for index, piece in enumerate(self._special_pattern.split(text)):
            if index % 2:
                out.append((piece, position, position + len(piece)))
            elif piece:
                out += self._tokenize_plain(piece, position)
            position += len(piece)
        return out

    def _tokenize_plain(self, text: str, offset: int) -> list[tuple[str, int, int]]:
        if self.do_basic_tokenize:
            words = self.basic_tokenizer.split_words(text, offset, never_split=self.all_special_tokens)
        else:
            words = [(_text(w), w) for w in split_on_whitespace([(c, i, i + 1) for i, c in enumerate(text, offset)])]
        out = []
        for word_text, word in words:
            if self.do_basic_tokenize and word_text in self.basic_tokenizer.never_split:
                out.append((word_text, word[0][1], word[-1][2]))
                continue
            for token, a, b in self.wordpiece_tokenizer.split(word_text):
                out.append((token, word[a][1], word[b - 1][2]))
        return out

    def _segment(self, text: str) -> list[tuple[int, int, int]]:
        return [(self.vocab.get(t, self.unk_token_id), a, b) for t, a, b in self.tokenize_with_offsets(text)]

    def _template(self, pair: bool) -> list[tuple]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``; segment B and its [SEP] have type 1."""
        single = [(self.cls_token_id, 0), ("A", 0), (self.sep_token_id, 0)]
        return single + [("B", 1), (self.sep_token_id, 1)] if pair else single

    # -- decoding --------------------------------------------------------------------------------

    def decode(self, ids, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: bool | None = None) -> str:
        """Ids -> text: join tokens with spaces, glue ``##`` pieces, tidy spaces before punctuation.

        Lower-casing, accents and the original spacing are lost: ``decode(encode(s))`` is a
        normalised ``s``, e.g. ``"[CLS] hello, world! [SEP]"``.
        """
        tokens = self.convert_ids_to_tokens(self._check_ids(ids, "decode"), skip_special_tokens)
        text = " ".join(tokens).replace(" ##", "").strip()
        if self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces:
            text = clean_up_tokenization(text)
        return text

