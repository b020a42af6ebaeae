"""Random numbers: one global NumPy Generator that ``manual_seed`` resets, plus explicit
``Generator`` objects for code that wants its own stream. The same seed gives the same numbers."""
from __future__ import annotations

import numbers

import numpy as np

from minigrad.checks import check_dtype, describe, sizes
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


def _dtype(fn: str, dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype is None else check_dtype(fn, dtype)


def _size(fn: str, size) -> tuple:
    """``f(2, 3)`` or ``f((2, 3))`` as a tuple of non-negative ints, with errors naming ``fn``."""
    size = sizes(fn, size)
    if any(s < 0 for s in size):
        raise ValueError(f"{fn}: negative dimension in size {size}")
    return size


def _like(fn: str, t) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: expected a Tensor, got {describe(t)}")
    return t


def _fill(fn: str, value):
    """A fill value is one number (bool, int or float), as torch's ``fill_value: Number``; None is not NaN."""
    if not isinstance(value, (bool, numbers.Real)):
        raise TypeError(f"{fn}: fill_value must be a number, got {describe(value)}")
    return value


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """A new tensor holding a copy of ``data`` (float32 for Python floats)."""
    return Tensor(np.array(_default_array(data, dtype, fn="tensor"), copy=True), requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(np.zeros(_size("zeros", size), dtype=_dtype("zeros", dtype)), requires_grad=requires_grad)


def ones(*size, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(np.ones(_size("ones", size), dtype=_dtype("ones", dtype)), requires_grad=requires_grad)


def empty(*size, dtype=None, requires_grad=False) -> Tensor:
    """torch.empty's name; the memory is zeroed here, so the same program gives the same numbers."""
    return Tensor(np.zeros(_size("empty", size), dtype=_dtype("empty", dtype)), requires_grad=requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(np.full(_size("full", (size,)), _fill("full", fill_value), dtype=_dtype("full", dtype)), requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad=False) -> Tensor:
    """The n×m identity matrix (m = n by default): ones on the diagonal, zeros elsewhere."""
    n, m = _size("eye", (n, n if m is None else m))
    return Tensor(np.eye(n, m, dtype=_dtype("eye", dtype)), requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    t = _like("zeros_like", t)
    return Tensor(np.zeros(t.shape, dtype=t.dtype if dtype is None else _dtype("zeros_like", dtype)),
                  requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    t = _like("ones_like", t)
    return Tensor(np.ones(t.shape, dtype=t.dtype if dtype is None else _dtype("ones_like", dtype)),
                  requires_grad=requires_grad)


def empty_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    """torch.empty_like's name; zeroed, as ``empty``."""
    t = _like("empty_like", t)
    return Tensor(np.zeros(t.shape, dtype=t.dtype if dtype is None else _dtype("empty_like", dtype)),
                  requires_grad=requires_grad)


def full_like(t: Tensor, fill_value, dtype=None, requires_grad=False) -> Tensor:
    """A tensor of ``t``'s shape (and dtype, unless given) filled with ``fill_value``."""
    t = _like("full_like", t)
    return Tensor(np.full(t.shape, _fill("full_like", fill_value), dtype=t.dtype if dtype is None else _dtype("full_like", dtype)),
                  requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False) -> Tensor:
    """start, start + step, … up to (not including) end; ``arange(n)`` is 0 … n − 1 (int64 for ints, else float32)."""
    if end is None:
        start, end = 0, start
    for name, value in (("start", start), ("end", end), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"arange: {name} must be a number, got {describe(value)}")
        if not np.isfinite(value):
            raise ValueError(f"arange: {name} must be finite, got {value}")
    if step == 0:
        raise ValueError("arange: step must be nonzero, got 0")
    if (end - start) * step < 0:  # torch refuses where NumPy quietly returns nothing
        raise ValueError(f"arange: step {step} goes away from end {end} (start {start}); "
                         "use a step of the other sign")
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = np.int64 if is_int else np.float32
    return Tensor(np.arange(start, end, step, dtype=_dtype("arange", dtype)), requires_grad=requires_grad)


def randn(*size, generator: Generator | None = None, dtype=None, requires_grad=False) -> Tensor:
    arr = _rng(generator).standard_normal(_size("randn", size)).astype(_dtype("randn", dtype))
    return Tensor(arr, requires_grad=requires_grad)


def rand(*size, generator: Generator | None = None, dtype=None, requires_grad=False) -> Tensor:
    arr = _rng(generator).random(_size("rand", size)).astype(_dtype("rand", dtype))
    return Tensor(arr, requires_grad=requires_grad)


def randint(low, high=None, size=None, generator: Generator | None = None, dtype=np.int64) -> Tensor:
    """Integers drawn uniformly from [low, high): ``randint(low, high, size)`` or ``randint(high, size)`` (as torch)."""
    if size is None:
        if high is None:
            raise TypeError("randint: expected randint(low, high, size) or randint(high, size), got no size")
        low, high, size = 0, low, high
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"randint: {name} must be an integer, got {describe(value)}")
    if not low < high:
        raise ValueError(f"randint: high must be greater than low (the range [low, high) is empty), "
                         f"got low={low}, high={high}")
    dtype = check_dtype("randint", dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"randint: dtype must be an integer dtype, got {dtype}")
    return Tensor(_rng(generator).integers(low, high, size=_size("randint", (size,)), dtype=dtype))


def randperm(n: int, generator: Generator | None = None) -> Tensor:
    (n,) = _size("randperm", (n,))
    return Tensor(_rng(generator).permutation(n).astype(np.int64))
