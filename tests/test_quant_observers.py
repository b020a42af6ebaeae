"""Calibration observers: min-max, moving average, histogram (percentile and MSE)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    choose_qparams,
    choose_qparams_per_channel,
    dequantize,
    quantize,
)

DTYPES = ["int8", "uint8"]


@pytest.fixture(scope="module")
def torch():
    """torch (skipped if absent), single-threaded while these tests run: on tiny tensors
    thread start-up dominates on a busy machine (~25 ms per call with 2 threads)."""
    torch = pytest.importorskip("torch")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(n_threads)


def batches(seed, n_batches=4, shape=(6, 5, 7)):
    """Calibration batches with shifting location and spread (some all-positive)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_batches):
        loc, spread = rng.uniform(-3, 3), rng.uniform(0.1, 5)
        out.append((loc + spread * rng.standard_normal(shape)).astype(np.float32))
    return out


# ------------------------------------------------------------------------------------------
# min-max and moving average: hand values and torch.ao
# ------------------------------------------------------------------------------------------

def test_minmax_tracks_global_range_and_returns_input():
    obs = MinMaxObserver("uint8")
    x1, x2 = np.array([-1.0, 2.0]), np.array([0.5, 4.0])
    assert obs(x1) is x1
    obs.observe(x2)
    assert (float(obs.min_val[0]), float(obs.max_val[0])) == (-1.0, 4.0)
    assert obs.calculate_qparams() == choose_qparams(-1.0, 4.0, "uint8")


def test_moving_average_hand_values():
    obs = MovingAverageMinMaxObserver(averaging_constant=0.5)
    obs(np.array([-1.0, 1.0]))
    obs(np.array([-3.0, 5.0]))
    # min = -1 + 0.5·(-3 − (-1)) = -2,  max = 1 + 0.5·(5 − 1) = 3
    assert (float(obs.min_val[0]), float(obs.max_val[0])) == (-2.0, 3.0)
    assert obs.calculate_qparams() == choose_qparams(-2.0, 3.0, "int8")


def test_per_channel_minmax_hand_values():
    w = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, 0.0]])
    obs = MinMaxObserver(ch_axis=0, symmetric=True)
    obs(w)
    scales, zps = obs.calculate_qparams()
    np.testing.assert_array_equal(zps, [0, 0])
    np.testing.assert_allclose(scales, [3 / 127.5, 0.5 / 127.5], rtol=1e-7)
    obs_cols = MinMaxObserver(ch_axis=-1)
    obs_cols(w)
    np.testing.assert_array_equal(obs_cols.min_val, [0.5, -2.0, 0.0])
    np.testing.assert_array_equal(obs_cols.max_val, [1.0, 0.25, 3.0])


def torch_observer(torch, kind, dtype, symmetric, narrow, ch_axis, c=0.01):
    obs = torch.ao.quantization.observer
    tdt = torch.qint8 if dtype == "int8" else torch.quint8
    if ch_axis is None:
        scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
        cls = {"minmax": obs.MinMaxObserver, "moving": obs.MovingAverageMinMaxObserver}[kind]
    else:
        scheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
        cls = {"minmax": obs.PerChannelMinMaxObserver, "moving": obs.MovingAveragePerChannelMinMaxObserver}[kind]
    kw = {"dtype": tdt, "qscheme": scheme}
    if narrow:
        kw.update(quant_min=-127, quant_max=127)
    if ch_axis is not None:
        kw["ch_axis"] = ch_axis
    if kind == "moving":
        kw["averaging_constant"] = c
    return cls(**kw)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["minmax", "moving"]), st.sampled_from(DTYPES), st.booleans(), st.booleans(),
       st.sampled_from([None, 0, 1, 2]), st.integers(0, 2**32 - 1))
def test_observers_equal_torch_ao(torch, kind, dtype, symmetric, narrow, ch_axis, seed):
    narrow = narrow and dtype == "int8"    # torch.ao rejects a uint8 range [1, 255] (no 0 inside)
    c = 0.3
    ours = (MinMaxObserver(dtype, symmetric, narrow, ch_axis) if kind == "minmax"
            else MovingAverageMinMaxObserver(c, dtype, symmetric, narrow, ch_axis))
    ref = torch_observer(torch, kind, dtype, symmetric, narrow, ch_axis, c)
    for x in batches(seed):
        ours(x)
        ref(torch.from_numpy(x))
    np.testing.assert_array_equal(np.atleast_1d(ours.min_val if ch_axis is not None else ours.min_val[0]),
                                  np.atleast_1d(ref.min_val.numpy()))
    np.testing.assert_array_equal(np.atleast_1d(ours.max_val if ch_axis is not None else ours.max_val[0]),
                                  np.atleast_1d(ref.max_val.numpy()))
    scale, zp = ours.calculate_qparams()
    t_scale, t_zp = ref.calculate_qparams()
    np.testing.assert_array_equal(np.atleast_1d(scale), t_scale.numpy().astype(np.float32))
    np.testing.assert_array_equal(np.atleast_1d(zp), t_zp.numpy())


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e3, 1e3, width=32), st.floats(-1e3, 1e3, width=32), st.sampled_from(DTYPES), st.booleans())
def test_choose_qparams_equals_torch_minmax_observer(torch, a, b, dtype, symmetric):
    lo, hi = min(a, b), max(a, b)
    ref = torch_observer(torch, "minmax", dtype, symmetric, False, None)
    ref(torch.tensor([lo, hi], dtype=torch.float32))
    t_scale, t_zp = ref.calculate_qparams()
    assert choose_qparams(lo, hi, dtype, symmetric) == (float(t_scale[0]), int(t_zp[0]))


def test_per_channel_observer_equals_per_tensor_on_each_channel():
    xs = batches(3, shape=(4, 9))
    per_channel = MovingAverageMinMaxObserver(0.2, "uint8", ch_axis=0)
    per_row = [MovingAverageMinMaxObserver(0.2, "uint8") for _ in range(4)]
    for x in xs:
        per_channel(x)
        for r, obs in enumerate(per_row):
            obs(x[r])
    scales, zps = per_channel.calculate_qparams()
    assert [(float(s), int(z)) for s, z in zip(scales, zps)] == [o.calculate_qparams() for o in per_row]


# ------------------------------------------------------------------------------------------
# histogram observer
# ------------------------------------------------------------------------------------------

def test_histogram_percentile_ignores_a_rare_outlier():
    x = np.concatenate([np.linspace(-1.0, 1.0, 100_001), [50.0]]).astype(np.float32)
    obs = HistogramObserver(bins=2048, mode="percentile", percentile=99.9)
    obs(x)
    lo, hi = obs.clipping_range()
    width = 51.0 / 2048
    assert abs(lo[0] - np.percentile(x, 0.1)) <= width
    assert abs(hi[0] - np.percentile(x, 99.9)) <= width
    minmax = MinMaxObserver()
    minmax(x)
    assert obs.calculate_qparams()[0] < minmax.calculate_qparams()[0] / 20


def test_histogram_percentile_100_is_min_max():
    x = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    hist, minmax = HistogramObserver(mode="percentile", percentile=100), MinMaxObserver()
    hist(x)
    minmax(x)
    assert hist.calculate_qparams() == minmax.calculate_qparams()


def true_mse(x, lo, hi, dtype, symmetric):
    scale, zp = choose_qparams(lo, hi, dtype, symmetric)
    return float(np.mean((dequantize(quantize(x, scale, zp, dtype), scale, zp).astype(np.float64) - x) ** 2))


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_histogram_mse_is_near_the_brute_force_optimum(symmetric, seed):
    rng = np.random.default_rng(seed)
    # a Gaussian bulk plus two far outliers: min-max wastes most of the grid on them
    x = np.concatenate([rng.normal(0.3, 1.0, 100_000), [40.0, -30.0]]).astype(np.float32)
    obs = HistogramObserver(mode="mse", symmetric=symmetric)
    obs(x[:50_000])
    obs(x[50_000:])                                      # second batch widens the range: re-binning
    lo, hi = obs.clipping_range()
    chosen = true_mse(x, float(lo[0]), float(hi[0]), "int8", symmetric)
    # brute force on the real data over a fine grid of clipping ranges
    fractions = np.geomspace(1e-3, 1, 300)
    if symmetric:
        t = max(-x.min(), x.max())
        best = min(true_mse(x, -f * t, f * t, "int8", True) for f in fractions)
    else:
        hi_best = min(fractions, key=lambda f: true_mse(x, x.min(), f * x.max(), "int8", False))
        best = min(true_mse(x, f * x.min(), hi_best * x.max(), "int8", False) for f in fractions)
    assert chosen <= 1.05 * best
    assert chosen < 0.85 * true_mse(x, float(x.min()), float(x.max()), "int8", symmetric)


def test_histogram_rebinning_keeps_mass_and_quantiles():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40_000).astype(np.float32)
    grown = HistogramObserver(mode="percentile", percentile=99.0)
    for part in np.array_split(np.sort(x), 8)[::-1]:          # range widens at every batch
        grown(part)
    once = HistogramObserver(mode="percentile", percentile=99.0)
    once(x)
    assert grown.counts.sum() == pytest.approx(x.size)
    width = (x.max() - x.min()) / 2048
    np.testing.assert_allclose(grown.clipping_range(), once.clipping_range(), atol=2 * width)
    np.testing.assert_allclose(once.clipping_range(), [[np.percentile(x, 1)], [np.percentile(x, 99)]],
                               atol=width)


def test_histogram_per_channel_equals_per_tensor_on_each_channel():
    rng = np.random.default_rng(1)
    w = rng.standard_t(3, size=(5, 400)).astype(np.float32) * np.array([[1], [2], [0.1], [5], [1]])
    for mode in ("mse", "percentile"):
        per_channel = HistogramObserver(bins=256, mode=mode, percentile=99.0, ch_axis=0)
        per_channel(w)
        scales, zps = per_channel.calculate_qparams()
        for c in range(5):
            single = HistogramObserver(bins=256, mode=mode, percentile=99.0)
            single(w[c])
            assert (float(scales[c]), int(zps[c])) == single.calculate_qparams()


def test_histogram_expected_mse_matches_the_data_for_a_wide_grid():
    # with many values per grid step the histogram estimate ≈ the real error
    x = np.random.default_rng(2).uniform(-1, 1, 200_000).astype(np.float32)
    obs = HistogramObserver()
    obs(x)
    est = obs.expected_mse(np.array([[-0.5, -1.0]]), np.array([[0.5, 1.0]]))[0] / x.size
    real = [true_mse(x, -0.5, 0.5, "int8", False), true_mse(x, -1.0, 1.0, "int8", False)]
    np.testing.assert_allclose(est, real, rtol=0.02)


# ------------------------------------------------------------------------------------------
# degenerate input, errors, duck typing
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [lambda: MinMaxObserver(), lambda: MovingAverageMinMaxObserver(),
                                  lambda: HistogramObserver(mode="mse"),
                                  lambda: HistogramObserver(mode="percentile")])
def test_all_zero_calibration_gives_eps_scale(make):
    obs = make()
    with np.errstate(all="raise"):
        obs(np.zeros((3, 4), np.float32))
        obs(np.zeros(5, np.float32))
        assert obs.calculate_qparams() == (float(np.finfo(np.float32).eps), -128)
    # a real batch afterwards still works (the zero-width histogram is re-binned)
    obs(np.array([-1.0, 1.0], np.float32))
    # the moving average only moves 1 % of the way: range [-0.01, 0.01]
    expected = 0.02 / 255 if isinstance(obs, MovingAverageMinMaxObserver) else 2 / 255
    assert obs.calculate_qparams()[0] == pytest.approx(expected, rel=1e-5)


def test_observers_accept_objects_with_data_and_skip_empty_batches():
    class FakeTensor:
        def __init__(self, a):
            self.data = a
    obs = MinMaxObserver(ch_axis=1)
    t = FakeTensor(np.array([[1.0, -2.0], [3.0, 4.0]]))
    assert obs(t) is t
    obs(np.zeros((0, 2)))
    np.testing.assert_array_equal(obs.min_val, [1.0, -2.0])
    scales, zps = obs.calculate_qparams()
    ref = choose_qparams_per_channel([1.0, -2.0], [3.0, 4.0])
    np.testing.assert_array_equal(scales, ref[0])
    np.testing.assert_array_equal(zps, ref[1])


@pytest.mark.parametrize("call, err, msg", [
    (lambda: MinMaxObserver().calculate_qparams(), ValueError, "no data observed yet"),
    (lambda: MinMaxObserver()(np.array([1, 2])), TypeError, "floating-point array, got dtype int64"),
    (lambda: MinMaxObserver()([1.0, 2.0]), TypeError, "got list"),
    (lambda: MinMaxObserver()(np.array([1.0, np.nan])), ValueError, "NaN or inf"),
    (lambda: MinMaxObserver(ch_axis=2)(np.ones((2, 2))), ValueError, "ch_axis=2 is out of range"),
    (lambda: MinMaxObserver(dtype="int4"), TypeError, "dtype must be 'int8' or 'uint8'"),
    (lambda: MovingAverageMinMaxObserver(averaging_constant=0.0), ValueError,
     r"averaging_constant must be in \(0, 1\]"),
    (lambda: HistogramObserver(mode="kl"), ValueError, "mode must be 'mse' or 'percentile'"),
    (lambda: HistogramObserver(percentile=10), ValueError, "percentile must be in"),
])
def test_observer_bad_input(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


def test_channel_count_must_not_change():
    obs = HistogramObserver(ch_axis=0)
    obs(np.ones((3, 4), np.float32))
    with pytest.raises(ValueError, match="expected 3 channels along axis 0, got 2"):
        obs(np.ones((2, 4), np.float32))
