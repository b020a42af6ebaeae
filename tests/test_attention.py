"""Attention layers: scaled dot-product attention, Bahdanau/Luong attention, multi-head
attention with its key/value cache, positional encodings.

Gradients are checked numerically (float64, first and second order) and against PyTorch on
identical weights and inputs (outputs and every parameter and input gradient; float64 to 1e-10,
float32 to atol 1e-5 / rtol 1e-4), with hypothesis choosing sizes, layouts and masks."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad
from tolerances import assert_close
from minigrad import Tensor
from minigrad.nn.attention import (AdditiveAttention, KVCache, LuongAttention, MultiheadAttention, causal_mask,
                                   masked_softmax, scaled_dot_product_attention)
from minigrad.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _t(a, grad=False):
    return Tensor(np.asarray(a), requires_grad=grad)


def _weighted_loss(out, w):
    return (out * Tensor(w.astype(out.dtype))).sum()


# ----------------------------------------------------------------------------------------------
# scaled dot-product attention
# ----------------------------------------------------------------------------------------------
def _reference_sdpa(q, k, v, add_mask, scale):
    """softmax(q kᵀ s + M) v in float64 NumPy, fully masked rows → 0."""
    s = q @ np.swapaxes(k, -1, -2) * scale
    if add_mask is not None:
        s = s + add_mask
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    z = e.sum(-1, keepdims=True)
    p = e / np.where(z == 0, 1.0, z)
    return p @ v, p


def test_sdpa_matches_formula_and_returns_weights():
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 6))
    keep = rng.random((3, 5)) < 0.7
    keep[:, 0] = True
    out, w = scaled_dot_product_attention(_t(q), _t(k), _t(v), attn_mask=_t(keep), return_weights=True)
    ref_out, ref_p = _reference_sdpa(q, k, v, np.where(keep, 0.0, -np.inf), 1 / math.sqrt(4))
    np.testing.assert_allclose(out.data, ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w.data, ref_p, rtol=1e-12, atol=1e-12)
    assert np.all(w.data[:, ~keep] == 0.0)  # masked keys get weight exactly 0


def test_sdpa_fully_masked_row_gives_zero_output_and_gradient():
    rng = np.random.default_rng(1)
    q, k, v = (_t(rng.standard_normal(s), True) for s in ((3, 4), (5, 4), (5, 2)))
    keep = np.ones((3, 5), bool)
    keep[1] = False
    out = scaled_dot_product_attention(q, k, v, attn_mask=_t(keep))
    assert np.all(out.data[1] == 0) and np.all(np.isfinite(out.data))
    out.sum().backward()
    assert np.all(q.grad[1] == 0) and np.all(np.isfinite(k.grad))


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float_grad", "causal"])
def test_sdpa_gradcheck_first_and_second_order(mask_kind):
    rng = np.random.default_rng(2)
    q, k, v = (_t(rng.standard_normal(s), True) for s in ((2, 3, 4), (2, 5, 4), (2, 5, 3)))
    inputs = [q, k, v]
    keep = rng.random((3, 5)) < 0.6
    keep[:, 0] = True
    if mask_kind == "float_grad":
        inputs.append(_t(rng.standard_normal((1, 3, 5)), True))

    def f(*xs):
        if mask_kind == "float_grad":
            return scaled_dot_product_attention(*xs[:3], attn_mask=xs[3])
        if mask_kind == "bool":
            return scaled_dot_product_attention(*xs, attn_mask=_t(keep))
        return scaled_dot_product_attention(*xs, is_causal=mask_kind == "causal")

    assert minigrad.gradcheck(f, inputs)
    assert minigrad.gradgradcheck(f, inputs)


def test_sdpa_weights_are_differentiable_and_dropout_is_reproducible():
    rng = np.random.default_rng(3)
    q, k, v = (_t(rng.standard_normal(s), True) for s in ((3, 4), (5, 4), (5, 2)))

    def weights_only(a, b, c):
        return scaled_dot_product_attention(a, b, c, return_weights=True)[1]

    assert minigrad.gradcheck(weights_only, [q, k, v])

    def dropped(a, b, c):  # the same generator seed → the same dropout mask on every call
        return scaled_dot_product_attention(a, b, c, dropout_p=0.4, generator=minigrad.Generator(7))

    assert minigrad.gradcheck(dropped, [q, k, v])
    assert minigrad.gradgradcheck(dropped, [q, k, v])
    # dropout mask = the generator's first uniform draws over P's shape, kept where ≥ p, scaled by 1/(1-p)
    _, p = _reference_sdpa(q.data, k.data, v.data, None, 0.5)
    keep = minigrad.Generator(7).np.random(p.shape) >= 0.4
    np.testing.assert_allclose(dropped(q, k, v).data, (p * keep / 0.6) @ v.data, rtol=1e-12, atol=1e-12)


def test_sdpa_fused_and_composite_paths_agree():
    rng = np.random.default_rng(4)
    q, k, v = (_t(rng.standard_normal(s), True) for s in ((2, 2, 3, 4), (2, 2, 6, 4), (2, 2, 6, 5)))
    out_w, _ = scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=True)  # composite
    out_w.sum().backward()
    grads = [t.grad.copy() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    out = scaled_dot_product_attention(q, k, v, is_causal=True)  # fused
    out.sum().backward()
    np.testing.assert_allclose(out.data, out_w.data, rtol=1e-12, atol=1e-13)
    for g, t in zip(grads, (q, k, v)):
        np.testing.assert_allclose(t.grad, g, rtol=1e-10, atol=1e-12)
    with minigrad.no_grad():  # no graph: the fused node hands out its probabilities
        out_ng, w_ng = scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=True)
    np.testing.assert_allclose(out_ng.data, out.data, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(w_ng.data, _reference_sdpa(q.data, k.data, v.data, causal_mask(3, 6, dtype=np.float64),
                                                          0.5)[1], rtol=1e-12, atol=1e-13)


@st.composite
def sdpa_cases(draw):
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    L, S, E, Ev = (draw(st.integers(1, 6)) for _ in range(4))
    mask = draw(st.sampled_from(["none", "bool", "bool_broadcast", "float", "causal"]))
    scale = draw(st.sampled_from([None, 0.3]))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    return batch, L, S, E, Ev, mask, scale, dtype, draw(st.integers(0, 2**31 - 1))


@settings(max_examples=40, **SETTINGS)
@given(sdpa_cases())
def test_sdpa_matches_torch(torch, case):
    batch, L, S, E, Ev, mask_kind, scale, dtype, seed = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(batch + s).astype(dtype) for s in ((L, E), (S, E), (S, Ev))]
    mask = None
    if mask_kind == "bool":
        mask = rng.random((L, S)) < 0.7
    elif mask_kind == "bool_broadcast":
        mask = rng.random(tuple(b if i % 2 == 0 else 1 for i, b in enumerate(batch)) + (1, S)) < 0.7
    elif mask_kind == "float":
        mask = rng.standard_normal((L, S)).astype(dtype)
    causal = mask_kind == "causal"
    ours = [_t(a, True) for a in arrays]
    out = scaled_dot_product_attention(*ours, attn_mask=None if mask is None else _t(mask), is_causal=causal,
                                       scale=scale)
    w = rng.standard_normal(out.shape)
    _weighted_loss(out, w).backward()
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    ref_out = torch.nn.functional.scaled_dot_product_attention(
        *ref, attn_mask=None if mask is None else torch.tensor(mask), is_causal=causal, scale=scale)
    (ref_out * torch.tensor(w.astype(dtype))).sum().backward()
    assert out.dtype == dtype
    assert_close(out.data, ref_out.detach().numpy(), dtype)
    for a, b in zip(ours, ref):
        assert_close(a.grad, b.grad.numpy(), dtype)


def test_sdpa_errors():
    q, k, v = _t(np.zeros((2, 3, 4))), _t(np.zeros((2, 5, 4))), _t(np.zeros((2, 5, 6)))
    with pytest.raises(ValueError, match="scaled_dot_product_attention: query .* and key"):
        scaled_dot_product_attention(q, _t(np.zeros((2, 5, 3))), v)
    with pytest.raises(ValueError, match="same sequence length"):
        scaled_dot_product_attention(q, k, _t(np.zeros((2, 4, 6))))
    with pytest.raises(ValueError, match="attn_mask of shape"):
        scaled_dot_product_attention(q, k, v, attn_mask=_t(np.ones((3, 4), bool)))
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product_attention(q, k, v, attn_mask=_t(np.ones((3, 5), bool)), is_causal=True)
    with pytest.raises(TypeError, match="float32"):
        scaled_dot_product_attention(q, k, v.float())
    with pytest.raises(TypeError, match="bool or floating"):
        scaled_dot_product_attention(q, k, v, attn_mask=_t(np.ones((3, 5), np.int64)))


def test_masked_softmax_and_causal_mask():
    x = _t(np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]]), True)
    keep = np.array([[True, False, True], [False, False, False]])
    y = masked_softmax(x, _t(keep))
    e = np.exp([1.0, 3.0])
    np.testing.assert_allclose(y.data[0], [e[0] / e.sum(), 0.0, e[1] / e.sum()], rtol=1e-12)
    assert np.all(y.data[1] == 0) and y.data[0, 1] == 0.0
    assert minigrad.gradcheck(lambda a: masked_softmax(a, _t(keep)), [x])
    np.testing.assert_array_equal(causal_mask(2, 3, offset=1),
                                  np.array([[0, 0, -np.inf], [0, 0, 0]], dtype=np.float32))


# ----------------------------------------------------------------------------------------------
# Bahdanau and Luong attention
# ----------------------------------------------------------------------------------------------
def _np_softmax_masked(scores, keep):
    s = np.where(keep, scores, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("multi_step", [False, True])
def test_additive_attention_formula_mask_and_gradcheck(multi_step):
    rng = np.random.default_rng(5)
    att = AdditiveAttention(3, 4, 5, dtype=np.float64, generator=minigrad.Generator(0))
    N, S = 2, 6
    q = rng.standard_normal((N, 2, 3) if multi_step else (N, 3))
    keys, values = rng.standard_normal((N, S, 4)), rng.standard_normal((N, S, 2))
    keep = np.ones((N, S), bool)
    keep[0, 4:] = False  # source padding
    ctx, w = att(_t(q), _t(keys), _t(values), mask=_t(keep))
    W, U, v = att.W.weight.data, att.U.weight.data, att.v.weight.data[0]
    q3 = q if multi_step else q[:, None]
    scores = np.tanh((q3 @ W.T)[:, :, None, :] + (keys @ U.T)[:, None, :, :]) @ v  # vᵀ tanh(W q + U k)
    ref_w = _np_softmax_masked(scores, keep[:, None, :])
    ref_ctx = ref_w @ values
    if not multi_step:
        ref_w, ref_ctx = ref_w[:, 0], ref_ctx[:, 0]
    np.testing.assert_allclose(w.data, ref_w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ctx.data, ref_ctx, rtol=1e-12, atol=1e-14)
    assert np.all(w.data[0, ..., 4:] == 0.0)
    params = [att.W.weight, att.U.weight, att.v.weight]
    qt, kt, vt = _t(q, True), _t(keys, True), _t(values, True)
    assert minigrad.gradcheck(lambda a, b, c, *p: att(a, b, c, mask=_t(keep))[0], [qt, kt, vt, *params])


@pytest.mark.parametrize("method", ["dot", "general", "concat"])
def test_luong_attention_formula_mask_and_gradcheck(method):
    rng = np.random.default_rng(6)
    H, N, S = 4, 2, 5
    att = LuongAttention(H, method, dtype=np.float64, generator=minigrad.Generator(1))
    q, keys = rng.standard_normal((N, H)), rng.standard_normal((N, S, H))
    keep = np.ones((N, S), bool)
    keep[1, 3:] = False
    ctx, w = att(_t(q), _t(keys), mask=_t(keep))
    if method == "dot":
        scores = np.einsum("nh,nsh->ns", q, keys)
    elif method == "general":
        scores = np.einsum("nh,nsh->ns", q, keys @ att.W_a.weight.data.T)
    else:
        both = np.concatenate([np.repeat(q[:, None], S, 1), keys], -1)  # [h_t; h̄_s]
        scores = np.tanh(both @ att.W_a.weight.data.T) @ att.v_a.weight.data[0]
    ref_w = _np_softmax_masked(scores, keep)
    np.testing.assert_allclose(w.data, ref_w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ctx.data, np.einsum("ns,nsh->nh", ref_w, keys), rtol=1e-12, atol=1e-14)
    assert np.all(w.data[1, 3:] == 0.0)
    params = list(att.parameters())
    assert minigrad.gradcheck(lambda a, b, *p: att(a, b, mask=_t(keep))[0], [_t(q, True), _t(keys, True), *params])


def test_bahdanau_luong_errors():
    att = LuongAttention(4)
    with pytest.raises(ValueError, match="LuongAttention: keys must be"):
        att(_t(np.zeros((2, 4), np.float32)), _t(np.zeros((3, 5, 4), np.float32)))
    with pytest.raises(ValueError, match="mask must be a bool"):
        att(_t(np.zeros((2, 4), np.float32)), _t(np.zeros((2, 5, 4), np.float32)), mask=_t(np.ones((2, 4), bool)))
    with pytest.raises(ValueError, match="method"):
        LuongAttention(4, "cosine")
    with pytest.raises(ValueError, match="AdditiveAttention: query"):
        AdditiveAttention(3, 4, 5)(_t(np.zeros((2, 4), np.float32)), _t(np.zeros((2, 5, 4), np.float32)))


# ----------------------------------------------------------------------------------------------
# Multi-head attention
# ----------------------------------------------------------------------------------------------
@st.composite
def mha_cases(draw):
    c = dict(
        E=draw(st.sampled_from([4, 6, 8])), batch_first=draw(st.booleans()), kind=draw(st.sampled_from(
            ["self", "cross", "kv_same", "kdim"])), bias=draw(st.booleans()), add_bias_kv=draw(st.booleans()),
        add_zero_attn=draw(st.booleans()), need_weights=draw(st.booleans()), average=draw(st.booleans()),
        kpm=draw(st.sampled_from([None, "bool", "float"])), attn=draw(st.sampled_from(
            [None, "bool2", "float2", "bool3", "float3"])), unbatched=draw(st.booleans()),
        N=draw(st.integers(1, 3)), L=draw(st.integers(1, 5)), S=draw(st.integers(1, 5)),
        dtype=draw(st.sampled_from([np.float64, np.float32])), seed=draw(st.integers(0, 2**31 - 1)))
    c["H"] = draw(st.sampled_from([h for h in (1, 2) if c["E"] % h == 0]))
    return c


def _mha_masks(c, rng, L, S):
    """key_padding_mask / attn_mask as the case asks; never a query with every key masked
    (torch's MHA returns NaN there while we return 0 — tested separately)."""
    N, H, masks = c["N"], c["H"], {}
    lead = () if c["unbatched"] else (N,)
    if c["kpm"] == "bool":
        kpm = rng.random(lead + (S,)) < 0.4
        kpm[..., 0] = False
        masks["key_padding_mask"] = kpm
    elif c["kpm"] == "float":
        masks["key_padding_mask"] = rng.standard_normal(lead + (S,)).astype(c["dtype"])
    if c["attn"] is not None:
        shape = (L, S) if c["attn"].endswith("2") else ((H,) if c["unbatched"] else (N * H,)) + (L, S)
        if c["attn"].startswith("bool"):
            m = rng.random(shape) < 0.4
            m[..., 0] = False
        else:
            m = rng.standard_normal(shape).astype(c["dtype"])
        masks["attn_mask"] = m
    return masks


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@settings(max_examples=60, **SETTINGS)
@given(mha_cases())
def test_multihead_attention_matches_torch(torch, c):
    rng = np.random.default_rng(c["seed"])
    E, H, dtype = c["E"], c["H"], c["dtype"]
    kdim = vdim = None
    if c["kind"] == "kdim":
        kdim, vdim = E + 1, E + 2
    torch.manual_seed(c["seed"])
    opts = dict(bias=c["bias"], add_bias_kv=c["add_bias_kv"], add_zero_attn=c["add_zero_attn"], kdim=kdim,
                vdim=vdim, batch_first=c["batch_first"])
    ref = torch.nn.MultiheadAttention(E, H, **opts).to(torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():  # torch starts the biases at 0; give them values so their role is tested
        for name, p in ref.named_parameters():
            if "bias" in name:
                p.normal_()
    ours = MultiheadAttention(E, H, dtype=dtype, **opts)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]

    N, L = c["N"], c["L"]
    S = L if c["kind"] == "self" else c["S"]

    def shape(n, length, e):
        if c["unbatched"]:
            return (length, e)
        return (n, length, e) if c["batch_first"] else (length, n, e)

    x = rng.standard_normal(shape(N, L, E)).astype(dtype)
    arrays = [x]
    if c["kind"] in ("cross", "kdim"):
        arrays += [rng.standard_normal(shape(N, S, kdim or E)).astype(dtype),
                   rng.standard_normal(shape(N, S, vdim or E)).astype(dtype)]
    elif c["kind"] == "kv_same":
        arrays += [rng.standard_normal(shape(N, S, E)).astype(dtype)]
    masks = _mha_masks(c, rng, L, S)

    def qkv(ts):
        if c["kind"] == "self":
            return ts[0], ts[0], ts[0]
        if c["kind"] == "kv_same":
            return ts[0], ts[1], ts[1]
        return tuple(ts)

    ts = [_t(a, True) for a in arrays]
    out, w = ours(*qkv(ts), need_weights=c["need_weights"], average_attn_weights=c["average"],
                  **{k: _t(v) for k, v in masks.items()})
    rts = [torch.tensor(a, requires_grad=True) for a in arrays]
    ref_out, ref_w = ref(*qkv(rts), need_weights=c["need_weights"], average_attn_weights=c["average"],
                         **{k: torch.tensor(v) for k, v in masks.items()})
    g = rng.standard_normal(out.shape)
    loss = _weighted_loss(out, g)
    ref_loss = (ref_out * torch.tensor(g.astype(dtype))).sum()
    if c["need_weights"]:  # the returned weights are differentiable, as torch's
        gw = rng.standard_normal(w.shape)
        loss = loss + _weighted_loss(w, gw)
        ref_loss = ref_loss + (ref_w * torch.tensor(gw.astype(dtype))).sum()
        assert_close(w.data, ref_w.detach().numpy(), dtype)
    else:
        assert w is None and ref_w is None
    loss.backward()
    ref_loss.backward()
    assert_close(out.data, ref_out.detach().numpy(), dtype)
    for a, b in zip(ts, rts):
        assert_close(a.grad, b.grad.numpy(), dtype)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, ref_params[name].grad.numpy(), dtype, name)


def test_multihead_attention_init_like_torch():
    E = 8
    m = MultiheadAttention(E, 2, add_bias_kv=True, generator=minigrad.Generator(0))
    bound = math.sqrt(6 / (E + 3 * E))  # xavier_uniform on (3E, E)
    assert np.all(np.abs(m.in_proj_weight.data) <= bound) and m.in_proj_weight.data.std() > bound / 3
    assert np.all(m.in_proj_bias.data == 0) and np.all(m.out_proj.bias.data == 0)
    assert m.bias_k.shape == (1, 1, E) and m.q_proj_weight is None
    m2 = MultiheadAttention(E, 2, kdim=3, vdim=5, bias=False)
    assert m2.in_proj_weight is None and m2.k_proj_weight.shape == (E, 3) and m2.v_proj_weight.shape == (E, 5)
    assert m2.in_proj_bias is None and m2.out_proj.bias is None


def test_multihead_attention_gradcheck_first_and_second_order():
    rng = np.random.default_rng(7)
    m = MultiheadAttention(4, 2, batch_first=True, dtype=np.float64, generator=minigrad.Generator(3))
    x = _t(rng.standard_normal((2, 3, 4)), True)
    kpm = _t(np.array([[False, False, True], [False, False, False]]))
    params = list(m.parameters())

    def f(a, *p):
        return m(a, a, a, key_padding_mask=kpm, attn_mask=_t(causal_mask(3, dtype=np.float64)))[0]

    assert minigrad.gradcheck(f, [x, *params])
    assert minigrad.gradgradcheck(f, [x, m.in_proj_weight])


def test_multihead_attention_padding_never_affects_real_positions():
    rng = np.random.default_rng(8)
    m = MultiheadAttention(8, 2, batch_first=True, dtype=np.float64)
    x = rng.standard_normal((2, 5, 8))
    kpm = np.zeros((2, 5), bool)
    kpm[0, 3:] = True
    kpm[1, 4:] = True
    out1 = m(_t(x), _t(x), _t(x), key_padding_mask=_t(kpm))[0].data
    x2 = x.copy()
    x2[kpm] = rng.standard_normal((kpm.sum(), 8)) * 100  # change only the padded tokens
    out2, w2 = m(_t(x2), _t(x2), _t(x2), key_padding_mask=_t(kpm))
    np.testing.assert_allclose(out2.data[~kpm], out1[~kpm], rtol=1e-12, atol=1e-12)
    assert np.all(w2.data[0, :, 3:] == 0) and np.all(w2.data[1, :, 4:] == 0)
    with minigrad.no_grad():  # the no-graph path (weights from the fused node) agrees
        out3, w3 = m(_t(x2), _t(x2), _t(x2), key_padding_mask=_t(kpm), average_attn_weights=False)
    np.testing.assert_allclose(out3.data, out2.data, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(w3.data.mean(axis=1), w2.data, rtol=1e-12, atol=1e-13)


def test_multihead_attention_all_keys_masked_gives_bias_not_nan():
    m = MultiheadAttention(4, 2, batch_first=True)
    x = _t(np.ones((1, 2, 4), np.float32))
    out, w = m(x, x, x, key_padding_mask=_t(np.array([[True, True]])))
    np.testing.assert_allclose(out.data, np.broadcast_to(m.out_proj.bias.data, (1, 2, 4)))
    assert np.all(w.data == 0)


def test_multihead_attention_dropout_only_in_training():
    rng = np.random.default_rng(12)
    m = MultiheadAttention(8, 2, dropout=0.5, batch_first=True, dtype=np.float64)
    plain = MultiheadAttention(8, 2, dropout=0.0, batch_first=True, dtype=np.float64)
    plain.load_state_dict(m.state_dict())
    x = _t(rng.standard_normal((2, 4, 8)))
    m.eval()
    np.testing.assert_array_equal(m(x, x, x)[0].data, plain(x, x, x)[0].data)
    m.train()
    runs = []
    for _ in range(2):
        m.generator = minigrad.Generator(5)  # the same seed → the same attention-dropout mask
        runs.append(m(x, x, x, need_weights=False)[0].data)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], plain(x, x, x)[0].data)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("extras", [False, True])
def test_kv_cache_decoding_equals_full_causal_pass(batch_first, extras):
    rng = np.random.default_rng(9)
    m = MultiheadAttention(8, 2, batch_first=batch_first, add_bias_kv=extras, add_zero_attn=extras,
                           dtype=np.float64)
    T, N = 6, 2
    x = rng.standard_normal((N, T, 8) if batch_first else (T, N, 8))
    ax = 1 if batch_first else 0
    with minigrad.no_grad():
        full = m(_t(x), _t(x), _t(x), is_causal=True, need_weights=False)[0].data
        cache, steps = KVCache(), []
        for t in range(T):
            xt = _t(np.take(x, [t], axis=ax))
            steps.append(m(xt, xt, xt, is_causal=True, cache=cache)[0].data)
        assert len(cache) == T
        cache, chunks = KVCache(), []
        for lo, hi in ((0, 2), (2, 5), (5, 6)):  # a prompt, then chunks: the mask aligns to the end
            xc = _t(np.take(x, range(lo, hi), axis=ax))
            chunks.append(m(xc, xc, xc, is_causal=True, cache=cache)[0].data)
    np.testing.assert_allclose(np.concatenate(steps, ax), full, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.concatenate(chunks, ax), full, rtol=1e-12, atol=1e-13)


def test_static_cache_projects_memory_once():
    rng = np.random.default_rng(10)
    m = MultiheadAttention(4, 2, batch_first=True, dtype=np.float64)
    q, mem = rng.standard_normal((2, 1, 4)), rng.standard_normal((2, 5, 4))
    cache = KVCache(static=True)
    first = m(_t(q), _t(mem), _t(mem), cache=cache)[0].data
    again = m(_t(q), None, None, cache=cache)[0].data  # keys/values come from the cache
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, m(_t(q), _t(mem), _t(mem))[0].data)
    cache.reorder_([1, 1])
    np.testing.assert_allclose(m(_t(q[[0, 0]]), None, None, cache=cache)[0].data,
                               m(_t(q[[0, 0]]), _t(mem[[1, 1]]), _t(mem[[1, 1]]))[0].data, rtol=1e-12)


def test_multihead_attention_errors():
    with pytest.raises(ValueError, match="divisible"):
        MultiheadAttention(6, 4)
    m = MultiheadAttention(4, 2)
    x = _t(np.zeros((3, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(3, 3\)"):
        m(x, x, x, attn_mask=_t(np.zeros((2, 3), bool)))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(N, S\) = \(2, 3\)"):
        m(x, x, x, key_padding_mask=_t(np.zeros((3, 2), bool)))
    with pytest.raises(ValueError, match="embed_dim=4"):
        m(_t(np.zeros((3, 2, 5), np.float32)), x, x)
    with pytest.raises(ValueError, match="different batch sizes"):
        m(x, _t(np.zeros((3, 1, 4), np.float32)), _t(np.zeros((3, 1, 4), np.float32)))


# ----------------------------------------------------------------------------------------------
# positional encodings
# ----------------------------------------------------------------------------------------------
def test_sinusoidal_encoding_values_buffer_and_offset():
    d, L = 6, 4
    pe = SinusoidalPositionalEncoding(d, max_len=10, batch_first=True, dtype=np.float64)
    expected = np.zeros((10, d))
    for pos in range(10):
        for i in range(d // 2):
            expected[pos, 2 * i] = math.sin(pos / 10000 ** (2 * i / d))
            expected[pos, 2 * i + 1] = math.cos(pos / 10000 ** (2 * i / d))
    np.testing.assert_allclose(pe.pe.data, expected, rtol=1e-12, atol=1e-15)
    assert "pe" not in pe.state_dict() and "pe" in dict(pe.named_buffers())
    x = np.random.default_rng(0).standard_normal((2, L, d))
    np.testing.assert_allclose(pe(_t(x)).data, x + expected[:L], rtol=1e-12)
    np.testing.assert_allclose(pe(_t(x[:, :1]), offset=3).data, x[:, :1] + expected[3], rtol=1e-12)
    seq_first = SinusoidalPositionalEncoding(d, max_len=10, dtype=np.float64)
    np.testing.assert_allclose(seq_first(_t(x.transpose(1, 0, 2))).data, (x + expected[:L]).transpose(1, 0, 2))
    with pytest.raises(ValueError, match="exceed max_len=10"):
        pe(_t(x), offset=7)
    odd = SinusoidalPositionalEncoding(5, max_len=3)
    assert odd.pe.shape == (3, 5) and np.all(np.isfinite(odd.pe.data))


def test_learned_positional_embedding():
    rng = np.random.default_rng(1)
    emb = LearnedPositionalEmbedding(8, 4, batch_first=True, dtype=np.float64, generator=minigrad.Generator(0))
    assert 0.005 < emb.weight.data.std() < 0.05  # N(0, 0.02²)
    x = _t(rng.standard_normal((2, 3, 4)), True)
    out = emb(x, offset=2)
    np.testing.assert_allclose(out.data, x.data + emb.weight.data[2:5])
    out.sum().backward()
    expected = np.zeros((8, 4))
    expected[2:5] = 2.0  # two batch rows per position
    np.testing.assert_array_equal(emb.weight.grad, expected)
    with pytest.raises(ValueError, match="LearnedPositionalEmbedding: positions 6..8 exceed max_len=8"):
        emb(x, offset=6)
    with pytest.raises(ValueError, match=r"input must be \(L, N, 4\).*got shape \(2, 3, 5\)"):
        emb(_t(np.zeros((2, 3, 5))))
