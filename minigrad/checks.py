"""Argument checks shared by ``Tensor`` and the tensor factories.

Each error names the function, the argument, what was expected and what came, so that a user who
passes a ragged list, a str or an unknown dtype reads what to fix instead of a NumPy message about
"inhomogeneous shapes". Like ``function.py`` this module imports no other part of minigrad except
``function`` (whose registered Tensor class tells a list of Tensors apart from other objects).
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

from minigrad import function as _function

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a tensor can hold


def describe(value) -> str:
    """A short "what came" for error messages: the type and a clipped repr."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def check_dtype(fn: str, dtype) -> np.dtype:
    """``np.dtype(dtype)`` for the dtypes a tensor can have, with an error naming ``fn`` otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{fn}: dtype {dtype!r} is not a dtype; expected e.g. 'float32', 'float64', 'int64' "
                        "or 'bool'") from None
    if dt.kind not in NUMERIC_KINDS:
        raise TypeError(f"{fn}: dtype {dt} is not supported; expected a bool, integer or float dtype")
    return dt


def ragged_depth(data) -> str:
    """Where a nested list stops being rectangular, found level by level (no recursion)."""
    level, depth = [data], 0
    while level:
        lists = [x for x in level if isinstance(x, (list, tuple))]
        lengths = sorted({len(x) for x in lists})
        if len(lengths) > 1 or (lists and len(lists) < len(level)):
            kinds = [f"lists of length {n}" for n in lengths] + (["numbers"] if len(lists) < len(level) else [])
            return f"at depth {depth} there are {' and '.join(kinds)}"
        level, depth = [y for x in lists for y in x], depth + 1
    return "its items do not line up"


def numeric_array(fn: str, what: str, data) -> np.ndarray:
    """``np.asarray(data)`` for numbers only: a clear error for a ragged list, strings, None or objects
    (NumPy would make a str or object array that fails later, far from the cause)."""
    try:
        arr = data if isinstance(data, np.ndarray) else np.asarray(data)
    except ValueError:
        raise ValueError(f"{fn}: {what} is a ragged nested list ({ragged_depth(data)}); a tensor needs "
                         "rectangular data, every row of the same length") from None
    if arr.dtype.kind not in NUMERIC_KINDS:
        tensor_class = _function._Tensor
        if arr.dtype == object and any(isinstance(x, tensor_class) for x in arr.reshape(-1)[:1000]):
            raise TypeError(f"{fn}: {what} is a list of Tensors; join them with minigrad.stack(...)")
        got = "None" if data is None else f"dtype {arr.dtype} ({describe(data)})"
        raise TypeError(f"{fn}: {what} must hold numbers (bool, integer or float), got {got}")
    return arr


def sizes(fn: str, shape) -> tuple:
    """Sizes given as ``f(2, 3)`` or ``f((2, 3))``, each an integer (a str or a float is a TypeError naming ``fn``)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    out = []
    for s in shape:
        try:
            out.append(operator.index(s))
        except TypeError:
            raise TypeError(f"{fn}: sizes must be integers, got {describe(s)} in {tuple(shape)!r}") from None
    return tuple(out)


def number(fn: str, name: str, value) -> float:
    """``float(value)`` for a real number (not a bool, a str or None), with an error naming ``fn`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a number, got {describe(value)}")
    return float(value)


def integer(fn: str, name: str, value) -> int:
    """``operator.index(value)``: an int (or NumPy integer), not a float, a str or None."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{fn}: {name} must be an integer, got {describe(value)}") from None


def norm_axis(fn: str, ndim: int, axis) -> int:
    """``axis`` in [0, ndim) from Python's negative indexing; a 0-d tensor takes dim 0 or -1, as in torch."""
    axis = integer(fn, "dim", axis)
    if not -max(ndim, 1) <= axis < max(ndim, 1):
        raise IndexError(f"{fn}: dimension {axis} out of range for a tensor with {ndim} dimensions")
    return axis % max(ndim, 1)


def resolve_shape(fn: str, old: tuple, new: tuple) -> tuple:
    """The target shape of a reshape with its one ``-1`` worked out, or an error naming ``fn``."""
    size = int(np.prod(old))
    if new.count(-1) > 1:
        raise ValueError(f"{fn}: only one dimension can be -1, got {new}")
    if -1 in new:
        known = int(np.prod([s for s in new if s != -1]))
        if known == 0 or size % known:
            raise ValueError(f"{fn}: cannot reshape tensor of shape {old} into {new}")
        new = tuple(size // known if s == -1 else s for s in new)
    if int(np.prod(new)) != size:
        raise ValueError(f"{fn}: cannot reshape tensor of shape {old} (size {size}) into {new}")
    return new
