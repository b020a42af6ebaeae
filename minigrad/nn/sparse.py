"""Word embeddings: a lookup table of trainable vectors, one row per token id (book ch. 1).

    E ∈ ℝ^{V×D},   embed(ids) = E[ids]            (same as one_hot(ids) @ E, without the matmul)

The backward is a scatter-add: dE[v] = Σ over positions t with ids[t] = v of g[t]; the kernel
(``minigrad/kernels/embedding.py``) does it as one sparse product, and ``benchmarks/layers_basic.py``
compares it with ``np.add.at`` and torch.
"""
from __future__ import annotations

import numbers

import numpy as np

from minigrad import functional as F
from minigrad.nn import init
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.tensor import Tensor


def _check_count(name: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"Embedding: {name} must be a non-negative integer, got {n!r}")
    return int(n)


def _padding_index(padding_idx, num: int):
    """Normalise a (possibly negative) padding index as torch does; None stays None."""
    if padding_idx is None:
        return None
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, numbers.Integral):
        raise TypeError(f"Embedding: padding_idx must be an int or None, got {padding_idx!r}")
    if not -num <= padding_idx < num:
        raise ValueError(f"Embedding: padding_idx must be within num_embeddings={num}, got {padding_idx}")
    return int(padding_idx) % num


class Embedding(Module):
    """``Embedding(num_embeddings, embedding_dim, padding_idx=None)`` — torch.nn.Embedding.

    ``weight`` has shape (num_embeddings, embedding_dim) and starts as N(0, 1), with the
    ``padding_idx`` row zeroed; that row never receives a gradient, so it stays as it is.
    Input: integer ids of any shape (*); output: (*, embedding_dim).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, dtype=None,
                 generator=None):
        super().__init__()
        self.num_embeddings = _check_count("num_embeddings", num_embeddings)
        self.embedding_dim = _check_count("embedding_dim", embedding_dim)
        self.padding_idx = _padding_index(padding_idx, self.num_embeddings)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"Embedding: dtype must be floating-point, got {dtype}")
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=dtype))
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        init.normal_(self.weight, generator=generator)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0.0

    def forward(self, ids) -> Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)  # (*, D)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None) -> "Embedding":
        """An Embedding whose weight is ``embeddings`` (V, D), shared not copied (as torch);
        ``freeze=True`` makes it non-trainable. The padding row is *not* zeroed."""
        arr = embeddings.data if isinstance(embeddings, Tensor) else np.asarray(embeddings)
        if arr.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D (num_embeddings, embedding_dim), "
                             f"got shape {arr.shape}")
        if arr.dtype.kind != "f":
            raise TypeError(f"Embedding.from_pretrained: embeddings must be floating-point, got dtype {arr.dtype}")
        module = cls.__new__(cls)
        Module.__init__(module)
        module.num_embeddings, module.embedding_dim = arr.shape
        module.padding_idx = _padding_index(padding_idx, arr.shape[0])
        module.weight = Parameter(arr, requires_grad=not freeze)
        return module

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            text += f", padding_idx={self.padding_idx}"
        return text
