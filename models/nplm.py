"""The Word2Vec-based feed-forward neural language model (book § 1.3; Bengio, Ducharme, Vincent
& Jauvin 2003, "A Neural Probabilistic Language Model").

Like an n-gram model it predicts word w_t from the previous n−1 words only, but instead of
counting it looks each of them up in an embedding table C (initialisable from a trained
Word2Vec), concatenates the vectors and scores every word of the vocabulary:

    x = [C(w_{t−1}); C(w_{t−2}); …; C(w_{t−n+1})]            ((n−1)·E,)
    y = b + U tanh(d + H x)  (+ W x with ``direct=True``)      (V,)
    P(w_t = i | w_{t−n+1..t−1}) = softmax(y)_i

Similar words get similar vectors, so a context never seen in training still gets a sensible
distribution — the answer to the n-gram model's sparsity. Sentences are padded exactly as in
``models.ngram`` (n−1 ``<s>``, one ``</s>``), so the perplexities of the two are comparable.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

import minigrad
from minigrad.nn import Linear, init
from minigrad.nn.dropout import Dropout
from minigrad.nn.losses import cross_entropy
from minigrad.nn.module import Module
from minigrad.nn.sparse import Embedding
from minigrad.tensor import Tensor
from models.decoding import greedy, sample
from models.text.vocab import Vocab
from models.training import TrainConfig, Trainer, evaluating

__all__ = ["NeuralLM", "ngram_examples", "init_from_word2vec", "evaluate", "shuffled_batches", "batch_loss",
           "train_epoch", "generate"]


def _positive_int(where: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


class NeuralLM(Module):
    """Bengio et al. (2003) n-gram neural LM: ``NeuralLM(vocab_size, order=4, embed_dim=64, hidden_size=128)``.

    ``forward(contexts)``: contexts (B, n−1) word ids, oldest first → logits (B, V).
    """

    def __init__(self, vocab_size: int, order: int = 4, embed_dim: int = 64, hidden_size: int = 128, *,
                 dropout: float = 0.0, direct: bool = False, generator: minigrad.Generator | None = None):
        super().__init__()
        where = "NeuralLM"
        self.vocab_size = _positive_int(where, "vocab_size", vocab_size)
        self.order = _positive_int(where, "order", order)
        if self.order < 2:
            raise ValueError(f"{where}: order must be >= 2 (it conditions on n−1 >= 1 words), got {order}")
        embed_dim = _positive_int(where, "embed_dim", embed_dim)
        hidden_size = _positive_int(where, "hidden_size", hidden_size)
        width = (self.order - 1) * embed_dim
        self.embedding = Embedding(self.vocab_size, embed_dim, generator=generator)  # C
        init.normal_(self.embedding.weight, std=0.1, generator=generator)  # small: tanh is not saturated
        self.hidden = Linear(width, hidden_size, generator=generator)  # H, d
        self.dropout = Dropout(dropout)
        self.output = Linear(hidden_size, self.vocab_size, generator=generator)  # U, b
        self.direct = Linear(width, self.vocab_size, bias=False, generator=generator) if direct else None  # W

    def forward(self, contexts) -> Tensor:
        ids = np.asarray(contexts.data if isinstance(contexts, Tensor) else contexts)
        if ids.ndim != 2 or ids.shape[1] != self.order - 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"NeuralLM.forward: contexts must be (B, n−1 = {self.order - 1}) integer ids, "
                             f"got shape {ids.shape} dtype {ids.dtype}")
        x = self.embedding(ids).reshape(ids.shape[0], -1)  # (B, (n−1)·E)
        a = self.hidden(x).tanh()  # (B, H)
        y = self.output(self.dropout(a))  # (B, V)
        return y if self.direct is None else y + self.direct(x)


def ngram_examples(sentences: Sequence[np.ndarray], order: int, bos_id: int, eos_id: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(contexts (N, n−1), targets (N,)) of every predicted token, sentences padded as the N-gram
    model pads them: ``<s>``×(n−1) + words + ``</s>``; N = Σ (len + 1)."""
    order = _positive_int("ngram_examples", "order", order)
    ctx_parts, tgt_parts = [], []
    for i, s in enumerate(sentences):
        s = np.asarray(s)
        if s.ndim != 1 or (s.size and s.dtype.kind not in "iu"):
            raise TypeError(f"ngram_examples: sentence {i} must be a 1-D integer id array, got shape {s.shape} "
                            f"dtype {s.dtype}")
        padded = np.concatenate([np.full(order - 1, bos_id), s, [eos_id]]).astype(np.int64)
        windows = np.lib.stride_tricks.sliding_window_view(padded, order)  # (len+1, n)
        ctx_parts.append(windows[:, :-1])
        tgt_parts.append(windows[:, -1])
    if not ctx_parts:
        raise ValueError("ngram_examples: got no sentences")
    return np.concatenate(ctx_parts), np.concatenate(tgt_parts)


def init_from_word2vec(embedding: Embedding, vocab: Vocab, word2vec) -> int:
    """Copy each word's Word2Vec input vector into ``embedding`` (rows matched by the word,
    since the two vocabularies may differ), rescaled so their mean norm matches the table's
    other rows. Returns the number of rows copied."""
    w2v_vectors = word2vec.input_vectors.data
    if w2v_vectors.shape[1] != embedding.embedding_dim:
        raise ValueError(f"init_from_word2vec: Word2Vec has dimension {w2v_vectors.shape[1]} but the "
                         f"embedding has {embedding.embedding_dim}; use the same size")
    if len(vocab) != embedding.num_embeddings:
        raise ValueError(f"init_from_word2vec: vocab has {len(vocab)} entries, the embedding "
                         f"{embedding.num_embeddings} rows")
    first = len(word2vec.vocab.specials)
    pairs = [(i, word2vec.vocab.stoi[w]) for i, w in enumerate(vocab.itos)
             if word2vec.vocab.stoi.get(w, -1) >= first]
    if not pairs:
        return 0
    rows, src = map(np.asarray, zip(*pairs))
    table = embedding.weight.data
    vectors = w2v_vectors[src].astype(table.dtype)
    scale = np.linalg.norm(table, axis=1).mean() / max(np.linalg.norm(vectors, axis=1).mean(), 1e-12)
    table[rows] = vectors * scale
    return len(pairs)


def evaluate(model: NeuralLM, contexts: np.ndarray, targets: np.ndarray, batch_size: int = 2048) -> float:
    """Mean negative log-likelihood (nats) of ``targets``; perplexity = exp of it."""
    total = 0.0
    with evaluating(model):
        for s in range(0, targets.shape[0], batch_size):
            logits = model(contexts[s:s + batch_size])
            total += float(cross_entropy(logits, targets[s:s + batch_size], reduction="sum").item())
    return total / targets.shape[0]


def shuffled_batches(contexts: np.ndarray, targets: np.ndarray, batch_size: int,
                     rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of (contexts (B, n−1), targets (B,)) batches in a random order drawn from ``rng``."""
    order = rng.permutation(targets.shape[0])
    chunks = (order[s:s + batch_size] for s in range(0, len(order), batch_size))
    return [(contexts[idx], targets[idx]) for idx in chunks]


def batch_loss(model: NeuralLM, batch) -> tuple[Tensor, dict]:
    """Mean cross-entropy of one batch of predictions, for ``models.training``."""
    contexts, targets = batch
    return cross_entropy(model(contexts), targets), {"size": len(targets)}


def train_epoch(model: NeuralLM, contexts: np.ndarray, targets: np.ndarray, optimizer, rng: np.random.Generator,
                *, batch_size: int = 256, clip: float | None = 1.0) -> dict:
    """One shuffled pass of mini-batch training (``models.training``: cross-entropy, optimizer
    step, gradient clipping unless ``clip`` is 0/None). Returns the mean training loss, the step
    losses, the seconds and tokens per second."""
    trainer = Trainer(model, optimizer, batch_loss, TrainConfig(max_grad_norm=clip), log=None, size_unit="tokens")
    trainer.fit(lambda epoch: shuffled_batches(contexts, targets, batch_size, rng))
    record = trainer.history["epochs"][0]
    return dict(loss=record["train_loss"], step_losses=trainer.history["steps"]["loss"], seconds=record["seconds"],
                tokens_per_second=record["tokens_per_second"])


def generate(model: NeuralLM, vocab: Vocab, max_tokens: int = 30, *, context: Sequence[str] = (),
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             rng: np.random.Generator | int | None = 0) -> list[str]:
    """Sample one sentence: start from ``<s>``… (plus ``context``), stop at ``</s>``.
    ``temperature=0`` is greedy; ``top_k``/``top_p`` filter as in ``models.decoding``."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    history = [vocab.bos_id] * (model.order - 1) + list(vocab.encode(list(context)))
    banned = [vocab.pad_id, vocab.bos_id, vocab.unk_id]  # never emit these mid-sentence
    out = list(context)
    with evaluating(model):
        for _ in range(max_tokens):
            logits = model(np.asarray([history[-(model.order - 1):]])).data[0].astype(np.float64)
            logits[banned] = -np.inf
            nxt = greedy(logits) if temperature == 0 else sample(logits, temperature, top_k, top_p, rng)
            if nxt == vocab.eos_id:
                break
            history.append(nxt)
            out.append(vocab.itos[nxt])
    return out
