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

import numpy as np

from models.text.corpus import atomic_write_text

# A character with its span in the original string: (char, start, end).
Char = tuple[str, int, int]

SPECIAL_TOKEN_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
# HF writes int(1e30) as model_max_length when a checkpoint sets no limit.
_NO_LIMIT = 10 ** 18


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

class BatchEncoding(dict):
    """The tokenizer's output: a dict (``enc["input_ids"]``) that also allows ``enc.input_ids``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class BertTokenizer:
    """Text -> BERT inputs and back, equal to HF ``BertTokenizer`` on the same vocabulary.

    ``tokenizer("A man eats.", "He is hungry.")`` gives ``[CLS] a man eats . [SEP] he is hungry .
    [SEP]`` as ``input_ids``, ``token_type_ids`` (segment A = 0, segment B = 1) and
    ``attention_mask``. Special tokens in the text (``"[MASK]"``) stay whole.
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
        if model_max_length is not None and (isinstance(model_max_length, bool)
                                             or not isinstance(model_max_length, int) or model_max_length < 1):
            raise ValueError(f"BertTokenizer: model_max_length must be a positive int or None, "
                             f"got {model_max_length!r}")
        self.model_max_length = None if model_max_length is None or model_max_length > _NO_LIMIT \
            else model_max_length
        self.padding_side = _check_side("BertTokenizer", "padding_side", padding_side)
        self.truncation_side = _check_side("BertTokenizer", "truncation_side", truncation_side)
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
        config = _read_json(directory / "tokenizer_config.json")
        for name, value in _read_json(directory / "special_tokens_map.json").items():
            config.setdefault(name, value)
        keys = ("do_lower_case", "do_basic_tokenize", "never_split", "tokenize_chinese_chars",
                "strip_accents", "model_max_length", "padding_side", "truncation_side",
                "clean_up_tokenization_spaces") + SPECIAL_TOKEN_NAMES
        kwargs = {k: config[k] for k in keys if config.get(k) is not None}
        for name in SPECIAL_TOKEN_NAMES:
            if isinstance(kwargs.get(name), dict):  # serialised AddedToken
                kwargs[name] = kwargs[name].get("content")
        if isinstance(kwargs.get("model_max_length"), float):
            kwargs["model_max_length"] = int(min(kwargs["model_max_length"], 2 * _NO_LIMIT))
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

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

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

    def convert_tokens_to_ids(self, tokens):
        """Token(s) -> id(s); tokens outside the vocabulary map to ``[UNK]``."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
            raise TypeError("BertTokenizer.convert_tokens_to_ids: expected a str or a list of str, "
                            f"got {type(tokens).__name__}")
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Id(s) -> token(s); ``skip_special_tokens`` drops [CLS], [SEP], [PAD], [UNK], [MASK]."""
        single = isinstance(ids, (int, np.integer)) and not isinstance(ids, bool)
        ids = self._check_ids(ids, "convert_ids_to_tokens")
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        tokens = [self.ids_to_tokens[i] for i in ids if i not in skip]
        return tokens[0] if single else tokens

    def _check_ids(self, ids, where: str) -> list[int]:
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            ids = [ids]
        array = np.asarray(ids) if isinstance(ids, (list, tuple, np.ndarray)) else None
        if array is None or (array.size and array.dtype.kind not in "iu") or array.ndim != 1:
            shape = getattr(array, "shape", None)
            raise TypeError(f"BertTokenizer.{where}: expected an int or a 1-D sequence of ints, got "
                            f"{type(ids).__name__} with shape {shape} and dtype {getattr(array, 'dtype', None)}")
        bad = array[(array < 0) | (array >= len(self.vocab))]
        if bad.size:
            raise ValueError(f"BertTokenizer.{where}: ids must lie in [0, {len(self.vocab)}), got {bad[:5].tolist()}")
        return array.astype(np.int64).tolist()

    # -- encoding --------------------------------------------------------------------------------

    def encode(self, text: str, text_pair: str | None = None, **kwargs) -> list[int]:
        """``input_ids`` of one sentence or one pair (same options as ``__call__``)."""
        if not isinstance(text, str):
            raise TypeError(f"BertTokenizer.encode: expects one str (use __call__ for batches), "
                            f"got {type(text).__name__}")
        return self(text, text_pair, **kwargs)["input_ids"]

    def __call__(self, text, text_pair=None, *, add_special_tokens: bool = True, padding=False,
                 truncation=None, max_length: int | None = None, pad_to_multiple_of: int | None = None,
                 padding_side: str | None = None, return_tensors: str | None = None,
                 return_token_type_ids: bool = True, return_attention_mask: bool = True,
                 return_offsets_mapping: bool = False, return_special_tokens_mask: bool = False,
                 return_length: bool = False) -> BatchEncoding:
        """Encode a sentence, a pair, or a batch of either (``text`` a list, or a list of pairs).

        Truncation removes tokens until ``len(input_ids) <= max_length``: ``longest_first`` takes
        from the longer segment (ties: from B), ``only_first`` / ``only_second`` from one segment.
        Padding adds ``[PAD]`` with attention mask 0 up to the longest row or to ``max_length``.
        """
        batched, pairs = _as_batch(text, text_pair)
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of)
        side = _check_side("BertTokenizer.__call__", "padding_side", padding_side or self.padding_side)
        if return_tensors not in (None, "np"):
            raise ValueError(f"BertTokenizer.__call__: return_tensors must be None or 'np', got {return_tensors!r}")
        rows = [self._encode_row(a, b, add_special_tokens, truncation, max_length) for a, b in pairs]
        self._pad(rows, padding, max_length, pad_to_multiple_of, side)
        keys = ["input_ids"] + ["token_type_ids"] * bool(return_token_type_ids) \
            + ["attention_mask"] * bool(return_attention_mask) \
            + ["special_tokens_mask"] * bool(return_special_tokens_mask) \
            + ["offset_mapping"] * bool(return_offsets_mapping)
        out = {key: [row[key] for row in rows] for key in keys}
        if return_length:
            out["length"] = [len(row["input_ids"]) for row in rows]
        if return_tensors == "np":
            lengths = {len(row["input_ids"]) for row in rows}
            if len(lengths) > 1:
                raise ValueError(f"BertTokenizer.__call__: return_tensors='np' needs equal lengths, got "
                                 f"lengths {sorted(lengths)}; pass padding=True or padding='max_length'")
            out = {k: np.asarray(v, dtype=np.int64).reshape(len(rows), -1, 2) if k == "offset_mapping"
                   else np.asarray(v, dtype=np.int64) for k, v in out.items()}
        elif not batched:
            out = {k: v[0] for k, v in out.items()}
        return BatchEncoding(out)

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of):
        """HF's rules: ``True`` means longest; max_length alone turns on ``longest_first``."""
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 0):
            raise ValueError(f"BertTokenizer.__call__: max_length must be a non-negative int, got {max_length!r}")
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"BertTokenizer.__call__: pad_to_multiple_of must be a positive int, "
                             f"got {pad_to_multiple_of!r}")
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        padding = {True: "longest", False: "do_not_pad", None: "do_not_pad"}.get(padding, padding)
        if padding not in PADDING_STRATEGIES:
            raise ValueError(f"BertTokenizer.__call__: padding must be True, False or one of "
                             f"{PADDING_STRATEGIES}, got {padding!r}")
        truncation = {True: "longest_first", False: "do_not_truncate", None: "do_not_truncate"}.get(
            truncation, truncation)
        if truncation not in TRUNCATION_STRATEGIES:
            raise ValueError(f"BertTokenizer.__call__: unknown truncation strategy {truncation!r}; expected "
                             f"True, False or one of {TRUNCATION_STRATEGIES}")
        if max_length is None and (padding == "max_length" or truncation != "do_not_truncate"):
            if self.model_max_length is None:
                raise ValueError(f"BertTokenizer.__call__: padding={padding!r} / truncation={truncation!r} "
                                 "need max_length (the tokenizer has no model_max_length)")
            max_length = self.model_max_length
        if (truncation != "do_not_truncate" and padding != "do_not_pad" and pad_to_multiple_of
                and max_length % pad_to_multiple_of):
            raise ValueError(f"BertTokenizer.__call__: truncation length {max_length} is not a multiple of "
                             f"pad_to_multiple_of={pad_to_multiple_of}")
        return padding, truncation, max_length

    def _encode_row(self, text, pair, add_special_tokens, truncation, max_length) -> dict:
        first = self.tokenize_with_offsets(text)
        second = self.tokenize_with_offsets(pair) if pair is not None else None
        n_special = (2 if second is None else 3) if add_special_tokens else 0
        excess = len(first) + len(second or ()) + n_special - (max_length or 0)
        if truncation != "do_not_truncate" and excess > 0:
            keep_a, keep_b = truncated_lengths(len(first), None if second is None else len(second),
                                               excess, truncation, max_length)
            first = _keep(first, keep_a, self.truncation_side)
            second = None if second is None else _keep(second, keep_b, self.truncation_side)
        segments = [first] if second is None else [first, second]
        ids, types, special, offsets = [], [], [], []
        if add_special_tokens:
            ids, types, special, offsets = [self.cls_token_id], [0], [1], [(0, 0)]
        for segment_id, tokens in enumerate(segments):
            ids += [self.vocab.get(t, self.unk_token_id) for t, _, _ in tokens]
            offsets += [(a, b) for _, a, b in tokens]
            special += [0] * len(tokens)
            if add_special_tokens:
                ids.append(self.sep_token_id)
                offsets.append((0, 0))
                special.append(1)
            types += [segment_id] * (len(ids) - len(types))
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids),
                "special_tokens_mask": special, "offset_mapping": offsets}

    def _pad(self, rows, padding, max_length, multiple, side) -> None:
        if padding == "do_not_pad" or not rows:
            return
        target = max(len(r["input_ids"]) for r in rows) if padding == "longest" else max_length
        if multiple and target % multiple:
            target += multiple - target % multiple
        fill = {"input_ids": self.pad_token_id, "token_type_ids": 0, "attention_mask": 0,
                "special_tokens_mask": 1, "offset_mapping": (0, 0)}
        for row in rows:
            missing = target - len(row["input_ids"])
            if missing > 0:
                for key, value in fill.items():
                    pad = [value] * missing
                    row[key] = row[key] + pad if side == "right" else pad + row[key]

    def truncate_sequences(self, ids, pair_ids=None, num_tokens_to_remove: int = 0,
                           truncation_strategy: str = "longest_first"):
        """Remove ``num_tokens_to_remove`` ids (HF's ``truncate_sequences``); returns (ids, pair_ids)."""
        if truncation_strategy is True:
            truncation_strategy = "longest_first"
        if truncation_strategy not in TRUNCATION_STRATEGIES:
            raise ValueError(f"BertTokenizer.truncate_sequences: unknown truncation strategy "
                             f"{truncation_strategy!r}; expected one of {TRUNCATION_STRATEGIES}")
        if truncation_strategy == "do_not_truncate" or num_tokens_to_remove <= 0:
            return list(ids), None if pair_ids is None else list(pair_ids)
        keep_a, keep_b = truncated_lengths(len(ids), None if pair_ids is None else len(pair_ids),
                                           num_tokens_to_remove, truncation_strategy, None)
        return (_keep(list(ids), keep_a, self.truncation_side),
                None if pair_ids is None else _keep(list(pair_ids), keep_b, self.truncation_side))

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

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        return [self.decode(ids, **kwargs) for ids in sequences]


def clean_up_tokenization(text: str) -> str:
    """Undo the spaces that tokenisation put before punctuation and English clitics (HF's rules)."""
    for spaced, glued in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(spaced, glued)
    return text


def truncated_lengths(len_a: int, len_b: int | None, excess: int, strategy: str, max_length) -> tuple:
    """How many tokens of segments A and B survive removing ``excess`` tokens.

    ``longest_first`` (HF's rule): first take from the longer segment until both are equal, then
    split the rest evenly, the odd one coming from B.
    """
    where = f"BertTokenizer truncation ({strategy}, max_length={max_length})"
    if len_b is None:
        if strategy == "only_second":
            raise ValueError(f"{where}: only_second needs a pair of sequences, got a single sequence")
        if excess > len_a:
            raise ValueError(f"{where}: cannot remove {excess} tokens from a sequence of {len_a}; "
                             "max_length is shorter than the special tokens")
        return len_a - excess, None
    if strategy in ("only_first", "only_second"):
        length = len_a if strategy == "only_first" else len_b
        if excess >= length:
            name = "first" if strategy == "only_first" else "second"
            raise ValueError(f"{where}: the {name} sequence has {length} tokens but {excess} must be "
                             f"removed; it cannot be truncated enough (use 'longest_first' or a larger max_length)")
        return (len_a - excess, len_b) if strategy == "only_first" else (len_a, len_b - excess)
    if excess > len_a + len_b:
        raise ValueError(f"{where}: cannot remove {excess} tokens from a pair of {len_a} + {len_b}; "
                         "max_length is shorter than the special tokens")
    first = min(abs(len_a - len_b), excess)  # make the two segments equally long
    rest = excess - first                     # then remove from both, the odd token from B
    if len_a > len_b:
        return len_a - first - rest // 2, len_b - (rest - rest // 2)
    return len_a - rest // 2, len_b - first - (rest - rest // 2)


def _keep(seq: list, count: int, side: str) -> list:
    return seq[:count] if side == "right" else seq[len(seq) - count:]


def _check_side(where: str, name: str, side: str) -> str:
    if side not in ("right", "left"):
        raise ValueError(f"{where}: {name} must be 'right' or 'left', got {side!r}")
    return side


def _as_batch(text, text_pair) -> tuple[bool, list[tuple[str, str | None]]]:
    """Normalise the accepted input forms to (is_batch, [(a, b or None), ...])."""
    where = "BertTokenizer.__call__"
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"{where}: text is a str, so text_pair must be a str or None, "
                            f"got {type(text_pair).__name__}")
        return False, [(text, text_pair)]
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"{where}: text must be a str, a list of str or a list of (str, str) pairs, "
                        f"got {type(text).__name__}")
    if text_pair is None:
        pairs = [tuple(t) if isinstance(t, (list, tuple)) else (t, None) for t in text]
    else:
        if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
            raise ValueError(f"{where}: text_pair must be a list as long as text ({len(text)}), got "
                             f"{type(text_pair).__name__} of length {getattr(text_pair, '__len__', lambda: '?')()}")
        pairs = list(zip(text, text_pair))
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not isinstance(pair[0], str) or not (pair[1] is None or isinstance(pair[1], str)):
            raise TypeError(f"{where}: batch item {i} must be a str or a (str, str) pair, got {pair!r:.80}")
    return True, pairs


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"BertTokenizer.from_pretrained: {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"BertTokenizer.from_pretrained: {str(path)!r} must hold a JSON object, "
                         f"got {type(data).__name__}")
    return data
