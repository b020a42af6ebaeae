"""Every fused kernel in ``minigrad/kernels/`` equals its plain-ops reference: the same outputs, the same
first derivatives and the same second derivatives (a Hessian-vector product through ``create_graph``), on
hypothesis inputs in float64 — plus GELU's float32 kernel against the exact op in float32."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad
from minigrad import functional as F
from minigrad import kernels, nn

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths(build, arrays, second_order=True, seed=0):
    """Run ``build(*tensors)`` on the kernels and on the references; per path, the output, the gradients of
    Σ u ⊙ out and, if asked, the gradients of Σ v ⊙ (those gradients) — a Hessian-vector product."""
    results = []
    for reference in (False, True):
        with kernels.reference(reference):
            minigrad.manual_seed(seed)  # dropout draws the same masks on both paths
            ts = [minigrad.Tensor(a, requires_grad=True) for a in arrays]
            out = build(*ts)
            rng = np.random.default_rng(1)
            u = minigrad.Tensor(rng.standard_normal(out.shape).astype(out.dtype))
            grads = minigrad.grad((out * u).sum(), ts, create_graph=second_order, allow_unused=True)
            second = None
            if second_order:
                used = [(t, g) for t, g in zip(ts, grads) if g is not None and g.requires_grad]
                vs = [minigrad.Tensor(rng.standard_normal(g.shape).astype(g.dtype)) for _, g in used]
                total = sum(((g * v).sum() for (_, g), v in zip(used, vs)), minigrad.Tensor(np.zeros((), out.dtype)))
                second = minigrad.grad(total, ts, allow_unused=True) if used else None
            results.append((out.data, [None if g is None else g.data for g in grads],
                            None if second is None else [None if g is None else g.data for g in second]))
    return results


def _assert_paths_equal(results, rtol=1e-9, atol=1e-10):
    (o_k, g_k, s_k), (o_r, g_r, s_r) = results
    scale = max(1.0, float(np.abs(o_r).max(initial=0.0)))
    np.testing.assert_allclose(o_k, o_r, rtol=rtol, atol=atol * scale, err_msg="output")
    for i, (a, b) in enumerate(zip(g_k, g_r)):
        assert (a is None) == (b is None), f"gradient {i}: used on one path only"
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, float(np.abs(b).max())),
                                       err_msg=f"gradient {i}")
    if s_k is not None or s_r is not None:
        for i, (a, b) in enumerate(zip(s_k, s_r)):
            a = 0.0 if a is None else a
            b = 0.0 if b is None else b
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, float(np.max(np.abs(b)))),
                                       err_msg=f"second-order gradient {i}")


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------------------------------- normalization
@SETTINGS
@given(lead=st.lists(st.integers(1, 3), max_size=2), n=st.integers(2, 6), affine=st.booleans(), seed=st.integers(0, 999))
def test_layer_norm(lead, n, affine, seed):
    r = _rng(seed)
    arrays = [r.standard_normal(tuple(lead) + (n,)) * 2 + 1]
    if affine:
        arrays += [r.standard_normal(n), r.standard_normal(n)]
    _assert_paths_equal(_paths(lambda x, *p: F.layer_norm(x, (n,), *p, eps=1e-5), arrays))


# ---------------------------------------------------------------------------------------------- linear, embedding
@SETTINGS
@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=3), k=st.integers(1, 5), m=st.integers(1, 5),
       bias=st.booleans(), seed=st.integers(0, 999))
def test_linear(lead, k, m, bias, seed):
    r = _rng(seed)
    arrays = [r.standard_normal(tuple(lead) + (k,)), r.standard_normal((m, k))] + ([r.standard_normal(m)] if bias else [])
    _assert_paths_equal(_paths(lambda x, w, *b: F.linear(x, w, *b), arrays))


@SETTINGS
@given(num=st.integers(2, 7), dim=st.integers(1, 4), shape=st.lists(st.integers(1, 4), min_size=1, max_size=2),
       padding=st.booleans(), seed=st.integers(0, 999))
def test_embedding(num, dim, shape, padding, seed):
    r = _rng(seed)
    ids = r.integers(0, num, size=tuple(shape))  # repeated ids: the gradient must add up
    pad = int(ids.flat[0]) if padding else None
    _assert_paths_equal(_paths(lambda w: F.embedding(ids, w, padding_idx=pad) * 1.5, [r.standard_normal((num, dim))]))


# ---------------------------------------------------------------------------------------------- losses
@SETTINGS
@given(m=st.integers(1, 5), c=st.integers(2, 6), probs=st.booleans(), weighted=st.booleans(),
       smoothing=st.sampled_from([0.0, 0.2]), reduction=st.sampled_from(["mean", "sum", "none"]),
       seed=st.integers(0, 999))
def test_cross_entropy(m, c, probs, weighted, smoothing, reduction, seed):
    r = _rng(seed)
    weight = r.random(c) + 0.3 if weighted else None
    arrays = [r.standard_normal((m, c)) * 2]
    if probs:
        t = r.random((m, c)) + 0.1
        arrays.append(t / t.sum(axis=1, keepdims=True))

        def build(x, t):
            return F.cross_entropy(x, t, weight, reduction=reduction, label_smoothing=smoothing)
    else:
        target = r.integers(0, c, m)
        target[r.random(m) < 0.3] = -100  # some ignored

        def build(x):
            return F.cross_entropy(x, minigrad.Tensor(target), weight, reduction=reduction,
                                   label_smoothing=smoothing)
    results = _paths(build, arrays)
    if not np.isfinite(results[1][0]).all():  # mean over no target: nan on both paths, gradient 0
        assert np.isnan(results[0][0]).all() and not results[0][1][0].any() and not results[1][1][0].any()
        return
    _assert_paths_equal(results)


# ---------------------------------------------------------------------------------------------- attention
@SETTINGS
@given(batch=st.lists(st.integers(1, 2), max_size=2), L=st.integers(1, 4), S=st.integers(1, 4), E=st.integers(1, 4),
       mask=st.sampled_from([None, "bool", "float", "causal"]), dropout=st.sampled_from([0.0, 0.3]),
       seed=st.integers(0, 999))
def test_scaled_dot_product_attention(batch, L, S, E, mask, dropout, seed):
    r = _rng(seed)
    b = tuple(batch)
    arrays = [r.standard_normal(b + (L, E)), r.standard_normal(b + (S, E)), r.standard_normal(b + (S, E + 1))]
    m = None
    if mask == "bool":
        m = r.random((L, S)) < 0.7
        m[0] = False  # a fully masked row: weights and output 0 on both paths
    elif mask == "float":
        m = r.standard_normal((L, S))
    causal = mask == "causal"
    gen = minigrad.Generator(seed)

    def build(q, k, v):
        gen.manual_seed(seed)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m, is_causal=causal, dropout_p=dropout,
                                              generator=gen)
    _assert_paths_equal(_paths(build, arrays))


@SETTINGS
@given(batch_first=st.booleans(), self_attention=st.booleans(), need_weights=st.booleans(), L=st.integers(1, 4),
       seed=st.integers(0, 999))
def test_multihead_attention_layouts(batch_first, self_attention, need_weights, L, seed):
    """The stored-layout (and packed self-attention) inputs of the kernel against the canonical reference."""
    r = _rng(seed)
    mha = nn.MultiheadAttention(6, 2, batch_first=batch_first, dtype=np.float64, generator=minigrad.Generator(seed))
    shape = (2, L, 6) if batch_first else (L, 2, 6)
    arrays = [r.standard_normal(shape)] if self_attention else [r.standard_normal(shape), r.standard_normal(shape)]
    kpm = r.random((2, L)) < 0.3

    def build(q, *kv):
        k = v = q if not kv else kv[0]
        out, w = mha(q, k, v, key_padding_mask=kpm, need_weights=need_weights)
        return out if w is None else out.sum() + (w * w).sum()
    _assert_paths_equal(_paths(build, arrays))


# ---------------------------------------------------------------------------------------------- recurrent
@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
@SETTINGS
@given(T=st.integers(1, 4), B=st.integers(1, 2), bidirectional=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 999))
def test_recurrent_layers(cls, T, B, bidirectional, bias, seed):
    r = _rng(seed)
    layer = cls(3, 2, num_layers=2, bias=bias, bidirectional=bidirectional, dtype=np.float64,
                generator=minigrad.Generator(seed))
    D = 2 if bidirectional else 1
    arrays = [r.standard_normal((T, B, 3)), r.standard_normal((2 * D, B, 2))]

    def build(x, h0):
        out, h_n = layer(x, (h0, h0 * 0.5) if cls is nn.LSTM else h0)
        h_n = h_n[0] + h_n[1] if cls is nn.LSTM else h_n
        return out.sum(axis=-1) + h_n.sum()
    _assert_paths_equal(_paths(build, arrays))


@pytest.mark.parametrize("cls", [nn.RNNCell, nn.GRUCell, nn.LSTMCell])
@SETTINGS
@given(B=st.integers(1, 3), seed=st.integers(0, 999))
def test_recurrent_cells(cls, B, seed):
    r = _rng(seed)
    cell = cls(3, 4, dtype=np.float64, generator=minigrad.Generator(seed))
    arrays = [r.standard_normal((B, 3)), r.standard_normal((B, 4))]

    def build(x, h):
        out = cell(x, (h, h * 2.0)) if cls is nn.LSTMCell else cell(x, h)
        return out[0] * out[1] if cls is nn.LSTMCell else out
    _assert_paths_equal(_paths(build, arrays))


# ---------------------------------------------------------------------------------------------- activation
@SETTINGS
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=2), seed=st.integers(0, 999))
def test_gelu_float32_kernel_equals_exact_op(shape, seed):
    """float32: the A&S-erf kernel against the exact-erf op, within the approximation's 1.5e-7·|x|."""
    x = (_rng(seed).standard_normal(tuple(shape)) * 4).astype(np.float32)
    (o_k, g_k, s_k), (o_r, g_r, s_r) = _paths(lambda t: t.gelu(), [x])
    np.testing.assert_allclose(o_k, o_r, rtol=0, atol=2e-6 * max(1.0, float(np.abs(x).max())))
    np.testing.assert_allclose(g_k[0], g_r[0], rtol=0, atol=4e-6 * 4)
    np.testing.assert_allclose(s_k[0], s_r[0], rtol=1e-5, atol=1e-5)  # second order: the same exact rule


@SETTINGS
@given(shape=st.lists(st.integers(1, 40), min_size=1, max_size=2), seed=st.integers(0, 999))
def test_gelu_tanh_float32_kernel_equals_op(shape, seed):
    """float32: GPT-2's gelu_new (the tanh approximation), fused kernel against the op, to float32 rounding."""
    x = (_rng(seed).standard_normal(tuple(shape)) * 4).astype(np.float32)
    (o_k, g_k, s_k), (o_r, g_r, s_r) = _paths(lambda t: t.gelu(approximate="tanh"), [x])
    np.testing.assert_allclose(o_k, o_r, rtol=0, atol=1e-6 * max(1.0, float(np.abs(x).max())))
    np.testing.assert_allclose(g_k[0], g_r[0], rtol=0, atol=4e-6)
    np.testing.assert_allclose(s_k[0], s_r[0], rtol=1e-5, atol=1e-5)  # second order: the op's own rule


def test_gelu_tanh_float32_kernel_across_blocks_equals_op_and_torch():
    """The tanh kernel works block by block (``_GELU_CHUNK`` elements): over a full block and a partial one,
    and on a transposed view, value and gradient equal the op's and torch's ``gelu(approximate="tanh")``;
    float64 input runs the op itself, not the kernel. (Special values: tests/test_layers_basic.py.)"""
    from minigrad.kernels import activation as kernels_activation

    rng = _rng(6)
    x = (rng.standard_normal((2, kernels_activation._GELU_CHUNK // 2 + 777)) * 4).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    (o_k, g_k, _), (o_r, g_r, _) = _paths(lambda t: t.gelu(approximate="tanh"), [x], second_order=False)
    # |GELU_tanh(x)| <= |x|, |GELU_tanh'(x)| <= 1.13: a few float32 ulps of |x| and of the unit upstream gradient
    np.testing.assert_allclose(o_k, o_r, rtol=0, atol=1e-6 * np.abs(x).max())
    np.testing.assert_allclose(g_k[0], g_r[0], rtol=0, atol=2e-6 * 4)
    with kernels.reference(False):  # the kernel itself, also under MINIGRAD_KERNELS=reference
        np.testing.assert_array_equal(minigrad.Tensor(x.T).gelu(approximate="tanh").data, o_k.T)
        xm = minigrad.Tensor(x, requires_grad=True)
        ym = xm.gelu(approximate="tanh")
        assert type(ym.grad_fn).__name__ == "GeluTanhFloat32"
        x64 = minigrad.Tensor(x[:, :5].astype(np.float64), requires_grad=True)
        assert type(x64.gelu(approximate="tanh").grad_fn).__name__ == "GeluTanh"
        ym.backward(minigrad.Tensor(g))
        torch = pytest.importorskip("torch")
        xt = torch.tensor(x, requires_grad=True)
        torch.nn.functional.gelu(xt, approximate="tanh").backward(torch.from_numpy(g))
        np.testing.assert_allclose(ym.data, torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy(),
                                   rtol=0, atol=1e-6 * np.abs(x).max())
        np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=0, atol=2e-6 * np.abs(g).max())


def test_reference_switch_restores_and_rejects_bad_environment():
    start = kernels.using_reference()  # False, or True under MINIGRAD_KERNELS=reference
    with kernels.reference():
        assert kernels.using_reference()
        with kernels.reference(False):
            assert not kernels.using_reference()
        assert kernels.using_reference()
    assert kernels.using_reference() == start
    import subprocess
    import sys
    bad = subprocess.run([sys.executable, "-c", "import minigrad"], capture_output=True, text=True,
                         env={"MINIGRAD_KERNELS": "fastest", "PATH": ""})
    assert bad.returncode != 0 and "MINIGRAD_KERNELS must be 'fast' or 'reference'" in bad.stderr


def test_a_wrong_kernel_is_caught():
    """The comparison can fail: a LayerNorm kernel with a 1 % error in its backward differs from the reference."""
    from minigrad.kernels import normalization

    original = normalization.LayerNormFunction.backward

    def wrong(self, g):
        dx, *rest = original(self, g)
        return (dx * 1.01, *rest)
    normalization.LayerNormFunction.backward = wrong
    try:
        with pytest.raises(AssertionError, match="gradient 0"):
            _assert_paths_equal(_paths(lambda x: F.layer_norm(x, (4,)), [_rng(0).standard_normal((3, 4))],
                                       second_order=False))
    finally:
        normalization.LayerNormFunction.backward = original
