"""From sentence pairs to padded mini-batches for encoder-decoder models (book ch. 2-3).

The pipeline: tokenise each side, build a ``Vocab`` per language (or one shared vocabulary),
encode every pair as ids, then group pairs of similar length into batches padded with
``<pad>``::

    source  x_1 … x_m </s> <pad> …            (B, S)   src_mask True on real tokens
    target  <s> y_1 … y_n </s> <pad> …        (B, T+1)
    decoder input   tgt_in  = tgt[:, :-1]  =  <s> y_1 … y_n          (teacher forcing)
    decoder output  tgt_out = tgt[:, 1:]   =  y_1 … y_n </s>         (next-token targets)

Batches come from ``models.text.bucket_batches`` (shuffle, sort pools by length, shuffle the
batch order), so they waste little compute on padding and are the same for the same seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from models.data.parallel import SYNTHETIC_VOCAB, SentencePair
from models.text import Vocab, bucket_batches, pad_batch, word_tokenize
from models.text.vocab import BOS, EOS, PAD, SPECIALS

__all__ = [
    "ParallelBatch", "ParallelDataset", "synthetic_vocab", "char_level", "build_vocabs",
    "encode_pairs", "collate", "lowercase_words",
]

Tokenizer = Callable[[str], Sequence[str]]


def char_level(text: str) -> list[str]:
    """One token per character: the tokenisation of the synthetic tasks (reversal, copy, sort)."""
    return list(text)


def lowercase_words(text: str) -> list[str]:
    """Lower-cased word tokens (``models.text.word_tokenize``): the default for real corpora."""
    return word_tokenize(text.lower())


def synthetic_vocab() -> Vocab:
    """The book's vocabulary of the synthetic tasks: ``<s> </s> <pad> a … z`` (29 tokens, no ``<unk>``)."""
    return Vocab(SYNTHETIC_VOCAB, specials=(BOS, EOS, PAD))


@dataclass(frozen=True)
class ParallelBatch:
    """One padded batch of B pairs (all arrays int64 except the bool masks).

    ``src`` (B, S) and ``tgt`` (B, T+1) are right-padded; ``src_lengths``/``tgt_lengths`` count
    the real tokens (``tgt`` counts ``<s>`` and ``</s>``); ``index`` (B,) gives the rows'
    positions in the dataset.
    """

    src: np.ndarray
    src_lengths: np.ndarray
    tgt: np.ndarray
    tgt_lengths: np.ndarray
    index: np.ndarray
    src_pad_id: int
    tgt_pad_id: int

    def __len__(self) -> int:
        return int(self.src.shape[0])

    @property
    def src_mask(self) -> np.ndarray:
        """(B, S) bool, True at real source tokens (the attention mask: True = keep)."""
        return np.arange(self.src.shape[1])[None, :] < self.src_lengths[:, None]

    @property
    def tgt_in(self) -> np.ndarray:
        """(B, T) decoder inputs ``<s> y_1 … y_n`` (teacher forcing)."""
        return self.tgt[:, :-1]

    @property
    def tgt_out(self) -> np.ndarray:
        """(B, T) next-token targets ``y_1 … y_n </s>``, ``<pad>`` after the end."""
        return self.tgt[:, 1:]

    @property
    def tgt_mask(self) -> np.ndarray:
        """(B, T) bool, True where ``tgt_out`` is a real token to predict."""
        return np.arange(self.tgt.shape[1] - 1)[None, :] < (self.tgt_lengths - 1)[:, None]

    @property
    def num_target_tokens(self) -> int:
        """How many next-token predictions the batch holds (the loss's denominator)."""
        return int((self.tgt_lengths - 1).sum())


def _check_pairs(func: str, pairs) -> list[SentencePair]:
    pairs = list(pairs)
    for i, p in enumerate(pairs):
        if not isinstance(p, SentencePair):
            if isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(s, str) for s in p):
                pairs[i] = SentencePair(*p)
            else:
                raise TypeError(f"{func}: pair {i} must be a SentencePair or a (source, target) pair of str, "
                                f"got {type(p).__name__}")
    return pairs


def build_vocabs(pairs, *, src_tokenize: Tokenizer = lowercase_words, tgt_tokenize: Tokenizer | None = None,
                 shared: bool = False, min_freq: int = 1, max_size: int | None = None,
                 specials: Sequence[str] = SPECIALS) -> tuple[Vocab, Vocab]:
    """A ``Vocab`` per language built from the training pairs: ``(source_vocab, target_vocab)``.

    ``shared=True`` counts both sides into ONE vocabulary (returned twice), as needed for shared
    source/target embeddings. Tokens seen fewer than ``min_freq`` times become ``<unk>``.
    """
    func = "build_vocabs"
    pairs = _check_pairs(func, pairs)
    if not pairs:
        raise ValueError(f"{func}: got no sentence pairs to build a vocabulary from")
    tgt_tokenize = src_tokenize if tgt_tokenize is None else tgt_tokenize
    src_tokens = [list(src_tokenize(p.source)) for p in pairs]
    tgt_tokens = [list(tgt_tokenize(p.target)) for p in pairs]
    if shared:
        vocab = Vocab.build(src_tokens + tgt_tokens, min_freq=min_freq, max_size=max_size, specials=specials)
        return vocab, vocab
    return (Vocab.build(src_tokens, min_freq=min_freq, max_size=max_size, specials=specials),
            Vocab.build(tgt_tokens, min_freq=min_freq, max_size=max_size, specials=specials))


def encode_pairs(pairs, src_vocab: Vocab, tgt_vocab: Vocab, *, src_tokenize: Tokenizer = lowercase_words,
                 tgt_tokenize: Tokenizer | None = None, src_bos: bool = False,
                 src_eos: bool = True) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Ids of every pair: sources ``x_1 … x_m </s>`` (``src_bos``/``src_eos`` choose the marks),
    targets always ``<s> y_1 … y_n </s>``. Returns (source id arrays, target id arrays)."""
    func = "encode_pairs"
    pairs = _check_pairs(func, pairs)
    tgt_tokenize = src_tokenize if tgt_tokenize is None else tgt_tokenize
    sources, targets = [], []
    for i, p in enumerate(pairs):
        try:
            sources.append(src_vocab.encode(list(src_tokenize(p.source)), add_bos=src_bos, add_eos=src_eos))
            targets.append(tgt_vocab.encode(list(tgt_tokenize(p.target)), add_bos=True, add_eos=True))
        except ValueError as err:
            raise ValueError(f"{func}: pair {i} ({p.source!r} -> {p.target!r}): {err}") from None
        if len(sources[-1]) == 0:
            raise ValueError(f"{func}: pair {i} has an empty source (no tokens and src_bos=src_eos=False)")
    return sources, targets


def collate(sources: Sequence[np.ndarray], targets: Sequence[np.ndarray], index, *, src_pad_id: int,
            tgt_pad_id: int) -> ParallelBatch:
    """Pad the chosen pairs into one ``ParallelBatch``."""
    index = np.asarray(index, dtype=np.int64)
    src, src_lengths = pad_batch([sources[i] for i in index], src_pad_id)  # (B, S)
    tgt, tgt_lengths = pad_batch([targets[i] for i in index], tgt_pad_id)  # (B, T+1)
    return ParallelBatch(src, src_lengths, tgt, tgt_lengths, index, int(src_pad_id), int(tgt_pad_id))


class ParallelDataset:
    """Encoded sentence pairs with their vocabularies and tokenisers; makes padded batches.

    Build it from training pairs with ``ParallelDataset.build`` (vocabularies from those pairs),
    then encode validation/test pairs with the same vocabularies via ``dataset.encode(pairs)``.
    """

    def __init__(self, pairs, src_vocab: Vocab, tgt_vocab: Vocab, *, src_tokenize: Tokenizer = lowercase_words,
                 tgt_tokenize: Tokenizer | None = None, src_bos: bool = False, src_eos: bool = True):
        self.pairs = _check_pairs("ParallelDataset", pairs)
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.src_tokenize = src_tokenize
        self.tgt_tokenize = src_tokenize if tgt_tokenize is None else tgt_tokenize
        self.src_bos, self.src_eos = bool(src_bos), bool(src_eos)
        for side, vocab in (("source", src_vocab), ("target", tgt_vocab)):
            missing = [s for s in (PAD, BOS, EOS) if s not in vocab.specials]
            if missing:
                raise ValueError(f"ParallelDataset: the {side} vocab lacks the special(s) {missing}; "
                                 f"its specials are {list(vocab.specials)}")
        self.sources, self.targets = encode_pairs(
            self.pairs, src_vocab, tgt_vocab, src_tokenize=self.src_tokenize, tgt_tokenize=self.tgt_tokenize,
            src_bos=self.src_bos, src_eos=self.src_eos)

    @classmethod
    def build(cls, pairs, *, src_tokenize: Tokenizer = lowercase_words, tgt_tokenize: Tokenizer | None = None,
              shared_vocab: bool = False, min_freq: int = 1, max_size: int | None = None,
              src_bos: bool = False, src_eos: bool = True) -> "ParallelDataset":
        """Vocabularies from ``pairs`` (see ``build_vocabs``), then encode them."""
        src_vocab, tgt_vocab = build_vocabs(pairs, src_tokenize=src_tokenize, tgt_tokenize=tgt_tokenize,
                                            shared=shared_vocab, min_freq=min_freq, max_size=max_size)
        return cls(pairs, src_vocab, tgt_vocab, src_tokenize=src_tokenize, tgt_tokenize=tgt_tokenize,
                   src_bos=src_bos, src_eos=src_eos)

    @classmethod
    def synthetic(cls, pairs) -> "ParallelDataset":
        """Character-level pairs of the synthetic tasks, with the book's 29-token vocabulary."""
        vocab = synthetic_vocab()
        return cls(pairs, vocab, vocab, src_tokenize=char_level)

    def encode(self, pairs) -> "ParallelDataset":
        """Other pairs (validation, test) with this dataset's vocabularies and tokenisers."""
        return ParallelDataset(pairs, self.src_vocab, self.tgt_vocab, src_tokenize=self.src_tokenize,
                               tgt_tokenize=self.tgt_tokenize, src_bos=self.src_bos, src_eos=self.src_eos)

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return (f"ParallelDataset({len(self)} pairs, source vocab {len(self.src_vocab)}, "
                f"target vocab {len(self.tgt_vocab)})")

    @property
    def src_lengths(self) -> np.ndarray:
        return np.array([len(s) for s in self.sources], dtype=np.int64)

    @property
    def tgt_lengths(self) -> np.ndarray:
        return np.array([len(t) for t in self.targets], dtype=np.int64)

    def batch(self, index) -> ParallelBatch:
        """The pairs at ``index`` as one padded batch (in that order)."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if index.size == 0 or index.min() < 0 or index.max() >= len(self):
            raise ValueError(f"ParallelDataset.batch: indices must be non-empty and in [0, {len(self)}), "
                             f"got {index.tolist()[:10]}")
        return collate(self.sources, self.targets, index, src_pad_id=self.src_vocab.pad_id,
                       tgt_pad_id=self.tgt_vocab.pad_id)

    def batches(self, batch_size: int, *, seed: int = 0, shuffle: bool = True, bucket: bool = True,
                drop_last: bool = False) -> list[ParallelBatch]:
        """All pairs as padded batches. ``bucket``: pairs of similar (source, then target) length
        together (``bucket_batches``); ``shuffle``: random order from ``seed``, the same for the
        same seed. Without either, the pairs stay in dataset order."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"ParallelDataset.batches: batch_size must be a positive int, got {batch_size!r}")
        n = len(self)
        if n == 0:
            return []
        if bucket:
            tgt_len = self.tgt_lengths
            key = self.src_lengths * (int(tgt_len.max()) + 1) + tgt_len  # sort by source, then target
            groups = bucket_batches(key, batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last)
        else:
            order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
            groups = [order[s:s + batch_size] for s in range(0, n, batch_size)]
            if drop_last and len(groups[-1]) < batch_size:
                groups.pop()
        return [self.batch(g) for g in groups]
