"""One table of op cases, driving both the float64 gradchecks (first and second order, no torch
needed) and the comparison with PyTorch on identical inputs.

Each case is a hypothesis strategy that draws an ``Instance``: NumPy input arrays (the
differentiable ones), and ``fn(ns, *tensors)`` that runs the op in a library namespace ``ns``
(``ns.lib`` is ``minigrad`` or ``torch``, ``ns.F`` the functional module, ``ns.const`` turns a
NumPy index/mask into that library's tensor). Inputs are sometimes non-contiguous views
(transposed or strided) so that stride handling is tested too.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad


@dataclass
class Instance:
    inputs: list  # np.ndarrays (float64), differentiable inputs
    fn: Callable  # fn(ns, *tensors) -> tensor or tuple of tensors
    torch_fn: Callable | None = None  # when torch needs other spelling
    second_order: bool = True
    # False when the op's gradient is defined not to be the derivative (embedding padding row)
    numerically_checkable: bool = True

    def torch(self):
        return self.torch_fn or self.fn


MG = SimpleNamespace(name="minigrad", lib=minigrad, F=minigrad.functional, const=lambda a: minigrad.Tensor(a))


def torch_namespace():
    import torch

    return SimpleNamespace(name="torch", lib=torch, F=torch.nn.functional, const=lambda a: torch.from_numpy(np.asarray(a)))


small_dim = st.integers(1, 4)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
shapes0 = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)


@st.composite
def array(draw, shape, domain="real"):
    """Random float64 data of ``shape``; sometimes a transposed or strided view."""
    seed = draw(st.integers(0, 2**31 - 1))
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided"])) if len(shape) >= 1 else "contiguous"
    rng = np.random.default_rng(seed)
    if layout == "transposed" and len(shape) >= 2:
        base = rng.standard_normal(tuple(reversed(shape)))
        a = base.T
    elif layout == "strided":
        base = rng.standard_normal(tuple(shape[:-1]) + (2 * shape[-1],))
        a = base[..., ::2]
    else:
        a = rng.standard_normal(shape)
    if domain == "positive":
        a = np.abs(a) + 0.5
    elif domain == "nonzero":
        a = np.sign(a) * (np.abs(a) + 0.5)
    elif domain == "unit":
        a = np.tanh(a) * 0.9
    a = np.asarray(a)
    assert a.shape == tuple(shape)
    return a


def unary(fn, domain="real", torch_fn=None, shape_strategy=shapes0, second_order=True):
    @st.composite
    def case(draw):
        x = draw(array(draw(shape_strategy), domain))
        return Instance([x], fn, torch_fn, second_order)

    return case()


def binary(fn, domain_a="real", domain_b="real", torch_fn=None):
    @st.composite
    def case(draw):
        (sa, sb), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
        return Instance([draw(array(sa, domain_a)), draw(array(sb, domain_b))], fn, torch_fn)

    return case()


@st.composite
def axis_and_keepdims(draw, ndim, allow_none=True, allow_tuple=True):
    choices = [st.integers(-ndim, ndim - 1)] if ndim else []
    if allow_none or not ndim:
        choices.append(st.none())
    if allow_tuple and ndim >= 2:
        choices.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))
    return draw(st.one_of(*choices)), draw(st.booleans())


def reduction(name, torch_name=None, extra=None):
    """sum / mean / max / min / var / std / logsumexp with axis and keepdims."""

    @st.composite
    def case(draw):
        shape = draw(shapes)
        x = draw(array(shape))
        axis, keep = draw(axis_and_keepdims(len(shape), allow_tuple=name not in ("logsumexp",)))
        if name in ("var", "std"):
            n = int(np.prod([shape[a] for a in (axis if isinstance(axis, tuple) else (axis,))])) if axis is not None else x.size
            if n < 2:
                axis, keep = None, keep
                if x.size < 2:
                    x = draw(array((2,) + tuple(shape)))
        kw = {} if extra is None else extra

        def mg_fn(ns, t):
            return getattr(t, name)(axis=axis, keepdims=keep, **kw)

        def th_fn(ns, t):
            dim = tuple(range(t.ndim)) if axis is None else axis
            if name in ("max", "min"):
                return getattr(ns.lib, "a" + name)(t, dim=dim, keepdim=keep)
            if name == "logsumexp":
                return ns.lib.logsumexp(t, dim=dim, keepdim=keep)
            return getattr(t, torch_name or name)(dim=dim, keepdim=keep, **kw)

        return Instance([x], mg_fn, th_fn)

    return case()


@st.composite
def matmul_case(draw):
    kind = draw(st.sampled_from(["vv", "vm", "mv", "mm", "batched", "broadcast", "rows"]))
    m, k, n, b = (draw(small_dim) for _ in range(4))
    shapes_by_kind = {
        "vv": ((k,), (k,)),
        "vm": ((k,), (k, n)),
        "mv": ((m, k), (k,)),
        "mm": ((m, k), (k, n)),
        "batched": ((b, m, k), (b, k, n)),
        "broadcast": ((b, 1, m, k), (2, k, n)),
        "rows": ((b, 2, m, k), (k, n)),  # a Linear on (B, T, K): the flattened-GEMM path
    }
    sa, sb = shapes_by_kind[kind]
    return Instance([draw(array(sa)), draw(array(sb))], lambda ns, a, c: a @ c)


@st.composite
def linear_case(draw):
    lead = draw(st.sampled_from([(), (3,), (2, 3)]))
    k, n = draw(small_dim), draw(small_dim)
    x, w = draw(array(lead + (k,))), draw(array((n, k)))
    if draw(st.booleans()):
        return Instance([x, w, draw(array((n,)))], lambda ns, a, wt, b: ns.F.linear(a, wt, b))
    return Instance([x, w], lambda ns, a, wt: ns.F.linear(a, wt))


@st.composite
def getitem_case(draw):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=4))
    x = draw(array(shape))
    kind = draw(st.sampled_from(["slice", "int", "ellipsis_none", "int_array", "two_arrays", "bool", "neg_step"]))
    n0 = shape[0]
    if kind == "slice":
        index = (slice(draw(st.integers(0, n0 - 1)), None), slice(None, None, 2))
    elif kind == "int":
        index = (draw(st.integers(-n0, n0 - 1)),)
    elif kind == "ellipsis_none":
        index = (Ellipsis, None, slice(0, 1))
    elif kind == "neg_step":
        index = (slice(None, None, -1),)
    elif kind == "int_array":  # repeated indices: backward must accumulate
        idx = np.asarray(draw(st.lists(st.integers(0, n0 - 1), min_size=1, max_size=6)))
        index = (idx,)
    elif kind == "two_arrays":
        length = draw(st.integers(1, 5))
        i0 = np.asarray(draw(st.lists(st.integers(0, n0 - 1), min_size=length, max_size=length)))
        i1 = np.asarray(draw(st.lists(st.integers(0, shape[1] - 1), min_size=length, max_size=length)))
        index = (i0, i1)
    else:
        mask = np.asarray(draw(st.lists(st.booleans(), min_size=n0, max_size=n0)))
        index = (mask,)

    def fn(ns, t):
        return t[tuple(ns.const(i) if isinstance(i, np.ndarray) else i for i in index)]

    def th(ns, t):  # torch has no negative steps: flip instead
        if kind == "neg_step":
            return t.flip(0)
        return fn(ns, t)

    return Instance([x], fn, th)


@st.composite
def gather_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    x = draw(array(shape))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    idx_shape = list(shape)
    idx_shape[dim] = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    idx = np.random.default_rng(seed).integers(0, shape[dim], size=idx_shape)
    return Instance([x], lambda ns, t: t.gather(dim, ns.const(idx)))


@st.composite
def cat_case(draw, stack=False):
    shape = draw(shapes)
    count = draw(st.integers(1, 3))
    dim = draw(st.integers(-len(shape) - int(stack), len(shape) - 1 + int(stack)))
    arrays = []
    for _ in range(count):
        s = list(shape)
        if not stack:
            s[dim] = draw(st.integers(1, 3))
        arrays.append(draw(array(tuple(s))))
    if stack:
        return Instance(arrays, lambda ns, *ts: ns.lib.stack(list(ts), dim=dim))
    return Instance(arrays, lambda ns, *ts: ns.lib.cat(list(ts), dim=dim))


@st.composite
def split_case(draw, use_chunk=False):
    shape = draw(shapes)
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    x = draw(array(shape))
    size = draw(st.integers(1, 3))
    if use_chunk:
        return Instance([x], lambda ns, t: tuple(t.chunk(size, dim)))
    return Instance([x], lambda ns, t: tuple(t.split(size, dim)))


@st.composite
def shape_case(draw, kind):
    shape = draw(shapes)
    x = draw(array(shape))
    nd = len(shape)
    if kind == "reshape":
        target = (-1,) if draw(st.booleans()) else (int(np.prod(shape)), 1)
        return Instance([x], lambda ns, t: t.reshape(*target))
    if kind == "view":
        # minigrad's view is reshape (it never fails on strides); torch's view needs contiguity
        return Instance([x], lambda ns, t: t.view(1, -1), lambda ns, t: t.reshape(1, -1))
    if kind == "transpose":
        d0, d1 = draw(st.integers(-nd, nd - 1)), draw(st.integers(-nd, nd - 1))
        return Instance([x], lambda ns, t: t.transpose(d0, d1))
    if kind == "permute":
        perm = draw(st.permutations(range(nd)))
        return Instance([x], lambda ns, t: t.permute(*perm))
    if kind == "T":
        y = draw(array(shape[:1] + (draw(small_dim),)))
        return Instance([y], lambda ns, t: t.T)
    if kind == "expand":
        lead = draw(st.integers(0, 2))
        target = (2,) * lead + tuple(draw(st.integers(1, 3)) if s == 1 else s for s in shape)
        return Instance([x], lambda ns, t: t.expand(*target))
    if kind == "unsqueeze":
        d = draw(st.integers(-nd - 1, nd))
        return Instance([x], lambda ns, t: t.unsqueeze(d))
    if kind == "squeeze":
        d = draw(st.integers(-nd, nd - 1))
        return Instance([x], lambda ns, t: t.squeeze(d))
    if kind == "flatten":
        s = draw(st.integers(0, nd - 1))
        e = draw(st.integers(s, nd - 1))
        return Instance([x], lambda ns, t: t.flatten(s, e))
    raise ValueError(kind)


@st.composite
def where_case(draw):
    (sc, sa, sb), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3))
    seed = draw(st.integers(0, 2**31 - 1))
    cond = np.random.default_rng(seed).random(sc) > 0.5
    return Instance([draw(array(sa)), draw(array(sb))], lambda ns, a, b: ns.lib.where(ns.const(cond), a, b))


@st.composite
def masked_fill_case(draw):
    (sx, sm), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3))
    sx = np.broadcast_shapes(sx, sm)
    seed = draw(st.integers(0, 2**31 - 1))
    mask = np.random.default_rng(seed).random(sm) > 0.5
    value = draw(st.sampled_from([0.0, -100.0, 2.5]))  # -1e9 would swamp float64 differences
    return Instance([draw(array(sx))], lambda ns, t: t.masked_fill(ns.const(mask), value))


@st.composite
def pad_case(draw):
    shape = draw(shapes)
    n = draw(st.integers(1, len(shape)))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(2 * n))
    value = draw(st.sampled_from([0.0, 1.5]))
    return Instance([draw(array(shape))], lambda ns, t: ns.F.pad(t, pad, value=value))


@st.composite
def clamp_case(draw):
    lo = draw(st.one_of(st.none(), st.floats(-1.0, 0.0)))
    hi = draw(st.one_of(st.none(), st.floats(0.1, 1.0))) if lo is not None else draw(st.floats(0.1, 1.0))
    x = draw(array(draw(shapes0)))
    return Instance([x], lambda ns, t: t.clamp(min=lo, max=hi))


@st.composite
def softmax_case(draw, log=False):
    shape = draw(shapes)
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    x = draw(array(shape)) * draw(st.sampled_from([1.0, 10.0]))
    if log:
        return Instance([x], lambda ns, t: t.log_softmax(dim))
    return Instance([x], lambda ns, t: t.softmax(dim))


@st.composite
def embedding_case(draw):
    num, dim = draw(st.integers(2, 6)), draw(st.integers(1, 4))
    ids_shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, max_side=5))
    seed = draw(st.integers(0, 2**31 - 1))
    ids = np.random.default_rng(seed).integers(0, num, size=ids_shape)  # repeats likely
    padding_idx = draw(st.one_of(st.none(), st.integers(0, num - 1)))
    w = draw(array((num, dim)))
    return Instance([w], lambda ns, weight: ns.F.embedding(ns.const(ids), weight, padding_idx=padding_idx),
                    numerically_checkable=padding_idx is None)


@st.composite
def pow_scalar_case(draw):
    c = draw(st.sampled_from([2, 3, 0.5, -1.0, -2.5]))
    domain = "positive" if c in (0.5, -1.0, -2.5) else "real"
    x = draw(array(draw(shapes0), domain))
    return Instance([x], lambda ns, t: t ** c)


@st.composite
def softplus_case(draw):
    beta = draw(st.sampled_from([1.0, 2.0]))
    threshold = draw(st.sampled_from([20.0, 1.0]))
    x = draw(array(draw(shapes0))) * 2
    return Instance([x], lambda ns, t: ns.F.softplus(t, beta=beta, threshold=threshold))


@st.composite
def maximum_case(draw, fn_name):
    (sa, sb), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))
    return Instance([draw(array(sa)), draw(array(sb))], lambda ns, a, b: getattr(ns.lib, fn_name)(a, b))


@st.composite
def dropout_case(draw):
    # dropout with p = 0 (identity) is checked against torch; masks are checked in test_engine
    x = draw(array(draw(shapes)))
    return Instance([x], lambda ns, t: ns.F.dropout(t, p=0.0, training=True))


@st.composite
def composite_case(draw):
    """A small expression mixing ops: checks that gradients flow through compositions."""
    x = draw(array((3, 4)))
    w = draw(array((4, 2)))
    return Instance([x, w], lambda ns, a, b: ((a @ b).tanh() * a.sum(1, keepdim=True) + 1.0).log_softmax(-1))


@st.composite
def scaled_unary(draw, fn, scale, domain="real"):
    """A unary case on inputs spread over [-scale·3, scale·3] or so: reaches an activation's corners (relu6 at 6)."""
    x = draw(array(draw(shapes0), domain)) * scale
    return Instance([x], fn)


@st.composite
def repeat_case(draw):
    shape = draw(shapes0)
    counts = tuple(draw(st.integers(1, 3)) for _ in range(max(len(shape), 1) + draw(st.integers(0, 2))))
    return Instance([draw(array(shape))], lambda ns, t: t.repeat(*counts))


@st.composite
def flip_case(draw):
    shape = draw(shapes)
    dims = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape),
                         unique_by=lambda d: d % len(shape)))
    return Instance([draw(array(shape))], lambda ns, t: t.flip(*dims))


@st.composite
def triangle_case(draw, name):
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))
    diagonal = draw(st.integers(-2, 2))
    return Instance([draw(array(shape))], lambda ns, t: getattr(t, name)(diagonal))


@st.composite
def cumsum_case(draw):
    shape = draw(shapes0)
    dim = draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))
    return Instance([draw(array(shape))], lambda ns, t: t.cumsum(dim))


@st.composite
def comparison_methods_case(draw):
    """The comparison methods pick which input flows into the result (a tie is measure-zero)."""
    (sa, sb), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3))

    def fn(ns, a, b):
        return (a * a.gt(b) + b * a.lt(b) + (a - b) * a.ge(b) + a * b * a.le(b) + a * a.eq(b) + b * a.ne(b)
                + a * a.gt(0.0))

    a, b = draw(array(sa, "nonzero")), draw(array(sb))
    assume(np.all(np.abs(a - b) > 1e-3))  # equal seeds draw equal arrays: ties are not measure-zero here
    return Instance([a, b], fn)


@st.composite
def like_methods_case(draw):
    """expand_as / reshape_as / view_as / type_as take the shape or dtype of another tensor."""
    (sa, sb), _ = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3))
    target = np.broadcast_shapes(sa, sb)
    a, b = draw(array(sa)), draw(array(target))

    def fn(ns, x, y):
        flat = ns.const(np.zeros(x.numel(), dtype=np.float32)).type_as(x)  # float32 zeros, in x's dtype
        return x.expand_as(y) * y + (x.reshape(-1) + flat).reshape_as(x) + x.reshape(-1).view_as(x)

    return Instance([a, b], fn)


@st.composite
def eye_case(draw):
    n, m = draw(small_dim), draw(small_dim)
    return Instance([draw(array((draw(small_dim), n)))], lambda ns, t: t @ ns.lib.eye(n, m, dtype=t.dtype))


CASES: dict[str, st.SearchStrategy] = {
    "add": binary(lambda ns, a, b: a + b),
    "radd_scalar": unary(lambda ns, a: 2.5 + a),
    "sub": binary(lambda ns, a, b: a - b),
    "rsub_scalar": unary(lambda ns, a: 1.0 - a),
    "mul": binary(lambda ns, a, b: a * b),
    "div": binary(lambda ns, a, b: a / b, domain_b="nonzero"),
    "rdiv_scalar": unary(lambda ns, a: 2.0 / a, domain="nonzero"),
    "pow": binary(lambda ns, a, b: a ** b, domain_a="positive"),
    "pow_scalar": pow_scalar_case(),
    "rpow": unary(lambda ns, a: 2.0 ** a),
    "matmul": matmul_case(),
    "linear": linear_case(),
    "neg": unary(lambda ns, a: -a),
    "exp": unary(lambda ns, a: a.exp()),
    "log": unary(lambda ns, a: a.log(), domain="positive"),
    "sqrt": unary(lambda ns, a: a.sqrt(), domain="positive"),
    "abs": unary(lambda ns, a: a.abs(), domain="nonzero"),
    "tanh": unary(lambda ns, a: a.tanh()),
    "sigmoid": unary(lambda ns, a: a.sigmoid()),
    "relu": unary(lambda ns, a: a.relu(), domain="nonzero"),
    "gelu": unary(lambda ns, a: ns.F.gelu(a)),
    "gelu_tanh": unary(lambda ns, a: ns.F.gelu(a, approximate="tanh")),
    "softplus": softplus_case(),
    "sin": unary(lambda ns, a: a.sin()),
    "cos": unary(lambda ns, a: a.cos()),
    "erf": unary(lambda ns, a: a.erf() if ns.name == "minigrad" else ns.lib.erf(a)),
    "sum": reduction("sum"),
    "mean": reduction("mean"),
    "max": reduction("max"),
    "min": reduction("min"),
    "var": reduction("var"),
    "std": reduction("std"),
    "logsumexp": reduction("logsumexp"),
    "reshape": shape_case("reshape"),
    "view": shape_case("view"),
    "transpose": shape_case("transpose"),
    "permute": shape_case("permute"),
    "T": shape_case("T"),
    "expand": shape_case("expand"),
    "unsqueeze": shape_case("unsqueeze"),
    "squeeze": shape_case("squeeze"),
    "flatten": shape_case("flatten"),
    "getitem": getitem_case(),
    "gather": gather_case(),
    "cat": cat_case(),
    "stack": cat_case(stack=True),
    "split": split_case(),
    "chunk": split_case(use_chunk=True),
    "where": where_case(),
    "masked_fill": masked_fill_case(),
    "pad": pad_case(),
    "clamp": clamp_case(),
    "maximum": maximum_case("maximum"),
    "minimum": maximum_case("minimum"),
    "softmax": softmax_case(),
    "log_softmax": softmax_case(log=True),
    "dropout_p0": dropout_case(),
    "embedding": embedding_case(),
    "composite": composite_case(),
    # what a PyTorch user reaches for (issue 14): the operators' method forms ...
    "add_method": binary(lambda ns, a, b: a.add(b, alpha=2.5)),
    "sub_method": binary(lambda ns, a, b: a.sub(b, alpha=0.5)),
    "mul_method": binary(lambda ns, a, b: a.mul(b)),
    "div_method": binary(lambda ns, a, b: a.div(b), domain_b="nonzero"),
    "pow_method": binary(lambda ns, a, b: a.pow(b), domain_a="positive"),
    "comparison_methods": comparison_methods_case(),
    # ... elementwise math, the step functions (zero gradient, in the graph) ...
    "reciprocal": unary(lambda ns, a: a.reciprocal(), domain="nonzero"),
    "tan": unary(lambda ns, a: a.tan(), domain="unit"),
    "log2": unary(lambda ns, a: a.log2(), domain="positive"),
    "sign": unary(lambda ns, a: a.sign() * a, domain="nonzero"),
    "floor": scaled_unary(lambda ns, a: a.floor() + a, 3.0),
    "ceil": scaled_unary(lambda ns, a: a.ceil() * a, 3.0),
    "trunc": scaled_unary(lambda ns, a: a.trunc() - a, 3.0),
    # ... activations ...
    "elu": unary(lambda ns, a: ns.F.elu(a, alpha=1.5), domain="nonzero"),
    # torch's celu backward rounds 1/α through float32 (1.0 / alpha.toFloat()): an α exact in float32 keeps parity
    "celu": unary(lambda ns, a: ns.F.celu(a, alpha=0.75), domain="nonzero"),
    "leaky_relu": unary(lambda ns, a: ns.F.leaky_relu(a, negative_slope=0.2), domain="nonzero"),
    "hardtanh": scaled_unary(lambda ns, a: ns.F.hardtanh(a, -0.5, 1.5), 2.0),
    "relu6": scaled_unary(lambda ns, a: ns.F.relu6(a), 4.0),
    "hardswish": scaled_unary(lambda ns, a: ns.F.hardswish(a), 3.0),
    "softsign": unary(lambda ns, a: ns.F.softsign(a), domain="nonzero"),
    "mish": scaled_unary(lambda ns, a: ns.F.mish(a), 3.0),
    # ... shape ops and factories
    "repeat": repeat_case(),
    "flip": flip_case(),
    "tril": triangle_case("tril"),
    "triu": triangle_case("triu"),
    "cumsum": cumsum_case(),
    "t": unary(lambda ns, a: a.t(), shape_strategy=hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4)),
    "like_methods": like_methods_case(),
    "eye": eye_case(),
    # empty's values are torch's uninitialised memory (ours are zeros): only the shape it makes is compared here
    "empty": unary(lambda ns, a: a.expand(*ns.lib.empty((2,) + tuple(a.shape), dtype=a.dtype).shape)),
    "full_like": unary(lambda ns, a: a * ns.lib.full_like(a, 2.5) + ns.lib.full_like(a, -1.0)),
}
