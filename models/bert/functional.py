"""The functions BERT's modules share: input checks, the activation by name, and ``Packing`` — running
the token-wise layers on the real tokens of a padded batch only."""
from __future__ import annotations

import numpy as np

from minigrad.tensor import Function, Tensor, cat

from models.bert.config import BertConfig


def _array(name: str, owner: str, value) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.data
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{owner}: {name} must hold integers, got dtype {arr.dtype}")
    return arr


def check_inputs(config: BertConfig, input_ids, attention_mask, token_type_ids, owner: str):
    """Validate BERT's three integer inputs and return ``(ids, token types, key mask)``.

    ``ids`` (B, T) in [0, vocab_size); ``token types`` (B, T) in [0, type_vocab_size) (zeros when
    absent); ``key mask`` (B, 1, 1, T) bool, True for the keys a query may attend to (None when
    every token is real, which skips the masking work).
    """
    ids = _array("input_ids", owner, input_ids)
    if ids.ndim != 2:
        raise ValueError(f"{owner}: input_ids must have shape (batch, seq_len), got shape {ids.shape}")
    B, T = ids.shape
    if T == 0:
        raise ValueError(f"{owner}: input_ids has no tokens (shape {ids.shape})")
    if T > config.max_position_embeddings:
        raise ValueError(f"{owner}: sequence length {T} exceeds max_position_embeddings="
                         f"{config.max_position_embeddings}; truncate the input (tokenizer max_length)")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= config.vocab_size:
        raise ValueError(f"{owner}: input_ids must lie in [0, vocab_size={config.vocab_size}), got min {lo} "
                         f"and max {hi} — is the tokenizer's vocabulary the model's?")
    if token_type_ids is None:
        types = np.zeros((B, T), dtype=np.int64)
    else:
        types = _array("token_type_ids", owner, token_type_ids)
        if types.shape != ids.shape:
            raise ValueError(f"{owner}: token_type_ids has shape {types.shape}, input_ids has {ids.shape}")
        if types.min() < 0 or types.max() >= config.type_vocab_size:
            raise ValueError(f"{owner}: token_type_ids must lie in [0, type_vocab_size={config.type_vocab_size}), "
                             f"got min {types.min()} and max {types.max()}")
    key_mask = None
    if attention_mask is not None:
        mask = _array("attention_mask", owner, attention_mask)
        if mask.shape != ids.shape:
            raise ValueError(f"{owner}: attention_mask has shape {mask.shape}, input_ids has {ids.shape}")
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"{owner}: attention_mask must hold only 0 (padding) and 1 (token)")
        if not mask.all():
            key_mask = mask.astype(bool)[:, None, None, :]  # (B, 1, 1, T)
    return ids, types, key_mask


def activation(x: Tensor, name: str) -> Tensor:
    """HF's ``hidden_act``: 'gelu' = x·Φ(x) (erf), 'gelu_new'/'gelu_pytorch_tanh' = tanh approximation."""
    if name == "gelu":
        return x.gelu()
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return x.gelu(approximate="tanh")
    if name == "relu":
        return x.relu()
    if name == "silu":
        return x * x.sigmoid()
    if name == "tanh":
        return x.tanh()
    raise ValueError(f"activation: unknown hidden_act {name!r}")



# ----------------------------------------------------------------------------------------------
# Packing: run the token-wise layers on the real tokens only
# ----------------------------------------------------------------------------------------------
class MoveRows(Function):
    """out = zeros(rows, …);  out[dst] = x[src]   (``src`` and ``dst`` without repeats).

    The adjoint moves the rows back: dx = zeros(len(x), …); dx[src] = g[dst] — plain copies,
    no scatter-add, which is what gathering and padding the real tokens of a batch need.
    """

    def forward(self, x, src, dst, rows):
        self.src, self.dst, self.n = src, dst, x.shape[0]
        out = np.zeros((rows,) + x.shape[1:], dtype=x.dtype)
        out[dst] = x[src]
        return out

    def backward(self, g):
        if isinstance(g, Tensor):
            return MoveRows.apply(g, src=self.dst, dst=self.src, rows=self.n)
        out = np.zeros((self.n,) + g.shape[1:], dtype=g.dtype)
        out[self.src] = g[self.dst]
        return out


def move_rows(x: Tensor, src: np.ndarray, dst: np.ndarray, rows: int) -> Tensor:
    return MoveRows.apply(x, src=src, dst=dst, rows=rows)


def length_buckets(lengths: np.ndarray, overhead: int = 64 * 64) -> list[tuple[int, int]]:
    """Cut ascending ``lengths`` into runs [i, j) minimising Σ_runs (count · max_length² + overhead):
    attention costs ∝ T² per sequence once padded to its run's longest (dynamic programming)."""
    n = len(lengths)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        costs = [best[i] + (j - i) * float(lengths[j - 1]) ** 2 + overhead for i in range(j)]
        cut[j] = int(np.argmin(costs))
        best[j] = costs[cut[j]]
    runs, j = [], n
    while j > 0:
        runs.append((int(cut[j]), j))
        j = int(cut[j])
    return runs[::-1]


class Packing:
    """Where the real tokens of a padded (B, T) batch are, to skip the padding.

    Padding costs as much as real tokens in every dense layer, and a batch of sentences of mixed
    lengths is often mostly padding. The token-wise layers (Linear, LayerNorm, GELU) run on the
    N real tokens packed as (N, H). Attention runs on groups of sequences of similar length,
    each padded only to its own longest (``length_buckets``). Exact at every real position.
    """

    def __init__(self, attention_mask: np.ndarray):
        mask = np.asarray(attention_mask, dtype=bool)
        self.B, self.T = mask.shape
        self.index = np.flatnonzero(mask.reshape(-1))  # (N,) rows of the flat (B·T) batch
        self.N = len(self.index)
        lengths = mask.sum(axis=1)  # (B,)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # packed row of each sequence's first token
        order = np.argsort(lengths, kind="stable")
        self.groups = []  # (packed rows, rows in the (b·L) group layout, b, L, key mask)
        for i, j in length_buckets(lengths[order]):
            seqs = order[i:j]
            L = int(lengths[seqs].max())
            src = np.concatenate([starts[s] + np.arange(lengths[s]) for s in seqs])
            dst = np.concatenate([r * L + np.arange(lengths[s]) for r, s in enumerate(seqs)])
            keys = np.arange(L)[None, :] < lengths[seqs][:, None]  # (b, L)
            key_mask = None if keys.all() else keys[:, None, None, :]  # (b, 1, 1, L)
            self.groups.append((src, dst, len(seqs), L, key_mask))
        self.group_rows = np.concatenate([g[0] for g in self.groups])  # packed row of each grouped row

    def unpad(self, x: Tensor) -> Tensor:
        """(B, T, …) → (N, …)"""
        flat = x.reshape((self.B * self.T,) + x.shape[2:])
        return move_rows(flat, self.index, np.arange(self.N), self.N)

    def pad(self, x: Tensor) -> Tensor:
        """(N, …) → (B, T, …) with zeros at the padding."""
        out = move_rows(x, np.arange(self.N), self.index, self.B * self.T)
        return out.reshape((self.B, self.T) + x.shape[1:])

    def attention(self, q: Tensor, k: Tensor, v: Tensor, heads: int, attend) -> Tensor:
        """Multi-head attention of packed q, k, v (N, H), group by group → context (N, H).

        ``attend(q, k, v, key_mask)`` takes (b, A, L, d) heads and returns the context likewise.
        """
        H = q.shape[-1]
        d = H // heads
        contexts = []
        for src, dst, b, L, key_mask in self.groups:
            def split(x):  # (N, H) -> (b, A, L, d)
                return move_rows(x, src, dst, b * L).reshape(b, L, heads, d).transpose(1, 2)

            context = attend(split(q), split(k), split(v), key_mask)  # (b, A, L, d)
            context = context.transpose(1, 2).reshape(b * L, H)  # (b·L, H)
            contexts.append(move_rows(context, dst, np.arange(len(dst)), len(dst)))  # (n_group, H)
        grouped = contexts[0] if len(contexts) == 1 else cat(contexts, dim=0)  # (N, H), grouped order
        return move_rows(grouped, np.arange(self.N), self.group_rows, self.N)  # (N, H), packed order
