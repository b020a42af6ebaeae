"""Recurrent language models: Embedding → RNN or GRU → Linear (book § 1.4; Mikolov et al. 2010,
"Recurrent neural network based language model"; the GRU of Cho et al. 2014).

Unlike an n-gram model, the recurrent state h_t summarises the *whole* history:

    e_t = E[w_t]                      (B, E)   embedding
    h_t = GRU(e_t, h_{t−1})           (B, H)   (or an Elman RNN; 1+ layers, dropout between)
    P(w_{t+1} | w_1..w_t) = softmax(W h_t + b)            (optionally W = E: weight tying,
                                                           Press & Wolf 2017, needs E = H)

Training is truncated back-propagation through time: the corpus is one token stream cut into
B rows (``models.text.batchify``); windows of T steps are read left to right, the final state
of a window starts the next one (``detach()``: gradients stop at the border), Adam updates
the weights and the gradient norm is clipped (Pascanu et al. 2013). Perplexity is
exp(mean cross-entropy) over every token of a held-out stream. Text is generated token by
token with ``models.decoding`` (greedy, temperature, top-k, nucleus).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

import minigrad
from minigrad.nn import Linear
from minigrad.nn.dropout import Dropout
from minigrad.nn.losses import cross_entropy
from minigrad.nn.module import Module
from minigrad.nn.rnn import GRU, RNN
from minigrad.nn.sparse import Embedding
from minigrad.tensor import Tensor
from models.decoding import greedy, sample
from models.text.batching import lm_windows
from models.text.vocab import Vocab
from models.training import TrainConfig, Trainer, evaluating

__all__ = ["RNNLM", "token_stream", "eval_rows", "evaluate", "bptt_windows", "TruncatedBPTT", "train_epoch",
           "generate"]

CELLS = {"gru": GRU, "rnn": RNN}


def _positive_int(where: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


class RNNLM(Module):
    """``RNNLM(vocab_size, embed_dim=128, hidden_size=256, num_layers=1, cell='gru', dropout=0.0,
    tie_weights=False)``.

    ``forward(ids, hidden=None)``: ids (B, T) → logits (B, T, V) and the final state
    (num_layers, B, H), to be passed (detached) to the next window.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 128, hidden_size: int = 256, num_layers: int = 1, *,
                 cell: str = "gru", dropout: float = 0.0, tie_weights: bool = False,
                 generator: minigrad.Generator | None = None):
        super().__init__()
        where = "RNNLM"
        if cell not in CELLS:
            raise ValueError(f"{where}: cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.vocab_size = _positive_int(where, "vocab_size", vocab_size)
        embed_dim = _positive_int(where, "embed_dim", embed_dim)
        self.hidden_size = _positive_int(where, "hidden_size", hidden_size)
        self.num_layers = _positive_int(where, "num_layers", num_layers)
        if tie_weights and embed_dim != hidden_size:
            raise ValueError(f"{where}: tie_weights needs embed_dim == hidden_size, got {embed_dim} and {hidden_size}")
        self.cell = cell
        self.embedding = Embedding(self.vocab_size, embed_dim, generator=generator)
        self.drop = Dropout(dropout)
        between = dropout if num_layers > 1 else 0.0  # the RNN's own dropout acts between layers only
        self.rnn = CELLS[cell](embed_dim, hidden_size, num_layers, batch_first=True, dropout=between,
                               generator=generator)
        self.decoder = Linear(hidden_size, self.vocab_size, generator=generator)
        if tie_weights:
            self.decoder.weight = self.embedding.weight  # one (V, H) matrix for input and output

    def forward(self, ids, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"RNNLM.forward: ids must be a (B, T) integer array, got shape {ids.shape} "
                             f"dtype {ids.dtype}")
        b, t = ids.shape
        x = self.drop(self.embedding(ids))  # (B, T, E)
        out, hidden = self.rnn(x, hidden)  # (B, T, H), (L, B, H)
        # the decoder runs on (B·T, H): one 2-D matmul (a 3-D @ 2-D matmul is far slower in NumPy)
        logits = self.decoder(self.drop(out).reshape(b * t, self.hidden_size))  # (B·T, V)
        return logits.reshape(b, t, self.vocab_size), hidden


def token_stream(sentences: Iterable[Sequence[str]], vocab: Vocab) -> np.ndarray:
    """One id stream ``</s> s_1 </s> s_2 </s> …``: every sentence is predicted word by word
    and then its end, as in the N-gram model (the leading ``</s>`` plays ``<s>``)."""
    eos = vocab.eos_id
    parts = [np.asarray([eos], np.int64)]
    for s in sentences:
        parts.append(vocab.encode(s, add_eos=True))
    if len(parts) == 1:
        raise ValueError("token_stream: got no sentences")
    return np.concatenate(parts)


def eval_rows(stream: np.ndarray, rows: int, pad_id: int) -> np.ndarray:
    """Cut a stream into ``rows`` rows that overlap by one token, padded with ``pad_id``:
    (rows, L+1). Every token but the first is a target exactly once, so a batched evaluation
    scores the same N−1 events as reading the stream in one go."""
    stream = np.asarray(stream)
    if stream.ndim != 1 or stream.shape[0] < 2:
        raise ValueError(f"eval_rows: need a 1-D stream of at least 2 ids, got shape {stream.shape}")
    rows = _positive_int("eval_rows", "rows", rows)
    n = stream.shape[0] - 1  # number of targets
    rows = min(rows, n)
    length = -(-n // rows)
    out = np.full((rows, length + 1), pad_id, dtype=np.int64)
    for r in range(rows):
        piece = stream[r * length: (r + 1) * length + 1]
        out[r, :len(piece)] = piece
    return out


def evaluate(model: RNNLM, stream: np.ndarray, pad_id: int, *, rows: int = 16, bptt: int = 64) -> float:
    """Mean negative log-likelihood (nats) over every token of ``stream`` after the first;
    perplexity = exp of it. The hidden state is carried through each row."""
    data = eval_rows(stream, rows, pad_id)
    total, count, hidden = 0.0, 0, None
    with evaluating(model):
        for x, y in lm_windows(data, bptt):
            logits, hidden = model(x, hidden)
            flat = y.reshape(-1)
            total += float(cross_entropy(logits.reshape(-1, model.vocab_size), flat, ignore_index=pad_id,
                                         reduction="sum").item())
            count += int((flat != pad_id).sum())
    return total / count


def bptt_windows(data: np.ndarray, bptt: int) -> list[tuple[int, tuple[np.ndarray, np.ndarray]]]:
    """One epoch of truncated-BPTT batches: (window index, (x, y)) for every window of ``data``
    (B, L), left to right. The index tells ``TruncatedBPTT`` where an epoch starts."""
    return list(enumerate(lm_windows(data, bptt)))


class TruncatedBPTT:
    """The loss of one window for ``models.training``, carrying the recurrent state across
    windows: the final state of a window (detached: gradients stop at the border) starts the next
    one, and the first window of an epoch starts from zeros. The carried state goes into the
    checkpoints (``Trainer(state=...)``), so a run resumed mid-epoch goes on with the same state."""

    def __init__(self):
        self.hidden: Tensor | None = None

    def __call__(self, model: RNNLM, batch) -> tuple[Tensor, dict]:
        index, (x, y) = batch
        logits, hidden = model(x, None if index == 0 else self.hidden)
        self.hidden = hidden.detach()  # carry the state, not the graph: BPTT is truncated here
        loss = cross_entropy(logits.reshape(-1, model.vocab_size), y.reshape(-1))
        return loss, {"size": y.size}

    def state_dict(self) -> dict:
        return {"hidden": None if self.hidden is None else self.hidden.data}

    def load_state_dict(self, state: dict) -> None:
        self.hidden = None if state["hidden"] is None else Tensor(state["hidden"])


def train_epoch(model: RNNLM, data: np.ndarray, optimizer, *, bptt: int = 35, clip: float | None = 1.0) -> dict:
    """One pass of truncated BPTT over ``data`` (B, L) from ``batchify``, with ``models.training``
    (gradient clipping unless ``clip`` is 0/None). Returns the mean loss, the per-window losses,
    the seconds and tokens per second."""
    loss = TruncatedBPTT()
    trainer = Trainer(model, optimizer, loss, TrainConfig(max_grad_norm=clip), state={"hidden": loss}, log=None,
                      size_unit="tokens")
    trainer.fit(lambda epoch: bptt_windows(data, bptt))
    record = trainer.history["epochs"][0]
    return dict(loss=record["train_loss"], step_losses=trainer.history["steps"]["loss"], seconds=record["seconds"],
                tokens_per_second=record["tokens_per_second"])


def generate(model: RNNLM, vocab: Vocab, prompt: Sequence[str] = (), max_tokens: int = 40, *,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             rng: np.random.Generator | int | None = 0, stop_at_eos: bool = True) -> list[str]:
    """Continue ``prompt`` (tokens) one token at a time after a leading ``</s>``.

    ``temperature=0`` is greedy decoding; otherwise ``models.decoding.sample`` with the given
    temperature / top-k / nucleus top-p. ``<pad> <s> <unk>`` are never emitted; generation
    stops at ``</s>`` when ``stop_at_eos``.
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    ids = [vocab.eos_id] + [int(i) for i in vocab.encode(list(prompt))]
    banned = [vocab.pad_id, vocab.bos_id, vocab.unk_id]
    if not stop_at_eos:
        banned.append(vocab.eos_id)
    out = list(prompt)
    with evaluating(model):
        logits, hidden = model(np.asarray([ids]))  # read the prompt in one call
        for _ in range(max_tokens):
            z = logits.data[0, -1].astype(np.float64)
            z[banned] = -np.inf
            nxt = greedy(z) if temperature == 0 else sample(z, temperature, top_k, top_p, rng)
            if nxt == vocab.eos_id:
                break
            out.append(vocab.itos[nxt])
            logits, hidden = model(np.asarray([[nxt]]), hidden)
    return out
