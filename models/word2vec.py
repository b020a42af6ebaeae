"""Word2Vec: skip-gram and CBOW with negative sampling (book § 1.3; Mikolov et al. 2013,
"Efficient Estimation of Word Representations in Vector Space" and "Distributed
Representations of Words and Phrases and their Compositionality").

Each word w has an *input* vector v_w (the embedding we keep) and an *output* vector u_w.
A training example is a context vector h and a target word o:

* skip-gram: h = v_c of the centre word c, the target o is one word of its window;
* CBOW:      h = mean of v_w over the window's words, the target o is the centre word.

Negative sampling replaces the softmax over the vocabulary by K binary decisions — the true
target against K "noise" words n_k drawn from the unigram distribution raised to 3/4:

    ℓ(h, o) = −log σ(u_o·h) − Σ_{k=1..K} log σ(−u_{n_k}·h),      n_k ~ P_n(w) ∝ count(w)^0.75

Frequent words are subsampled: each occurrence of w is kept with probability
``min(1, sqrt(t / f(w)) + t / f(w))`` (f = relative frequency; the formula of word2vec.c and
gensim; the paper writes the discard probability 1 − sqrt(t / f)). The window size is drawn
uniformly in [1, window] per centre word, which weights near words more.

Training uses minigrad: ``NegativeSamplingLoss`` is one fused ``Function`` (gather, scores,
loss and the scatter-add backward in NumPy); ``negative_sampling_loss_reference`` is the same
loss composed of ordinary Tensor ops, and the tests gradcheck one against the other.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

import minigrad
from minigrad import functional as F
from minigrad.nn import init
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.ops import xp
from minigrad.tensor import Function, Tensor, is_grad_enabled
from models.text.vocab import Vocab
from models.training import Trainer

__all__ = [
    "Word2Vec", "NoiseSampler", "noise_distribution", "keep_probability", "subsample",
    "skipgram_examples", "cbow_examples", "NegativeSamplingLoss", "negative_sampling_loss",
    "negative_sampling_loss_reference", "pca_2d", "plot_word_groups",
]

MODES = ("skipgram", "cbow")
_WEIGHTS_FILE, _VOCAB_FILE = "word2vec.safetensors", "vocab.json"


# ================================================================================================
# Noise distribution and subsampling
# ================================================================================================
def _check_counts(where: str, counts) -> np.ndarray:
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0 or c.dtype.kind not in "iuf" or (c < 0).any():
        raise ValueError(f"{where}: counts must be a non-empty 1-D array of non-negative numbers, "
                         f"got shape {c.shape} dtype {c.dtype}")
    if c.sum() <= 0:
        raise ValueError(f"{where}: all counts are zero")
    return c.astype(np.float64)


def noise_distribution(counts, power: float = 0.75) -> np.ndarray:
    """P_n(w) = count(w)^power / Σ_v count(v)^power  (power 3/4: Mikolov et al. 2013)."""
    c = _check_counts("noise_distribution", counts)
    weights = c ** power
    weights[c == 0] = 0.0  # 0 ** 0 = 1 would give never-seen ids (specials) a share
    return weights / weights.sum()


class NoiseSampler:
    """Draws negative words from ``noise_distribution(counts, power)`` by inverse CDF.

    (word2vec.c fills a 10^8-entry table with word ids in proportion to P_n; a cumulative
    array + ``searchsorted`` draws from exactly the same distribution in O(V) memory.)
    """

    def __init__(self, counts, power: float = 0.75):
        self.probs = noise_distribution(counts, power)  # (V,)
        self.cdf = np.cumsum(self.probs)
        self.cdf[-1] = 1.0
        self._last = int(np.flatnonzero(self.probs)[-1])  # never return a zero-probability id

    def sample(self, shape, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(shape)
        return np.minimum(np.searchsorted(self.cdf, u, side="right"), self._last).astype(np.int64)


def keep_probability(counts, t: float = 1e-3) -> np.ndarray:
    """Probability of keeping one occurrence of each word (subsampling of frequent words):

        f(w) = count(w) / Σ count,    keep(w) = min(1, sqrt(t / f(w)) + t / f(w))

    Words rarer than about t·total are always kept; ``t <= 0`` disables subsampling.
    """
    c = _check_counts("keep_probability", counts)
    if t <= 0:
        return np.ones_like(c)
    f = c / c.sum()
    with np.errstate(divide="ignore"):
        ratio = np.where(f > 0, t / f, np.inf)
    return np.minimum(1.0, np.sqrt(ratio) + ratio)


def subsample(ids: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask: keep token i with probability ``keep[ids[i]]``."""
    return rng.random(ids.shape[0]) < keep[ids]


# ================================================================================================
# Training examples (vectorised over the whole corpus)
# ================================================================================================
def _window_offsets(ids: np.ndarray, sentence: np.ndarray, window: int, rng: np.random.Generator):
    """For each offset d in ±1..±window: positions i whose neighbour i+d is in the same sentence
    and within the centre's reduced window b_i ~ U{1..window}. Yields (d, centre positions)."""
    n = ids.shape[0]
    reach = rng.integers(1, window + 1, size=n)  # b_i
    for j in range(1, window + 1):
        for d in (-j, j):
            i = np.arange(max(0, -d), n - max(0, d))
            ok = (sentence[i] == sentence[i + d]) & (reach[i] >= j)
            yield d, i[ok]


def skipgram_examples(ids: np.ndarray, sentence: np.ndarray, window: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(centre ids (N,), context ids (N,)): every (c, o) pair with o in c's reduced window."""
    centres, contexts = [], []
    for d, i in _window_offsets(ids, sentence, window, rng):
        centres.append(ids[i])
        contexts.append(ids[i + d])
    if not centres:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(centres), np.concatenate(contexts)


def cbow_examples(ids: np.ndarray, sentence: np.ndarray, window: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(context ids (N, 2W), context weights (N, 2W), centre ids (N,)) for CBOW.

    Row i holds the words of centre i's reduced window, each weighted 1/(number of them) so
    that h = Σ_j weight_ij v_{ctx_ij} is their mean; empty slots have weight 0.
    """
    n = ids.shape[0]
    ctx = np.zeros((n, 2 * window), np.int64)
    present = np.zeros((n, 2 * window), bool)
    for slot, (d, i) in enumerate(_window_offsets(ids, sentence, window, rng)):
        ctx[i, slot] = ids[i + d]
        present[i, slot] = True
    size = present.sum(axis=1)
    rows = size > 0  # a one-word sentence has no context
    weights = present[rows] / size[rows, None]
    return ctx[rows], weights, ids[rows]


# ================================================================================================
# The loss: fused Function and the composite reference
# ================================================================================================
def _labels(k1: int, dtype) -> np.ndarray:
    """y = (1, 0, …, 0): the true target first, then K noise words."""
    y = np.zeros(k1, dtype=dtype)
    y[0] = 1
    return y


class NegativeSamplingLoss(Function):
    """Mean negative-sampling loss of a batch, fused (forward and backward in NumPy).

        h_b  = Σ_j a_bj v_{c_bj}                   (B, D)   context vector (a: weights)
        s_bk = u_{t_bk} · h_b                       (B, K+1) scores; t_b0 true, t_bk>0 noise
        ℓ    = (1/B) Σ_b Σ_k softplus(−σ_k s_bk),   σ_0 = +1, σ_k>0 = −1

    Backward (with y = (1, 0, …, 0)):  ∂ℓ/∂s_bk = (σ(s_bk) − y_k) / B,
    ∂ℓ/∂h_b = Σ_k ∂s_bk u_{t_bk},  ∂ℓ/∂u_w = Σ_{(b,k): t_bk = w} ∂s_bk h_b,
    ∂ℓ/∂v_w = Σ_{(b,j): c_bj = w} a_bj ∂ℓ/∂h_b   — two row scatter-adds, no (V, D) temporaries
    beyond the two gradients themselves.
    """

    def forward(self, w_in, w_out, *, contexts, weights, targets):
        self.contexts, self.weights, self.targets = contexts, weights.astype(w_in.dtype), targets
        self.y = _labels(targets.shape[1], w_in.dtype)
        h, u, s = self._scores(w_in, w_out, graph=False)
        self.h, self.u, self.s = h, u, s
        sign = 2 * self.y - 1  # +1 for the true target, −1 for noise
        return np.asarray(np.logaddexp(0, -sign * s).sum() / s.shape[0], dtype=w_in.dtype)

    def _scores(self, w_in, w_out, graph: bool):
        """h (B, D), u (B, K+1, D), s (B, K+1): from arrays, or (``graph``) from Tensors, differentiably."""
        u = w_out[self.targets]  # (B, K+1, D)
        if graph:
            h = (w_in[self.contexts] * self.weights[:, :, None]).sum(axis=1)  # (B, D)
            return h, u, (u * h[:, None, :]).sum(axis=2)
        # arrays: the same sums as batched matrix products (BLAS instead of reductions)
        h = (self.weights[:, None, :] @ w_in[self.contexts])[:, 0]  # (B, 1, C) @ (B, C, D) -> (B, D)
        return h, u, (u @ h[:, :, None])[:, :, 0]  # (B, K+1, D) @ (B, D, 1) -> (B, K+1)

    def backward(self, g):
        w_in, w_out = self.args()
        graph = is_grad_enabled()
        if graph:  # create_graph: recompute as Tensors so this is differentiable
            h, u, s = self._scores(w_in, w_out, graph=True)
        else:
            h, u, s = self.h, self.u, self.s
        m = xp()
        b, k1 = s.shape
        ds = (m.sigmoid(s) - self.y) * (g * (1.0 / b))  # (B, K+1)
        d = w_in.shape[1]
        grad_in = grad_out = None
        if self.needs_input_grad[1]:
            rows = (ds[:, :, None] * h[:, None, :]).reshape((b * k1, d))
            grad_out = m.embedding_grad(rows, w_out.shape[0], self.targets.reshape(-1))
        if self.needs_input_grad[0]:
            dh = (ds[:, :, None] * u).sum(axis=1) if graph else (ds[:, None, :] @ u)[:, 0]  # (B, D)
            c = self.contexts.shape[1]
            rows = (dh[:, None, :] * self.weights[:, :, None]).reshape((b * c, d))
            grad_in = m.embedding_grad(rows, w_in.shape[0], self.contexts.reshape(-1))
        return grad_in, grad_out


def _check_batch(where: str, w_in: Tensor, w_out: Tensor, contexts, weights, targets):
    for name, w in (("w_in", w_in), ("w_out", w_out)):
        if not isinstance(w, Tensor) or w.ndim != 2 or w.dtype.kind != "f":
            raise TypeError(f"{where}: {name} must be a 2-D float Tensor (V, D), got "
                            f"{type(w).__name__} {getattr(w, 'shape', '')}")
    if w_in.shape != w_out.shape:
        raise ValueError(f"{where}: w_in {w_in.shape} and w_out {w_out.shape} must have the same shape")
    contexts, targets = np.asarray(contexts), np.asarray(targets)
    weights = np.asarray(weights)
    if contexts.ndim != 2 or contexts.dtype.kind not in "iu":
        raise TypeError(f"{where}: contexts must be a (B, C) integer array, got shape {contexts.shape} "
                        f"dtype {contexts.dtype}")
    if weights.shape != contexts.shape:
        raise ValueError(f"{where}: weights must have the contexts' shape {contexts.shape}, got {weights.shape}")
    if targets.ndim != 2 or targets.dtype.kind not in "iu" or targets.shape[0] != contexts.shape[0] \
            or targets.shape[1] < 1:
        raise ValueError(f"{where}: targets must be a ({contexts.shape[0]}, K+1) integer array, got shape "
                         f"{targets.shape} dtype {targets.dtype}")
    v = w_in.shape[0]
    for name, ids in (("contexts", contexts), ("targets", targets)):
        if ids.size and (ids.min() < 0 or ids.max() >= v):
            raise IndexError(f"{where}: {name} ids must lie in [0, {v}), got [{ids.min()}, {ids.max()}]")
    return contexts.astype(np.int64), weights, targets.astype(np.int64)


def negative_sampling_loss(w_in: Tensor, w_out: Tensor, contexts, weights, targets) -> Tensor:
    """The fused loss ``NegativeSamplingLoss``: contexts/weights (B, C), targets (B, K+1)."""
    contexts, weights, targets = _check_batch("negative_sampling_loss", w_in, w_out, contexts, weights, targets)
    return NegativeSamplingLoss.apply(w_in, w_out, contexts=contexts, weights=weights, targets=targets)


def negative_sampling_loss_reference(w_in: Tensor, w_out: Tensor, contexts, weights, targets) -> Tensor:
    """The same loss from plain Tensor ops (embedding, sum, softplus) — the gradcheck reference."""
    contexts, weights, targets = _check_batch("negative_sampling_loss_reference", w_in, w_out, contexts,
                                              weights, targets)
    a = Tensor(weights.astype(w_in.dtype)[:, :, None])
    h = (F.embedding(contexts, w_in) * a).sum(axis=1)  # (B, D)
    s = (F.embedding(targets, w_out) * h.unsqueeze(1)).sum(axis=2)  # (B, K+1)
    sign = Tensor(2 * _labels(targets.shape[1], w_in.dtype) - 1)
    return F.softplus(-(s * sign), threshold=float("inf")).sum() * (1.0 / s.shape[0])


# ================================================================================================
# The model
# ================================================================================================
class Word2Vec(Module):
    """Word vectors trained by skip-gram or CBOW with negative sampling.

    Build from tokenised sentences with ``Word2Vec.build(sentences, dim=, min_count=, mode=)``;
    train with ``fit`` (or ``train_epoch`` for a loop of your own); query with
    ``most_similar``, ``similarity``, ``analogy``; persist with ``save``/``load``.
    Words seen fewer than ``min_count`` times are dropped from the text (as in word2vec.c).
    """

    def __init__(self, vocab: Vocab, counts, dim: int = 64, *, mode: str = "skipgram", window: int = 5,
                 negatives: int = 5, subsample_t: float = 1e-3, power: float = 0.75, dtype=None,
                 generator: minigrad.Generator | None = None):
        super().__init__()
        if not isinstance(vocab, Vocab):
            raise TypeError(f"Word2Vec: vocab must be a models.text.Vocab, got {type(vocab).__name__}")
        counts = np.asarray(counts)
        if counts.shape != (len(vocab),) or counts.dtype.kind not in "iu":
            raise ValueError(f"Word2Vec: counts must be an integer array of shape ({len(vocab)},) (one per vocab "
                             f"entry), got shape {counts.shape} dtype {counts.dtype}")
        if mode not in MODES:
            raise ValueError(f"Word2Vec: mode must be one of {MODES}, got {mode!r}")
        for name, value in (("dim", dim), ("window", window), ("negatives", negatives)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Word2Vec: {name} must be a positive int, got {value!r}")
        if counts[len(vocab.specials):].sum() == 0:
            raise ValueError("Word2Vec: the vocabulary has no words with a non-zero count")
        self.vocab = vocab
        self.config = dict(dim=int(dim), mode=mode, window=int(window), negatives=int(negatives),
                           subsample_t=float(subsample_t), power=float(power))
        self.register_buffer("counts", counts.astype(np.int64))
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        # word2vec.c: input vectors U(−0.5/D, 0.5/D), output vectors zero
        self.input_vectors = Parameter(np.empty((len(vocab), dim), dtype=dtype))
        self.output_vectors = Parameter(np.zeros((len(vocab), dim), dtype=dtype))
        init.uniform_(self.input_vectors, -0.5 / dim, 0.5 / dim, generator=generator)
        self.noise = NoiseSampler(counts, power)
        self.keep = keep_probability(counts, subsample_t)

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], dim: int = 64, *, min_count: int = 3, **kwargs) -> "Word2Vec":
        """Vocabulary (words seen >= ``min_count`` times) and counts from ``sentences``, then a new model."""
        vocab = Vocab.build(sentences, min_freq=min_count)
        counts = np.zeros(len(vocab), np.int64)
        ids = np.concatenate([vocab.encode(s) for s in sentences]) if len(sentences) else np.zeros(0, np.int64)
        np.add.at(counts, ids, 1)
        counts[: len(vocab.specials)] = 0  # <unk> etc. are never trained nor sampled
        return cls(vocab, counts, dim, **kwargs)

    def encode_corpus(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """(token ids (N,), sentence index (N,)) with out-of-vocabulary words removed."""
        if isinstance(sentences, str) or any(isinstance(s, str) for s in sentences[:1]):
            raise TypeError("Word2Vec.encode_corpus: expected a list of token lists (tokenised sentences)")
        ids = [self.vocab.encode(s) for s in sentences]
        sent = [np.full(len(x), i, np.int64) for i, x in enumerate(ids)]
        ids_flat = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        sent_flat = np.concatenate(sent) if sent else np.zeros(0, np.int64)
        known = ids_flat >= len(self.vocab.specials)
        return ids_flat[known], sent_flat[known]

    # ---------------------------------------------------------------- training
    def loss(self, contexts, weights, targets) -> Tensor:
        """Mean negative-sampling loss of one batch (fused)."""
        return negative_sampling_loss(self.input_vectors, self.output_vectors, contexts, weights, targets)

    def batches(self, corpus: tuple[np.ndarray, np.ndarray], batch_size: int,
                rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """One epoch of shuffled (contexts (B, C), weights (B, C), targets (B, K+1)) batches:
        subsample, build every example of the mode, shuffle, draw K noise words per example."""
        ids, sentence = corpus
        kept = subsample(ids, self.keep, rng)
        ids, sentence = ids[kept], sentence[kept]
        window, k = self.config["window"], self.config["negatives"]
        if self.config["mode"] == "skipgram":
            centre, target = skipgram_examples(ids, sentence, window, rng)
            contexts, weights = centre[:, None], np.ones((centre.shape[0], 1))
        else:
            contexts, weights, target = cbow_examples(ids, sentence, window, rng)
        order = rng.permutation(target.shape[0])
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            noise = self.noise.sample((len(idx), k), rng)  # (B, K)
            yield contexts[idx], weights[idx], np.concatenate([target[idx, None], noise], axis=1)

    @staticmethod
    def batch_loss(model: "Word2Vec", batch) -> tuple[Tensor, dict]:
        """The loss of one ``batches`` batch, for ``models.training``."""
        contexts, weights, targets = batch
        return model.loss(contexts, weights, targets), {"size": targets.shape[0]}

    def train_epoch(self, corpus: tuple[np.ndarray, np.ndarray], optimizer, rng: np.random.Generator, *,
                    batch_size: int = 1024) -> dict:
        """One pass over ``corpus`` (from ``encode_corpus``) with ``models.training``. Returns mean
        loss, examples, words (corpus tokens, before subsampling), seconds and words per second."""
        trainer = Trainer(self, optimizer, Word2Vec.batch_loss, log=None, size_unit="examples")
        trainer.fit(lambda epoch: self.batches(corpus, batch_size, rng))
        return self.epoch_stats(trainer.history["epochs"][0], corpus)

    @staticmethod
    def epoch_stats(record: dict, corpus: tuple[np.ndarray, np.ndarray]) -> dict:
        """What ``train_epoch`` reports, from a ``models.training`` epoch record: the speed is in corpus
        words (before subsampling) per second, word2vec.c's measure."""
        words, seconds = int(corpus[0].shape[0]), record["seconds"]
        return dict(loss=record["train_loss"], examples=record["examples"], words=words, seconds=seconds,
                    words_per_second=words / seconds if seconds > 0 else float("inf"))

    def fit(self, sentences: Sequence[Sequence[str]], epochs: int = 5, *, lr: float = 0.005,
            batch_size: int = 1024, seed: int = 0) -> list[dict]:
        """Train with Adam for ``epochs`` passes; returns the per-epoch stats of ``train_epoch``."""
        rng = np.random.default_rng(seed)
        corpus = self.encode_corpus(sentences)
        if corpus[0].shape[0] < 2:
            raise ValueError(f"Word2Vec.fit: the corpus has {corpus[0].shape[0]} in-vocabulary tokens; need >= 2")
        optimizer = minigrad.optim.Adam(self.parameters(), lr=lr)
        return [self.train_epoch(corpus, optimizer, rng, batch_size=batch_size) for _ in range(epochs)]

    # ---------------------------------------------------------------- queries
    def _id(self, where: str, word: str) -> int:
        if not isinstance(word, str):
            raise TypeError(f"Word2Vec.{where}: expected a word (str), got {type(word).__name__}")
        i = self.vocab.stoi.get(word)
        if i is None or i < len(self.vocab.specials):
            raise ValueError(f"Word2Vec.{where}: {word!r} is not in the vocabulary ({len(self.vocab)} entries; "
                             "words rarer than min_count were dropped)")
        return i

    def vector(self, word: str) -> np.ndarray:
        """The input vector v_w (a copy)."""
        return self.input_vectors.data[self._id("vector", word)].copy()

    def unit_vectors(self) -> np.ndarray:
        """Input vectors scaled to unit length (V, D): cosine similarity is then a dot product."""
        v = self.input_vectors.data.astype(np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def similarity(self, a: str, b: str) -> float:
        """cos(v_a, v_b)."""
        u = self.unit_vectors()
        return float(u[self._id("similarity", a)] @ u[self._id("similarity", b)])

    def _nearest(self, query: np.ndarray, exclude: list[int], k: int) -> list[tuple[str, float]]:
        u = self.unit_vectors()
        q = query / max(np.linalg.norm(query), 1e-12)
        cos = u @ q  # (V,)
        cos[: len(self.vocab.specials)] = -np.inf
        cos[exclude] = -np.inf
        k = min(k, int(np.isfinite(cos).sum()))
        best = np.argsort(-cos, kind="stable")[:k]
        return [(self.vocab.itos[i], float(cos[i])) for i in best]

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The k words with the largest cosine similarity to ``word`` (itself excluded)."""
        i = self._id("most_similar", word)
        return self._nearest(self.unit_vectors()[i], [i], k)

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """"a is to b as c is to ?" (3CosAdd, Mikolov et al. 2013): the words nearest to
        v̂_b − v̂_a + v̂_c (unit vectors), excluding a, b and c. ``analogy('man', 'king', 'woman')``."""
        ids = [self._id("analogy", w) for w in (a, b, c)]
        u = self.unit_vectors()
        return self._nearest(u[ids[1]] - u[ids[0]] + u[ids[2]], ids, k)

    # ---------------------------------------------------------------- persistence
    def save(self, folder: str | os.PathLike) -> None:
        """``folder/word2vec.safetensors`` (vectors, counts; config in the metadata) and
        ``folder/vocab.json``, each written atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.vocab.save(folder / _VOCAB_FILE)
        minigrad.save(self.state_dict(), folder / _WEIGHTS_FILE, metadata={"word2vec": json.dumps(self.config)})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "Word2Vec":
        """Load a model written by ``save``."""
        folder = Path(folder)
        weights = folder / _WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"Word2Vec.load: no {_WEIGHTS_FILE} in {str(folder)!r}")
        vocab = Vocab.load(folder / _VOCAB_FILE)
        meta = minigrad.serialization.load_metadata(weights)
        if "word2vec" not in meta:
            raise ValueError(f"Word2Vec.load: {str(weights)!r} has no 'word2vec' config in its metadata")
        config = json.loads(meta["word2vec"])
        state = minigrad.load(weights)
        expected = {"counts", "input_vectors", "output_vectors"}
        if set(state) != expected:
            raise ValueError(f"Word2Vec.load: {str(weights)!r} holds {sorted(state)}, expected {sorted(expected)}")
        dim = config.pop("dim")
        model = cls(vocab, state["counts"], dim, dtype=state["input_vectors"].dtype, **config)
        model.load_state_dict(state)
        return model

    def extra_repr(self) -> str:
        c = self.config
        return (f"vocab={len(self.vocab)}, dim={c['dim']}, mode={c['mode']!r}, window={c['window']}, "
                f"negatives={c['negatives']}, subsample_t={c['subsample_t']}")


# ================================================================================================
# 2-D projection
# ================================================================================================
def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project rows onto their first two principal components (SVD of the centred matrix):

        X − mean = U S Vᵀ,   coordinates = (X − mean) V[:, :2] = U[:, :2] S[:2]

    Signs are fixed (largest |loading| positive) so the picture does not flip between runs.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"pca_2d: need a (N, D) array with N, D >= 2, got shape {x.shape}")
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    axes = vt[:2]  # (2, D)
    flip = np.sign(axes[np.arange(2), np.argmax(np.abs(axes), axis=1)])
    return xc @ (axes * flip[:, None]).T  # (N, 2)


def plot_word_groups(model: Word2Vec, groups: dict[str, Sequence[str]], path: str | os.PathLike,
                     title: str = "Word2Vec: PCA projection") -> list[str]:
    """Scatter the 2-D PCA projection of the words of each group (one colour per group) into a
    PNG at ``path`` (atomic). Words missing from the vocabulary are skipped; returns the words drawn."""
    from models.plotting import save_figure, subplots

    words, labels = [], []
    for name, group in groups.items():
        for w in group:
            if w in model.vocab.stoi and model.vocab.stoi[w] >= len(model.vocab.specials) and w not in words:
                words.append(w)
                labels.append(name)
    if len(words) < 3:
        raise ValueError(f"plot_word_groups: only {len(words)} of the words are in the vocabulary; need >= 3")
    xy = pca_2d(np.stack([model.vector(w) for w in words]))
    fig, ax = subplots(figsize=(7, 5.5))
    for name in groups:
        sel = [i for i, lab in enumerate(labels) if lab == name]
        if sel:
            ax.scatter(xy[sel, 0], xy[sel, 1], label=name, s=30)
    for (x, y), w in zip(xy, words):
        ax.annotate(w, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return words
