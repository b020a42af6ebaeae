"""GPT-2's byte-level BPE tokenizer, by hand (Radford et al. 2019, § 2.2; Sennrich et al. 2016).

GPT-2 never sees characters it does not know: it tokenizes the UTF-8 *bytes* of the text, so any
string, in any script, with any emoji, can be encoded and decoded back exactly. Four steps:

1. **Special tokens** (``<|endoftext|>``) are cut out of the text first and kept whole, wherever
   they appear, as Hugging Face does.
2. **Pre-tokenisation**: a regular expression splits the rest into pieces that BPE never merges
   across: English contractions (``'s 't 're 've 'm 'll 'd``), runs of letters, of digits, of
   other symbols, each with at most one leading space, and runs of whitespace. ``\\s+(?!\\S)``
   leaves the last space of a run to the word after it, so ``"a   b"`` is ``a``, ``"  "``, ``" b"``.
3. **Bytes as characters**: each byte becomes one printable character (``bytes_to_unicode``; the
   space is ``Ġ``, the newline ``Ċ``), so the vocabulary files are plain text.
4. **Merges**: inside one piece, repeatedly join the adjacent pair with the lowest rank in
   ``merges.txt`` (the order the merges were learnt), until no listed pair is left. Each final
   symbol is a vocabulary entry. Pieces repeat, so their ids are cached.

Decoding maps ids to bytes and the bytes to text as UTF-8; a byte sequence that is not valid
UTF-8 (the model may emit half an emoji) becomes U+FFFD, as HF's ``errors="replace"``.

``ByteLevelBPE`` is the reusable core (vocabulary, merges, pre-tokenisation pattern and special
tokens are parameters: RoBERTa's and Llama-style vocabularies fit it too). ``GPT2Tokenizer`` adds
HF's file layout (``vocab.json`` + ``merges.txt``) and batch call. Training is in
``models.text.bpe_train``.
"""
from __future__ import annotations

import functools
import heapq
import json
import os
from pathlib import Path

import numpy as np
import regex  # GPT-2's own choice: the standard re module has no \p{L} / \p{N}

from models.text.corpus import atomic_write_text
from models.text.tokenizer_base import (NO_LIMIT, BatchTokenizer, clean_up_tokenization, read_json_config,
                                        special_token_content)

# GPT-2's pre-tokenisation pattern (encoder.py of openai/gpt-2, also HF's ByteLevel pre-tokenizer).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
MERGES_HEADER = "#version: 0.2"
GPT2_SPECIAL_NAMES = ("unk_token", "bos_token", "eos_token", "pad_token")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character table: printable Latin-1 bytes stand for themselves, the other 68
    (control characters, space, NBSP, soft hyphen) are moved to U+0100 onwards, in byte order."""
    return dict(_byte_table())


@functools.lru_cache(maxsize=1)
def _byte_table() -> dict[int, str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    moved = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + moved)
            moved += 1
    return dict(sorted(table.items()))


def _as_byte_symbols(text: str) -> str:
    """The byte-level spelling of ``text``: ``"a é"`` -> ``"aĠÃ©"``."""
    # Decoded as Latin-1, each byte is the character of the same ordinal, so str.translate with
    # the byte table maps all bytes at C speed.
    return text.encode("utf-8").decode("latin-1").translate(_byte_table())


# ----------------------------------------------------------------------------------------------
# Files: vocab.json and merges.txt (HF's layout; OpenAI calls them encoder.json and vocab.bpe).
# ----------------------------------------------------------------------------------------------

def read_vocab_json(path) -> dict[str, int]:
    """``vocab.json``: a JSON object {token: id}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_vocab_json: no vocabulary file at {str(path)!r}")
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"read_vocab_json: {str(path)!r} is not valid UTF-8 JSON: {err}") from None
    if not isinstance(vocab, dict):
        raise ValueError(f"read_vocab_json: {str(path)!r} must hold a JSON object {{token: id}}, "
                         f"got {type(vocab).__name__}")
    return vocab


def read_merges(path, vocab: dict[str, int] | None = None) -> list[tuple[str, str]]:
    """``merges.txt``: one merge ``first second`` a line, in rank order, after ``#version`` lines.

    With ``vocab``, also check that both parts and the merged token are vocabulary entries.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_merges: no merges file at {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"read_merges: {str(path)!r} is not valid UTF-8: {err}") from None
    merges = []
    # Split on "\n" only: str.splitlines would also cut at U+2028, U+0085... inside a token.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        line = line.removesuffix("\r")
        if line.startswith("#version"):
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise ValueError(f"read_merges: {str(path)!r} line {number}: expected two tokens separated by "
                             f"one space, got {line!r:.80}")
        if vocab is not None:
            for token in (parts[0], parts[1], parts[0] + parts[1]):
                if token not in vocab:
                    raise ValueError(f"read_merges: {str(path)!r} line {number}: merge {line!r:.80} needs "
                                     f"{token!r}, which is not in the vocabulary")
        merges.append((parts[0], parts[1]))
    return merges


def read_tokenizer_json(path) -> tuple[dict[str, int], list[tuple[str, str]], bool]:
    """``(vocab, merges, add_prefix_space)`` from the ``tokenizer.json`` that transformers 5 saves
    instead of vocab.json + merges.txt; only GPT-2's kind: a BPE model, the ByteLevel pre-tokenizer."""
    where = "read_tokenizer_json"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no tokenizer file at {str(path)!r}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{where}: {str(path)!r} is not valid UTF-8 JSON: {err}") from None
    model, pre = data.get("model") or {}, data.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ValueError(f"{where}: {str(path)!r} holds a {model.get('type')!r} model, expected 'BPE'")
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True) or data.get("normalizer"):
        raise ValueError(f"{where}: {str(path)!r} pre-tokenizes with {pre.get('type')!r} (normalizer "
                         f"{data.get('normalizer')!r}); only GPT-2's ByteLevel without normalizer is read here")
    vocab = dict(model["vocab"])
    for added in data.get("added_tokens") or ():  # added tokens may live outside the model's vocab
        vocab.setdefault(added["content"], added["id"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model.get("merges") or ()]
    return vocab, merges, bool(pre.get("add_prefix_space", False))


def _check_vocab(vocab, where: str, missing_bytes: str = "error") -> dict[str, int]:
    if not isinstance(vocab, dict) or not vocab:
        raise TypeError(f"{where}: vocab must be a non-empty dict {{token: id}}, got {type(vocab).__name__}")
    bad = [(t, i) for t, i in vocab.items() if not isinstance(t, str) or not t
           or isinstance(i, bool) or not isinstance(i, int)]
    if bad:
        raise ValueError(f"{where}: vocab entries must be non-empty str -> int, got {bad[:3]}")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError(f"{where}: vocab must map its {len(vocab)} tokens to the ids 0..{len(vocab) - 1} "
                         f"exactly once each; got ids {sorted(vocab.values())[:5]}... to {max(vocab.values())}")
    if missing_bytes not in ("error", "drop"):
        raise ValueError(f"{where}: missing_bytes must be 'error' or 'drop', got {missing_bytes!r}")
    missing = [b for b, c in bytes_to_unicode().items() if c not in vocab]
    if missing and missing_bytes == "error":
        # HF's Rust BPE would silently drop these bytes; refuse unless asked to do the same.
        raise ValueError(f"{where}: a byte-level vocab must hold all 256 byte symbols; missing the "
                         f"symbols of bytes {missing[:10]}{'...' if len(missing) > 10 else ''}")
    return vocab


def _merge_ranks(merges, vocab: dict[str, int], where: str):
    """``merges`` as (first, second) tuples and {(first, second): rank}; each ``merge`` may also be
    a ``"first second"`` string (GGUF files store them so). Every part and every merged token must
    be in the vocabulary."""
    pairs, ranks = [], {}
    for rank, merge in enumerate(merges):
        if isinstance(merge, str):
            merge = tuple(merge.split(" "))
        if (not isinstance(merge, (tuple, list)) or len(merge) != 2
                or not all(isinstance(part, str) and part for part in merge)):
            raise ValueError(f"{where}: merge {rank} must be a pair of non-empty str, got {merge!r:.80}")
        for token in (merge[0], merge[1], merge[0] + merge[1]):
            if token not in vocab:
                raise ValueError(f"{where}: merge {rank} ({merge[0]!r} {merge[1]!r}) needs {token!r}, "
                                 "which is not in the vocabulary")
        pairs.append((merge[0], merge[1]))
        ranks[(merge[0], merge[1])] = rank  # a repeated merge keeps its last rank, as HF does
    return pairs, ranks


@functools.lru_cache(maxsize=1)
def _symbol_to_byte() -> dict[str, int]:
    return {c: b for b, c in _byte_table().items()}


def token_bytes(token: str) -> bytes:
    """The bytes a token stands for, as HF's ByteLevel decoder reads it: a token spelled with byte
    symbols gives those bytes, any other token (an added ``"<s>"`` or ``"[MASK]"`` spelled with
    other characters) its own UTF-8."""
    symbol_to_byte = _symbol_to_byte()
    if all(c in symbol_to_byte for c in token):
        return bytes(symbol_to_byte[c] for c in token)
    return token.encode("utf-8")


# ----------------------------------------------------------------------------------------------
# The core.
# ----------------------------------------------------------------------------------------------

class ByteLevelBPE:
    """Byte-level BPE: text -> ids -> text, given a vocabulary, merges, a pattern, special tokens.

    ``vocab`` maps byte-level token strings to ids 0..n-1 and must hold the 256 byte symbols;
    ``merges`` lists (first, second) pairs, best rank first; ``pattern`` is the pre-tokenisation
    regex (``regex`` module syntax); ``special_tokens`` are vocabulary entries matched whole inside
    the text. ``add_prefix_space`` puts a space before each piece of text that does not start
    with one (HF's option); ``ignore_merges`` takes a whole piece that is a vocabulary entry as is
    (used by Llama-3-style tokenizers). At most ``cache_size`` pieces keep their ids cached.
    ``missing_bytes="drop"`` accepts a vocabulary without some byte symbols (SmolLM2's has no token
    for bytes such as 0x04 or 0xC0) and drops those bytes before merging, as HF's BPE without an
    unknown token does; the default refuses such a vocabulary.
    """

    def __init__(self, vocab: dict[str, int], merges, pattern: str = GPT2_PATTERN, special_tokens=(),
                 *, add_prefix_space: bool = False, ignore_merges: bool = False, cache_size: int = 100_000,
                 missing_bytes: str = "error"):
        where = type(self).__name__
        self.vocab = _check_vocab(vocab, where, missing_bytes)
        self.missing_bytes = missing_bytes
        self._absent = frozenset(c for c in _byte_table().values() if c not in self.vocab)  # dropped symbols
        self.ids_to_tokens = sorted(vocab, key=vocab.__getitem__)
        self.merges, self.ranks = _merge_ranks(merges, self.vocab, where)
        self.pattern = pattern
        try:
            self._splitter = regex.compile(pattern)
        except (regex.error, TypeError) as err:
            raise ValueError(f"{where}: pattern {pattern!r:.80} is not a valid regex: {err}") from None
        if isinstance(special_tokens, str):
            raise TypeError(f"{where}: special_tokens must be a list of str, got one str {special_tokens!r}")
        self.special_tokens = list(dict.fromkeys(special_tokens))
        missing = [t for t in self.special_tokens if not isinstance(t, str) or t not in self.vocab]
        if missing:
            raise ValueError(f"{where}: special tokens {missing} are not in the vocabulary ({len(vocab)} tokens)")
        # Longest first, so a special token wins over a shorter one that is its prefix (HF matches
        # the leftmost-longest special token).
        alternatives = sorted(self.special_tokens, key=len, reverse=True)
        self._special_splitter = regex.compile("(" + "|".join(map(regex.escape, alternatives)) + ")") \
            if alternatives else None
        self.add_prefix_space = bool(add_prefix_space)
        self.ignore_merges = bool(ignore_merges)
        self.cache_size = int(cache_size)
        self._cache: dict[str, tuple[int, ...]] = {}
        self._token_bytes = [token_bytes(t) for t in self.ids_to_tokens]
        self._byte_lengths = [len(b) for b in self._token_bytes]

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab={len(self.vocab)}, merges={len(self.merges)}, "
                f"special_tokens={self.special_tokens}, add_prefix_space={self.add_prefix_space})")

    # -- encoding --------------------------------------------------------------------------------

    def split_special(self, text: str, split_special_tokens: bool = False) -> list[tuple[str, int, bool]]:
        """Text -> [(piece, start, is_special), ...]: special tokens cut out, empty pieces dropped."""
        if (self._special_splitter is None or split_special_tokens
                or not any(token in text for token in self.special_tokens)):  # fast path: none inside
            return [(text, 0, False)] if text else []
        out, position = [], 0
        # split with a group alternates plain text (even indices) and special tokens (odd).
        for index, piece in enumerate(self._special_splitter.split(text)):
            if piece:
                out.append((piece, position, bool(index % 2)))
            position += len(piece)
        return out

    def pre_tokenize(self, text: str) -> list[str]:
        """The pieces BPE works on: ``"I'll go  now"`` -> ``["I", "'ll", " go", " ", " now"]``."""
        if self.add_prefix_space and not text.startswith(" "):
            text = " " + text
        return self._splitter.findall(text)

    def encode(self, text: str, split_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; special tokens inside it are matched unless ``split_special_tokens``."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.encode: text must be a str, got {type(text).__name__}")
        ids: list[int] = []
        cache = self._cache
        for piece, _, special in self.split_special(text, split_special_tokens):
            if special:
                ids.append(self.vocab[piece])
                continue
            for word in self.pre_tokenize(piece):
                cached = cache.get(word)
                ids += cached if cached is not None else self._word_ids(word)
        return ids

    def encode_with_offsets(self, text: str, split_special_tokens: bool = False) -> list[tuple[int, int, int]]:
        """[(id, start, end), ...]: each token with the character span of ``text`` its bytes come from.

        A token holding part of a character's bytes (half an emoji) spans that whole character.
        """
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.encode_with_offsets: text must be a str, "
                            f"got {type(text).__name__}")
        out = []
        for piece, start, special in self.split_special(text, split_special_tokens):
            if special:
                out.append((self.vocab[piece], start, start + len(piece)))
                continue
            # An added prefix space sits at start - 1; it is reported as part of the first
            # character (HF aligns it there), hence the max(...) below.
            position = start - (self.add_prefix_space and not piece.startswith(" "))
            for word in self.pre_tokenize(piece):
                ids = self._cache.get(word) or self._word_ids(word)
                # Character index of each byte of the word, then each token's bytes -> characters.
                byte_chars = [i for i, ch in enumerate(word) for _ in range(len(ch.encode("utf-8")))] \
                    if not word.isascii() else range(len(word))
                if self._absent:  # the bytes the vocabulary has no symbol for were dropped
                    byte_chars = [i for i, s in zip(byte_chars, _as_byte_symbols(word)) if s not in self._absent]
                first_byte = 0
                for token_id in ids:
                    last_byte = first_byte + self._byte_lengths[token_id]
                    a, b = position + byte_chars[first_byte], position + byte_chars[last_byte - 1] + 1
                    out.append((token_id, max(a, start), max(b, start + 1)))
                    first_byte = last_byte
                position += len(word)
        return out

    def _word_ids(self, word: str) -> tuple[int, ...]:
        """Ids of one pre-token (cache miss): bytes -> symbols -> merges -> ids."""
        try:
            spelled = _as_byte_symbols(word)
        except UnicodeEncodeError as err:
            raise ValueError(f"{type(self).__name__}.encode: text holds a lone surrogate "
                             f"{word[err.start]!r}, which is not a Unicode character and has no UTF-8 "
                             "bytes") from None
        if self._absent and not self._absent.isdisjoint(spelled):
            spelled = "".join(c for c in spelled if c not in self._absent)
        token = self.vocab.get(spelled) if self.ignore_merges else None
        ids = (token,) if token is not None else tuple(self.vocab[s] for s in self.merge_symbols(spelled))
        if len(self._cache) >= self.cache_size:
            self._cache.clear()  # simple bound: real text refills the frequent pieces at once
        self._cache[word] = ids
        return ids

    def merge_symbols(self, spelled: str) -> list[str]:
        """Apply the merges to one byte-level word: ``"Ġhello"`` -> ``["Ġhello"]``.

        A heap of (rank, position) over adjacent pairs, lowest rank first and leftmost on equal
        rank, exactly as HF's Rust BPE; symbols form a linked list so a merge costs O(log n).
        (GPT-2's python loop, "merge every occurrence of the best pair, repeat", gives the same
        result on any merges file where each merge only uses tokens made by earlier merges.)
        """
        n = len(spelled)
        symbols: list[str | None] = list(spelled)
        if n < 2:
            return symbols
        ranks = self.ranks
        heap = []
        for i in range(n - 1):
            rank = ranks.get((spelled[i], spelled[i + 1]))
            if rank is not None:
                heap.append((rank, i))
        if not heap:
            return symbols
        heapq.heapify(heap)
        following = list(range(1, n + 1))
        preceding = list(range(-1, n - 1))
        while heap:
            rank, i = heapq.heappop(heap)
            left = symbols[i]
            j = following[i]
            if left is None or j >= n or ranks.get((left, symbols[j])) != rank:
                continue  # stale: one of the two symbols was merged since this pair was queued
            merged = left + symbols[j]
            symbols[i], symbols[j] = merged, None
            k = following[j]
            following[i] = k
            if k < n:
                preceding[k] = i
                rank = ranks.get((merged, symbols[k]))
                if rank is not None:
                    heapq.heappush(heap, (rank, i))
            p = preceding[i]
            if p >= 0:
                rank = ranks.get((symbols[p], merged))
                if rank is not None:
                    heapq.heappush(heap, (rank, p))
        return [s for s in symbols if s is not None]

    # -- decoding --------------------------------------------------------------------------------

    def decode_bytes(self, ids) -> bytes:
        """The bytes the ids stand for (ids are not checked here; see ``decode``)."""
        token_bytes = self._token_bytes
        return b"".join([token_bytes[i] for i in ids])

    def decode(self, ids, errors: str = "replace") -> str:
        """Ids -> text; invalid UTF-8 becomes U+FFFD (``errors`` as in ``bytes.decode``)."""
        n = len(self.vocab)
        bad = [i for i in ids if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n]
        if bad:
            raise ValueError(f"{type(self).__name__}.decode: ids must be ints in [0, {n}), got {bad[:5]}")
        return self.decode_bytes(ids).decode("utf-8", errors)


# ----------------------------------------------------------------------------------------------
# GPT-2 with HF's files and batch call.
# ----------------------------------------------------------------------------------------------

class GPT2Tokenizer(BatchTokenizer):
    """GPT-2's tokenizer, equal to HF ``GPT2Tokenizer`` (and tiktoken's ``gpt2``) on the same files.

    ``tokenizer("Hello world")`` gives ``input_ids [15496, 995]`` and ``attention_mask``. GPT-2
    adds no special tokens around a text (a pair is just A followed by B) and has no pad token:
    to pad a batch, create it with ``pad_token="<|endoftext|>"``. ``vocab`` / ``merges`` are the
    paths of ``vocab.json`` / ``merges.txt`` or their contents (a dict and a list of pairs).
    """

    model_input_names = ("input_ids", "attention_mask")
    truncation_rules = "rust"  # HF's GPT-2 tokenizer is the Rust one (see BatchTokenizer)

    def __init__(self, vocab, merges, *, unk_token: str | None = ENDOFTEXT, bos_token: str | None = ENDOFTEXT,
                 eos_token: str | None = ENDOFTEXT, pad_token: str | None = None, additional_special_tokens=(),
                 add_prefix_space: bool = False, errors: str = "replace", model_max_length: int | None = None,
                 padding_side: str = "right", truncation_side: str = "right",
                 pattern: str = GPT2_PATTERN, missing_bytes: str = "error"):
        where = type(self).__name__
        if isinstance(vocab, (str, os.PathLike)):
            vocab = read_vocab_json(vocab)
        if isinstance(merges, (str, os.PathLike)):
            merges = read_merges(merges, vocab if isinstance(vocab, dict) else None)
        specials = {"unk_token": unk_token, "bos_token": bos_token, "eos_token": eos_token, "pad_token": pad_token}
        bad = {k: v for k, v in specials.items() if v is not None and (not isinstance(v, str) or not v)}
        if bad:
            raise TypeError(f"{where}: special tokens must be non-empty strings or None, got {bad}")
        if isinstance(additional_special_tokens, str):
            raise TypeError(f"{where}: additional_special_tokens must be a list of str, "
                            f"got one str {additional_special_tokens!r}")
        self.additional_special_tokens = list(additional_special_tokens)
        self.all_special_tokens = list(dict.fromkeys(
            [t for t in specials.values() if t is not None] + self.additional_special_tokens))
        missing = [t for t in self.all_special_tokens if isinstance(vocab, dict) and t not in vocab]
        if missing:
            raise ValueError(f"{where}: special tokens {missing} are not in the vocabulary ({len(vocab)} tokens); "
                             "add them to vocab.json or pass the name of an existing token")
        self.bpe = ByteLevelBPE(vocab, merges, pattern, self.all_special_tokens, add_prefix_space=add_prefix_space,
                                missing_bytes=missing_bytes)
        self.vocab, self.ids_to_tokens = self.bpe.vocab, self.bpe.ids_to_tokens
        for name, token in specials.items():
            setattr(self, name, token)
            setattr(self, name + "_id", None if token is None else self.vocab[token])
        self.all_special_ids = [self.vocab[t] for t in self.all_special_tokens]
        self.add_prefix_space = self.bpe.add_prefix_space
        try:
            b"".decode("utf-8", errors)
        except LookupError:
            raise ValueError(f"{where}: errors must be a bytes.decode error handler such as 'replace', "
                             f"got {errors!r}") from None
        self.errors = errors
        self._init_batch_options(model_max_length, padding_side, truncation_side)

    # -- files -----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory, **overrides) -> "GPT2Tokenizer":
        """Read ``vocab.json`` + ``merges.txt`` (or, without them, the ``tokenizer.json`` that
        transformers 5 saves) and, when present, ``tokenizer_config.json`` / ``special_tokens_map.json``."""
        where = f"{cls.__name__}.from_pretrained"
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{where}: {str(directory)!r} is not a directory")
        files = [directory / "vocab.json", directory / "merges.txt"]
        if not all(f.is_file() for f in files) and (directory / "tokenizer.json").is_file():
            vocab, merges, add_prefix_space = read_tokenizer_json(directory / "tokenizer.json")
            overrides = {"add_prefix_space": add_prefix_space, **overrides}
        else:
            for name in ("vocab.json", "merges.txt"):
                if not (directory / name).is_file():
                    found = sorted(p.name for p in directory.iterdir())
                    raise FileNotFoundError(f"{where}: no {name} in {str(directory)!r} (found {found}; "
                                            "a tokenizer.json would do too)")
            vocab, merges = files
        config = read_json_config(directory / "tokenizer_config.json", where)
        for name, value in read_json_config(directory / "special_tokens_map.json", where).items():
            config.setdefault(name, value)
        keys = ("add_prefix_space", "errors", "model_max_length", "padding_side", "truncation_side",
                "additional_special_tokens") + GPT2_SPECIAL_NAMES
        kwargs = {k: config[k] for k in keys if k in config}
        kwargs = {k: v for k, v in kwargs.items() if v is not None or k in GPT2_SPECIAL_NAMES}
        for name in GPT2_SPECIAL_NAMES:
            if name in kwargs:
                kwargs[name] = special_token_content(kwargs[name])
        if "additional_special_tokens" in kwargs:
            kwargs["additional_special_tokens"] = [special_token_content(t)
                                                   for t in kwargs["additional_special_tokens"]]
        if isinstance(kwargs.get("model_max_length"), float):
            kwargs["model_max_length"] = int(min(kwargs["model_max_length"], 2 * NO_LIMIT))
        kwargs.update(overrides)
        return cls(vocab, merges, **kwargs)

    def save_pretrained(self, directory) -> tuple[str, ...]:
        """Write ``vocab.json``, ``merges.txt``, ``tokenizer_config.json``, ``special_tokens_map.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        special = {name: getattr(self, name) for name in GPT2_SPECIAL_NAMES if getattr(self, name) is not None}
        if self.additional_special_tokens:
            special["additional_special_tokens"] = self.additional_special_tokens
        config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": self.add_prefix_space,
                  "errors": self.errors, "padding_side": self.padding_side,
                  "truncation_side": self.truncation_side, **special}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        merges = "".join(f"{a} {b}\n" for a, b in self.bpe.merges)
        files = {"vocab.json": json.dumps(self.vocab, ensure_ascii=False) + "\n",
                 "merges.txt": MERGES_HEADER + "\n" + merges,
                 "tokenizer_config.json": json.dumps(config, indent=2, ensure_ascii=False) + "\n",
                 "special_tokens_map.json": json.dumps(special, indent=2, ensure_ascii=False) + "\n"}
        for name, text in files.items():
            atomic_write_text(directory / name, text)
        return tuple(str(directory / name) for name in files)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, merges={len(self.bpe.merges)}, "
                f"add_prefix_space={self.add_prefix_space}, model_max_length={self.model_max_length})")

    # -- tokens ----------------------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """Byte-level tokens: ``"Hello world"`` -> ``["Hello", "Ġworld"]``."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.tokenize: text must be a str, got {type(text).__name__}")
        return [self.ids_to_tokens[i] for i in self._segment_ids(text)]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Byte-level tokens -> text: ``["Hello", "Ġworld"]`` -> ``"Hello world"``."""
        return b"".join(token_bytes(t) for t in tokens).decode("utf-8", self.errors)

    def _segment(self, text: str) -> list[tuple[int, int, int]]:
        return self.bpe.encode_with_offsets(text)

    def _segment_ids(self, text: str) -> list[int]:
        return self.bpe.encode(text)

    # -- decoding --------------------------------------------------------------------------------

    def decode(self, ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool = False) -> str:
        """Ids -> text, exactly: ``decode(encode(s)) == s`` for every string ``s``.

        ``clean_up_tokenization_spaces=True`` applies HF's WordPiece-era clean-up (as transformers
        4 did; transformers 5 ignores it for BPE tokenizers): it removes real spaces, e.g. " ,".
        """
        ids = self._check_ids(ids, "decode")
        if skip_special_tokens:
            skip = set(self.all_special_ids)
            ids = [i for i in ids if i not in skip]
        text = self.bpe.decode_bytes(ids).decode("utf-8", self.errors)
        return clean_up_tokenization(text) if clean_up_tokenization_spaces else text
