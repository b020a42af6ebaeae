"""LayerNorm, Embedding, Dropout and the activation modules: float64 gradient checks (second
order for LayerNorm) and PyTorch parity — torch module built with a fixed seed, its state_dict
loaded into ours, outputs and every parameter and input gradient compared."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import minigrad
from tolerances import assert_close
from minigrad.nn.activation import GELU, LogSoftmax, ReLU, Sigmoid, Softmax, Softplus, Tanh
from minigrad.nn.dropout import Dropout
from minigrad.nn.normalization import LayerNorm, layer_norm
from minigrad.nn.sparse import Embedding

DTYPES = pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _torch():
    return pytest.importorskip("torch")


def _load_from_torch(ours, ref, dtype):
    ours.to(dtype)  # first: loading float64 weights into float32 parameters would round them
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return ours


def _backward_both(out_m, out_t, rng, dtype):
    """Weight the outputs by the same random u and backpropagate Σ u ⊙ out in both; returns u."""
    torch = _torch()
    u = rng.standard_normal(out_t.shape).astype(dtype)
    (out_m * minigrad.Tensor(u)).sum().backward()
    (out_t * torch.from_numpy(u)).sum().backward()
    return u


def _compare_params(ours, ref, dtype):
    ref_params = dict(ref.named_parameters())
    names = [n for n, _ in ours.named_parameters()]
    assert names == list(ref_params)
    for name, p in ours.named_parameters():
        g_ref = ref_params[name].grad
        assert g_ref is not None and p.grad is not None, name
        assert_close(p.grad, g_ref.numpy(), dtype, f"grad of {name}")


# ------------------------------------------------------------------------------ LayerNorm
def test_layer_norm_hand_computed():
    x = minigrad.Tensor(np.array([[1.0, 2.0, 3.0, 6.0]]))
    y = layer_norm(x, 4, eps=0.0 + 1e-12)
    mu, sd = 3.0, np.sqrt(((np.array([1, 2, 3, 6]) - 3.0) ** 2).mean())
    np.testing.assert_allclose(y.data, (np.array([[1, 2, 3, 6]]) - mu) / sd, atol=1e-9)


@pytest.mark.parametrize("affine,bias", [(True, True), (True, False), (False, False)])
def test_layer_norm_gradcheck_first_and_second_order(affine, bias):
    rng = np.random.default_rng(0)
    x = minigrad.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    inputs = [x]
    w = b = None
    if affine:
        w = minigrad.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
        inputs.append(w)
    if bias:
        b = minigrad.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
        inputs.append(b)

    def f(x, *params):
        it = iter(params)
        return layer_norm(x, (3, 4), next(it) if affine else None, next(it) if bias else None, eps=1e-3)

    assert minigrad.gradcheck(f, tuple(inputs))
    assert minigrad.gradgradcheck(f, tuple(inputs))


@DTYPES
@FAST
@given(lead=st.lists(st.integers(1, 4), min_size=0, max_size=2), norm=st.lists(st.integers(1, 6), min_size=1,
       max_size=2), affine=st.booleans(), bias=st.booleans(), eps=st.sampled_from([1e-5, 1e-3, 0.1]),
       seed=st.integers(0, 2**16))
@example(lead=[4], norm=[2], affine=False, bias=False, eps=1e-5, seed=427)  # two features: the x-gradient is ~0
@example(lead=[3], norm=[1], affine=True, bias=True, eps=1e-5, seed=0)  # one feature: x − μ = 0, y = β exactly
def test_layer_norm_matches_torch(dtype, lead, norm, affine, bias, eps, seed):
    torch = _torch()
    torch.manual_seed(seed)
    ref = torch.nn.LayerNorm(norm, eps=eps, elementwise_affine=affine, bias=bias).to(
        torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    ours = _load_from_torch(LayerNorm(norm, eps=eps, elementwise_affine=affine, bias=bias), ref, dtype)
    assert repr(ours) == repr(ref)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(lead + norm) * 3 + 1).astype(dtype)
    xm, xt = minigrad.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym, yt = ours(xm), ref(xt)
    assert ym.dtype == dtype
    # Rounding noise per normalized group: y = (x − μ)·rstd·γ + β has terms of size |x|·rstd·|γ|, and ∂y/∂x
    # terms of size |u|·|γ|·rstd — large for a nearly constant group (one or two features), where the true
    # x-gradient is ~0 and what is left of those terms is noise on both sides.
    groups = x.astype(np.float64).reshape(-1, int(np.prod(norm)))  # (rows, features)
    rstd = 1 / np.sqrt(groups.var(axis=-1, keepdims=True) + eps)
    gamma = float(np.abs(ours.weight.data).max()) if affine else 1.0
    per_group = lambda a: np.broadcast_to(a, groups.shape).reshape(x.shape)  # noqa: E731
    assert_close(ym.data, yt, dtype, "output", per_group(np.abs(groups).max(axis=-1, keepdims=True) * rstd * gamma))
    u = _backward_both(ym, yt, rng, dtype).astype(np.float64).reshape(groups.shape)
    assert_close(xm.grad, xt.grad, dtype, "input gradient",
                 per_group(np.abs(u).max(axis=-1, keepdims=True) * rstd * gamma))
    # ∂/∂γ = Σ_rows u·x̂ and ∂/∂β = Σ_rows u: terms of size |u|·|x|·rstd and |u|, summed over the rows
    x_hat_size = np.abs(groups).max(axis=-1, keepdims=True) * rstd
    scales = {"weight": (np.abs(u) * x_hat_size).sum(axis=0).reshape(norm), "bias": np.abs(u).sum(axis=0).reshape(norm)}
    ref_params = dict(ref.named_parameters())
    assert [n for n, _ in ours.named_parameters()] == list(ref_params)
    for name, p in ours.named_parameters():
        assert_close(p.grad, ref_params[name].grad, dtype, f"grad of {name}", scales[name])


def test_layer_norm_bad_input():
    ln = LayerNorm(4)
    with pytest.raises(ValueError, match=r"layer_norm: input of shape \(2, 3\) does not end with .*\(4,\)"):
        ln(minigrad.zeros(2, 3))
    with pytest.raises(TypeError, match="mixed|dtype"):
        ln(minigrad.zeros(2, 4, dtype="float64"))
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm(0)
    with pytest.raises(ValueError, match="eps"):
        LayerNorm(3, eps=0)


# ------------------------------------------------------------------------------ Embedding
def test_embedding_init_and_padding_row():
    minigrad.manual_seed(0)
    emb = Embedding(500, 64, padding_idx=-2)
    assert emb.padding_idx == 498 and repr(emb) == "Embedding(500, 64, padding_idx=498)"
    w = emb.weight.data
    assert not w[498].any()
    rest = np.delete(w, 498, axis=0)
    assert abs(rest.mean()) < 0.02 and abs(rest.std() - 1.0) < 0.02  # N(0, 1)


@DTYPES
@FAST
@given(num=st.integers(2, 12), dim=st.integers(1, 5), ids_shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       use_pad=st.booleans(), seed=st.integers(0, 2**16))
def test_embedding_matches_torch(dtype, num, dim, ids_shape, use_pad, seed):
    torch = _torch()
    rng = np.random.default_rng(seed)
    pad = int(rng.integers(-num, num)) if use_pad else None
    torch.manual_seed(seed)
    ref = torch.nn.Embedding(num, dim, padding_idx=pad).to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = _load_from_torch(Embedding(num, dim, padding_idx=pad), ref, dtype)
    assert repr(ours) == repr(ref)
    ids = rng.integers(0, num, size=ids_shape)  # repeated ids: the gradient must add up
    ym, yt = ours(minigrad.Tensor(ids)), ref(torch.from_numpy(ids))
    assert_close(ym.data, yt.detach().numpy(), dtype)
    _backward_both(ym, yt, rng, dtype)
    _compare_params(ours, ref, dtype)
    if pad is not None:
        assert not ours.weight.grad[pad % num].any()


def test_embedding_gradcheck_and_double_backward():
    rng = np.random.default_rng(1)
    w = minigrad.Tensor(rng.standard_normal((6, 3)), requires_grad=True)
    ids = minigrad.Tensor(np.array([[1, 2, 1], [5, 0, 1]]))
    # (no padding_idx here: its row deliberately gets no gradient, see the torch parity test)
    assert minigrad.gradcheck(lambda w: minigrad.functional.embedding(ids, w) ** 2, (w,))
    assert minigrad.gradgradcheck(lambda w: minigrad.functional.embedding(ids, w) ** 2, (w,))


def test_embedding_from_pretrained():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    frozen = Embedding.from_pretrained(table, padding_idx=0)
    assert not frozen.weight.requires_grad and frozen.padding_idx == 0
    assert frozen.weight.data is table  # shared, as torch
    np.testing.assert_array_equal(frozen(minigrad.Tensor(np.array([0, 3]))).data, table[[0, 3]])  # row 0 kept
    trainable = Embedding.from_pretrained(minigrad.Tensor(table), freeze=False)
    trainable(minigrad.Tensor(np.array([2, 2]))).sum().backward()
    np.testing.assert_array_equal(trainable.weight.grad, [[0] * 3, [0] * 3, [2] * 3, [0] * 3])
    with pytest.raises(ValueError, match=r"2-D .* got shape \(4,\)"):
        Embedding.from_pretrained(np.zeros(4))


def test_embedding_bad_input():
    emb = Embedding(5, 2)
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        emb(minigrad.Tensor(np.array([0, 5])))
    with pytest.raises(TypeError, match="integers"):
        emb(minigrad.Tensor(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="padding_idx must be within num_embeddings=5"):
        Embedding(5, 2, padding_idx=5)


# ------------------------------------------------------------------------------ Dropout
def test_dropout_train_eval_and_gradient():
    drop = Dropout(0.25, generator=minigrad.Generator(3))
    assert repr(drop) == "Dropout(p=0.25, inplace=False)"
    x = minigrad.Tensor(np.ones((200, 100)), requires_grad=True)
    y = drop(x)
    kept = y.data != 0
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)  # inverted dropout scaling
    assert abs(kept.mean() - 0.75) < 0.01
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)  # the same mask in the backward
    again = Dropout(0.25, generator=minigrad.Generator(3))(x)
    np.testing.assert_array_equal(again.data, y.data)  # seeded: reproducible
    drop.eval()
    assert drop(x) is x
    assert not Dropout(1.0)(x).data.any()


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match="between 0 and 1"):
        Dropout(p)


# ------------------------------------------------------------------------------ activations
ACTIVATIONS = {
    "ReLU": (ReLU, (), "ReLU"),
    "GELU": (GELU, (), "GELU"),
    "GELU-tanh": (GELU, ("tanh",), "GELU"),
    "Tanh": (Tanh, (), "Tanh"),
    "Sigmoid": (Sigmoid, (), "Sigmoid"),
    "Softmax": (Softmax, (1,), "Softmax"),
    "LogSoftmax": (LogSoftmax, (-1,), "LogSoftmax"),
    "Softplus": (Softplus, (2.0, 3.0), "Softplus"),
}


@DTYPES
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@settings(max_examples=8, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=3), seed=st.integers(0, 2**16))
def test_activation_matches_torch(name, dtype, shape, seed):
    torch = _torch()
    cls, args, torch_name = ACTIVATIONS[name]
    ours, ref = cls(*args), getattr(torch.nn, torch_name)(*args)
    assert repr(ours) == repr(ref)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    xm, xt = minigrad.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym, yt = ours(xm), ref(xt)
    assert_close(ym.data, yt.detach().numpy(), dtype)
    _backward_both(ym, yt, rng, dtype)
    assert_close(xm.grad, xt.grad.numpy(), dtype)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradcheck(name):
    cls, args, _ = ACTIVATIONS[name]
    x = minigrad.Tensor(np.random.default_rng(2).standard_normal((3, 4)) + 0.05, requires_grad=True)
    assert minigrad.gradcheck(cls(*args), (x,))


def test_softmax_implicit_dim_warns_like_torch():
    x = minigrad.Tensor(np.random.default_rng(0).standard_normal((2, 3)))
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = Softmax()(x)
    np.testing.assert_allclose(y.data.sum(axis=1), 1.0, rtol=1e-6)  # dim=1 for 2-D, as torch


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        GELU("fast")


def test_gelu_float32_blocks_match_torch_and_exact_erf():
    """float32 GELU runs blockwise with the A&S erf (torch's CPU kernel): across block boundaries and on a
    transposed view, its value and gradient equal torch's and stay within 1.5e-7·|x| of the exact erf.
    Finite inputs only: torch's results for ±inf depend on its CPU kernel (test_gelu_special_values_are_exact)."""
    torch = _torch()
    from minigrad.kernels import activation as kernels_activation
    from scipy import special

    rng = np.random.default_rng(5)
    n = kernels_activation._GELU_CHUNK + 1234  # one full block and a partial one
    x = (rng.standard_normal((3, n)) * 4).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.functional.gelu(xt)
    yt.backward(torch.from_numpy(g))
    xm = minigrad.Tensor(x, requires_grad=True)
    ym = xm.gelu()
    ym.backward(minigrad.Tensor(g))
    # |GELU(x)| <= |x| and |GELU'(x)| <= 1.13: float32 rounding is a few ulps of |x| and of |g| respectively
    np.testing.assert_allclose(ym.data, yt.detach().numpy(), rtol=0, atol=1e-6 * np.abs(x).max())
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=0, atol=2e-6 * np.abs(g).max())
    x64 = x.astype(np.float64)
    cdf = 0.5 * special.erfc(-x64 / np.sqrt(2))
    assert np.abs(ym.data - x64 * cdf).max() <= 1.5e-7 * np.abs(x64).max() + 1e-6
    # a non-contiguous (transposed) input gives the same numbers
    np.testing.assert_array_equal(minigrad.Tensor(x.T).gelu().data, ym.data.T)


def _gelu_exact(x, approximate):
    """GELU and its derivative in float64 from exact math (SciPy's erfc), with the limits at ±inf."""
    from scipy import special

    k = np.sqrt(2 / np.pi)
    with np.errstate(invalid="ignore", over="ignore"):
        if approximate == "none":
            cdf = 0.5 * special.erfc(-x / np.sqrt(2))
            y, d = x * cdf, cdf + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)
        else:
            t = np.tanh(k * (x + 0.044715 * x ** 3))
            y, d = 0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x)
    big = np.abs(x) > 1e4  # exactly flat there: Φ(x) ∈ {0, 1}, φ(x) = 0 (and 0·inf would be nan above)
    y = np.where(big, np.where(x > 0, x, -0.0), y)
    d = np.where(big, (x > 0).astype(np.float64), d)
    return y, d


@DTYPES
@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("graph", [False, True], ids=["backward", "create_graph"])
def test_gelu_special_values_are_exact(dtype, approximate, graph):
    """±0, ±inf, NaN, subnormals and huge values give the exact mathematical GELU and GELU' (checked against
    SciPy's erfc in float64, not against torch, whose ±inf results depend on the CPU kernel)."""
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, tiny, -tiny, 1000 * tiny, -1000 * tiny,
                  1e-30, -1e-30, 1e30, -1e30, 50.0, -50.0], dtype)
    xm = minigrad.Tensor(x, requires_grad=True)
    if graph:
        y = xm.gelu(approximate=approximate)
        (grad,) = minigrad.grad(y.sum(), [xm], create_graph=True)
        y, grad = y.data, grad.data
    else:
        y = xm.gelu(approximate=approximate)
        y.backward(minigrad.Tensor(np.ones_like(x)))
        y, grad = y.data, xm.grad
    y_ref, d_ref = (r.astype(dtype) for r in _gelu_exact(x.astype(np.float64), approximate))
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    # atol of one subnormal step: GELU(tiny) = tiny/2 must round to 0 or tiny (equal NaN positions are checked)
    np.testing.assert_allclose(y, y_ref, rtol=rtol, atol=tiny)
    assert np.array_equal(np.signbit(y), np.signbit(y_ref)), (x, y)  # GELU(−0) = GELU(−inf) = −0
    np.testing.assert_allclose(grad, d_ref, rtol=rtol, atol=0)
    assert y.dtype == grad.dtype == dtype


