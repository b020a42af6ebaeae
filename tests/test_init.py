"""minigrad.nn.init: PyTorch's formulas, checked by statistics over large tensors."""
import math
import warnings

import numpy as np
import pytest
from scipy import stats

import minigrad as mg
from minigrad.nn import Parameter, init

SHAPES = [(3, 4), (7, 1), (5, 6, 7), (2, 3, 4, 5), (16, 8, 3, 3)]


def big(shape=(400, 600), dtype=np.float32):
    return Parameter(np.zeros(shape, dtype=dtype))


def std_close(values, expected, rtol=0.02):
    assert abs(values.std() - expected) <= rtol * expected, (values.std(), expected)


# ----------------------------------------------------------------------------------------------
# Fans and gains
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES)
def test_fans_by_hand(shape):
    rf = math.prod(shape[2:])
    assert init._calculate_fan_in_and_fan_out(mg.zeros(*shape)) == (shape[1] * rf, shape[0] * rf)


@pytest.mark.parametrize("shape", SHAPES)
def test_fans_match_torch(shape):
    torch = pytest.importorskip("torch")
    assert init._calculate_fan_in_and_fan_out(mg.zeros(*shape)) == torch.nn.init._calculate_fan_in_and_fan_out(
        torch.zeros(*shape))


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions \(got shape \(5,\)\)"):
        init._calculate_fan_in_and_fan_out(mg.zeros(5))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(mg.zeros(5))
    with pytest.raises(ValueError, match="Mode 'fan_avg' not supported"):
        init.kaiming_normal_(mg.zeros(3, 3), mode="fan_avg")


def test_calculate_gain_values_and_errors():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="negative_slope"):
        init.calculate_gain("leaky_relu", "0.1")


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 3), ("selu", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


# ----------------------------------------------------------------------------------------------
# Distributions
# ----------------------------------------------------------------------------------------------
def test_uniform_and_normal_statistics():
    g = mg.Generator(0)
    t = init.uniform_(big(), -1.0, 3.0, generator=g)
    assert t.data.min() >= -1 and t.data.max() < 3 and t.data.min() < -0.99 and t.data.max() > 2.99
    assert abs(t.data.mean() - 1.0) < 0.01
    std_close(t.data, 4 / math.sqrt(12))
    t = init.normal_(big(), mean=2.0, std=0.5, generator=g)
    assert abs(t.data.mean() - 2.0) < 0.005
    std_close(t.data, 0.5)


def test_constants_and_in_place_semantics():
    p = big((3, 4))
    arr = p.data
    assert init.ones_(p) is p and p.data is arr and (arr == 1).all()
    init.zeros_(p)
    assert (arr == 0).all()
    init.constant_(p, 0.125)
    assert (arr == 0.125).all()
    ints = mg.zeros(3, dtype=np.int64)
    init.constant_(ints, 7)  # constants work for any dtype
    assert ints.data.tolist() == [7, 7, 7]
    with pytest.raises(TypeError, match="uniform_: expected a floating-point tensor, got dtype int64"):
        init.uniform_(ints)
    with pytest.raises(TypeError, match="expected a Tensor"):
        init.normal_([1.0, 2.0])
    d = init.normal_(big((50, 50), dtype=np.float64))
    assert d.dtype == np.float64


def test_xavier_formulas():
    t = init.xavier_uniform_(big(), gain=2.0, generator=mg.Generator(1))
    bound = 2.0 * math.sqrt(6 / (400 + 600))
    assert np.abs(t.data).max() <= bound and np.abs(t.data).max() > 0.999 * bound
    std_close(t.data, 2.0 * math.sqrt(2 / 1000))
    t = init.xavier_normal_(big(), gain=init.calculate_gain("tanh"), generator=mg.Generator(2))
    std_close(t.data, 5 / 3 * math.sqrt(2 / 1000))
    assert abs(t.data.mean()) < 1e-3


def test_kaiming_formulas():
    # Linear's default: a=sqrt(5) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    t = init.kaiming_uniform_(big(), a=math.sqrt(5), generator=mg.Generator(3))
    bound = 1 / math.sqrt(600)
    assert np.abs(t.data).max() <= bound * (1 + 1e-6) and np.abs(t.data).max() > 0.999 * bound
    t = init.kaiming_normal_(big(), mode="fan_out", nonlinearity="relu", generator=mg.Generator(4))
    std_close(t.data, math.sqrt(2 / 400))
    conv = init.kaiming_uniform_(big((64, 32, 5, 5)), nonlinearity="relu", generator=mg.Generator(5))
    bound = math.sqrt(2) * math.sqrt(3 / (32 * 25))
    assert np.abs(conv.data).max() <= bound * (1 + 1e-6) and np.abs(conv.data).max() > 0.99 * bound
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        empty = init.kaiming_uniform_(big((0, 3)))
    assert empty.shape == (0, 3) and "zero-element" in str(caught[0].message)
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.kaiming_normal_(big((3, 3)), nonlinearity="gelu")


def test_init_statistics_agree_with_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    pairs = [
        (lambda t: init.xavier_uniform_(t, gain=1.5), lambda t: torch.nn.init.xavier_uniform_(t, gain=1.5)),
        (lambda t: init.kaiming_normal_(t, a=0.1, mode="fan_out"),
         lambda t: torch.nn.init.kaiming_normal_(t, a=0.1, mode="fan_out")),
        (lambda t: init.trunc_normal_(t, std=0.3, a=-0.4, b=0.5),
         lambda t: torch.nn.init.trunc_normal_(t, std=0.3, a=-0.4, b=0.5)),
    ]
    for ours, ref in pairs:
        a = ours(big((300, 200, 2))).data
        b = ref(torch.zeros(300, 200, 2)).numpy()
        assert abs(a.std() - b.std()) < 0.02 * b.std()
        assert abs(a.mean() - b.mean()) < 0.02 * b.std()


def test_trunc_normal_bounds_and_moments():
    mean, std, a, b = 0.1, 0.5, -0.3, 1.0
    t = init.trunc_normal_(big(), mean=mean, std=std, a=a, b=b, generator=mg.Generator(6))
    assert t.data.min() >= a and t.data.max() <= b
    ref = stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert abs(t.data.mean() - ref.mean()) < 0.01 * ref.std()
    std_close(t.data, ref.std(), rtol=0.01)
    # BERT's initializer: std 0.02, cut at two standard deviations
    t = init.trunc_normal_(big(), std=0.02, a=-0.04, b=0.04, generator=mg.Generator(7))
    assert np.abs(t.data).max() <= 0.04
    std_close(t.data, stats.truncnorm(-2, 2, scale=0.02).std(), rtol=0.01)
    with pytest.raises(ValueError, match="expected a < b"):
        init.trunc_normal_(big((2, 2)), a=1.0, b=0.0)


# ----------------------------------------------------------------------------------------------
# Reproducibility
# ----------------------------------------------------------------------------------------------
def test_generators_and_global_seed_make_runs_reproducible():
    fns = [init.uniform_, init.normal_, init.xavier_uniform_, init.xavier_normal_,
           init.kaiming_uniform_, init.kaiming_normal_, init.trunc_normal_]
    for fn in fns:
        x = fn(big((20, 30)), generator=mg.Generator(11)).data
        y = fn(big((20, 30)), generator=mg.Generator(11)).data
        z = fn(big((20, 30)), generator=np.random.default_rng(12)).data
        np.testing.assert_array_equal(x, y)
        assert not np.array_equal(x, z)
        mg.manual_seed(5)
        u = fn(big((20, 30))).data
        mg.manual_seed(5)
        np.testing.assert_array_equal(u, fn(big((20, 30))).data)
    with pytest.raises(TypeError, match="generator must be"):
        init.normal_(big((2, 2)), generator=42)
