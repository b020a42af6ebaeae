"""Dropout (Srivastava et al., 2014, "Dropout: A Simple Way to Prevent Neural Networks from
Overfitting"), in its *inverted* form as in PyTorch:

    training:  y = x ⊙ m / (1 − p),   m_i ~ Bernoulli(1 − p)       evaluation:  y = x
"""
from __future__ import annotations

import numbers

from minigrad import functional as F
from minigrad.nn.module import Module
from minigrad.random import Generator
from minigrad.tensor import Tensor


class Dropout(Module):
    """``Dropout(p=0.5, inplace=False)`` — torch.nn.Dropout; identity in ``eval()`` mode.

    ``inplace`` is accepted for PyTorch compatibility (the result is always a new tensor).
    ``generator`` (a ``minigrad.Generator``) gives this layer its own reproducible mask stream;
    by default the global stream (``minigrad.manual_seed``) is used.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False, generator: Generator | None = None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: dropout probability has to be between 0 and 1, but got {p!r}")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"Dropout: generator must be a minigrad.Generator or None, got {type(generator).__name__}")
        self.p = float(p)
        self.inplace = bool(inplace)
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
