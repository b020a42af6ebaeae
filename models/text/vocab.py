"""``Vocab``: the bijection token <-> integer id that every language model of the book uses.

Special tokens (book, chapter 1):

* ``<pad>`` — fills short sentences in a batch (ignored by the loss);
* ``<unk>`` — every rare or unseen word (count below ``min_freq``, or beyond ``max_size``);
* ``<s>`` / ``</s>`` — sentence start / end, so the model learns how sentences begin and end.

Specials come first (in the given order), then tokens by count (descending), ties broken by
the token itself, so the same corpus always gives the same ids.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from itertools import chain
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

import numpy as np

from models.text.corpus import atomic_write_text

__all__ = ["Vocab", "SPECIALS", "PAD", "UNK", "BOS", "EOS"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS: tuple[str, ...] = (PAD, UNK, BOS, EOS)
_FORMAT = "minigrad.vocab"
_VERSION = 1


def _check_specials(where: str, specials: Sequence[str]) -> tuple[str, ...]:
    specials = tuple(specials)
    unknown = [s for s in specials if s not in SPECIALS]
    if unknown:
        raise ValueError(f"{where}: unknown special token(s) {unknown}; known: {list(SPECIALS)}")
    if len(set(specials)) != len(specials):
        raise ValueError(f"{where}: duplicate special tokens in {list(specials)}")
    return specials


class Vocab:
    """Token <-> id mapping with special tokens.

    ``Vocab(itos, specials)`` takes the full id -> token list (which must start with the
    specials); usually build one with ``Vocab.build(sentences, min_freq=, max_size=)``.
    """

    def __init__(self, itos: Sequence[str], specials: Sequence[str] = SPECIALS):
        specials = _check_specials("Vocab", specials)
        itos = tuple(itos)
        bad = [t for t in itos if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Vocab: tokens must be str, got {type(bad[0]).__name__} ({bad[0]!r})")
        if itos[: len(specials)] != specials:
            raise ValueError(
                f"Vocab: itos must start with the specials {list(specials)}, "
                f"got {list(itos[: len(specials)])}"
            )
        if len(set(itos)) != len(itos):
            dup = next(t for t, c in Counter(itos).items() if c > 1)
            raise ValueError(f"Vocab: duplicate token {dup!r} in itos")
        self._itos = itos
        self._specials = specials
        self._stoi = MappingProxyType({t: i for i, t in enumerate(itos)})

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, int],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = SPECIALS,
    ) -> "Vocab":
        """Keep tokens with ``count >= min_freq``, most frequent first (ties: by token), at most
        ``max_size`` entries in total (specials included)."""
        specials = _check_specials("Vocab.from_counts", specials)
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"Vocab.from_counts: min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < len(specials)):
            raise ValueError(
                f"Vocab.from_counts: max_size must be None or an int >= the number of specials "
                f"({len(specials)}), got {max_size!r}"
            )
        bad = [t for t in counts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Vocab.from_counts: tokens must be str, got {type(bad[0]).__name__} ({bad[0]!r})")
        kept = [(t, c) for t, c in counts.items() if c >= min_freq and t not in specials]
        kept.sort(key=itemgetter(0))                # ties: by token ...
        kept.sort(key=itemgetter(1), reverse=True)  # ... stable sort: by count, descending
        tokens = [t for t, _ in kept]
        if max_size is not None:
            tokens = tokens[: max_size - len(specials)]
        return cls(list(specials) + tokens, specials)

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = SPECIALS,
    ) -> "Vocab":
        """Count tokens over ``sentences`` (an iterable of token lists) and call ``from_counts``."""
        sentences = list(sentences)
        for i, sentence in enumerate(sentences):
            if isinstance(sentence, str):
                raise TypeError(
                    "Vocab.build: expected an iterable of token lists (sentences), "
                    f"got a str at position {i}: {sentence[:30]!r}; wrap a flat token list in [ ]"
                )
        counts = Counter(chain.from_iterable(sentences))
        return cls.from_counts(counts, min_freq=min_freq, max_size=max_size, specials=specials)

    # -- lookups ------------------------------------------------------------------------
    @property
    def itos(self) -> tuple[str, ...]:
        """id -> token (read-only)."""
        return self._itos

    @property
    def stoi(self) -> Mapping[str, int]:
        """token -> id (read-only)."""
        return self._stoi

    @property
    def specials(self) -> tuple[str, ...]:
        return self._specials

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and (self._itos, self._specials) == (other._itos, other._specials)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={list(self._specials)})"

    def special_id(self, token: str) -> int:
        """Id of a special token; ``ValueError`` if it is not a known special of this vocab."""
        if token not in SPECIALS:
            raise ValueError(f"Vocab.special_id: unknown special {token!r}; known: {list(SPECIALS)}")
        if token not in self._specials:
            raise ValueError(
                f"Vocab.special_id: this vocab has no {token!r} (its specials: {list(self._specials)})"
            )
        return self._stoi[token]

    pad_id = property(lambda self: self.special_id(PAD), doc="id of ``<pad>``")
    unk_id = property(lambda self: self.special_id(UNK), doc="id of ``<unk>``")
    bos_id = property(lambda self: self.special_id(BOS), doc="id of ``<s>``")
    eos_id = property(lambda self: self.special_id(EOS), doc="id of ``</s>``")

    def encode(self, tokens: Sequence[str], *, add_bos: bool = False, add_eos: bool = False) -> np.ndarray:
        """Tokens -> int64 ids; unknown tokens map to ``<unk>`` (an error if there is none)."""
        if isinstance(tokens, str):
            raise TypeError("Vocab.encode: expected a sequence of tokens, got a str; tokenise it first")
        unk = self._stoi.get(UNK) if UNK in self._specials else None
        ids = []
        for position, t in enumerate(tokens):
            i = self._stoi.get(t) if isinstance(t, str) else None
            if i is None:
                if not isinstance(t, str):  # an id or a nested list would silently become <unk>
                    raise TypeError(f"Vocab.encode: tokens must be str, got {type(t).__name__} {t!r:.40} at "
                                    f"position {position}; to turn ids back into tokens use Vocab.decode")
                if unk is None:
                    raise ValueError(f"Vocab.encode: token {t!r} is not in the vocab and it has no {UNK!r}")
                i = unk
            ids.append(i)
        if add_bos:
            ids.insert(0, self.bos_id)
        if add_eos:
            ids.append(self.eos_id)
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray, *, skip_specials: bool = False) -> list[str]:
        """Ids -> tokens; ``skip_specials`` drops ``<pad> <s> </s>`` (``<unk>`` is kept)."""
        arr = np.asarray(ids)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(
                f"Vocab.decode: expected a 1-D sequence of ints, got shape {arr.shape} dtype {arr.dtype}"
            )
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            bad = int(arr[(arr < 0) | (arr >= len(self))][0])
            raise ValueError(f"Vocab.decode: id {bad} out of range [0, {len(self)})")
        skip = {self._stoi[s] for s in self._specials if s != UNK} if skip_specials else set()
        return [self._itos[i] for i in arr.tolist() if i not in skip]

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": _VERSION, "specials": list(self._specials), "itos": list(self._itos)}

    def save(self, path: str | os.PathLike) -> None:
        """Save as JSON (atomic write)."""
        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=0) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocab":
        """Load a vocab saved by ``save``; ``ValueError`` naming the problem if malformed."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Vocab.load: no such file: {str(path)!r}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"Vocab.load: {str(path)!r} is not a valid JSON vocab file: {err}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"Vocab.load: {str(path)!r} is not a vocab file (expected format {_FORMAT!r})")
        if data.get("version") != _VERSION:
            raise ValueError(f"Vocab.load: unsupported version {data.get('version')!r} (expected {_VERSION})")
        itos, specials = data.get("itos"), data.get("specials")
        if not isinstance(itos, list) or not isinstance(specials, list):
            raise ValueError(f"Vocab.load: {str(path)!r} must have list fields 'itos' and 'specials'")
        try:
            return cls(itos, specials)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Vocab.load: malformed vocab file {str(path)!r}: {err}") from None
