"""Array-level quantization math: qparams, quantize/dequantize, exact int8 GEMM, requantize, add."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from quant import (
    choose_qparams,
    choose_qparams_per_channel,
    dequantize,
    dequantize_per_channel,
    integer_range,
    multiply_by_quantized_multiplier,
    plot_quantization_grid,
    qmatmul,
    quantization_range,
    quantize,
    quantize_multiplier,
    quantize_per_channel,
    quantized_add,
    requantize,
)

DTYPES = ["int8", "uint8"]
torch_deprecation = pytest.mark.filterwarnings("ignore:.*deprecated.*:UserWarning")


@pytest.fixture(scope="module")
def torch():
    """torch (skipped if absent), single-threaded while these tests run: on tiny tensors
    thread start-up dominates on a busy machine (~25 ms per call with 2 threads)."""
    torch = pytest.importorskip("torch")
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(n_threads)

finite = st.floats(-1e4, 1e4, allow_nan=False, width=32)


@st.composite
def ranges(draw):
    a, b = draw(finite), draw(finite)
    return min(a, b), max(a, b)


@st.composite
def qparams_and_dtype(draw):
    dtype = draw(st.sampled_from(DTYPES))
    q_min, q_max = integer_range(dtype)
    scale = draw(st.floats(1e-4, 10.0))
    zero_point = draw(st.integers(q_min, q_max))
    return float(np.float32(scale)), zero_point, dtype


def qarrays(dtype, shape):
    info = np.iinfo(dtype)
    return hnp.arrays(dtype, shape, elements=st.integers(int(info.min), int(info.max)))


# ------------------------------------------------------------------------------------------
# scale and zero point
# ------------------------------------------------------------------------------------------

def test_book_worked_example():
    # x in [-100, 80], asymmetric int8: scale = 180/255, zero_point = -128 - round(-100/scale)
    scale, zero_point = choose_qparams(-100.0, 80.0, "int8")
    assert scale == pytest.approx(180 / 255, rel=1e-7)
    assert scale == float(np.float32(180) / np.float32(255))
    assert zero_point == -128 - round(-100 / (180 / 255)) == 14
    q = quantize(np.array([-100.0, 0.0, 80.0, 1.0]), scale, zero_point, "int8")
    np.testing.assert_array_equal(q, [-128, 14, 127, 15])   # 1.0 / 0.70588 = 1.4167 -> 1
    # dequantized: scale · (q − 14) = 0.70588 · [−142, 0, 113, 1]: −100 comes back as −100.235
    np.testing.assert_allclose(dequantize(q, scale, zero_point), [-100.23529, 0.0, 79.76470, 0.70588], rtol=1e-5)


def test_symmetric_and_narrow_range_hand_values():
    assert choose_qparams(-2.0, 1.0, "int8", symmetric=True) == (pytest.approx(2 / 127.5), 0)
    assert choose_qparams(-2.0, 1.0, "int8", symmetric=True, narrow_range=True) == (pytest.approx(2 / 127), 0)
    assert choose_qparams(-2.0, 1.0, "uint8", symmetric=True) == (pytest.approx(2 / 127.5), 128)
    assert choose_qparams(1.0, 3.0, "uint8") == (pytest.approx(3 / 255), 0)     # range extended to 0
    assert choose_qparams(-3.0, -1.0, "uint8") == (pytest.approx(3 / 255), 255)
    assert integer_range("int8", narrow_range=True) == (-127, 127)
    assert integer_range(np.uint8, narrow_range=True) == (1, 255)


@pytest.mark.parametrize("lo, hi", [(0.0, 0.0), (5.0, 5.0), (-3.0, -3.0), (1e-30, 1e-30)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("symmetric", [False, True])
def test_degenerate_ranges_do_not_divide_by_zero(lo, hi, dtype, symmetric):
    with np.errstate(all="raise"):
        scale, zp = choose_qparams(lo, hi, dtype, symmetric=symmetric)
        assert np.isfinite(scale) and scale > 0
        q_min, q_max = integer_range(dtype)
        assert q_min <= zp <= q_max
        q = quantize(np.array([0.0, lo, hi]), scale, zp, dtype)
        assert q[0] == zp and dequantize(q, scale, zp)[0] == 0.0
    if lo == hi == 0.0:
        assert scale == np.finfo(np.float32).eps


@settings(max_examples=100, deadline=None)
@given(ranges(), st.sampled_from(DTYPES), st.booleans(), st.booleans())
def test_qparams_cover_the_range_and_zero_is_exact(rng_, dtype, symmetric, narrow):
    lo, hi = rng_
    scale, zp = choose_qparams(lo, hi, dtype, symmetric=symmetric, narrow_range=narrow)
    q_min, q_max = integer_range(dtype, narrow)
    assert q_min <= zp <= q_max or (symmetric and dtype == "uint8" and zp == 128)
    # 0.0 is represented exactly, by the zero point
    assert quantize(np.zeros(1, np.float32), scale, zp, dtype, narrow)[0] == zp
    assert dequantize(np.array([zp], dtype), scale, zp)[0] == 0.0
    # the grid covers [min(lo, 0), max(hi, 0)] up to half a step at either end
    g_lo, g_hi = quantization_range(scale, zp, dtype, narrow)
    slack = scale / 2 * (1 + 1e-5) + 1e-6 * max(abs(lo), abs(hi))
    assert g_lo <= min(lo, 0.0) + slack and g_hi >= max(hi, 0.0) - slack
    if not symmetric and scale > np.finfo(np.float32).eps:
        # asymmetric uses the whole grid: scale is exactly the range over the number of steps
        assert scale == pytest.approx((max(hi, 0) - min(lo, 0)) / (q_max - q_min), rel=1e-6)


def test_choose_qparams_per_channel_matches_scalar_version():
    mins = np.array([-1.0, 0.0, 2.0, -5.0, 0.0])
    maxs = np.array([1.0, 3.0, 4.0, -1.0, 0.0])
    for symmetric in (False, True):
        scales, zps = choose_qparams_per_channel(mins, maxs, "uint8", symmetric=symmetric)
        assert scales.dtype == np.float32 and zps.dtype == np.int32
        for c in range(5):
            assert (float(scales[c]), int(zps[c])) == choose_qparams(mins[c], maxs[c], "uint8", symmetric)


# ------------------------------------------------------------------------------------------
# quantize / dequantize
# ------------------------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(qparams_and_dtype(), hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(-1.5, 1.5)))
def test_quantize_dequantize_error_inside_range_and_clamping(qp, unit):
    scale, zp, dtype = qp
    q_min, q_max = integer_range(dtype)
    g_lo, g_hi = scale * (q_min - zp), scale * (q_max - zp)
    # map [-1.5, 1.5] around the grid: the middle 2/3 inside, the rest outside
    mid, half = (g_lo + g_hi) / 2, (g_hi - g_lo) / 2
    x = (mid + half * unit).astype(np.float32)
    q = quantize(x, scale, zp, dtype)
    assert q.dtype == np.dtype(dtype) and q.shape == x.shape
    x_hat = dequantize(q, scale, zp)
    xd = x.astype(np.float64)
    inside = (xd >= g_lo) & (xd <= g_hi)
    # float32 arithmetic (x * (1/scale), then scale * q) adds a few ulps to the scale/2 bound
    tol = scale / 2 * (1 + 1e-4) + 4e-7 * np.abs(xd)
    assert np.all(np.abs(x_hat[inside] - xd[inside]) <= tol[inside])
    below, above = xd < g_lo - scale, xd > g_hi + scale
    assert np.all(q[below] == q_min) and np.all(q[above] == q_max)


def test_quantize_rounds_half_to_even_and_clamps_infinities():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, np.inf, -np.inf, 1e30], np.float32)
    np.testing.assert_array_equal(quantize(x, 1.0, 0, "int8"), [0, 2, 2, 0, -2, 127, -128, 127])
    np.testing.assert_array_equal(quantize(x, 1.0, 100, "uint8"), [100, 102, 102, 100, 98, 255, 0, 255])


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 1), st.sampled_from(DTYPES), st.data())
def test_per_channel_roundtrip(rows, cols, axis, dtype, data):
    q_min, q_max = integer_range(dtype)
    x = data.draw(hnp.arrays(np.float32, (rows, cols), elements=st.floats(-100, 100, width=32)))
    n = x.shape[axis]
    mins, maxs = x.min(axis=1 - axis), x.max(axis=1 - axis)
    scales, zps = choose_qparams_per_channel(mins, maxs, dtype)
    q = quantize_per_channel(x, scales, zps, axis, dtype)
    x_hat = dequantize_per_channel(q, scales, zps, axis)
    shape = [1, 1]
    shape[axis] = n
    s = scales.astype(np.float64).reshape(shape)
    assert np.all(np.abs(x_hat - x) <= s / 2 * (1 + 1e-4) + 4e-7 * np.abs(x))
    # each channel: round(float32(x·float32(1/s)) + zp), two roundings as torch's per-channel kernel;
    # the per-tensor function (one fused rounding) may differ by one at an exact tie, never more
    for c in range(n):
        xc = np.take(x, c, axis=axis)
        inv = np.float32(1) / np.float32(scales[c])
        expected = np.clip(np.rint((xc * inv).astype(np.float32) + np.float32(zps[c])), q_min, q_max)
        np.testing.assert_array_equal(np.take(q, c, axis=axis), expected.astype(dtype))
        per_tensor = quantize(xc, scales[c], zps[c], dtype).astype(np.int32)
        assert np.abs(per_tensor - np.take(q, c, axis=axis).astype(np.int32)).max(initial=0) <= 1


@torch_deprecation
@settings(max_examples=100, deadline=None)
@given(qparams_and_dtype(), st.integers(0, 2**32 - 1))
def test_quantize_equals_torch_quantize_per_tensor(torch, qp, seed):
    scale, zp, dtype = qp
    q_min, q_max = integer_range(dtype)
    rng = np.random.default_rng(seed)
    # exact half-way points of the grid (the rounding-mode test), grid points, random values
    k = rng.integers(q_min - zp - 5, q_max - zp + 5, 200)
    x = np.concatenate([(k + 0.5) * scale, k * scale, rng.uniform(-300, 300, 200) * scale]).astype(np.float32)
    tdt = torch.qint8 if dtype == "int8" else torch.quint8
    ref = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, tdt)
    q = quantize(x, scale, zp, dtype)
    np.testing.assert_array_equal(q, ref.int_repr().numpy())
    np.testing.assert_array_equal(dequantize(q, scale, zp), ref.dequantize().numpy())


@torch_deprecation
@settings(max_examples=60, deadline=None)
@given(st.sampled_from(DTYPES), st.integers(0, 2), st.integers(0, 2**32 - 1))
def test_quantize_per_channel_equals_torch(torch, dtype, axis, seed):
    q_min, q_max = integer_range(dtype)
    rng = np.random.default_rng(seed)
    shape = (3, 4, 50)
    n = shape[axis]
    scales = rng.uniform(1e-3, 2.0, n).astype(np.float32)
    zps = rng.integers(q_min, q_max + 1, n)
    bshape = [1, 1, 1]
    bshape[axis] = n
    k = rng.integers(-300, 300, shape)
    halfway = (k + 0.5) * scales.reshape(bshape)
    x = np.where(rng.random(shape) < 0.5, halfway, rng.uniform(-400, 400, shape)).astype(np.float32)
    tdt = torch.qint8 if dtype == "int8" else torch.quint8
    ref = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(scales.astype(np.float64)),
                                     torch.from_numpy(zps), axis, tdt)
    q = quantize_per_channel(x, scales, zps, axis, dtype)
    np.testing.assert_array_equal(q, ref.int_repr().numpy())
    np.testing.assert_array_equal(dequantize_per_channel(q, scales, zps, axis), ref.dequantize().numpy())


def test_quantize_accepts_objects_with_data_attribute():
    class FakeTensor:
        data = np.array([0.26, -1.0])
    np.testing.assert_array_equal(quantize(FakeTensor(), 0.5, 0), [1, -2])


@pytest.mark.parametrize("call, err, msg", [
    (lambda: quantize(np.array([1, 2]), 0.1, 0), TypeError, "quantize: x must be a floating"),
    (lambda: quantize(np.array([1.0]), 0.0, 0), ValueError, "scale must be finite and > 0"),
    (lambda: quantize(np.array([1.0]), 0.1, 200, "int8"), ValueError, r"zero_point must lie in \[-128, 127\]"),
    (lambda: quantize(np.array([1.0]), 0.1, 0, "int16"), TypeError, "dtype must be 'int8' or 'uint8'"),
    (lambda: quantize(np.array([np.nan]), 0.1, 0), ValueError, "NaN"),
    (lambda: quantize(np.array([1.0]), 0.1, 0.5), TypeError, "zero_point must be an integer"),
    (lambda: dequantize(np.array([1.0]), 0.1, 0), TypeError, "int8 or uint8"),
    (lambda: quantize_per_channel(np.ones((2, 3)), [0.1, 0.1], [0, 0], 1), ValueError, r"shape \(3,\)"),
    (lambda: quantize_per_channel(np.ones((2, 3)), [0.1, 0.1], [0, 0], 2), ValueError, "axis must be"),
    (lambda: choose_qparams(1.0, -1.0), ValueError, "x_min must be <= x_max"),
    (lambda: choose_qparams(0.0, np.inf), ValueError, "finite"),
    (lambda: choose_qparams([0.0, 1.0], [1.0, 2.0]), ValueError, "choose_qparams_per_channel"),
])
def test_bad_input_gets_clear_errors(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


# ------------------------------------------------------------------------------------------
# exact int8 GEMM
# ------------------------------------------------------------------------------------------

def int64_reference(a, za, b, zb):
    return (a.astype(np.int64) - za) @ (b.astype(np.int64) - np.asarray(zb, np.int64))


@st.composite
def gemm_inputs(draw, max_dim=12):
    da, db = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))
    m, k, n = (draw(st.integers(0, max_dim)) for _ in range(3))
    a = draw(qarrays(np.dtype(da), (m, k)))
    b = draw(qarrays(np.dtype(db), (k, n)))
    za = draw(st.integers(*integer_range(da)))
    if draw(st.booleans()):
        zb = draw(st.integers(*integer_range(db)))
    else:
        zb = draw(hnp.arrays(np.int64, n, elements=st.integers(*integer_range(db))))
    return a, za, b, zb


@settings(max_examples=100, deadline=None)
@given(gemm_inputs(), st.sampled_from(["auto", np.float64]))
def test_qmatmul_bit_exact_vs_int64(inputs, blas_dtype):
    a, za, b, zb = inputs
    acc = qmatmul(a, za, b, zb, blas_dtype=blas_dtype)
    assert acc.dtype == np.int32 and acc.shape == (a.shape[0], b.shape[1])
    np.testing.assert_array_equal(acc, int64_reference(a, za, b, zb))


def test_qmatmul_batched_and_precomputed_column_sums():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (2, 3, 7), dtype=np.uint8)
    b = rng.integers(-128, 128, (7, 5), dtype=np.int8)
    ref = int64_reference(a, 17, b, -3)
    np.testing.assert_array_equal(qmatmul(a, 17, b, -3), ref)
    np.testing.assert_array_equal(qmatmul(a, 17, b, -3, b_col_sums=b.sum(0, dtype=np.int64)), ref)
    np.testing.assert_array_equal(qmatmul(a[0, 0], 17, b, -3), ref[0, 0])      # a vector


def extreme_inputs(da, db, K, seed):
    """Values at the ends of the dtype ranges, zero points at the opposite ends."""
    rng = np.random.default_rng(seed)
    ia, ib = np.iinfo(da), np.iinfo(db)
    # mostly the same extreme (so sums grow past 2^24) with some of the other end mixed in
    a = np.where(rng.random((16, K)) < 0.9, ia.max, ia.min).astype(da)
    b = np.where(rng.random((K, 16)) < 0.9, ib.max, ib.min).astype(db)
    return a, int(ia.min), b, int(ib.min)


@pytest.mark.parametrize("da, db", [(np.int8, np.int8), (np.uint8, np.int8), (np.uint8, np.uint8),
                                    (np.int8, np.uint8)])
@pytest.mark.parametrize("K", [1, 1023, 1024, 1025, 2048])
def test_qmatmul_adversarial_extremes(da, db, K):
    a, za, b, zb = extreme_inputs(da, db, K, seed=K)
    ref = int64_reference(a, za, b, zb)
    for blas_dtype in ("auto", np.float64):
        np.testing.assert_array_equal(qmatmul(a, za, b, zb, blas_dtype=blas_dtype), ref)
    np.testing.assert_array_equal(qmatmul(a, za, b, np.full(16, zb), blas_dtype="auto"), ref)


def test_qmatmul_k2048_is_where_plain_float32_rounds():
    # the raw products a·b in one float32 GEMM would round at K = 2048 with these values:
    a, za, b, zb = extreme_inputs(np.uint8, np.int8, 2048, seed=1)
    raw = a.astype(np.int64) @ b.astype(np.int64)
    naive = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.int64)
    assert np.abs(raw).max() > 2**24 and not np.array_equal(naive, raw)
    np.testing.assert_array_equal(qmatmul(a, za, b, zb), int64_reference(a, za, b, zb))


def test_qmatmul_overflow_is_an_error_not_a_wraparound():
    K = 40_000                      # 40000 · 255 · 255 > 2^31
    a = np.full((1, K), 255, np.uint8)
    b = np.full((K, 1), 255, np.uint8)
    with pytest.raises(OverflowError, match="does not fit int32"):
        qmatmul(a, 0, b, 0)
    assert qmatmul(a, 255, b, 0)[0, 0] == 0          # but zero-point cancellation is fine


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(1, 6), st.sampled_from(DTYPES), st.data())
def test_dequantized_qmatmul_within_analytic_bound(m, k, n, a_dtype, data):
    floats = st.floats(-3, 3, width=32)
    A = data.draw(hnp.arrays(np.float32, (m, k), elements=floats)).astype(np.float64)
    B = data.draw(hnp.arrays(np.float32, (k, n), elements=floats)).astype(np.float64)
    s_a, z_a = choose_qparams(A.min(), A.max(), a_dtype)
    s_b, z_b = choose_qparams(B.min(), B.max(), "int8", symmetric=True)
    a_q, b_q = quantize(A, s_a, z_a, a_dtype), quantize(B, s_b, z_b, "int8")
    C_hat = s_a * s_b * qmatmul(a_q, z_a, b_q, z_b).astype(np.float64)
    # A = Â + e_a, B = B̂ + e_b with |e| <= s/2  ⇒  |AB − ÂB̂| <= (s_b/2) Σ_k|A_ik| + (s_a/2) Σ_k|B̂_kj|
    B_hat = dequantize(b_q, s_b, z_b).astype(np.float64)
    bound = s_b / 2 * np.abs(A).sum(1)[:, None] + s_a / 2 * np.abs(B_hat).sum(0)[None, :]
    assert np.all(np.abs(A @ B - C_hat) <= bound * (1 + 1e-4) + 1e-9)


@pytest.mark.parametrize("call, err, msg", [
    (lambda: qmatmul(np.ones((2, 3), np.int16), 0, np.ones((3, 2), np.int8), 0), TypeError, "a_q must be an int8"),
    (lambda: qmatmul(np.ones((2, 3), np.int8), 0, np.ones((4, 2), np.int8), 0), ValueError, "inner dimensions"),
    (lambda: qmatmul(np.ones((2, 3), np.int8), 0, np.ones((3,), np.int8), 0), ValueError, r"b_q \(K, N\)"),
    (lambda: qmatmul(np.ones((2, 3), np.uint8), -1, np.ones((3, 2), np.int8), 0), ValueError, "a_zero_point must lie"),
    (lambda: qmatmul(np.ones((2, 3), np.int8), 0, np.ones((3, 2), np.int8), [0, 0, 0]), ValueError,
     "b_zero_point must have shape"),
    (lambda: qmatmul(np.ones((2, 3), np.int8), 0.5, np.ones((3, 2), np.int8), 0), TypeError,
     "a_zero_point must be an integer"),
])
def test_qmatmul_bad_input(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


# ------------------------------------------------------------------------------------------
# requantization (gemmlowp fixed point)
# ------------------------------------------------------------------------------------------

def srdhm_reference(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul, transcribed with C integer semantics."""
    if a == b == -(2**31):
        return 2**31 - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    num = ab + nudge
    q = abs(num) // (1 << 31)            # C division truncates toward zero
    return q if num >= 0 else -q


def rounding_divide_by_pot_reference(x, exponent):
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def mbqm_reference(x, multiplier, shift):
    left, right = max(-shift, 0), max(shift, 0)
    x = min(max(x << left, -(2**31)), 2**31 - 1)
    return rounding_divide_by_pot_reference(srdhm_reference(x, multiplier), right)


def test_quantize_multiplier_hand_values():
    assert quantize_multiplier(0.5) == (2**30, 0)
    assert quantize_multiplier(1.0) == (2**30, -1)
    assert quantize_multiplier(0.3) == (1288490189, 1)       # 0.6 · 2^31 = 1288490188.8
    assert quantize_multiplier(1e-12) == (0, 0)                # below 2^-32: flushes to zero
    assert quantize_multiplier(np.nextafter(1.0, 0)) == (2**30, -1)   # mantissa rounds up to 1.0
    assert srdhm_reference(-(2**31), -(2**31)) == 2**31 - 1


@settings(max_examples=100, deadline=None)
@given(st.floats(2.0**-31, 2.0**20))
def test_quantize_multiplier_relative_error(real):
    qm, shift = quantize_multiplier(real)
    assert 2**30 <= qm < 2**31
    assert abs(qm * 2.0 ** (-31 - shift) - real) <= real * 2.0**-31


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.int32, st.integers(1, 30)), st.integers(2**30, 2**31 - 1), st.integers(-31, 40))
def test_fixed_point_multiply_bit_exact_vs_gemmlowp_reference(x, multiplier, shift):
    got = multiply_by_quantized_multiplier(x, multiplier, shift)
    ref = [mbqm_reference(int(v), multiplier, shift) for v in x]
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("multiplier", [2**30, 2**30 + 1, 3 * 2**29, 2**31 - 1])
@pytest.mark.parametrize("shift", [-2, 0, 1, 2, 3, 7])
def test_fixed_point_multiply_rounding_ties(multiplier, shift):
    # small integers hit the half-way cases of both roundings (x·m/2^31 and x/2^shift)
    x = np.concatenate([np.arange(-300, 301), [2**31 - 1, -(2**31), 2**24 + 1]]).astype(np.int32)
    got = multiply_by_quantized_multiplier(x, multiplier, shift)
    np.testing.assert_array_equal(got, [mbqm_reference(int(v), multiplier, shift) for v in x])
    per_channel = multiply_by_quantized_multiplier(np.stack([x, x], axis=1), [multiplier, 2**30], [shift, 0])
    np.testing.assert_array_equal(per_channel[:, 0], got)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.int32, st.integers(1, 50)), st.floats(1e-9, 4.0), st.sampled_from(DTYPES), st.data())
def test_requantize_within_one_unit_of_float64(acc, multiplier, dtype, data):
    q_min, q_max = integer_range(dtype)
    z_out = data.draw(st.integers(q_min, q_max))
    q = requantize(acc, multiplier, z_out, dtype)
    assert q.dtype == np.dtype(dtype)
    ref = np.clip(np.rint(acc.astype(np.float64) * multiplier) + z_out, q_min, q_max)
    assert np.all(np.abs(q.astype(np.int64) - ref) <= 1)
    qm, shift = quantize_multiplier(multiplier)
    exact = [min(max(mbqm_reference(int(v), qm, shift) + z_out, q_min), q_max) for v in acc]
    np.testing.assert_array_equal(q, exact)


def test_requantize_per_channel_multiplier():
    rng = np.random.default_rng(0)
    acc = rng.integers(-(2**20), 2**20, (6, 4)).astype(np.int32)
    m = np.array([1e-4, 3e-5, 2e-3, 0.7])
    q = requantize(acc, m, 5, "uint8")
    for j in range(4):
        np.testing.assert_array_equal(q[:, j], requantize(acc[:, j], m[j], 5, "uint8"))
    ref = np.clip(np.rint(acc * m) + 5, 0, 255)
    assert np.abs(q - ref).max() <= 1
    with pytest.raises(ValueError, match="broadcast to the accumulator shape"):
        requantize(acc, np.full(3, 0.1), 0)
    with pytest.raises(TypeError, match="acc must be an int32"):
        requantize(acc.astype(np.int64), 0.1, 0)
    with pytest.raises(ValueError, match=r"real_multiplier must be finite and in \(0, 2\^31\)"):
        requantize(acc, -0.1, 0)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(DTYPES), st.sampled_from(DTYPES), st.sampled_from(DTYPES),
       st.floats(1e-3, 1.0), st.floats(1e-3, 1.0), st.floats(1e-3, 1.0), st.data())
def test_quantized_add_within_one_unit(da, db, dout, s_a, s_b, s_out, data):
    n = data.draw(st.integers(1, 30))
    a = data.draw(qarrays(np.dtype(da), n))
    b = data.draw(qarrays(np.dtype(db), n))
    z_a, z_b, z_out = (data.draw(st.integers(*integer_range(d))) for d in (da, db, dout))
    q = quantized_add(a, s_a, z_a, b, s_b, z_b, s_out, z_out, dout)
    assert q.dtype == np.dtype(dout)
    real = s_a * (a.astype(np.float64) - z_a) + s_b * (b.astype(np.float64) - z_b)
    ref = np.clip(np.rint(real / s_out) + z_out, *integer_range(dout))
    assert np.all(np.abs(q.astype(np.int64) - ref) <= 1)


def test_quantized_add_hand_example_and_broadcast():
    # 0.5·(10 − 0) + 0.25·(−4 − 2) = 3.5 → /0.5 = 7 → + z_out 3 = 10
    q = quantized_add(np.array([[10]], np.int8), 0.5, 0, np.array([-4, 6], np.int8), 0.25, 2, 0.5, 3)
    np.testing.assert_array_equal(q, [[10, 15]])                 # second: 5 + 1 = 6 → 12 + 3
    with pytest.raises(ValueError, match="do not broadcast"):
        quantized_add(np.zeros(3, np.int8), 1.0, 0, np.zeros(2, np.int8), 1.0, 0, 1.0, 0)
    with pytest.raises(ValueError, match="b_scale must be a finite scalar > 0"):
        quantized_add(np.zeros(3, np.int8), 1.0, 0, np.zeros(3, np.int8), 0.0, 0, 1.0, 0)


# ------------------------------------------------------------------------------------------
# the grid plot
# ------------------------------------------------------------------------------------------

def test_quantization_range_hand_values():
    assert quantization_range(0.5, 14, "int8") == (0.5 * (-142), 0.5 * 113)
    assert quantization_range(0.1, 128, "uint8") == pytest.approx((-12.8, 12.7))


def test_plot_quantization_grid_writes_png(tmp_path):
    mpimg = pytest.importorskip("matplotlib.image")
    w = np.random.default_rng(0).normal(0, 0.05, (64, 64)).astype(np.float32)
    scale, zp = choose_qparams(w.min() * 0.5, w.max() * 0.5, "int8")
    out = plot_quantization_grid(w, scale, zp, "int8", tmp_path / "grid.png", figsize=(4, 3), dpi=50)
    assert out == tmp_path / "grid.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mpimg.imread(out).shape[:2] == (150, 200)
    assert os.listdir(tmp_path) == ["grid.png"]                  # atomic write left no temp file
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_quantization_grid(w, scale, zp, "int8", tmp_path / "missing" / "g.png")
    with pytest.raises(TypeError, match="non-empty float array"):
        plot_quantization_grid(w.astype(np.int32), scale, zp, "int8", tmp_path / "g.png")


def test_per_channel_and_per_tensor_round_a_tie_differently_as_torch():
    """0.001 / (0.002/255) = 127.5 → per channel (two roundings, torch) gives 0, per tensor (fused) -1."""
    x = np.array([[0.002, 0.001]], np.float32)
    scales, zps = choose_qparams_per_channel(x.min(axis=1), x.max(axis=1), "int8")
    np.testing.assert_array_equal(quantize_per_channel(x, scales, zps, 0, "int8"), [[127, 0]])
    np.testing.assert_array_equal(quantize(x[0], scales[0], zps[0], "int8"), [127, -1])
