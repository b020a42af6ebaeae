"""The Tensor: an n-dimensional NumPy array that remembers how it was made.

A Tensor wraps a NumPy array. Every differentiable operation is a `Function` subclass (the
graph node, `minigrad/function.py`; the primitive ones are in `minigrad/ops.py`) with a NumPy
`forward` and a `backward` written once for arrays and Tensors, so that a backward pass can
itself be differentiated (higher-order gradients). The methods here check their arguments and
call those Functions; composite operations (``mean``, ``var``, ``min``, ``stack``, ``split`` …)
are built from primitive ones and need no rule of their own.

Dtype policy: float32 by default. Two tensors of *different float dtypes* in one operation are
refused with a TypeError (cast one with `.float()`/`.double()`), because silent promotion hides
precision bugs in gradient checks. Python scalars and NumPy arrays mixed with a float tensor
take the tensor's dtype, as Python scalars do in PyTorch.
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from minigrad import ops
from minigrad.checks import check_dtype as _check_dtype
from minigrad.checks import describe as _describe
from minigrad.checks import integer as _integer
from minigrad.checks import norm_axis as _norm_axis
from minigrad.checks import number as _number
from minigrad.checks import numeric_array as _numeric_array
from minigrad.checks import resolve_shape as _resolve_shape
from minigrad.checks import sizes as _shape_arg
from minigrad.kernels import activation as kernels_activation
from minigrad.function import (  # noqa: F401  (grad mode is re-exported here, where it used to live)
    Function,
    _register_tensor_class,
    _set_grad_enabled,
    enable_grad,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)

# ----------------------------------------------------------------------------------------------
# Tensor
# ----------------------------------------------------------------------------------------------
_FLOAT_KINDS = "f"


def _default_array(data, dtype=None, fn: str = "Tensor") -> np.ndarray:
    """Array from user data: Python floats -> float32, ints -> int64, arrays keep their dtype."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return _numeric_array(fn, "data", data).astype(_check_dtype(fn, dtype), copy=False)
    if isinstance(data, np.ndarray):
        return _numeric_array(fn, "data", data)
    if isinstance(data, np.generic):  # NumPy scalars keep their dtype, like arrays
        return _numeric_array(fn, "data", np.asarray(data))
    arr = _numeric_array(fn, "data", data)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind == "i":
        arr = arr.astype(np.int64, copy=False)
    return arr


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    ``Tensor(data, requires_grad=False, dtype=None)`` wraps ``data`` without copying when it is
    already an ndarray of the right dtype (``minigrad.tensor`` always copies).
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "__weakref__")
    # NumPy must hand `ndarray <op> Tensor` to Tensor's reflected operator, not loop over it.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        arr = _default_array(data, dtype)
        if requires_grad is not False and requires_grad is not True:
            _check_flag("Tensor", requires_grad)
        if requires_grad and arr.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(f"Tensor: only floating-point tensors can require grad, got dtype {arr.dtype}")
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None

    # fast internal constructors (no checks)
    @staticmethod
    def _wrap(arr: np.ndarray) -> "Tensor":
        t = object.__new__(Tensor)
        t.data = arr
        t.grad = None
        t.requires_grad = False
        t.grad_fn = None
        return t

    @staticmethod
    def _from_node(arr: np.ndarray, fn: Function) -> "Tensor":
        t = object.__new__(Tensor)
        t.data = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
        t.grad = None
        t.requires_grad = True
        t.grad_fn = fn
        return t

    # ---------------------------------------------------------------- attributes
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> "Tensor":
        """All dimensions reversed (as NumPy's and PyTorch's ``.T`` for 2-D)."""
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extra = ""
        if self.data.dtype != np.float32:
            extra += f", dtype={self.data.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn!r}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"bool() of a tensor with {self.data.size} elements is ambiguous")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.data.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.data)

    __hash__ = object.__hash__  # __eq__ is elementwise, identity hashing stays

    # ---------------------------------------------------------------- conversion
    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): tensor has {self.data.size} elements, expected exactly 1")
        return self.data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("numpy(): tensor requires grad; call .detach().numpy() (or use .data)")
        return self.data

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory, like PyTorch)."""
        return Tensor._wrap(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        _check_flag("requires_grad_", requires_grad)
        if requires_grad and self.data.dtype.kind not in _FLOAT_KINDS:
            raise TypeError(f"requires_grad_: only floating-point tensors can require grad, got dtype {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def astype(self, dtype) -> "Tensor":
        dtype = np.dtype(dtype)
        if dtype == self.data.dtype:
            return self
        if dtype.kind in _FLOAT_KINDS and self.data.dtype.kind in _FLOAT_KINDS:
            return ops.Cast.apply(self, dtype=dtype)
        return Tensor._wrap(self.data.astype(dtype))

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    def long(self) -> "Tensor":
        return self.astype(np.int64)

    def int(self) -> "Tensor":
        return self.astype(np.int32)

    def bool(self) -> "Tensor":
        return self.astype(np.bool_)

    def contiguous(self) -> "Tensor":
        return self

    def clone(self) -> "Tensor":
        return ops.Clone.apply(self)

    # ---------------------------------------------------------------- autograd
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (a NumPy array)."""
        from minigrad.autograd import backward

        backward((self,), None if grad is None else (grad,), retain_graph=retain_graph)

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in ``.grad`` during backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self.grad_fn is None:
            return
        fn = self.grad_fn
        if fn.retainers is None:
            fn.retainers = []
        fn.retainers.append(weakref.ref(self))

    def zero_grad_(self) -> None:
        self.grad = None

    # ---------------------------------------------------------------- arithmetic
    def _lift(self, other, op: str = "operation") -> "Tensor":
        """Turn a scalar/array operand into a Tensor compatible with self (see dtype policy);
        anything that is not numbers (None, a str, a ragged list) is a TypeError naming ``op``."""
        if isinstance(other, Tensor):
            return other
        if self.data.dtype.kind in _FLOAT_KINDS:
            if type(other) is float or type(other) is int:
                return Tensor._wrap(self.data.dtype.type(other))  # a NumPy scalar: cheapest operand
            return Tensor._wrap(_operand(op, other).astype(self.data.dtype, copy=False))
        arr = _operand(op, other)
        if arr.dtype == np.float64 and not isinstance(other, np.ndarray):
            arr = arr.astype(np.float32)
        return Tensor._wrap(arr)

    def _pair(self, other, op: str, reflected: bool = False):
        other = self._lift(other, op)
        if other.data.dtype != self.data.dtype:
            a, b = _promote(op, self, other)
            return (b, a) if reflected else (a, b)
        return (other, self) if reflected else (self, other)

    def __add__(self, other):
        return ops.Add.apply(*self._pair(other, "add"))

    def __radd__(self, other):
        return ops.Add.apply(*self._pair(other, "add", True))

    def __sub__(self, other):
        return ops.Sub.apply(*self._pair(other, "sub"))

    def __rsub__(self, other):
        return ops.Sub.apply(*self._pair(other, "sub", True))

    def __mul__(self, other):
        return ops.Mul.apply(*self._pair(other, "mul"))

    def __rmul__(self, other):
        return ops.Mul.apply(*self._pair(other, "mul", True))

    def __truediv__(self, other):
        return ops.Div.apply(*self._pair(other, "div"))

    def __rtruediv__(self, other):
        return ops.Div.apply(*self._pair(other, "div", True))

    def __pow__(self, exponent):
        if isinstance(exponent, numbers.Real) or (isinstance(exponent, np.ndarray) and exponent.ndim == 0
                                                  and exponent.dtype.kind in "biuf"):
            return ops.PowScalar.apply(self, exponent=float(exponent))
        return ops.Pow.apply(*self._pair(exponent, "pow"))

    def __rpow__(self, base):
        return ops.Pow.apply(*self._pair(base, "pow", True))

    def __matmul__(self, other):
        return matmul(self, self._lift(other, "matmul"))

    def __rmatmul__(self, other):
        return matmul(self._lift(other, "matmul"), self)

    def __neg__(self):
        return ops.Neg.apply(self)

    def __pos__(self):
        return self

    # comparisons: results never require grad. `==` / `!=` with something that is not numbers
    # (None, a str) give False / True, as in Python and torch; the ordering ones raise.
    def __eq__(self, other):  # type: ignore[override]
        if not _is_numbers(other):
            return NotImplemented
        return self.eq(other)

    def __ne__(self, other):  # type: ignore[override]
        if not _is_numbers(other):
            return NotImplemented
        return self.ne(other)

    def __lt__(self, other):
        return self.lt(other)

    def __le__(self, other):
        return self.le(other)

    def __gt__(self, other):
        return self.gt(other)

    def __ge__(self, other):
        return self.ge(other)

    def __invert__(self):
        if self.data.dtype != np.bool_:
            raise TypeError(f"~ is defined for bool tensors, got dtype {self.dtype}")
        return Tensor._wrap(~self.data)

    def __and__(self, other):
        return Tensor._wrap(self.data & _bitwise_operand("and", self, other))

    def __or__(self, other):
        return Tensor._wrap(self.data | _bitwise_operand("or", self, other))

    def __abs__(self):
        return self.abs()

    # ---------------------------------------------------------------- the operators as methods (torch's names)
    def add(self, other, *, alpha=1):
        """self + alpha·other."""
        return self + _scaled(self, other, alpha, "add")

    def sub(self, other, *, alpha=1):
        """self − alpha·other."""
        return self - _scaled(self, other, alpha, "sub")

    def mul(self, other):
        return self * other

    def div(self, other, *, rounding_mode=None):
        """self / other; ``rounding_mode`` None (true division), 'trunc' (toward zero) or 'floor' (as torch)."""
        if rounding_mode not in (None, "trunc", "floor"):
            raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
        quotient = self / other
        if rounding_mode is None:
            return quotient
        rounded = quotient.trunc() if rounding_mode == "trunc" else quotient.floor()
        both_integer = self.dtype.kind in "iu" and self._lift(other, "div").dtype.kind in "iub"
        return rounded.astype(np.int64) if both_integer else rounded  # integer ÷ integer stays integer

    def pow(self, exponent):
        return self ** exponent

    def eq(self, other):
        return Tensor._wrap(self.data == _operand_data("eq", other))

    def ne(self, other):
        return Tensor._wrap(self.data != _operand_data("ne", other))

    def lt(self, other):
        return Tensor._wrap(self.data < _operand_data("lt", other))

    def le(self, other):
        return Tensor._wrap(self.data <= _operand_data("le", other))

    def gt(self, other):
        return Tensor._wrap(self.data > _operand_data("gt", other))

    def ge(self, other):
        return Tensor._wrap(self.data >= _operand_data("ge", other))

    # ---------------------------------------------------------------- elementwise math
    def neg(self):
        return ops.Neg.apply(self)

    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def rsqrt(self):
        return ops.PowScalar.apply(self, exponent=-0.5)

    def reciprocal(self):
        """1 / x (an integer tensor gives float32, as torch)."""
        return 1.0 / self

    def abs(self):
        return ops.Abs.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def relu(self):
        return ops.Relu.apply(self)

    def gelu(self, approximate: str = "none"):
        return kernels_activation.gelu(self, approximate)

    def softplus(self, beta: float = 1.0, threshold: float = 20.0):
        return ops.Softplus.apply(self, beta=float(beta), threshold=float(threshold))

    def sin(self):
        return ops.Sin.apply(self)

    def cos(self):
        return ops.Cos.apply(self)

    def erf(self):
        return ops.Erf.apply(self)

    def tan(self):
        return ops.Tan.apply(self)

    def log2(self):
        return ops.Log2.apply(self)

    def square(self):
        return self * self

    def sign(self):
        """−1, 0 or 1; in the graph with a zero gradient (as torch)."""
        return self if self.dtype == np.bool_ else ops.Sign.apply(self)

    def floor(self):
        """⌊x⌋ (zero gradient); integer tensors are returned as they are."""
        return ops.Floor.apply(self) if self.dtype.kind in _FLOAT_KINDS else self

    def ceil(self):
        """⌈x⌉ (zero gradient); integer tensors are returned as they are."""
        return ops.Ceil.apply(self) if self.dtype.kind in _FLOAT_KINDS else self

    def trunc(self):
        """x rounded toward zero (zero gradient); integer tensors are returned as they are."""
        return ops.Trunc.apply(self) if self.dtype.kind in _FLOAT_KINDS else self

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        lo, hi = (None if v is None else _number("clamp", name, v) for name, v in (("min", min), ("max", max)))
        return ops.Clamp.apply(self, lo=lo, hi=hi)

    clip = clamp

    def maximum(self, other):
        return maximum(self, other)

    def minimum(self, other):
        return minimum(self, other)

    # ---------------------------------------------------------------- reductions
    def sum(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args("sum", self, axis, keepdims, dim, keepdim)
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args("mean", self, axis, keepdims, dim, keepdim)
        count = _reduced_count(self.shape, axis)  # 0 over an empty dimension: the mean is NaN (as torch)
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims) * (1.0 / count if count else float("nan"))

    def max(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """Maximum values (like ``torch.amax``; for the indices use ``argmax``).

        Ties: the gradient is split evenly among the tied elements (as ``torch.amax``).
        """
        axis, keepdims = _axis_args("max", self, axis, keepdims, dim, keepdim)
        _check_nonempty_reduction("max", self, axis)
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        """Minimum values; ties split the gradient evenly (min(x) = -max(-x))."""
        axis, keepdims = _axis_args("min", self, axis, keepdims, dim, keepdim)
        _check_nonempty_reduction("min", self, axis)
        return -ops.Max.apply(-self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args("argmax", self, axis, keepdims, dim, keepdim, single=True)
        _check_nonempty_reduction("argmax", self, axis)
        return Tensor._wrap(np.argmax(self.data, axis=axis, keepdims=keepdims))

    def argmin(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args("argmin", self, axis, keepdims, dim, keepdim, single=True)
        _check_nonempty_reduction("argmin", self, axis)
        return Tensor._wrap(np.argmin(self.data, axis=axis, keepdims=keepdims))

    def var(self, axis=None, keepdims: bool = False, *, correction: int = 1, dim=None, keepdim=None,
            unbiased=None):
        """Variance with Bessel's correction by default (``correction=1``), as ``torch.var``."""
        axis, keepdims = _axis_args("var", self, axis, keepdims, dim, keepdim)
        if unbiased is not None:
            correction = 1 if unbiased else 0
        dof = _reduced_count(self.shape, axis) - correction
        centered = self - self.mean(axis=axis, keepdims=True)
        return (centered * centered).sum(axis=axis, keepdims=keepdims) * (1.0 / dof if dof > 0 else float("nan"))

    def std(self, axis=None, keepdims: bool = False, *, correction: int = 1, dim=None, keepdim=None,
            unbiased=None):
        axis, keepdims = _axis_args("std", self, axis, keepdims, dim, keepdim)  # errors name std, not var
        return self.var(axis, keepdims, correction=correction, unbiased=unbiased).sqrt()

    def logsumexp(self, axis=None, keepdims: bool = False, *, dim=None, keepdim=None):
        axis, keepdims = _axis_args("logsumexp", self, axis, keepdims, dim, keepdim)
        return ops.LogSumExp.apply(self, axis=axis, keepdims=keepdims)

    def cumsum(self, dim: int, *, dtype=None):
        """Running sum along ``dim`` (bool and integer tensors give int64, as torch)."""
        x = self if dtype is None else self.astype(_check_dtype("cumsum", dtype))
        axis = _norm_axis("cumsum", x.ndim, dim)
        if x.ndim == 0:
            return ops.Cumsum.apply(x.reshape(1), axis=0).reshape(())
        return ops.Cumsum.apply(x, axis=axis)

    def softmax(self, dim: int = -1):
        return ops.Softmax.apply(self, axis=_norm_axis("softmax", self.ndim, dim))

    def log_softmax(self, dim: int = -1):
        return ops.LogSoftmax.apply(self, axis=_norm_axis("log_softmax", self.ndim, dim))

    # ---------------------------------------------------------------- shape
    def reshape(self, *shape):
        new_shape = _resolve_shape("reshape", self.shape, _shape_arg("reshape", shape))
        if new_shape == self.shape:
            return self
        return ops.Reshape.apply(self, shape=new_shape)

    view = reshape

    def reshape_as(self, other):
        return self.reshape(_tensor_arg("reshape_as", other).shape)

    view_as = reshape_as

    def expand_as(self, other):
        return self.expand(_tensor_arg("expand_as", other).shape)

    def type_as(self, other):
        return self.astype(_tensor_arg("type_as", other).dtype)

    def t(self):
        """The transpose of a matrix; 0-d and 1-D tensors come back as they are (torch's ``t()``)."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with at most 2 dimensions, got shape {self.shape}; "
                             "use transpose(dim0, dim1) or permute")
        return self.T

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s = _norm_axis("flatten", self.ndim, start_dim)
        e = _norm_axis("flatten", self.ndim, end_dim)
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape[:s] + (int(np.prod(self.shape[s:e + 1])),) + self.shape[e + 1:]
        return self.reshape(shape)

    def unsqueeze(self, dim: int):
        d = _norm_axis("unsqueeze", self.ndim + 1, dim)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(s for s in self.shape if s != 1))
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = {_norm_axis("squeeze", self.ndim, d) for d in dims}
        return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))

    def permute(self, *dims):
        dims = _shape_arg("permute", dims)
        if sorted(_norm_axis("permute", self.ndim, d) for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {tuple(dims)} are not a permutation of {self.ndim} dimensions")
        axes = tuple(_norm_axis("permute", self.ndim, d) for d in dims)
        return ops.Permute.apply(self, axes=axes)

    def transpose(self, dim0: int, dim1: int):
        """Swap two dimensions (PyTorch's meaning, not NumPy's full permutation)."""
        axes = list(range(self.ndim))
        a, b = _norm_axis("transpose", self.ndim, dim0), _norm_axis("transpose", self.ndim, dim1)
        axes[a], axes[b] = axes[b], axes[a]
        return ops.Permute.apply(self, axes=tuple(axes))

    swapaxes = transpose

    def expand(self, *sizes):
        sizes = _shape_arg("expand", sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"expand: cannot expand shape {self.shape} to {tuple(sizes)} (fewer dimensions)")
        lead = len(sizes) - self.ndim
        target = tuple(self.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes))
        for i in range(self.ndim):
            if self.shape[i] != 1 and self.shape[i] != target[i + lead]:
                raise ValueError(f"expand: cannot expand shape {self.shape} to {tuple(sizes)}")
        if target == self.shape:
            return self
        return ops.Expand.apply(self, shape=target)

    broadcast_to = expand

    def repeat(self, *sizes):
        """Tile the tensor ``sizes[i]`` times along dimension i (torch's ``repeat``, NumPy's ``tile``); more
        sizes than dimensions add leading ones. Built as reshape → expand → reshape, so the gradient sums the tiles."""
        sizes = _shape_arg("repeat", sizes)
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: got {len(sizes)} repeat counts for a tensor with {self.ndim} dimensions "
                             f"(shape {self.shape}); give at least {self.ndim}")
        if any(r < 0 for r in sizes):
            raise ValueError(f"repeat: repeat counts must be >= 0, got {sizes}")
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        tiles = tuple(v for r, n in zip(sizes, shape) for v in (r, n))  # (r0, n0, r1, n1, …)
        tiled = self.reshape(tuple(v for n in shape for v in (1, n))).expand(*tiles)
        return tiled.reshape(tuple(r * n for r, n in zip(sizes, shape)))

    def flip(self, *dims):
        """Reverse the order along each of ``dims`` (a copy in torch; here a reversed view, same values)."""
        dims = _shape_arg("flip", dims)
        axes = {_norm_axis("flip", self.ndim, d) for d in dims}
        if len(axes) != len(dims):
            raise ValueError(f"flip: dims {dims} name a dimension twice")
        if self.ndim == 0 or not axes:
            return self
        return self[tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(self.ndim))]

    def tril(self, diagonal: int = 0):
        """The lower triangle of the last two dimensions (on and below ``diagonal``); zeros above."""
        k = _integer("tril", "diagonal", diagonal)
        return self._triangle("tril", np.tri(*self.shape[-2:], k=k, dtype=bool) if self.ndim >= 2 else None)

    def triu(self, diagonal: int = 0):
        """The upper triangle of the last two dimensions (on and above ``diagonal``); zeros below."""
        k = _integer("triu", "diagonal", diagonal)
        return self._triangle("triu", ~np.tri(*self.shape[-2:], k=k - 1, dtype=bool) if self.ndim >= 2 else None)

    def _triangle(self, op: str, keep):
        if keep is None:
            raise ValueError(f"{op}: the input must have at least 2 dimensions, got shape {self.shape}")
        return ops.Where.apply(self, Tensor._wrap(np.zeros((), self.dtype)), condition=keep)

    def sum_to(self, shape):
        """Sum broadcast dimensions away so the result has ``shape`` (the inverse of expand)."""
        shape = tuple(shape)
        if shape == self.shape:
            return self
        return ops.SumTo.apply(self, shape=shape)

    def __getitem__(self, index):
        return ops.GetItem.apply(self, index=_index_arg(index))

    def gather(self, dim: int, index):
        """``out[i][j] = self[i][index[i][j]]`` along ``dim`` (torch.gather / take_along_axis)."""
        idx = _raw(index)
        axis = _norm_axis("gather", self.ndim, dim)
        if not isinstance(idx, np.ndarray) or idx.dtype.kind not in "iu":
            raise TypeError(f"gather: index must be an integer tensor, got {type(index).__name__}")
        if idx.ndim != self.ndim:
            raise ValueError(f"gather: index has {idx.ndim} dimensions, input has {self.ndim}")
        n = self.shape[axis]
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"gather: index out of range for dimension {dim} of size {n}")
        return ops.Gather.apply(self, index=idx, axis=axis)

    take_along_axis = gather

    def split(self, split_size_or_sections, dim: int = 0):
        return split(self, split_size_or_sections, dim)

    def chunk(self, chunks: int, dim: int = 0):
        return chunk(self, chunks, dim)

    def where(self, condition, other):
        """``self`` where ``condition`` is True, else ``other`` (torch's ``Tensor.where``)."""
        return where(condition, self, other)

    def masked_fill(self, mask, value):
        mask = _raw(mask)
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            raise TypeError("masked_fill: mask must be a bool tensor")
        try:
            np.broadcast_shapes(mask.shape, self.shape)
        except ValueError:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to {self.shape}") from None
        if np.broadcast_shapes(mask.shape, self.shape) != self.shape:
            raise ValueError(f"masked_fill: mask of shape {mask.shape} would grow the input {self.shape}")
        return where(mask, value, self)

    def matmul(self, other):
        return matmul(self, other)


# ----------------------------------------------------------------------------------------------
# helpers shared by the Tensor methods and the functions below
# ----------------------------------------------------------------------------------------------
def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _promote(op: str, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Operands of different dtypes: a float tensor meets an int one -> the float dtype;
    two different float dtypes are refused (see the dtype policy above)."""
    da, db = a.data.dtype, b.data.dtype
    if da == db:
        return a, b
    fa, fb = da.kind == "f", db.kind == "f"
    if fa and fb:
        raise TypeError(f"{op}: mixed float dtypes {da} and {db}; cast one with .float() or .double()")
    if fa:
        return a, Tensor._wrap(b.data.astype(da))
    if fb:
        return Tensor._wrap(a.data.astype(db)), b
    return a, b


def _axis_args(op, t, axis, keepdims, dim, keepdim, single=False):
    if dim is not None:
        axis = dim
    if keepdim is not None:
        keepdims = keepdim
    if axis is None:
        return None, bool(keepdims)
    if isinstance(axis, (tuple, list)):
        if single:
            raise TypeError(f"{op}: takes a single dimension, got {axis}")
        axes = tuple(sorted({_norm_axis(op, t.ndim, a) for a in axis}))
        return axes, bool(keepdims)
    return _norm_axis(op, t.ndim, axis), bool(keepdims)


def _reduced_count(shape: tuple, axis) -> int:
    if axis is None or not shape:  # a 0-d tensor reduced over its dim 0 (or -1) is its one element, as in torch
        return int(np.prod(shape))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return int(np.prod([shape[a] for a in axes]))


def _operand(op: str, other) -> np.ndarray:
    """A non-Tensor operand as a numeric array; None, a str or a ragged list is an error naming ``op``."""
    return _numeric_array(op, "the other operand", other)


def _operand_data(op: str, other):
    """The data of an operand for NumPy: a Tensor's array, a Python number as is, else a numeric array."""
    if isinstance(other, Tensor):
        return other.data
    if type(other) in (float, int, bool):
        return other
    return _operand(op, other)


def _check_flag(fn: str, requires_grad) -> None:
    """requires_grad is a bool (as torch): the str "no" would otherwise be truthy and turn gradients on."""
    if not isinstance(requires_grad, (bool, np.bool_)):
        raise TypeError(f"{fn}: requires_grad must be True or False, got {_describe(requires_grad)}")


def _tensor_arg(op: str, other) -> Tensor:
    if not isinstance(other, Tensor):
        raise TypeError(f"{op}: expects a Tensor, got {_describe(other)}")
    return other


def _bitwise_operand(op: str, t: Tensor, other):
    """``&`` and ``|`` take bool or integer tensors (torch's bitwise_and/or), not floats."""
    data = _operand_data(op, other)
    kinds = (t.dtype.kind, np.asarray(data).dtype.kind)
    if any(k not in "biu" for k in kinds):
        raise TypeError(f"{op}: expects bool or integer tensors, got dtypes {t.dtype} and {np.asarray(data).dtype}")
    return data


def _is_numbers(other) -> bool:
    try:
        _operand_data("eq", other)
    except (TypeError, ValueError):
        return False
    return True


def _scaled(t: Tensor, other, alpha, op: str):
    """alpha·other for ``add``/``sub`` (``other`` unchanged when alpha is 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Number):
        raise TypeError(f"{op}: alpha must be a number, got {_describe(alpha)}")
    return other if alpha == 1 else t._lift(other, op) * alpha


def _check_nonempty_reduction(op, t, axis):
    if _reduced_count(t.shape, axis) == 0:
        raise ValueError(f"{op}: cannot reduce over an empty dimension (input shape {t.shape})")


def _index_arg(index):
    """Tensors inside an index become arrays; the index is normalised to a tuple."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for item in index:
        if isinstance(item, Tensor):
            item = item.data
        elif isinstance(item, list):
            item = np.asarray(item)
        if isinstance(item, np.ndarray) and item.dtype.kind not in "iub":
            raise IndexError(f"indexing: index arrays must be integer or bool, got dtype {item.dtype}")
        out.append(item)
    return tuple(out)


# ----------------------------------------------------------------------------------------------
# functions of several tensors
# ----------------------------------------------------------------------------------------------
def _as_tensor(x, like: Tensor | None = None, op: str = "Tensor") -> Tensor:
    if isinstance(x, Tensor):
        return x
    if like is not None:
        return like._lift(x, op)
    return Tensor(_default_array(x, fn=op))


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules: 1-D operands, batched and broadcast batch dims."""
    a = _as_tensor(a, b if isinstance(b, Tensor) else None, "matmul")
    b = _as_tensor(b, a, "matmul")
    if a.data.dtype != b.data.dtype:
        a, b = _promote("matmul", a, b)
    try:
        return ops.MatMul.apply(a, b)
    except ValueError:
        raise ValueError(_matmul_error(a.shape, b.shape)) from None


def _matmul_error(sa: tuple, sb: tuple) -> str:
    if not sa or not sb:
        return f"matmul: both arguments need at least 1 dimension, got shapes {sa} and {sb}"
    k_b = sb[-2] if len(sb) > 1 else sb[0]
    if sa[-1] != k_b:
        return f"matmul: shapes {sa} and {sb} are not aligned ({sa[-1]} != {k_b})"
    return f"matmul: batch dimensions of {sa} and {sb} cannot be broadcast"


def where(condition, x, y) -> Tensor:
    """``x`` where ``condition`` is True, else ``y`` (broadcasting all three)."""
    cond = _raw(condition)
    if not isinstance(cond, np.ndarray) or cond.dtype != np.bool_:
        cond = np.asarray(cond)
        if cond.dtype != np.bool_:
            raise TypeError(f"where: condition must be bool, got dtype {cond.dtype}")
    like = x if isinstance(x, Tensor) else y if isinstance(y, Tensor) else None
    if like is None:  # two numbers: tensors as torch.where makes them (int64, or float32 if either is a float)
        x, y = Tensor(_default_array(x, fn="where")), Tensor(_default_array(y, fn="where"))
    x, y = _promote("where", _as_tensor(x, like, "where"), _as_tensor(y, like, "where"))
    try:
        np.broadcast_shapes(cond.shape, x.shape, y.shape)
    except ValueError:
        raise ValueError(f"where: condition {cond.shape}, x {x.shape} and y {y.shape} cannot be broadcast") from None
    return ops.Where.apply(x, y, condition=cond)


def _some_tensor(op: str, a, b) -> Tensor:
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: expects at least one Tensor, got {_describe(a)} and {_describe(b)}")
    return a if isinstance(a, Tensor) else b


def maximum(a, b) -> Tensor:
    """Elementwise maximum; at ties each side gets half the gradient (as torch.maximum)."""
    like = _some_tensor("maximum", a, b)
    return ops.Maximum.apply(*_promote("maximum", _as_tensor(a, like, "maximum"), _as_tensor(b, like, "maximum")))


def minimum(a, b) -> Tensor:
    """Elementwise minimum = -maximum(-a, -b)."""
    like = _some_tensor("minimum", a, b)
    return -maximum(-_as_tensor(a, like, "minimum"), -_as_tensor(b, like, "minimum"))


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    tensors = [_as_tensor(t, tensors[0] if isinstance(tensors[0], Tensor) else None, "cat") for t in tensors]
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ValueError(f"cat: tensor {i} is 0-dimensional (a scalar), which cannot be concatenated; "
                             "use minigrad.stack to make a new dimension")
    axis = _norm_axis("cat", first.ndim, dim)
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, incompatible with {first.shape} outside dim {dim}")
        if t.dtype != first.dtype:
            raise TypeError(f"cat: tensor {i} has dtype {t.dtype}, tensor 0 has {first.dtype}")
    if len(tensors) == 1:
        return first
    return ops.Cat.apply(*tensors, axis=axis)


concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors along a new dimension."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    like = next((t for t in tensors if isinstance(t, Tensor)), None)
    tensors = [_as_tensor(t, like, "stack") for t in tensors]
    shape = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.shape != shape:
            raise ValueError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {shape}")
    d = _norm_axis("stack", len(shape) + 1, dim)
    return cat([t.unsqueeze(d) for t in tensors], dim=d)


def split(t: Tensor, split_size_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
    """Pieces of size ``split_size`` (last may be smaller) or of the listed sizes."""
    if t.ndim == 0:
        raise ValueError("split: expects a tensor with at least 1 dimension, got a 0-dimensional one (a scalar)")
    axis = _norm_axis("split", t.ndim, dim)
    n = t.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
        sizes = [split_size_or_sections] * (n // split_size_or_sections)
        if n % split_size_or_sections:
            sizes.append(n % split_size_or_sections)
    else:
        sizes = list(_shape_arg("split", (split_size_or_sections,)))
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} sum to {sum(sizes)}, dimension {dim} has size {n}")
    pieces, start = [], 0
    lead = (slice(None),) * axis
    for s in sizes:
        pieces.append(t[lead + (slice(start, start + s),)])
        start += s
    return tuple(pieces)


def chunk(t: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into ``chunks`` pieces of size ceil(n / chunks) (PyTorch's rule)."""
    chunks = _integer("chunk", "chunks", chunks)
    if t.ndim == 0:
        raise ValueError("chunk: expects a tensor with at least 1 dimension, got a 0-dimensional one (a scalar)")
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    n = t.shape[_norm_axis("chunk", t.ndim, dim)]
    return split(t, max(1, -(-n // chunks)), dim)


_register_tensor_class(Tensor)
