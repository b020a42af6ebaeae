"""The sentence encoder of the book's Induction Network (§ 5.2; Geng et al. 2019, § 3.1), shared by
every episodic learner of this package: word embeddings, a bidirectional LSTM, and self-attentive
pooling (Lin et al. 2017, "A Structured Self-Attentive Sentence Embedding"):

    x_t = E[w_t]                                               (B, T, D) word embeddings
    h_t = [LSTM→(x_1..x_t) ; LSTM←(x_t..x_L)]                  (B, T, 2u) BiLSTM over the L real tokens
    A = softmax_t( W_s2 tanh(W_s1 h_tᵀ) )                      (B, r, T)  r attention hops over positions
    e = mean_r (A H) = (mean_r A) H                            (B, 2u)    the book averages the r hops

The book's sizes: D = 300, u = 128 (so e has 2u = 256 features), d_a = 64 (W_s1: 2u → d_a) and
r = 64 hops (W_s2: d_a → r). The names follow the book's ``Encoder`` (``embedding``, ``bilstm``,
``fc1`` = W_s1, ``fc2`` = W_s2) and torch's LSTM.

**Padding.** The book pads a batch with id 0 and lets the attention and the backward LSTM read the
padding. Here a review's vector does not depend on what it is batched with: the attention is
masked to the real tokens, and the backward LSTM reads each review from its *last real token*
(as ``torch.nn.utils.rnn.pack_padded_sequence`` does) — the reversed review is gathered, run
forwards, and scattered back. The forward LSTM past the end is harmless: those positions are
masked. ``tests/test_meta_learning.py`` checks both against torch's packed BiLSTM.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from minigrad import functional as F
from minigrad.kernels.recurrent import recurrence
from minigrad.nn import LSTM, Embedding, Linear, Module
from minigrad.random import Generator
from minigrad.tensor import Tensor, cat


def check_positive(owner: str, **values) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{owner}: {name} must be an int >= 1, got {value!r}")


class ConfigDict:
    """``to_dict`` / ``from_dict`` for the config dataclasses (unknown keys are an error)."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}.from_dict: unknown fields {unknown} (known: {sorted(known)})")
        return cls(**values)


@dataclass
class EncoderConfig(ConfigDict):
    """Sizes of the BiLSTM + self-attention encoder (defaults: the book's)."""

    vocab_size: int = 30522  # BERT-uncased WordPiece ids, as the book
    embed_dim: int = 300  # D
    hidden_size: int = 128  # u, each direction: sentence vectors have 2u features
    attention_dim: int = 64  # d_a
    attention_hops: int = 64  # r
    pad_id: int = 0

    def __post_init__(self):
        check_positive("EncoderConfig", vocab_size=self.vocab_size, embed_dim=self.embed_dim,
                       hidden_size=self.hidden_size, attention_dim=self.attention_dim,
                       attention_hops=self.attention_hops)
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"EncoderConfig: pad_id must be in [0, vocab_size={self.vocab_size}), got {self.pad_id}")

    @property
    def output_size(self) -> int:
        return 2 * self.hidden_size


def check_batch(owner: str, ids, attention_mask, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids (B, T) int64, lengths (B,)) of a right-padded batch; every row needs a real token."""
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    mask = np.asarray(attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask)
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or ids.shape[1] == 0:
        raise ValueError(f"{owner}: ids must be a (B, T) integer array with T >= 1, got {ids.dtype} {ids.shape}")
    if mask.shape != ids.shape:
        raise ValueError(f"{owner}: attention_mask has shape {mask.shape}, ids have {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{owner}: ids must lie in [0, {vocab_size}), got min {ids.min()} max {ids.max()}")
    lengths = mask.astype(bool).sum(axis=1)
    if not np.array_equal(mask.astype(bool), np.arange(ids.shape[1])[None, :] < lengths[:, None]):
        raise ValueError(f"{owner}: attention_mask must be 1 on a prefix of each row (right padding), 0 after")
    if (lengths == 0).any():
        raise ValueError(f"{owner}: row {int(np.argmax(lengths == 0))} has no real token (attention_mask all 0)")
    return ids.astype(np.int64, copy=False), lengths


def reversal_index(lengths: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, positions) that reverse each row's first ``lengths[b]`` positions and keep the
    padding in place: x[rows, positions][b, t] = x[b, L_b − 1 − t] for t < L_b. It is its own inverse."""
    t = np.arange(T)[None, :]
    positions = np.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return np.arange(len(lengths))[:, None], positions


class SentenceEncoder(Module):
    """Word ids (B, T) + attention mask → sentence vectors (B, 2u), see the module docstring."""

    def __init__(self, config: EncoderConfig, generator: Generator | None = None, dtype=None):
        super().__init__()
        c = self.config = config
        self.embedding = Embedding(c.vocab_size, c.embed_dim, padding_idx=c.pad_id, dtype=dtype, generator=generator)
        self.bilstm = LSTM(c.embed_dim, c.hidden_size, bidirectional=True, batch_first=True, dtype=dtype,
                           generator=generator)
        self.fc1 = Linear(2 * c.hidden_size, c.attention_dim, dtype=dtype, generator=generator)  # W_s1
        self.fc2 = Linear(c.attention_dim, c.attention_hops, dtype=dtype, generator=generator)  # W_s2

    def _direction(self, x: Tensor, suffix: str) -> Tensor:
        """One LSTM direction run forwards over (T, B, D) inputs: (T, B, u)."""
        lstm, B = self.bilstm, x.shape[1]
        w_ih, w_hh, b_ih, b_hh = (getattr(lstm, f"{n}_l0{suffix}") for n in ("weight_ih", "weight_hh",
                                                                               "bias_ih", "bias_hh"))
        zeros = Tensor._wrap(np.zeros((B, self.config.hidden_size), dtype=x.dtype))
        h, _ = recurrence("lstm", F.linear(x, w_ih, b_ih), [zeros, zeros], w_hh, b_hh)
        return h

    def contextual(self, ids: np.ndarray, lengths: np.ndarray) -> Tensor:
        """h (B, T, 2u): the BiLSTM states, the backward direction read from each row's last real token."""
        B = ids.shape[0]
        rows, positions = reversal_index(lengths, ids.shape[1])
        x = self.embedding(np.concatenate([ids, ids[rows, positions]])).transpose(0, 1)  # (T, 2B, D) both readings
        forward = self._direction(x[:, :B], "")  # (T, B, u)
        backward = self._direction(x[:, B:], "_reverse")  # (T, B, u), each row read from its last token
        backward = backward.transpose(0, 1)[rows, positions]  # (B, T, u) back in reading order
        return cat([forward.transpose(0, 1), backward], -1)  # (B, T, 2u)

    def pool(self, h: Tensor, lengths: np.ndarray) -> Tensor:
        """Self-attentive pooling of the states h (B, T, 2u) over each row's real tokens: (B, 2u)."""
        scores = self.fc2(self.fc1(h).tanh()).transpose(1, 2)  # (B, r, T)
        keep = (np.arange(h.shape[1])[None, :] < lengths[:, None])[:, None, :]  # (B, 1, T) real tokens
        weights = F.masked_softmax(scores, keep)  # (B, r, T), each hop sums to 1 over the real tokens
        # mean_r (A H) = (mean_r A) H: average the hops' weights first, one weighted sum per row
        return (weights.mean(axis=1).unsqueeze(-1) * h).sum(axis=1)  # (B, T, 1) * (B, T, 2u) -> (B, 2u)

    def forward(self, ids, attention_mask) -> Tensor:
        ids, lengths = check_batch("SentenceEncoder", ids, attention_mask, self.config.vocab_size)
        return self.pool(self.contextual(ids, lengths), lengths)  # (B, 2u)
