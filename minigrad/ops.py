"""The primitive operations: forward and backward side by side.

``forward`` works on NumPy arrays. ``backward`` is written once for two modes (see
``Function``): on arrays for a plain ``backward()`` and on Tensors under ``create_graph=True``,
which makes every rule differentiable again. Rules use operators, shared methods and ``xp()``.
Composite operations (``mean``, ``var``, ``min``, ``stack``, ``split`` …) are built from these
in ``tensor.py`` and need no rule of their own.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from minigrad import function as _function
from minigrad.function import Function, is_grad_enabled
from minigrad.kernels import embedding as embedding_kernel  # the row scatter-add of embedding backwards
from minigrad.kernels import linear as _linear_kernel

_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_GELU_TANH_K = math.sqrt(2.0 / math.pi)

def sum_to_array(x: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast array back to ``shape`` (the adjoint of broadcasting)."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
    out = x.sum(axis=axes, keepdims=True) if axes else x
    return out.reshape(shape)


class _ArrayMath:
    """``xp()`` when no graph is being built: the NumPy functions backward rules need."""

    exp, log, sqrt, tanh, sin, cos = np.exp, np.log, np.sqrt, np.tanh, np.sin, np.cos
    sigmoid, erf = special.expit, special.erf
    broadcast_to = staticmethod(np.broadcast_to)
    sum_to = staticmethod(sum_to_array)
    clamp = staticmethod(np.clip)
    zeros_like = staticmethod(np.zeros_like)

    @staticmethod
    def cumsum(x, axis: int):
        return np.cumsum(x, axis=axis)

    @staticmethod
    def where(condition, x, y):
        return np.where(condition, x, y)

    @staticmethod
    def permute(x, axes):
        return x.transpose(axes)

    @staticmethod
    def cat(parts, axis: int = 0):
        return np.concatenate(parts, axis)

    @staticmethod
    def stack(parts, axis: int = 0):
        return np.stack(parts, axis)

    @staticmethod
    def index_add(g, shape, index):
        return index_add_array(g, shape, index)

    @staticmethod
    def embedding_grad(rows, num, ids):
        return embedding_kernel.scatter_rows_array(rows, num, ids)


def _is_tensor(x) -> bool:
    return isinstance(x, _function._Tensor)


def _lift_all(parts) -> list:
    """Constant arrays among Tensors become Tensors of the same dtype (no gradient)."""
    like = next(p for p in parts if _is_tensor(p))
    return [p if _is_tensor(p) else like._lift(p) for p in parts]


class _TensorMath:
    """``xp()`` under ``create_graph=True``: the same functions as differentiable Tensor ops.

    Built from Tensor methods and the Functions of this file only, so ops.py needs no import
    of tensor.py (tensor.py imports this file)."""

    exp = staticmethod(lambda x: x.exp())
    log = staticmethod(lambda x: x.log())
    sqrt = staticmethod(lambda x: x.sqrt())
    tanh = staticmethod(lambda x: x.tanh())
    sin = staticmethod(lambda x: x.sin())
    cos = staticmethod(lambda x: x.cos())
    sigmoid = staticmethod(lambda x: x.sigmoid())
    erf = staticmethod(lambda x: x.erf())
    broadcast_to = staticmethod(lambda x, shape: x.expand(*shape))
    sum_to = staticmethod(lambda x, shape: x.sum_to(shape))
    clamp = staticmethod(lambda x, lo, hi: x.clamp(lo, hi))
    permute = staticmethod(lambda x, axes: x.permute(*axes))
    index_add = staticmethod(lambda g, shape, index: IndexAdd.apply(g, shape=shape, index=index))
    embedding_grad = staticmethod(lambda rows, num, ids: embedding_kernel.EmbeddingGrad.apply(rows, num=num, ids=ids))
    cumsum = staticmethod(lambda x, axis: Cumsum.apply(x, axis=axis))
    zeros_like = staticmethod(lambda x: x._lift(np.zeros(x.shape, x.dtype)))  # a constant: no graph

    @staticmethod
    def where(condition, x, y):
        x, y = _lift_all([x, y])
        return Where.apply(x, y, condition=np.asarray(condition))

    @staticmethod
    def cat(parts, axis: int = 0):
        parts = _lift_all(parts)
        return parts[0] if len(parts) == 1 else Cat.apply(*parts, axis=axis)

    @staticmethod
    def stack(parts, axis: int = 0):
        parts = _lift_all(parts)
        axis = axis % (parts[0].ndim + 1)
        return _TensorMath.cat([p.unsqueeze(axis) for p in parts], axis)


def xp():
    """The math namespace for backward rules in the current mode (arrays or Tensors)."""
    return _TensorMath if is_grad_enabled() else _ArrayMath


# ------------------------------------------------------------------------------ binary


class Add(Function):
    """a + b;  d/da = g,  d/db = g."""

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(Function):
    """a − b;  d/da = g,  d/db = −g."""

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(Function):
    """a·b;  d/da = g·b,  d/db = g·a."""

    def forward(self, a, b):
        return a * b

    def backward(self, g):
        a, b = self.args()
        need_a, need_b = self.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)


class Div(Function):
    """a / b;  d/da = g / b,  d/db = −g·a / b²."""

    def forward(self, a, b):
        return a / b

    def backward(self, g):
        # d(a/b)/da = 1/b ; d(a/b)/db = -a/b²
        a, b = self.args()
        need_a, need_b = self.needs_input_grad
        ga = g / b if need_a else None
        gb = -g * a / (b * b) if need_b else None
        return ga, gb


class Pow(Function):
    """a ** b with both tensors: d/da = b·a^(b-1), d/db = a^b·log(a)."""

    def forward(self, a, b):
        return self.save_output(np.power(a, b))

    def backward(self, g):
        a, b = self.args()
        need_a, need_b = self.needs_input_grad
        ga = g * b * a ** (b - 1.0) if need_a else None
        gb = g * self.output() * xp().log(a) if need_b else None
        return ga, gb


class PowScalar(Function):
    """x ** c for a constant c: d/dx = c·x^(c-1)."""

    def forward(self, x, exponent):
        self.exponent = exponent
        return np.power(x, x.dtype.type(exponent)) if x.dtype.kind == "f" else np.power(x, exponent)

    def backward(self, g):
        (x,) = self.args()
        c = self.exponent
        if c == 2.0:
            return g * x * 2.0
        return g * c * x ** (c - 1.0)


class Maximum(Function):
    """max(a, b) elementwise;  d/da = g where a > b, d/db = g where b > a, half each at ties (as torch.maximum)."""

    def forward(self, a, b):
        out = np.maximum(a, b)
        self.weight_a = ((a > b) + 0.5 * (a == b)).astype(out.dtype)
        return out

    def backward(self, g):
        w = self.weight_a
        need_a, need_b = self.needs_input_grad
        return (g * w if need_a else None), (g * (1.0 - w) if need_b else None)


class Where(Function):
    """x where ``condition`` else y;  d/dx = g where condition, d/dy = g elsewhere."""

    def forward(self, x, y, condition):
        self.condition = condition
        return np.where(condition, x, y)

    def backward(self, g):
        cond, math = self.condition, xp()
        need_x, need_y = self.needs_input_grad
        gx = math.where(cond, g, 0.0) if need_x else None
        gy = math.where(cond, 0.0, g) if need_y else None
        return gx, gy


class MatMul(Function):
    """C = A @ B:  dA = dC @ Bᵀ,  dB = Aᵀ @ dC  (1-D operands are promoted then squeezed back)."""

    def forward(self, a, b):
        if a.ndim > 2 and b.ndim == 2:  # (…, M, K) @ (K, N): a Linear on (B, T, K)
            # one GEMM over all rows: NumPy's stacked matmul loop is ~20x slower here
            return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[1],))
        return np.matmul(a, b)

    def backward(self, g):
        a, b = self.args()
        need_a, need_b = self.needs_input_grad
        if a.ndim > 2 and b.ndim == 2:  # flattened rows, as in forward
            k, n = b.shape
            g_rows = g.reshape(-1, n)  # (R, N)
            ga = (g_rows @ b.swapaxes(0, 1)).reshape(a.shape) if need_a else None  # (…, M, K)
            gb = a.reshape(-1, k).swapaxes(0, 1) @ g_rows if need_b else None  # (K, N)
            return ga, gb
        a_vec, b_vec = a.ndim == 1, b.ndim == 1
        if a_vec and b_vec:  # dot product: g is a scalar
            return (g * b if need_a else None), (g * a if need_b else None)
        a2 = a[None, :] if a_vec else a  # (…, M, K)
        b2 = b[:, None] if b_vec else b  # (…, K, N)
        g2 = g[..., None, :] if a_vec else g[..., None] if b_vec else g  # (…, M, N)
        ga = gb = None
        if need_a:
            ga = g2 @ b2.swapaxes(-1, -2)  # (…, M, K)
            if a_vec:
                ga = ga[..., 0, :]
        if need_b:
            gb = a2.swapaxes(-1, -2) @ g2  # (…, K, N)
            if b_vec:
                gb = gb[..., 0]
        return ga, gb


# ------------------------------------------------------------------------------ unary


class Neg(Function):
    """−x;  d/dx = −g."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Cast(Function):
    """x in another float dtype;  d/dx = g cast back."""

    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)  # arrays and Tensors both have astype


class Clone(Function):
    """a copy of x;  d/dx = g."""

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


class Exp(Function):
    """eˣ;  d/dx = g·eˣ (the saved output)."""

    def forward(self, x):
        return self.save_output(np.exp(x))

    def backward(self, g):
        return g * self.output()


class Log(Function):
    """log x;  d/dx = g / x."""

    def forward(self, x):
        return np.log(x)

    def backward(self, g):
        return g / self.args()[0]


class Sqrt(Function):
    """√x;  d/dx = g / (2√x)."""

    def forward(self, x):
        return self.save_output(np.sqrt(x))

    def backward(self, g):
        return g * 0.5 / self.output()


class Abs(Function):
    """|x|;  d/dx = g·sign(x) (0 at 0, as torch)."""

    def forward(self, x):
        self.sign = np.sign(x)  # gradient 0 at 0, as PyTorch
        return np.abs(x)

    def backward(self, g):
        return g * self.sign


class Tanh(Function):
    """tanh x;  d/dx = g·(1 − tanh²x)."""

    def forward(self, x):
        return self.save_output(np.tanh(x))

    def backward(self, g):
        y = self.output()
        return g * (1.0 - y * y)


class Sigmoid(Function):
    """σ(x) = 1 / (1 + e⁻ˣ);  d/dx = g·σ(x)(1 − σ(x))."""

    def forward(self, x):
        return self.save_output(special.expit(x))

    def backward(self, g):
        y = self.output()
        return g * y * (1.0 - y)


class Relu(Function):
    """max(0, x);  d/dx = g where x > 0, else 0."""

    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, x.dtype.type(0))

    def backward(self, g):
        return xp().where(self.mask, g, 0.0)


class Erf(Function):
    """erf x;  d/dx = g·(2/√π)·exp(−x²)."""

    def forward(self, x):
        return special.erf(x)

    def backward(self, g):
        (x,) = self.args()
        return g * _TWO_OVER_SQRT_PI * xp().exp(-(x * x))


# Beyond ±GELU_FLAT, φ(x) = 0 and Φ(x) ∈ {0, 1} exactly in float32 and float64 (φ underflows past |x| ≈ 38.6), so
# clamping x there changes no finite result and turns the ±inf·0 = nan of the plain formulas into the true limits:
# GELU(+inf) = +inf, GELU(−inf) = −0, GELU'(+inf) = 1, GELU'(−inf) = 0.
GELU_FLAT = 1e4


def gelu_grad(g, x):
    """g·GELU'(x) = g·(Φ(x) + x·φ(x)) with SciPy's exact erf, in either mode (arrays or Tensors)."""
    math = xp()
    x = math.clamp(x, -GELU_FLAT, GELU_FLAT)
    cdf = 0.5 * (1.0 + math.erf(x * (1.0 / _SQRT_2)))
    pdf = _INV_SQRT_2PI * math.exp(-0.5 * x * x)
    return g * (cdf + x * pdf)


class Gelu(Function):
    """GELU(x) = x·Φ(x), Φ the standard normal CDF (exact erf);  d/dx = Φ(x) + x·φ(x).

    ±inf give the limits (see GELU_FLAT). float32 layers use the faster kernel of
    ``minigrad/kernels/activation.py``, which must equal this op."""

    def forward(self, x):
        return 0.5 * np.maximum(x, -GELU_FLAT) * (1.0 + special.erf(x / _SQRT_2))

    def backward(self, g):
        return gelu_grad(g, self.args()[0])


class GeluTanh(Function):
    """GELU tanh approximation: 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³); ±inf give the limits."""

    def forward(self, x):
        xc = np.clip(x, -GELU_FLAT, GELU_FLAT)        # tanh(u) = ±1 exactly beyond: no x³ overflow
        return 0.5 * np.maximum(x, -GELU_FLAT) * (1.0 + np.tanh(_GELU_TANH_K * (xc + 0.044715 * xc ** 3)))

    def backward(self, g):
        # d/dx = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²),  t = tanh(u)
        (x,) = self.args()
        x = xp().clamp(x, -GELU_FLAT, GELU_FLAT)      # the derivative is flat (0 or 1) beyond
        x2 = x * x
        t = xp().tanh(_GELU_TANH_K * (x + 0.044715 * x2 * x))
        du = _GELU_TANH_K * (1.0 + 3 * 0.044715 * x2)
        return g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


class Softplus(Function):
    """softplus(x) = log(1 + exp(βx)) / β, linear where βx > threshold (as torch);  d/dx = g·σ(βx) (g where linear)."""

    def forward(self, x, beta, threshold):
        z = beta * x
        self.beta, self.linear = beta, z > threshold
        # log(1 + e^z) = max(z, 0) + log1p(e^−|z|): logaddexp's formula, ~7x faster than np.logaddexp (and no
        # warning on NaN input)
        soft = (np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))).astype(x.dtype, copy=False) / beta
        return np.where(self.linear, x, soft)

    def backward(self, g):
        (x,) = self.args()
        math = xp()
        return math.where(self.linear, g, g * math.sigmoid(self.beta * x))


class Sin(Function):
    """sin x;  d/dx = g·cos x."""

    def forward(self, x):
        return np.sin(x)

    def backward(self, g):
        return g * xp().cos(self.args()[0])


class Cos(Function):
    """cos x;  d/dx = −g·sin x."""

    def forward(self, x):
        return np.cos(x)

    def backward(self, g):
        return -g * xp().sin(self.args()[0])


class Clamp(Function):
    """min(max(x, lo), hi);  d/dx = g where lo ≤ x ≤ hi, else 0 (as torch.clamp)."""

    def forward(self, x, lo, hi):
        self.mask = np.ones(x.shape, dtype=bool)
        if lo is not None:
            self.mask &= x >= lo
        if hi is not None:
            self.mask &= x <= hi
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(self, g):
        return xp().where(self.mask, g, 0.0)


class Tan(Function):
    """tan x;  d/dx = g·(1 + tan²x) (the saved output)."""

    def forward(self, x):
        return self.save_output(np.tan(x))

    def backward(self, g):
        y = self.output()
        return g * (1.0 + y * y)


class Log2(Function):
    """log₂ x;  d/dx = g / (x·ln 2)."""

    def forward(self, x):
        return np.log2(x)

    def backward(self, g):
        return g / (self.args()[0] * math.log(2.0))


class _PiecewiseConstant(Function):
    """A step function (sign, floor, ceil): flat between its jumps, so d/dx = 0 everywhere it exists.

    It stays in the graph with a zero gradient, as in torch, instead of silently cutting it."""

    numpy_fn = None

    def forward(self, x):
        return type(self).numpy_fn(x)

    def backward(self, g):
        return xp().zeros_like(g)


class Sign(_PiecewiseConstant):
    """sign x ∈ {−1, 0, 1};  d/dx = 0."""

    numpy_fn = staticmethod(np.sign)


class Floor(_PiecewiseConstant):
    """⌊x⌋;  d/dx = 0."""

    numpy_fn = staticmethod(np.floor)


class Ceil(_PiecewiseConstant):
    """⌈x⌉;  d/dx = 0."""

    numpy_fn = staticmethod(np.ceil)


class Trunc(_PiecewiseConstant):
    """x rounded toward zero;  d/dx = 0."""

    numpy_fn = staticmethod(np.trunc)


# The activations below select their pieces with max/min/clip and multiply the gradient by a weight computed in
# forward: np.where over a random mask is branchy, several times slower than a multiplication.


class Elu(Function):
    """ELU(x) = x for x > 0, else α·(exp(s·x) − 1) (s = 1; CELU uses s = 1/α);
    d/dx = g for x > 0, else g·s·(y + α) with y the output (x = 0 takes the exp side, as torch)."""

    def forward(self, x, alpha, input_scale):
        self.alpha, self.input_scale = alpha, input_scale
        self.positive = (x > 0).astype(x.dtype)
        self.not_positive = 1 - self.positive
        # max(x, 0) + α·expm1(s·min(x, 0)): each piece exact where it is used, ±inf give x and −α
        return self.save_output(np.maximum(x, 0) + x.dtype.type(alpha) * np.expm1(x.dtype.type(input_scale) * np.minimum(x, 0)))

    def backward(self, g):
        negative = xp().clamp(self.output(), None, 0.0)  # y on the exp side, 0 on the other (no inf·0 at +inf)
        return g * (self.positive + self.not_positive * (self.input_scale * (negative + self.alpha)))


class LeakyRelu(Function):
    """x for x > 0, else slope·x;  d/dx = g for x > 0, else slope·g (x = 0 gets the slope, as torch)."""

    def forward(self, x, slope):
        positive = x > 0
        self.weight = (positive * x.dtype.type(1 - slope) + x.dtype.type(slope)).astype(x.dtype, copy=False)
        if slope == 0:
            return np.maximum(x, 0)
        return np.maximum(x, 0) + x.dtype.type(slope) * np.minimum(x, 0)

    def backward(self, g):
        return g * self.weight


class Hardtanh(Function):
    """min(max(x, lo), hi);  d/dx = g strictly inside (lo, hi), 0 at and beyond the corners (as torch.hardtanh;
    torch.clamp, ``Clamp`` above, keeps the gradient at the corners)."""

    def forward(self, x, lo, hi):
        self.inside = ((x > lo) & (x < hi)).astype(x.dtype)
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(self, g):
        return g * self.inside


class Hardswish(Function):
    """x·relu6(x + 3)/6: 0 for x ≤ −3, x·(x + 3)/6 inside, x for x ≥ 3;
    d/dx = 0, g·(x/3 + 1/2), g on the three pieces (as torch at the corners)."""

    def forward(self, x):
        self.middle = ((x > -3) & (x < 3)).astype(x.dtype)
        self.high = (x >= 3).astype(x.dtype)
        # max(x, −3)·clip(x + 3, 0, 6)/6: −3·0 = 0 below (not −inf·0), x·6/6 = x above
        return np.maximum(x, x.dtype.type(-3)) * (np.clip(x + 3, 0, 6).astype(x.dtype, copy=False) / x.dtype.type(6))

    def backward(self, g):
        xc = xp().clamp(self.args()[0], -3.0, 3.0)  # the middle formula at ±inf would be inf·0
        return g * (self.middle * (xc * (1.0 / 3.0) + 0.5) + self.high)


# Beyond ±1e30, x / (1 + |x|) is ±1 exactly in float32 and float64: clipping there changes no finite result and
# gives softsign(±inf) = ±1 instead of inf / inf.
_SOFTSIGN_FLAT = 1e30


class Softsign(Function):
    """x / (1 + |x|), ±1 at ±inf;  d/dx = g / (1 + |x|)²."""

    def forward(self, x):
        xc = np.clip(x, -_SOFTSIGN_FLAT, _SOFTSIGN_FLAT).astype(x.dtype, copy=False)
        return xc / (1 + np.abs(xc))

    def backward(self, g):
        (x,) = self.args()
        d = 1.0 + abs(x)
        return g / (d * d)

# ------------------------------------------------------------------------------ reductions


def _keepdims_shape(shape: tuple, axis) -> tuple:
    if axis is None:
        return (1,) * len(shape)
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    """Σ x over ``axis``;  d/dx = g broadcast back over the summed axes."""

    def forward(self, x, axis, keepdims):
        self.in_shape, self.axis, self.keepdims = x.shape, axis, keepdims
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    def backward(self, g):
        if not self.keepdims:
            g = g.reshape(_keepdims_shape(self.in_shape, self.axis))
        return xp().broadcast_to(g, self.in_shape)


class Max(Function):
    """Max over axes;  d/dx = g at the maximum, shared equally among tied maxima (as torch.amax)."""

    def forward(self, x, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        out = np.max(x, axis=axis, keepdims=True)
        mask = x == out
        with np.errstate(invalid="ignore", divide="ignore"):  # a NaN maximum equals nothing: 0/0, a NaN gradient (as torch)
            self.share = (mask / mask.sum(axis=axis, keepdims=True)).astype(x.dtype)
        return out if keepdims else np.squeeze(out, axis=axis)

    def backward(self, g):
        if not self.keepdims:
            g = g.reshape(_keepdims_shape(self.share.shape, self.axis))
        return g * self.share


class LogSumExp(Function):
    """log Σ exp(x), computed as m + log Σ exp(x − m);  d/dx = exp(x − logsumexp(x)).

    Over an empty dimension it is log 0 = −inf, as in torch (``initial``: the max of nothing is −inf)."""

    def forward(self, x, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims
        m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, 0)  # all −inf rows stay −inf instead of nan
        with np.errstate(divide="ignore"):  # log 0 = −inf: the exact answer for all −inf (or no) terms
            out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return self.save_output(out if keepdims else np.squeeze(out, axis=axis))

    def backward(self, g):
        (x,) = self.args()
        keep = _keepdims_shape(x.shape, self.axis)
        return g.reshape(keep) * xp().exp(x - self.output().reshape(keep))


class Softmax(Function):
    """y = exp(x − max) / Σ exp(x − max);  dx = y ⊙ (g − Σ g⊙y)."""

    def forward(self, x, axis):
        self.axis = axis
        # initial=−inf: an empty axis has max −inf instead of raising, and gives an empty softmax (as torch)
        e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
        e /= np.sum(e, axis=axis, keepdims=True)
        return self.save_output(e)

    def backward(self, g):
        y = self.output()
        return y * (g - (g * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x − logsumexp(x);  dx = g − softmax(x) · Σ g  (softmax = exp(y))."""

    def forward(self, x, axis):
        self.axis = axis
        if x.ndim and x.shape[axis] == 0:  # an empty axis: an empty result, as torch (and no log 0 warning)
            return self.save_output(x.copy())
        shifted = x - np.max(x, axis=axis, keepdims=True)
        out = shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        return self.save_output(out)

    def backward(self, g):
        return g - xp().exp(self.output()) * g.sum(axis=self.axis, keepdims=True)


class Cumsum(Function):
    """Running sum along ``axis``: y_i = Σ_{j ≤ i} x_j;  d/dx_j = Σ_{i ≥ j} g_i, the running sum of g from the end."""

    def forward(self, x, axis):
        self.axis = axis
        self.reverse = (slice(None),) * axis + (slice(None, None, -1),)
        return np.cumsum(x, axis=axis)

    def backward(self, g):
        return xp().cumsum(g[self.reverse], self.axis)[self.reverse]


# ------------------------------------------------------------------------------ movement


class Reshape(Function):
    """x in a new shape;  d/dx = g in the old shape."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.in_shape)


class Permute(Function):
    """x with its axes reordered;  d/dx = g with the inverse order."""

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, g):
        return xp().permute(g, tuple(np.argsort(self.axes).tolist()))


class Expand(Function):
    """x broadcast to ``shape`` (a view);  d/dx = g summed back to x's shape."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        return np.broadcast_to(x, shape)

    def backward(self, g):
        return xp().sum_to(g, self.in_shape)


class SumTo(Function):
    """Sum a broadcast result back to ``shape`` (undoes broadcasting for every op);  d/dx = g broadcast again."""

    def forward(self, x, shape):
        self.in_shape = x.shape
        return sum_to_array(x, shape)

    def backward(self, g):
        return xp().broadcast_to(g, self.in_shape)


def _is_basic_index(index: tuple) -> bool:
    return all(isinstance(i, (slice, int, np.integer, type(None), type(Ellipsis))) for i in index)


class GetItem(Function):
    """x[index];  d/dx = g scattered into zeros, adding at repeated integer indices."""

    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        try:
            return np.asarray(x[index])
        except IndexError as e:
            raise IndexError(f"indexing a tensor of shape {x.shape}: {e}") from None

    def backward(self, g):
        return xp().index_add(g, self.in_shape, self.index)


def index_add_array(g: np.ndarray, shape: tuple, index: tuple) -> np.ndarray:
    out = np.zeros(shape, dtype=g.dtype)
    if _is_basic_index(index):
        out[index] = g  # basic indices never repeat an element
    else:
        np.add.at(out, index, g)  # repeated integer indices accumulate
    return out


class IndexAdd(Function):
    """zeros(shape) with g added at ``index`` (the adjoint of GetItem);  d/dg = gg[index]."""

    def forward(self, g, shape, index):
        self.index = index
        return index_add_array(g, shape, index)

    def backward(self, gg):
        return gg[self.index]


def _along_axis_index(index: np.ndarray, axis: int) -> tuple:
    """Full advanced index for take_along_axis-style ``index`` along ``axis``."""
    n = index.ndim
    grids = [np.arange(s).reshape((1,) * d + (s,) + (1,) * (n - d - 1)) for d, s in enumerate(index.shape)]
    grids[axis] = index
    return tuple(grids)


class Gather(Function):
    """x[…, index, …] along one axis (torch.gather);  d/dx = g scatter-added at ``index``."""

    def forward(self, x, index, axis):
        self.in_shape = x.shape
        self.full_index = _along_axis_index(index, axis)
        return x[self.full_index]

    def backward(self, g):
        return xp().index_add(g, self.in_shape, self.full_index)


class Cat(Function):
    """Join along ``axis``;  d/dx_i = the slice of g where x_i went."""

    def forward(self, *xs, axis):
        self.axis = axis % xs[0].ndim
        axis = self.axis
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
    """Constant padding (``pad_width`` as NumPy's per-dimension (before, after));  d/dx = g without the padding."""

    def forward(self, x, pad_width, value):
        self.slices = tuple(slice(lo, lo + s) for (lo, _), s in zip(pad_width, x.shape))
        return np.pad(x, pad_width, mode="constant", constant_values=value)

    def backward(self, g):
        return g[self.slices]


# Moved to minigrad/kernels/ (each fused kernel beside its plain-ops reference); the old names still work.
Linear = _linear_kernel.LinearFunction
Embedding = embedding_kernel.EmbeddingFunction
EmbeddingGrad = embedding_kernel.EmbeddingGrad
scatter_rows_array = embedding_kernel.scatter_rows_array
