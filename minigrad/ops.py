"""The primitive operations: NumPy forward and Tensor backward, side by side.

Every ``backward`` is written with Tensor operations, so a backward pass run with
``create_graph=True`` is itself differentiable. Gradients may come back in the broadcast shape;
``minigrad.autograd`` sums them to each input's shape. Composite operations (``mean``, ``var``,
``min``, ``stack``, ``split`` …) are built from these in ``tensor.py`` and need no rule.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from minigrad.tensor import Function, Tensor, where

_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_GELU_TANH_K = math.sqrt(2.0 / math.pi)


def _const(arr: np.ndarray) -> Tensor:
    return Tensor._wrap(arr)


# ------------------------------------------------------------------------------ binary


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class Div(Function):
    def forward(self, a, b):
        return a / b

    def backward(self, g):
        # d(a/b)/da = 1/b ; d(a/b)/db = -a/b²
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        ga = g / b if need_a else None
        gb = -g * a / (b * b) if need_b else None
        return ga, gb


class Pow(Function):
    """a ** b with both tensors: d/da = b·a^(b-1), d/db = a^b·log(a)."""

    def forward(self, a, b):
        return self.save_output(np.power(a, b))

    def backward(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        ga = g * b * a ** (b - 1.0) if need_a else None
        gb = g * self.output() * a.log() if need_b else None
        return ga, gb


class PowScalar(Function):
    """x ** c for a constant c: d/dx = c·x^(c-1)."""

    def forward(self, x, exponent):
        self.exponent = exponent
        return np.power(x, x.dtype.type(exponent)) if x.dtype.kind == "f" else np.power(x, exponent)

    def backward(self, g):
        (x,) = self.inputs
        c = self.exponent
        if c == 2.0:
            return g * x * 2.0
        return g * c * x ** (c - 1.0)


class Maximum(Function):
    """Elementwise max; ties give each side half the gradient (like torch.maximum)."""

    def forward(self, a, b):
        out = np.maximum(a, b)
        self.weight_a = ((a > b) + 0.5 * (a == b)).astype(out.dtype)
        return out

    def backward(self, g):
        w = _const(self.weight_a)
        need_a, need_b = self.needs_input_grad
        return (g * w if need_a else None), (g * (1.0 - w) if need_b else None)


class Where(Function):
    def forward(self, x, y, condition):
        self.condition = condition
        return np.where(condition, x, y)

    def backward(self, g):
        cond = self.condition
        need_x, need_y = self.needs_input_grad
        gx = where(cond, g, 0.0) if need_x else None
        gy = where(cond, 0.0, g) if need_y else None
        return gx, gy


class MatMul(Function):
    """C = A @ B:  dA = dC @ Bᵀ,  dB = Aᵀ @ dC  (1-D operands are promoted then squeezed back)."""

    def forward(self, a, b):
        return np.matmul(a, b)

    def backward(self, g):
        a, b = self.inputs
        need_a, need_b = self.needs_input_grad
        a_vec, b_vec = a.ndim == 1, b.ndim == 1
        if a_vec and b_vec:  # dot product: g is a scalar
            return (g * b if need_a else None), (g * a if need_b else None)
        a2 = a.unsqueeze(0) if a_vec else a  # (…, M, K)
        b2 = b.unsqueeze(1) if b_vec else b  # (…, K, N)
        g2 = g.unsqueeze(-2) if a_vec else g.unsqueeze(-1) if b_vec else g  # (…, M, N)
        ga = gb = None
        if need_a:
            ga = g2 @ b2.transpose(-1, -2)  # (…, M, K)
            if a_vec:
                ga = ga.squeeze(-2)
        if need_b:
            gb = a2.transpose(-1, -2) @ g2  # (…, K, N)
            if b_vec:
                gb = gb.squeeze(-1)
        return ga, gb


# ------------------------------------------------------------------------------ unary


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Cast(Function):
    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)


class Clone(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


class Exp(Function):
    def forward(self, x):
        return self.save_output(np.exp(x))

    def backward(self, g):
        return g * self.output()


class Log(Function):
    def forward(self, x):
        return np.log(x)

    def backward(self, g):
        return g / self.inputs[0]


class Sqrt(Function):
    def forward(self, x):
        return self.save_output(np.sqrt(x))

    def backward(self, g):
        return g * 0.5 / self.output()


class Abs(Function):
    def forward(self, x):
        self.sign = np.sign(x)  # gradient 0 at 0, as PyTorch
        return np.abs(x)

    def backward(self, g):
        return g * _const(self.sign)


class Tanh(Function):
    def forward(self, x):
        return self.save_output(np.tanh(x))

    def backward(self, g):
        y = self.output()
        return g * (1.0 - y * y)


class Sigmoid(Function):
    def forward(self, x):
        return self.save_output(special.expit(x))

    def backward(self, g):
        y = self.output()
        return g * y * (1.0 - y)


class Relu(Function):
    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, x.dtype.type(0))

    def backward(self, g):
        return where(self.mask, g, 0.0)


class Erf(Function):
    def forward(self, x):
        return special.erf(x)

    def backward(self, g):
        (x,) = self.inputs
        return g * _TWO_OVER_SQRT_PI * (-(x * x)).exp()


class Gelu(Function):
    """GELU(x) = x·Φ(x), Φ the standard normal CDF; GELU'(x) = Φ(x) + x·φ(x)."""

    def forward(self, x):
        return 0.5 * x * (1.0 + special.erf(x / _SQRT_2))

    def backward(self, g):
        (x,) = self.inputs
        cdf = 0.5 * (1.0 + (x * (1.0 / _SQRT_2)).erf())
        pdf = _INV_SQRT_2PI * (-0.5 * x * x).exp()
        return g * (cdf + x * pdf)


class GeluTanh(Function):
    """GELU tanh approximation: 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³)."""

    def forward(self, x):
        return 0.5 * x * (1.0 + np.tanh(_GELU_TANH_K * (x + 0.044715 * x ** 3)))

    def backward(self, g):
        # d/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²),  t = tanh(u)
        (x,) = self.inputs
        x2 = x * x
        t = (_GELU_TANH_K * (x + 0.044715 * x2 * x)).tanh()
        du = _GELU_TANH_K * (1.0 + 3 * 0.044715 * x2)
        return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


class Softplus(Function):
    """softplus(x) = log(1 + exp(βx)) / β, linear where βx > threshold (as torch)."""

    def forward(self, x, beta, threshold):
        self.beta, self.linear = beta, beta * x > threshold
        soft = np.logaddexp(0.0, beta * x).astype(x.dtype) / beta
        return np.where(self.linear, x, soft)

    def backward(self, g):
        (x,) = self.inputs
        return where(self.linear, g, g * (self.beta * x).sigmoid())


class Sin(Function):
    def forward(self, x):
        return np.sin(x)

    def backward(self, g):
        return g * self.inputs[0].cos()


class Cos(Function):
    def forward(self, x):
        return np.cos(x)

    def backward(self, g):
        return -g * self.inputs[0].sin()


class Clamp(Function):
    """Gradient passes where lo ≤ x ≤ hi (as torch.clamp)."""

    def forward(self, x, lo, hi):
        self.mask = np.ones(x.shape, dtype=bool)
        if lo is not None:
            self.mask &= x >= lo
        if hi is not None:
            self.mask &= x <= hi
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(self, g):
        return where(self.mask, g, 0.0)


# ------------------------------------------------------------------------------ reductions


def _keepdims_shape(shape: tuple, axis) -> tuple:
    if axis is None:
        return (1,) * len(shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    def forward(self, x, axis, keepdims):
        self.in_shape, self.axis, self.keepdims = x.shape, axis, keepdims
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    def backward(self, g):
        if not self.keepdims:
            g = g.reshape(_keepdims_shape(self.in_shape, self.axis))
        return g.expand(*self.in_shape)


class Max(Function):
    """Max over axes; tied maxima share the gradient equally (as torch.amax)."""

    def forward(self, x, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        out = np.max(x, axis=axis, keepdims=True)
        mask = x == out
        self.share = (mask / mask.sum(axis=axis, keepdims=True)).astype(x.dtype)
        return out if keepdims else np.squeeze(out, axis=axis)

    def backward(self, g):
        if not self.keepdims:
            g = g.reshape(_keepdims_shape(self.share.shape, self.axis))
        return g * _const(self.share)


class LogSumExp(Function):
    """log Σ exp(x), computed as m + log Σ exp(x − m);  d/dx = exp(x − logsumexp(x))."""

    def forward(self, x, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)  # all −inf rows stay −inf instead of nan
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return self.save_output(out if keepdims else np.squeeze(out, axis=axis))

    def backward(self, g):
        (x,) = self.inputs
        keep = _keepdims_shape(x.shape, self.axis)
        return g.reshape(keep) * (x - self.output().reshape(keep)).exp()


class Softmax(Function):
    """y = exp(x − max) / Σ exp(x − max);  dx = y ⊙ (g − Σ g⊙y)."""

    def forward(self, x, axis):
        self.axis = axis
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        e /= np.sum(e, axis=axis, keepdims=True)
        return self.save_output(e)

    def backward(self, g):
        y = self.output()
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x − logsumexp(x);  dx = g − softmax(x) · Σ g  (softmax = exp(y))."""

    def forward(self, x, axis):
        self.axis = axis
        shifted = x - np.max(x, axis=axis, keepdims=True)
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        return self.save_output(out)

    def backward(self, g):
        return g - self.output().exp() * g.sum(axis=self.axis, keepdims=True)


# ------------------------------------------------------------------------------ movement


class Reshape(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.in_shape)


class Permute(Function):
    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, g):
        return g.permute(*np.argsort(self.axes).tolist())


class Expand(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return np.broadcast_to(x, shape)

    def backward(self, g):
        return g.sum_to(self.in_shape)


class SumTo(Function):
    """Sum a broadcast result back to ``shape`` — undoes broadcasting for every op."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
        out = x.sum(axis=axes, keepdims=True) if axes else x
        return out.reshape(shape)

    def backward(self, g):
        return g.expand(*self.in_shape)


def _is_basic_index(index: tuple) -> bool:
    return all(isinstance(i, (slice, int, np.integer, type(None), type(Ellipsis))) for i in index)


class GetItem(Function):
    """x[index]; backward scatters g into zeros, adding at repeated integer indices."""

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        try:
            return np.asarray(x[index])
        except IndexError as e:
            raise IndexError(f"indexing a tensor of shape {x.shape}: {e}") from None

    def backward(self, g):
        return IndexAdd.apply(g, shape=self.in_shape, index=self.index)


class IndexAdd(Function):
    """zeros(shape) with g added at ``index`` (the adjoint of GetItem)."""

    def forward(self, g, shape, index):
        self.index = index
        out = np.zeros(shape, dtype=g.dtype)
        if _is_basic_index(index):
            out[index] = g
        else:
            np.add.at(out, index, g)
        return out

    def backward(self, gg):
        return gg[self.index]


def _along_axis_index(index: np.ndarray, axis: int) -> tuple:
    """Full advanced index for take_along_axis-style ``index`` along ``axis``."""
    n = index.ndim
    grids = [np.arange(s).reshape((1,) * d + (s,) + (1,) * (n - d - 1)) for d, s in enumerate(index.shape)]
    grids[axis] = index
    return tuple(grids)


class Gather(Function):
    def forward(self, x, index, axis):
        self.in_shape = x.shape
        self.full_index = _along_axis_index(index, axis)
        return x[self.full_index]

    def backward(self, g):
        return IndexAdd.apply(g, shape=self.in_shape, index=self.full_index)


class Cat(Function):
    def forward(self, *xs, axis):
        self.axis = axis
        self.bounds = np.cumsum([0] + [x.shape[axis] for x in xs]).tolist()
        return np.concatenate(xs, axis=axis)

    def backward(self, g):
        lead = (slice(None),) * self.axis
        b = self.bounds
        return tuple(
            g[lead + (slice(b[i], b[i + 1]),)] if need else None
            for i, need in enumerate(self.needs_input_grad)
        )


class Pad(Function):
    """Constant padding; ``pad_width`` in NumPy's per-dimension (before, after) form."""

    def forward(self, x, pad_width, value):
        self.slices = tuple(slice(lo, lo + s) for (lo, _), s in zip(pad_width, x.shape))
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.slices]


class Embedding(Function):
    """weight[ids]; the backward scatter-adds rows of g into the used rows of the weight."""

    def forward(self, weight, ids, padding_idx):
        self.num, self.ids, self.padding_idx = weight.shape[0], ids, padding_idx
        return weight[ids]

    def backward(self, g):
        ids = self.ids.reshape(-1)
        rows = g.reshape(ids.shape[0], g.shape[-1])  # (N, D)
        if self.padding_idx is not None:
            keep = np.nonzero(ids != self.padding_idx)[0]
            ids, rows = ids[keep], rows[keep]
        return (EmbeddingGrad.apply(rows, num=self.num, ids=ids),)


class EmbeddingGrad(Function):
    """Σ over tokens of one-hot(id)·row — a row scatter-add done by sorting (fast, exact)."""

    def forward(self, rows, num, ids):
        self.ids = ids
        out = np.zeros((num, rows.shape[1]), dtype=rows.dtype)
        if ids.size:
            order = np.argsort(ids, kind="stable")
            sorted_ids = ids[order]
            starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        return out

    def backward(self, gg):
        return gg[self.ids]
