"""Quantized modules and whole-model quantization: QuantizedLinear against analytic error bounds,
per-channel vs per-tensor, quantize_dynamic against torch.ao, static prepare → calibrate →
convert with int8 between layers, model size, bad inputs."""

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
from minigrad import nn
from quant import HistogramObserver, MinMaxObserver, choose_qparams, dequantize, quantize
from quant.modules import ObservedLinear, QTensor, QuantizedLinear, QuantizedReLU
from quant.model_quantization import (
    compare_models,
    convert,
    format_comparison,
    model_size_bytes,
    prepare,
    quantize_dynamic,
)

torch_deprecation = pytest.mark.filterwarnings("ignore:.*deprecated.*:UserWarning",
                                               "ignore:.*deprecated.*:DeprecationWarning",
                                               "ignore:.*reduce_range.*:UserWarning")


def _linear(rng, n_in, n_out, bias=True):
    lin = nn.Linear(n_in, n_out, bias=bias)
    lin.weight.data[...] = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
    if bias:
        lin.bias.data[...] = (0.1 * rng.standard_normal(n_out)).astype(np.float32)
    return lin


def _run(model, x):
    with minigrad.no_grad():
        y = model(minigrad.Tensor(x) if isinstance(x, np.ndarray) else x)
    return y


def _float64(lin):
    b = np.zeros(lin.out_features) if lin.bias is None else lin.bias.data.astype(np.float64)
    return lin.weight.data.astype(np.float64), b


# ------------------------------------------------------------------------------------------
# QuantizedLinear (dynamic) vs the float Linear
# ------------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(n_in=st.integers(1, 48), n_out=st.integers(1, 24), batch=st.integers(1, 9), seed=st.integers(0, 2**16),
       per_channel=st.booleans(), w_dtype=st.sampled_from(["int8", "uint8"]),
       act_dtype=st.sampled_from(["uint8", "int8"]), x_scale=st.sampled_from([1e-3, 1.0, 50.0]))
def test_dynamic_linear_within_analytic_bound(n_in, n_out, batch, seed, per_channel, w_dtype, act_dtype, x_scale):
    rng = np.random.default_rng(seed)
    lin = _linear(rng, n_in, n_out)
    x = (x_scale * rng.standard_normal((batch, n_in)) + rng.normal()).astype(np.float32)
    q = QuantizedLinear.from_float(lin, per_channel=per_channel, dtype=w_dtype, act_dtype=act_dtype)
    y = _run(q, x).data
    assert y.dtype == np.float32 and y.shape == (batch, n_out)

    W, b = _float64(lin)
    W_hat = q.dequantized_weight().astype(np.float64)                    # (N, K)
    s_x, z_x = choose_qparams(x.min(), x.max(), act_dtype)
    x_hat = dequantize(quantize(x, s_x, z_x, act_dtype), s_x, z_x).astype(np.float64)
    # 1) the integer path is exact: y = x̂ Ŵᵀ + b up to float32 rounding of the result
    y_hat = x_hat @ W_hat.T + b
    tol = 1e-6 * (np.abs(x_hat) @ np.abs(W_hat).T + np.abs(b)) + 1e-30
    assert np.all(np.abs(y - y_hat) <= tol)
    # 2) analytic bound vs the float Linear: |x − x̂| ≤ s_x/2, |W − Ŵ| ≤ s_w/2 elementwise, so
    #    |y − ŷ|_ij ≤ (s_x/2) Σ_k |Ŵ_jk| + (s_w,j/2) Σ_k |x_ik|
    s_w = np.broadcast_to(q.weight_scale.data.astype(np.float64), (n_out,))
    # (1e-4: float32 rounding of the scales; the extreme value lies exactly half a step out)
    assert np.all(np.abs(x - x_hat) <= s_x / 2 * (1 + 1e-4))
    assert np.all(np.abs(W - W_hat) <= s_w[:, None] / 2 * (1 + 1e-4))
    bound = (s_x / 2) * np.abs(W_hat).sum(1)[None, :] + np.abs(x).astype(np.float64).sum(1)[:, None] * s_w / 2
    y_float = x.astype(np.float64) @ W.T + b
    assert np.all(np.abs(y - y_float) <= bound * (1 + 1e-4) + tol)


def test_per_channel_keeps_small_rows_that_per_tensor_loses():
    """One row of large weights coarsens the per-tensor grid until a row of small weights is
    all zeros; per channel, every row keeps its own step s_j = max|W_j| / 127.5."""
    rng = np.random.default_rng(0)
    lin = _linear(rng, 64, 8)
    lin.weight.data[0] *= 1000.0                                   # one huge row
    lin.weight.data[1] *= 1e-3                                     # one tiny row
    pc = QuantizedLinear.from_float(lin, per_channel=True)
    pt = QuantizedLinear.from_float(lin, per_channel=False)
    W = lin.weight.data.astype(np.float64)
    assert pc.weight_scale.shape == (8,) and pt.weight_scale.shape == ()
    np.testing.assert_allclose(pc.weight_scale.data, np.abs(W).max(1) / 127.5, rtol=1e-6)
    np.testing.assert_allclose(float(pt.weight_scale.data), np.abs(W).max() / 127.5, rtol=1e-6)
    assert np.all(pt.weight_q.data[1] == 0)                        # the tiny row vanished
    err_pc = np.abs(pc.dequantized_weight() - W).max(1)
    err_pt = np.abs(pt.dequantized_weight() - W).max(1)
    assert np.all(err_pc <= err_pt + 1e-12)
    assert err_pc[1] < 0.01 * np.abs(W[1]).max() < err_pt[1]
    x = rng.standard_normal((16, 64)).astype(np.float32)
    y = x.astype(np.float64) @ W.T + lin.bias.data
    e_pc = np.abs(_run(pc, x).data - y)[:, 1:].max()
    e_pt = np.abs(_run(pt, x).data - y)[:, 1:].max()
    assert e_pc < 0.05 * e_pt


def test_weight_zero_points_and_symmetric_grid():
    rng = np.random.default_rng(1)
    lin = _linear(rng, 10, 6)
    q8 = QuantizedLinear.from_float(lin, dtype="int8")
    assert q8.weight_q.dtype == np.int8 and np.all(q8.weight_zero_point.data == 0)
    qu = QuantizedLinear.from_float(lin, dtype="uint8")            # affine: zero points ≠ 0
    assert qu.weight_q.dtype == np.uint8 and np.any(qu.weight_zero_point.data != 128)
    W = lin.weight.data
    # asymmetric grids put each row's min on 0 and its max on 255 (up to rounding)
    np.testing.assert_allclose(qu.weight_scale.data, (W.max(1) - np.minimum(W.min(1), 0)) / 255, rtol=1e-6)


# ------------------------------------------------------------------------------------------
# quantize_dynamic vs torch.ao
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_qnnpack():
    """torch with the QNNPACK engine: full 8-bit uint8 activations like ours. (fbgemm/x86 use
    7-bit activations, ``reduce_range``, to avoid int16 overflow in their AVX2 kernels.)"""
    torch = pytest.importorskip("torch")
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("torch has no qnnpack engine (fbgemm/x86 quantize activations to 7 bits)")
    engine, threads = torch.backends.quantized.engine, torch.get_num_threads()
    torch.backends.quantized.engine = "qnnpack"
    torch.set_num_threads(1)
    yield torch
    torch.backends.quantized.engine = engine
    torch.set_num_threads(threads)


@torch_deprecation
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), batch=st.integers(1, 16), per_channel=st.booleans())
def test_quantize_dynamic_matches_torch(torch_qnnpack, seed, batch, per_channel):
    """Same weights, same input: our dynamically quantized MLP is within one quantization step
    of torch.ao's, where the step is ``s_y = (max y − min y) / 255`` (an 8-bit grid over the
    output's range). In fact the scales, the integers and the exact int32 accumulators agree,
    so the outputs agree to float32 rounding (checked too)."""
    torch = torch_qnnpack
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

    rng = np.random.default_rng(seed)
    minigrad.manual_seed(seed)
    ours = nn.Sequential(nn.Linear(24, 40), nn.ReLU(), nn.Linear(40, 12))
    ref = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.ReLU(), torch.nn.Linear(40, 12))
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    ref_q = torch_quantize_dynamic(ref, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    ours_q = quantize_dynamic(ours, per_channel=per_channel)

    x = (2 * rng.standard_normal((batch, 24)) + 0.3).astype(np.float32)
    y = _run(ours_q, x).data
    with torch.no_grad():
        y_ref = ref_q(torch.from_numpy(x)).numpy()
    step = max(float(y_ref.max() - y_ref.min()), 1e-6) / 255
    assert np.abs(y - y_ref).max() <= step
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6 * np.abs(y_ref).max())


# ------------------------------------------------------------------------------------------
# static quantization
# ------------------------------------------------------------------------------------------

def _mlp(seed, sizes=(16, 32, 24, 8)):
    rng = np.random.default_rng(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [_linear(rng, a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _static(model, batches, observer=MinMaxObserver):
    prepared = prepare(model, observer=observer)
    for x in batches:
        _run(prepared, x)
    return convert(prepared)


def _layer_bound(x_abs, e_in, lin, q, s_in):
    """Per-output error bound of a static QuantizedLinear's pre-activation (before
    requantization), given the true input's magnitude ``x_abs`` (B, K) and its error ``e_in``:

        Σ_k e_in,k |Ŵ_jk| + Σ_k |x_k| |W − Ŵ|_jk + (s_in s_w,j) / 2     (last term: int32 bias rounding)
    """
    W, _ = _float64(lin)
    W_hat = q.dequantized_weight().astype(np.float64)
    s_w = np.broadcast_to(q.weight_scale.data.astype(np.float64), (lin.out_features,))
    return e_in @ np.abs(W_hat).T + x_abs @ np.abs(W - W_hat).T + s_in * s_w / 2


def test_static_mlp_passes_int8_and_stays_within_bound():
    model = _mlp(0)
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((32, 16)).astype(np.float32) for _ in range(3)]
    qm = _static(model, batches)
    kinds = [type(m).__name__ for m in qm]
    assert kinds == ["QuantizedLinear", "QuantizedReLU", "QuantizedLinear", "QuantizedReLU", "QuantizedLinear"]
    assert [m.quantized_output for m in qm[::2]] == [True, True, False]

    x = np.concatenate(batches)                                     # inside the calibrated range
    # follow the values through the layers: int8 between the Linears, float at the end
    flowing, values = minigrad.Tensor(x), []
    with minigrad.no_grad():
        for m in qm:
            flowing = m(flowing)
            values.append(flowing)
    assert [type(v).__name__ for v in values] == ["QTensor"] * 4 + ["Tensor"]
    assert all(v.dtype == np.int8 for v in values[:4]) and values[4].dtype == np.float32
    # the consumer uses the producer's output grid; the fused ReLU grid starts at 0 (z = q_min)
    assert values[0].zero_point == -128 and values[0].scale == pytest.approx(float(qm[2].input_scale.data))
    np.testing.assert_array_equal(values[1].q, values[0].q)          # ReLU already done by the clamp
    y = values[4].data
    np.testing.assert_array_equal(y, _run(qm, x).data)

    # error bound, layer by layer (1-Lipschitz ReLU; requantization within 1.5 output steps)
    s_in = float(qm[0].input_scale.data)
    e = np.full(x.shape, s_in / 2)
    h_true = x.astype(np.float64)
    for i, (lin, q) in enumerate(zip(model[::2], qm[::2])):
        e = _layer_bound(np.abs(h_true), e, lin, q, s_in)
        W, b = _float64(lin)
        h_true = h_true @ W.T + b
        if q.quantized_output:
            s_out = float(q.output_scale.data)
            e = e + 1.5 * s_out
            h_true, s_in = np.maximum(h_true, 0), s_out
            got = dequantize(values[2 * i].q, values[2 * i].scale, values[2 * i].zero_point)
            assert np.all(np.abs(got - h_true) <= e)
    err = np.abs(y - h_true)
    assert np.all(err <= e * (1 + 1e-5))
    assert err.max() < 0.03 * np.abs(h_true).max()                  # and small in practice


def test_static_integer_pipeline_matches_fake_quant_reference():
    """The int8 hand-off equals the float simulation of the same grids within one code:
    q_h = clamp(z_h + round((s_x s_w (acc) + b̂) / s_h))."""
    model = _mlp(3, sizes=(8, 16, 4))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((40, 8)).astype(np.float32)
    qm = _static(model, [x])
    q0 = qm[0]
    s_x, z_x = float(q0.input_scale.data), int(q0.input_zero_point.data)
    x_hat = dequantize(quantize(x, s_x, z_x), s_x, z_x).astype(np.float64)
    b_hat = q0.bias_q.data * (s_x * q0.weight_scale.data.astype(np.float64))
    h = x_hat @ q0.dequantized_weight().astype(np.float64).T + b_hat
    s_h, z_h = float(q0.output_scale.data), int(q0.output_zero_point.data)
    expected = np.clip(np.rint(h / s_h) + z_h, -128, 127)
    got = _run(q0, x).q.astype(np.int64)
    assert np.abs(got - expected).max() <= 1


def test_static_with_histogram_observer_and_out_of_range_inputs():
    model = _mlp(5)
    rng = np.random.default_rng(6)
    calib = [rng.standard_normal((64, 16)).astype(np.float32) for _ in range(2)]
    qm = _static(model, calib, observer=functools.partial(HistogramObserver, bins=256))
    # int8 hand-off: each consumer reads on its producer's output grid
    for producer, consumer in ((qm[0], qm[2]), (qm[2], qm[4])):
        assert float(consumer.input_scale.data) == float(producer.output_scale.data)
        assert int(consumer.input_zero_point.data) == int(producer.output_zero_point.data)
    x = np.concatenate(calib)
    y, y_float = _run(qm, x).data, _run(model, x).data
    assert np.abs(y - y_float).max() < 0.1 * np.abs(y_float).max()
    # inputs beyond the calibrated grid are clamped to its ends: same result as clipping first
    s, z = float(qm[0].input_scale.data), int(qm[0].input_zero_point.data)
    wide = 5 * rng.standard_normal((16, 16)).astype(np.float32)
    clipped = np.clip(wide, s * (-128 - z), s * (127 - z)).astype(np.float32)
    assert np.any(wide != clipped)
    np.testing.assert_array_equal(_run(qm, wide).data, _run(qm, clipped).data)


def test_quantized_relu_on_int8_is_max_with_zero_point():
    q = np.array([-128, -3, 5, 6, 127], np.int8)
    out = QuantizedReLU()(QTensor(q, 0.5, 5))
    np.testing.assert_array_equal(out.q, [5, 5, 5, 6, 127])
    assert out.q.dtype == np.int8 and out.scale == 0.5 and out.zero_point == 5
    np.testing.assert_allclose(out.dequantize().data, np.maximum(0.5 * (q.astype(np.float32) - 5), 0))
    np.testing.assert_array_equal(QuantizedReLU()(minigrad.Tensor(np.array([-1.0, 2.0]))).data, [0.0, 2.0])


# ------------------------------------------------------------------------------------------
# model-level helpers
# ------------------------------------------------------------------------------------------

def test_model_size_bytes_and_linear_ratio():
    rng = np.random.default_rng(7)
    model = nn.Sequential(_linear(rng, 256, 512), nn.ReLU(), _linear(rng, 512, 128))
    assert model_size_bytes(model) == 4 * (256 * 512 + 512 + 512 * 128 + 128)
    q = quantize_dynamic(model)
    # int8 weights + float32 scale + int8 zero point per output channel + float32 bias
    expected = (256 * 512 + 512 * (4 + 1 + 4)) + (512 * 128 + 128 * (4 + 1 + 4))
    assert model_size_bytes(q) == expected
    assert q[0].weight_bytes() == 256 * 512 + 512 * 9
    x = rng.standard_normal((8, 256)).astype(np.float32)
    r = compare_models(model, q, [x, 2 * x])
    assert r["size_ratio"] == pytest.approx(expected / model_size_bytes(model))
    assert r["linear_ratio"] <= 0.26
    err = max(np.abs(_run(model, b).data - _run(q, b).data).max() for b in (x, 2 * x))
    assert r["max_abs_error"] == pytest.approx(err)
    assert 0 < r["mean_abs_error"] <= r["max_abs_error"]
    table = format_comparison({"dynamic int8": r})
    assert "dynamic int8" in table and f"{r['size_ratio']:.3f}" in table


def test_quantize_dynamic_copies_by_default_and_inplace_edits():
    model = _mlp(8)
    x = np.random.default_rng(9).standard_normal((4, 16)).astype(np.float32)
    before = _run(model, x).data.copy()
    q = quantize_dynamic(model)
    assert all(type(m) is nn.Linear for m in model[::2])              # original untouched
    assert all(type(m) is QuantizedLinear for m in q[::2])
    np.testing.assert_array_equal(_run(model, x).data, before)
    same = quantize_dynamic(model, inplace=True)
    assert same is model and type(model[0]) is QuantizedLinear
    bare = quantize_dynamic(nn.Linear(3, 2))                           # a bare Linear is replaced
    assert isinstance(bare, QuantizedLinear)


def test_state_dict_round_trip_refreshes_cached_sums():
    a, b = quantize_dynamic(_mlp(10)), quantize_dynamic(_mlp(11))
    x = np.random.default_rng(12).standard_normal((5, 16)).astype(np.float32)
    _run(b, x)                                                        # fills b's caches
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(_run(b, x).data, _run(a, x).data)


def test_transformer_encoder_feed_forward_quantized():
    from minigrad.nn.transformer import TransformerEncoder, TransformerEncoderLayer

    minigrad.manual_seed(0)
    enc = TransformerEncoder(TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0), num_layers=2).eval()
    q = quantize_dynamic(enc)
    kinds = {name: type(m).__name__ for name, m in q.named_modules()}
    assert kinds["layers.0.linear1"] == kinds["layers.1.linear2"] == "QuantizedLinear"
    assert kinds["layers.0.self_attn.out_proj"] == "Linear"          # MHA reads its weight directly
    x = np.random.default_rng(1).standard_normal((6, 3, 16)).astype(np.float32)
    r = compare_models(enc, q, x)
    assert r["max_abs_error"] < 0.05 * r["max_abs_output"]


# ------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------

def test_bad_inputs_give_clear_errors():
    lin = nn.Linear(4, 3)
    q = QuantizedLinear.from_float(lin)
    with pytest.raises(TypeError, match="from_float: expected a minigrad.nn.Linear, got ReLU"):
        QuantizedLinear.from_float(nn.ReLU())
    with pytest.raises(TypeError, match="quantize_dynamic: expected a minigrad.nn.Module"):
        quantize_dynamic(np.zeros(3))
    with pytest.raises(ValueError, match="quantize_dynamic: the model has no minigrad.nn.Linear"):
        quantize_dynamic(nn.Sequential(nn.ReLU()))
    with pytest.raises(TypeError, match="dtype must be 'int8' or 'uint8'"):
        quantize_dynamic(lin, dtype="float16")
    with pytest.raises(ValueError, match=r"expected input of shape \(\.\.\., 4\), got \(2, 5\)"):
        _run(q, np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match="floating-point input, got dtype int64"):
        _run(q, np.zeros((2, 4), np.int64))
    with pytest.raises(RuntimeError, match="inference-only"):
        q(minigrad.Tensor(np.zeros((2, 4), np.float32), requires_grad=True))
    with pytest.raises(ValueError, match="NaN or inf"):
        _run(q, np.array([[0.0, np.nan, 1.0, 2.0]], np.float32))
    with pytest.raises(ValueError, match="int32 bias and int8 output need a fixed activation scale"):
        QuantizedLinear.from_float(lin, int32_bias=True)


def test_static_flow_misuse_errors():
    model = _mlp(13)
    with pytest.raises(ValueError, match="convert: the model has no ObservedLinear layer; call prepare"):
        convert(model)
    prepared = prepare(model)
    assert type(prepared[0]) is ObservedLinear and type(model[0]) is nn.Linear
    with pytest.raises(ValueError, match="layer '0' saw no calibration data"):
        convert(prepared)
    with pytest.raises(ValueError, match="observer"):
        prepare(model, observer=functools.partial(MinMaxObserver, dtype="uint8"))
    with pytest.raises(TypeError, match="observer must be an observer class"):
        prepare(model, observer="minmax")
    with pytest.raises(ValueError, match="activation_qparams zero_point must be an integer in"):
        QuantizedLinear.from_float(nn.Linear(2, 2), activation_qparams=(0.1, 300))


# ------------------------------------------------------------------------------------------
# the CLI recipe
# ------------------------------------------------------------------------------------------

def test_quantize_recipe_trains_quantizes_and_reloads(tmp_path, capsys):
    from models.cli import main

    args = ["--hidden", "32", "--steps", "30", "--calibration-batches", "2", "--repeats", "1"]
    assert main(["quantize", "--out", str(tmp_path), *args]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "int8" in line]
    assert len(rows) == 4
    size_ratios = [float(r.split("|")[4]) for r in rows]
    expected = (64 * 32 + 32 * 32 + 32 * 10 + 74 * 9) / (4 * (64 * 32 + 32 * 32 + 32 * 10 + 74))
    assert size_ratios[0] == pytest.approx(expected, abs=1e-3)       # per channel: 9 bytes per row
    assert (tmp_path / "quantization_grid.png").stat().st_size > 1000
    assert main(["quantize", "--out", str(tmp_path / "again"), "--checkpoint", str(tmp_path / "mlp.safetensors"),
                 "--repeats", "1", "--no-plot"]) == 0
    again = capsys.readouterr().out
    float_row = next(line for line in again.splitlines() if line.startswith("| float32"))
    assert "argmax = float" in again and float_row.split("|")[9].strip() == "1"
    assert not (tmp_path / "again" / "quantization_grid.png").exists()
    minigrad.save({"layer.weight": np.zeros((2, 2), np.float32)}, tmp_path / "bad.safetensors")
    # a bad --checkpoint is one error line and exit status 2 (models/cli.py), not a traceback
    assert main(["quantize", "--out", str(tmp_path), "--checkpoint", str(tmp_path / "bad.safetensors")]) == 2
    assert "error: quantize recipe: the checkpoint is not an nn.Sequential" in capsys.readouterr().err
