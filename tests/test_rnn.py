"""Recurrent layers (minigrad/nn/rnn.py): numerical gradient checks (first and second order),
PyTorch parity of outputs, final states and every parameter, input and initial-state gradient
(hypothesis over sizes, layers, directions, layouts, bias, h0, unbatched inputs), a 500-step
unroll, dropout between layers, and the error messages."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad
from tolerances import assert_close
from minigrad import functional as F
from minigrad.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

LAYERS = {"rnn_tanh": (RNN, "RNN", {}), "rnn_relu": (RNN, "RNN", {"nonlinearity": "relu"}),
          "gru": (GRU, "GRU", {}), "lstm": (LSTM, "LSTM", {})}
CELLS = {"rnn_tanh": (RNNCell, "RNNCell", {}), "rnn_relu": (RNNCell, "RNNCell", {"nonlinearity": "relu"}),
         "gru": (GRUCell, "GRUCell", {}), "lstm": (LSTMCell, "LSTMCell", {})}


def _t(a, grad=True):
    return minigrad.Tensor(a, requires_grad=grad)


def _flat(out, state):
    """(output, h_n) or (output, (h_n, c_n)) -> list of tensors."""
    return [out] + (list(state) if isinstance(state, tuple) else [state])


# ----------------------------------------------------------------------------------------------
# numerical gradient checks (float64)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("bias", [True, False])
def test_cell_gradcheck_first_and_second_order(name, bias):
    cls, _, kw = CELLS[name]
    rng = np.random.default_rng(0)
    cell = cls(3, 4, bias=bias, dtype=np.float64, generator=minigrad.Generator(1), **kw)
    x, h = _t(rng.standard_normal((2, 3))), _t(rng.standard_normal((2, 4)))
    params = list(cell.parameters())
    if cls is LSTMCell:
        c = _t(rng.standard_normal((2, 4)))
        fn, inputs = (lambda x, h, c, *ps: cell(x, (h, c))), (x, h, c, *params)
    else:
        fn, inputs = (lambda x, h, *ps: cell(x, h)), (x, h, *params)
    assert minigrad.gradcheck(fn, inputs)
    assert minigrad.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, bidirectional=True, bias=False)],
                         ids=["1layer", "2layers-bidir-nobias"])
def test_layer_gradcheck(name, options):
    cls, _, kw = LAYERS[name]
    rng = np.random.default_rng(1)
    layer = cls(3, 2, dtype=np.float64, generator=minigrad.Generator(2), **kw, **options)
    n = layer.num_layers * (2 if layer.bidirectional else 1)
    x = _t(rng.standard_normal((3, 2, 3)))
    hs = [_t(rng.standard_normal((n, 2, 2))) for _ in range(2)]
    params = list(layer.parameters())
    if cls is LSTM:
        fn, inputs = (lambda x, h, c, *ps: _flat(*layer(x, (h, c)))), (x, *hs, *params)
    else:
        fn, inputs = (lambda x, h, *ps: _flat(*layer(x, h))), (x, hs[0], *params)
    assert minigrad.gradcheck(fn, inputs)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_recurrence_second_order(name, reverse):
    """The whole-sequence Functions are twice differentiable (create_graph recomputes the gates)."""
    cls, _, kw = LAYERS[name]
    rng = np.random.default_rng(2)
    layer = cls(2, 3, bidirectional=reverse, dtype=np.float64, generator=minigrad.Generator(3), **kw)
    d = 2 if reverse else 1
    x = _t(rng.standard_normal((3, 2, 2)))
    hs = [_t(rng.standard_normal((d, 2, 3))) for _ in range(2)]
    params = list(layer.parameters())[-4:]  # the reverse direction's when bidirectional
    if cls is LSTM:
        fn, inputs = (lambda x, h, c, *ps: _flat(*layer(x, (h, c)))), (x, *hs, *params)
    else:
        fn, inputs = (lambda x, h, *ps: _flat(*layer(x, h))), (x, hs[0], *params)
    assert minigrad.gradgradcheck(fn, inputs)


def test_gradcheck_catches_a_wrong_backward():
    """The checks above can fail: a 1 % error in one slope of the fused GRU backward is caught."""
    from minigrad.kernels import recurrent as rnn

    layer = GRU(2, 3, dtype=np.float64)
    x = _t(np.random.default_rng(0).standard_normal((3, 1, 2)))
    original = rnn._gru_slopes

    def wrong(r, z, n, hn, prev):
        c_n, c_gh = original(r, z, n, hn, prev)
        return c_n * 1.01, c_gh
    rnn._gru_slopes = wrong
    try:
        with pytest.raises(minigrad.GradcheckError), minigrad.kernels.reference(False):  # the kernel's backward
            minigrad.gradcheck(lambda x: layer(x)[0], (x,))
    finally:
        rnn._gru_slopes = original


# ----------------------------------------------------------------------------------------------
# PyTorch parity
# ----------------------------------------------------------------------------------------------
torch_settings = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _torch():
    return pytest.importorskip("torch")


def _load(ours, ref):
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})


def _compare(ours, ref, dtype, what):
    assert ours.shape == tuple(ref.shape), f"{what}: shape {ours.shape} vs torch {tuple(ref.shape)}"
    assert_close(ours, ref, dtype, what)


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@torch_settings
@given(T=st.integers(1, 5), B=st.integers(1, 3), I=st.integers(1, 4), H=st.integers(1, 4),
       num_layers=st.integers(1, 3), bidirectional=st.booleans(), batch_first=st.booleans(), bias=st.booleans(),
       with_h0=st.booleans(), batched=st.booleans(), seed=st.integers(0, 2**16))
def test_layer_matches_torch(name, dtype, T, B, I, H, num_layers, bidirectional, batch_first, bias, with_h0,
                             batched, seed):
    torch = _torch()
    cls, torch_name, kw = LAYERS[name]
    options = dict(num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias, **kw)
    torch.manual_seed(seed)
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    ref = getattr(torch.nn, torch_name)(I, H, **options).to(tdt)
    ours = cls(I, H, dtype=dtype, **options)
    _load(ours, ref)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(((B, T) if batch_first else (T, B)) + (I,) if batched else (T, I)).astype(dtype)
    n = num_layers * (2 if bidirectional else 1)
    h_shape = (n, B, H) if batched else (n, H)
    states = [rng.standard_normal(h_shape).astype(dtype) for _ in range(2 if cls is LSTM else 1)]
    xt, xm = torch.tensor(x, requires_grad=True), _t(x)
    st_t = [torch.tensor(s, requires_grad=True) for s in states]
    st_m = [_t(s) for s in states]
    args_t = (tuple(st_t) if cls is LSTM else st_t[0],) if with_h0 else ()
    args_m = (tuple(st_m) if cls is LSTM else st_m[0],) if with_h0 else ()
    outs_t = [o for o in _flat(*ref(xt, *args_t))]
    outs_m = _flat(*ours(xm, *args_m))
    weights = [rng.standard_normal(tuple(o.shape)).astype(dtype) for o in outs_t]
    sum((o * torch.from_numpy(w)).sum() for o, w in zip(outs_t, weights)).backward()
    sum((o * minigrad.Tensor(w)).sum() for o, w in zip(outs_m, weights)).backward()
    for i, (om, ot) in enumerate(zip(outs_m, outs_t)):
        _compare(om.data, ot.detach().numpy(), dtype, f"{name} output {i}")
    _compare(xm.grad, xt.grad.numpy(), dtype, f"{name} input grad")
    if with_h0:
        for sm, stt in zip(st_m, st_t):
            _compare(sm.grad, stt.grad.numpy(), dtype, f"{name} initial state grad")
    for pname, p in ref.named_parameters():
        _compare(getattr(ours, pname).grad, p.grad.numpy(), dtype, f"{name} grad of {pname}")


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@torch_settings
@given(B=st.integers(1, 4), I=st.integers(1, 5), H=st.integers(1, 5), bias=st.booleans(), with_h=st.booleans(),
       batched=st.booleans(), steps=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_cell_matches_torch(name, dtype, B, I, H, bias, with_h, batched, steps, seed):
    """A few steps of a hand-written loop, the state fed back each step."""
    torch = _torch()
    cls, torch_name, kw = CELLS[name]
    torch.manual_seed(seed)
    tdt = torch.float64 if dtype == np.float64 else torch.float32
    ref = getattr(torch.nn, torch_name)(I, H, bias=bias, **kw).to(tdt)
    ours = cls(I, H, bias=bias, dtype=dtype, **kw)
    _load(ours, ref)
    rng = np.random.default_rng(seed)
    lead = (B,) if batched else ()
    xs = [rng.standard_normal(lead + (I,)).astype(dtype) for _ in range(steps)]
    states = [rng.standard_normal(lead + (H,)).astype(dtype) for _ in range(2 if cls is LSTMCell else 1)]
    xt, xm = [torch.tensor(x, requires_grad=True) for x in xs], [_t(x) for x in xs]
    st_t, st_m = [torch.tensor(s, requires_grad=True) for s in states], [_t(s) for s in states]
    state_t = (tuple(st_t) if cls is LSTMCell else st_t[0]) if with_h else None
    state_m = (tuple(st_m) if cls is LSTMCell else st_m[0]) if with_h else None
    loss_t = loss_m = 0
    for x_t, x_m in zip(xt, xm):
        state_t, state_m = ref(x_t, state_t), ours(x_m, state_m)
        flat_t = list(state_t) if isinstance(state_t, tuple) else [state_t]
        flat_m = list(state_m) if isinstance(state_m, tuple) else [state_m]
        for ot, om in zip(flat_t, flat_m):
            _compare(om.data, ot.detach().numpy(), dtype, f"{name} state")
            w = rng.standard_normal(tuple(ot.shape)).astype(dtype)
            loss_t = loss_t + (ot * torch.from_numpy(w)).sum()
            loss_m = loss_m + (om * minigrad.Tensor(w)).sum()
    loss_t.backward()
    loss_m.backward()
    for x_m, x_t in zip(xm, xt):
        _compare(x_m.grad, x_t.grad.numpy(), dtype, f"{name} input grad")
    if with_h:
        for sm, stt in zip(st_m, st_t):
            _compare(sm.grad, stt.grad.numpy(), dtype, f"{name} state grad")
    for pname, p in ref.named_parameters():
        _compare(getattr(ours, pname).grad, p.grad.numpy(), dtype, f"{name} grad of {pname}")


def test_eval_mode_dropout_matches_torch():
    torch = _torch()
    torch.manual_seed(0)
    ref = torch.nn.GRU(3, 4, num_layers=3, dropout=0.5).double().eval()
    ours = GRU(3, 4, num_layers=3, dropout=0.5, dtype=np.float64).eval()
    _load(ours, ref)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    out_t, h_t = ref(torch.from_numpy(x))
    out_m, h_m = ours(minigrad.Tensor(x))
    _compare(out_m.data, out_t.detach().numpy(), np.float64, "output")
    _compare(h_m.data, h_t.detach().numpy(), np.float64, "h_n")


def test_state_dict_names_shapes_and_init_match_torch():
    torch = _torch()
    for cls, torch_name, kw in LAYERS.values():
        ref = getattr(torch.nn, torch_name)(5, 7, num_layers=2, bidirectional=True, **kw)
        ours = cls(5, 7, num_layers=2, bidirectional=True, **kw)
        assert list(ours.state_dict()) == list(ref.state_dict())
        for k, v in ref.state_dict().items():
            assert ours.state_dict()[k].shape == tuple(v.shape)
    for cls, torch_name, kw in CELLS.values():
        ref, ours = getattr(torch.nn, torch_name)(5, 7, **kw), cls(5, 7, **kw)
        assert {k: tuple(v.shape) for k, v in ref.state_dict().items()} == \
               {k: v.shape for k, v in ours.state_dict().items()}
    big = GRU(64, 100, generator=minigrad.Generator(0))
    w = np.concatenate([p.data.ravel() for p in big.parameters()])
    bound = 1 / math.sqrt(100)
    assert w.min() >= -bound and w.max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound  # U(−b, b) has std b/√3
    again = GRU(64, 100, generator=minigrad.Generator(0))
    assert all(np.array_equal(a.data, b.data) for a, b in zip(big.parameters(), again.parameters()))


# ----------------------------------------------------------------------------------------------
# long unroll, dropout between layers
# ----------------------------------------------------------------------------------------------
def test_500_step_unroll_matches_torch_in_float64():
    """BPTT over 500 steps (fused GRU) and a 500-step GRUCell loop (a 5000-node graph that the
    engine walks without recursion) both give torch's gradients to 1e-10."""
    torch = _torch()
    torch.manual_seed(0)
    ref, ref_cell = torch.nn.GRU(3, 4).double(), torch.nn.GRUCell(3, 4).double()
    ours, cell = GRU(3, 4, dtype=np.float64), GRUCell(3, 4, dtype=np.float64)
    _load(ours, ref)
    _load(cell, ref_cell)
    x = np.random.default_rng(0).standard_normal((500, 2, 3))
    xt, xm = torch.tensor(x, requires_grad=True), _t(x)
    out_t, h_t = ref(xt)
    out_m, h_m = ours(xm)
    (out_t.sum() + 3 * h_t.sum()).backward()
    (out_m.sum() + 3 * h_m.sum()).backward()
    _compare(out_m.data, out_t.detach().numpy(), np.float64, "500-step output")
    _compare(xm.grad, xt.grad.numpy(), np.float64, "500-step input grad")
    for pname, p in ref.named_parameters():
        _compare(getattr(ours, pname).grad, p.grad.numpy(), np.float64, f"500-step grad of {pname}")

    xt2, xm2 = torch.tensor(x, requires_grad=True), _t(x)
    h_t, h_m = None, None
    for t in range(500):
        h_t, h_m = ref_cell(xt2[t], h_t), cell(xm2[t], h_m)
    h_t.sum().backward()
    h_m.sum().backward()
    _compare(h_m.data, h_t.detach().numpy(), np.float64, "500-step cell state")
    _compare(xm2.grad, xt2.grad.numpy(), np.float64, "500-step cell input grad")
    _compare(cell.weight_hh.grad, ref_cell.weight_hh.grad.numpy(), np.float64, "500-step cell weight_hh grad")


@pytest.mark.parametrize("name", ["gru", "lstm", "rnn_tanh"])
def test_training_dropout_between_layers(name):
    """dropout=p in training mode equals single-layer modules with F.dropout on every output but
    the last, drawn from the same generator; eval mode and p=0 use no dropout."""
    cls, _, kw = LAYERS[name]
    x = minigrad.Tensor(np.random.default_rng(0).standard_normal((4, 3, 2)).astype(np.float32))
    deep = cls(2, 5, num_layers=3, dropout=0.4, bidirectional=True, generator=minigrad.Generator(7), **kw)
    deep.generator = minigrad.Generator(11)
    out, _ = deep(x)
    layers = []
    for k in range(3):
        single = cls(2 if k == 0 else 10, 5, bidirectional=True, **kw)
        single.load_state_dict({n.replace(f"_l{k}", "_l0"): v for n, v in deep.state_dict().items() if f"_l{k}" in n})
        layers.append(single)
    gen, y, zeroed = minigrad.Generator(11), x, 0
    for k, single in enumerate(layers):
        y = single(y)[0]
        if k < 2:
            y = F.dropout(y, 0.4, training=True, generator=gen)
            zeroed += int((y.data == 0).sum())
    np.testing.assert_allclose(out.data, y.data, rtol=1e-6, atol=1e-6)
    assert zeroed > 0  # dropout did act on the inner layers
    no_drop = layers[2](layers[1](layers[0](x)[0])[0])[0]
    np.testing.assert_allclose(deep.eval()(x)[0].data, no_drop.data, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    gru = GRU(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"GRU: expected input of 3 dimensions.*got shape \(3,\)"):
        gru(minigrad.zeros(3))
    with pytest.raises(ValueError, match=r"GRU: expected input with last dimension input_size=3, got shape \(5, 2, 4"):
        gru(minigrad.zeros(5, 2, 4))
    with pytest.raises(ValueError, match=r"GRU: expected hx of shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        gru(minigrad.zeros(5, 2, 3), minigrad.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"GRU: expected hx of shape \(2, 4\)"):
        gru(minigrad.zeros(5, 3), minigrad.zeros(2, 1, 4))
    with pytest.raises(TypeError, match="GRU: input has dtype float64, the parameters have float32"):
        gru(minigrad.zeros(5, 2, 3, dtype="float64"))
    with pytest.raises(ValueError, match="empty"):
        gru(minigrad.zeros(0, 2, 3))
    with pytest.raises(TypeError, match="LSTM: hx must be None or a pair"):
        LSTM(3, 4)(minigrad.zeros(5, 2, 3), minigrad.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"LSTM: expected c0 of shape \(1, 2, 4\)"):
        LSTM(3, 4)(minigrad.zeros(5, 2, 3), (minigrad.zeros(1, 2, 4), minigrad.zeros(1, 2, 5)))
    with pytest.raises(ValueError, match=r"GRUCell: expected input of shape \(batch, 3\) or \(3,\), got \(2, 4\)"):
        GRUCell(3, 4)(minigrad.zeros(2, 4))
    with pytest.raises(ValueError, match=r"RNNCell: expected hx of shape \(2, 4\), got \(4,\)"):
        RNNCell(3, 4)(minigrad.zeros(2, 3), minigrad.zeros(4))
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1"):
        GRU(3, 0)
    with pytest.raises(ValueError, match=r"dropout must be a probability in \[0, 1\]"):
        GRU(3, 4, num_layers=2, dropout=1.5)
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        GRU(3, 4, dropout=0.2)
    with pytest.raises(ValueError, match="proj_size"):
        LSTM(3, 4, proj_size=2)
