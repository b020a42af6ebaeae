"""Positional encodings (book ch. 3): self-attention is blind to order, so each position adds
its own vector to the token embedding.

* ``SinusoidalPositionalEncoding`` — fixed (Vaswani et al., 2017, §3.5):

      PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
      PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))

* ``LearnedPositionalEmbedding`` — one trained vector per position (BERT, GPT-2).

Both take ``offset``: the position of the first token of ``x``, for incremental decoding where
one token at position ``offset`` = number of tokens already decoded arrives per step.
"""
from __future__ import annotations

import numpy as np

from minigrad.nn import init
from minigrad.nn.dropout import Dropout
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.tensor import Tensor


def _positions(fn: str, x, d_model: int, max_len: int, offset: int, batch_first: bool) -> tuple[int, int]:
    """(sequence axis, length) of ``x``, with clear errors for bad shapes and positions."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        raise ValueError(f"{fn}: input must be (L, N, {d_model}), (N, L, {d_model}) with batch_first, or "
                         f"unbatched (L, {d_model}); got shape {x.shape}")
    axis = 1 if (batch_first and x.ndim == 3) else 0
    length = x.shape[axis]
    if not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ValueError(f"{fn}: offset must be a non-negative integer, got {offset!r}")
    if offset + length > max_len:
        raise ValueError(f"{fn}: positions {offset}..{offset + length - 1} exceed max_len={max_len} "
                         f"(sequence of length {length} at offset {offset}); build the layer with a larger max_len")
    return axis, length


def _broadcast_rows(rows, x, axis: int):
    """(L, d) position rows shaped to add to x: (L, 1, d), (1, L, d) or (L, d)."""
    if x.ndim == 2:
        return rows
    return rows[:, None, :] if axis == 0 else rows[None, :, :]


def sinusoidal_table(max_len: int, d_model: int) -> np.ndarray:
    """The (max_len, d_model) table of Vaswani et al. in float64 (odd d_model allowed)."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]  # (max_len, 1)
    inv_freq = np.exp(np.arange(0, d_model, 2, dtype=np.float64) * (-np.log(10000.0) / d_model))  # 1/10000^(2i/d)
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(pos * inv_freq)  # even dims 2i
    table[:, 1::2] = np.cos(pos * inv_freq[: d_model // 2])  # odd dims 2i+1
    return table


class SinusoidalPositionalEncoding(Module):
    """``x + PE[offset : offset + L]``, then dropout (Vaswani et al., 2017, §3.5).

    ``forward(x, offset=0)``: x (L, N, d_model) — (N, L, d_model) with ``batch_first`` — or
    (L, d_model). The table is a non-persistent buffer ``pe`` (not in ``state_dict``).
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0, batch_first: bool = False,
                 dtype=None):
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise ValueError(f"SinusoidalPositionalEncoding: d_model and max_len must be positive, "
                             f"got {d_model} and {max_len}")
        self.d_model, self.max_len, self.batch_first = int(d_model), int(max_len), bool(batch_first)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model).astype(dtype), persistent=False)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        axis, length = _positions(type(self).__name__, x, self.d_model, self.max_len, offset, self.batch_first)
        rows = self.pe.data[offset:offset + length].astype(x.dtype, copy=False)  # (L, d)
        return self.dropout(x + Tensor._wrap(_broadcast_rows(rows, x, axis)))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


class LearnedPositionalEmbedding(Module):
    """``x + P[offset : offset + L]`` with a trained table ``weight`` (max_len, d_model)
    (BERT's ``position_embeddings``, GPT-2's ``wpe``), initialised N(0, 0.02²) as those models do.

    ``forward(x, offset=0)`` with x shaped as in ``SinusoidalPositionalEncoding``.
    """

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0, batch_first: bool = False, dtype=None,
                 generator=None):
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise ValueError(f"LearnedPositionalEmbedding: max_len and d_model must be positive, "
                             f"got {max_len} and {d_model}")
        self.max_len, self.d_model, self.batch_first = int(max_len), int(d_model), bool(batch_first)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.weight = Parameter(np.empty((self.max_len, self.d_model), dtype=dtype))
        init.normal_(self.weight, 0.0, 0.02, generator=generator)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        axis, length = _positions(type(self).__name__, x, self.d_model, self.max_len, offset, self.batch_first)
        rows = self.weight[offset:offset + length]  # (L, d)
        if x.ndim == 3:
            rows = rows.unsqueeze(axis ^ 1)  # (L, 1, d) or (1, L, d)
        return self.dropout(x + rows)

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, d_model={self.d_model}, batch_first={self.batch_first}"
