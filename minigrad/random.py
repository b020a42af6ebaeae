"""Random numbers: one global NumPy Generator that ``manual_seed`` resets, plus explicit
``Generator`` objects for code that wants its own stream. The same seed gives the same numbers."""
from __future__ import annotations

import numpy as np

from minigrad.tensor import Tensor, _default_array


class Generator:
    """A seeded random stream (wraps ``numpy.random.Generator`` with PCG64)."""

    def __init__(self, seed: int | None = None):
        self.manual_seed(0 if seed is None else seed)

    def manual_seed(self, seed: int) -> "Generator":
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"manual_seed: seed must be a non-negative integer, got {seed!r}")
        self.initial_seed = int(seed)
        self.np = np.random.Generator(np.random.PCG64(int(seed)))
        return self

    def get_state(self) -> dict:
        return self.np.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.np.bit_generator.state = state


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Reset the global random stream (parameter init, dropout, randn, …)."""
    return default_generator.manual_seed(seed)


def _rng(generator: Generator | None) -> np.random.Generator:
    return (generator or default_generator).np


def _dtype(dtype) -> np.dtype:
    return np.dtype(np.float32 if dtype is None else dtype)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    size = tuple(int(s) for s in size)
    if any(s < 0 for s in size):
        raise ValueError(f"negative dimension in size {size}")
    return size


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (float32 for Python floats)."""
    return Tensor(np.array(_default_array(data, dtype), copy=True), requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(np.zeros(_size(size), dtype=_dtype(dtype)), requires_grad=requires_grad)


def ones(*size, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(np.ones(_size(size), dtype=_dtype(dtype)), requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(np.full(_size((size,)), fill_value, dtype=_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(np.zeros(t.shape, dtype=dtype or t.dtype), requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(np.ones(t.shape, dtype=dtype or t.dtype), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if is_int else np.float32
    return Tensor(np.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def randn(*size, generator: Generator | None = None, dtype=None, requires_grad=False) -> Tensor:
    arr = _rng(generator).standard_normal(_size(size)).astype(_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def rand(*size, generator: Generator | None = None, dtype=None, requires_grad=False) -> Tensor:
    arr = _rng(generator).random(_size(size)).astype(_dtype(dtype))
    return Tensor(arr, requires_grad=requires_grad)


def randint(low, high, size, generator: Generator | None = None, dtype=np.int64) -> Tensor:
    return Tensor(_rng(generator).integers(low, high, size=_size((size,)), dtype=dtype))


def randperm(n: int, generator: Generator | None = None) -> Tensor:
    return Tensor(_rng(generator).permutation(n).astype(np.int64))
