"""What a PyTorch user runs into (issue 14): torch's behaviour on scalar and empty cases, the special values of
the ops added for them (checked against exact math, not torch), the factories, and a clear error for every bad
input we know of — each naming the function, the argument, what was expected and what came.

The new ops' values and first and second derivatives are in the op table (tests/op_cases.py); killed saves are
in tests/test_serialization.py.
"""
import math
import warnings

import numpy as np
import pytest

import minigrad
from minigrad import Tensor
from minigrad import functional as F
from minigrad.serialization import load_checkpoint, save, save_checkpoint
from models.cli import RECIPES

INF, NAN = math.inf, math.nan


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def grad_of(fn, values, dtype=np.float64):
    """(fn(x), dfn/dx) for an elementwise fn, as arrays."""
    x = leaf(values, dtype)
    y = fn(x)
    y.backward(np.ones(y.shape, dtype))  # not y.sum(): -inf + inf would be NaN
    return y.data, x.grad


@pytest.fixture(autouse=True)
def warnings_are_errors():
    """No op here may warn (a NumPy RuntimeWarning is how Max.forward used to report NaN input)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ------------------------------------------------------------------ behaviour that now follows torch
def test_where_with_two_numbers_gives_a_tensor_as_torch():
    cond = Tensor(np.array([True, False, True]))
    ints = minigrad.where(cond, 4, 2)
    assert ints.dtype == np.int64 and ints.tolist() == [4, 2, 4]
    floats = minigrad.where(cond, 4.0, 2)
    assert floats.dtype == np.float32 and floats.tolist() == [4.0, 2.0, 4.0]
    assert minigrad.where(np.array([[True], [False]]), 1, 0).shape == (2, 1)


def test_where_with_two_numbers_matches_torch():
    torch = pytest.importorskip("torch")
    cond = np.array([True, False])
    for a, b in ((4, 2), (4.0, 2), (True, 0.5)):
        ours, ref = minigrad.where(Tensor(cond), a, b), torch.where(torch.from_numpy(cond), a, b)
        assert ours.tolist() == ref.tolist() and str(ours.dtype) == str(ref.dtype).replace("torch.", "")


def test_sign_stays_in_the_graph_with_zero_gradient():
    x = leaf([-2.0, 0.0, 3.0])
    s = x.sign()
    assert s.requires_grad and s.grad_fn is not None
    s.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])  # torch: zeros, not None
    y, g = grad_of(lambda t: t.sign() * t, [-2.0, 3.0])  # |x| through the product rule: sign(x) + x·0
    np.testing.assert_array_equal(y, [2.0, 3.0])
    np.testing.assert_array_equal(g, [-1.0, 1.0])
    (h,) = minigrad.grad((x.sign() * x * x).sum(), x, create_graph=True)  # sign' = 0 in the second order too
    np.testing.assert_array_equal(h.data, [4.0, 0.0, 6.0])


@pytest.mark.parametrize("op", ["floor", "ceil", "trunc"])
def test_rounding_ops_have_zero_gradient_and_keep_integers(op):
    y, g = grad_of(lambda t: getattr(t, op)(), [-1.5, -0.5, 0.5, 1.5])
    np.testing.assert_array_equal(y, getattr(np, op)([-1.5, -0.5, 0.5, 1.5]))
    np.testing.assert_array_equal(g, np.zeros(4))
    ints = Tensor([-3, 2])
    assert getattr(ints, op)().dtype == np.int64 and getattr(ints, op)().tolist() == [-3, 2]


@pytest.mark.parametrize("shape, dim, out_shape", [((0,), None, ()), ((2, 0), 1, (2,)), ((0, 3), 0, (3,)),
                                                   ((2, 0, 3), (0, 1), (3,))])
@pytest.mark.parametrize("reduction", ["mean", "var", "std"])
def test_reductions_over_an_empty_dimension_give_nan(reduction, shape, dim, out_shape):
    x = leaf(np.zeros(shape))
    y = getattr(x, reduction)(dim=dim)
    assert y.shape == out_shape and np.isnan(y.data).all()
    y.sum().backward()
    assert x.grad.shape == shape  # nothing to differentiate, but the graph runs


def test_empty_mean_matches_torch():
    torch = pytest.importorskip("torch")
    for shape, dim in (((0,), None), ((2, 0), 1), ((0, 3), 0)):
        ref = torch.zeros(shape).mean() if dim is None else torch.zeros(shape).mean(dim)
        ours = Tensor(np.zeros(shape, np.float32)).mean(dim=dim)
        assert ours.shape == tuple(ref.shape) and np.isnan(ours.data).all() and torch.isnan(ref).all()


def test_max_of_nan_input_warns_nothing_and_gives_nan_gradients_in_that_row_only():
    x = leaf([[1.0, NAN, 3.0], [4.0, 5.0, 5.0]])
    m = x.max(dim=1)
    assert np.isnan(m.data[0]) and m.data[1] == 5.0
    m.sum().backward()
    assert np.isnan(x.grad[0]).all()  # the derivative of a NaN maximum is undefined (torch: NaN too)
    np.testing.assert_array_equal(x.grad[1], [0.0, 0.5, 0.5])  # a tie shares the gradient
    x = leaf([NAN, 2.0])
    assert np.isnan(x.min().data) and np.isnan(x.max().data)


def test_comparison_with_something_that_is_not_numbers_is_false_as_in_torch():
    t = Tensor([1.0, 2.0])
    assert (t == None) is False and (t != None) is True  # noqa: E711  (what the test is about)
    assert (t == "abc") is False and (t != "abc") is True


def test_method_forms_are_explicit_methods():
    for name in ("add", "sub", "mul", "div", "pow", "eq", "ne", "lt", "le", "gt", "ge", "masked_fill", "repeat",
                 "flip", "tril", "triu", "cumsum", "tan", "log2", "floor", "ceil", "trunc", "sign", "t", "reciprocal",
                 "expand_as", "reshape_as", "type_as"):
        assert Tensor.__dict__[name].__qualname__ == f"Tensor.{name}", name  # written in the class, no setattr


def test_method_forms_give_the_operators_results():
    a, b = Tensor([1.0, 4.0, 6.0]), Tensor([2.0, 4.0, 3.0])
    assert a.add(b).tolist() == (a + b).tolist() and a.add(b, alpha=2).tolist() == [5.0, 12.0, 12.0]
    assert a.sub(b, alpha=0.5).tolist() == [0.0, 2.0, 4.5] and a.mul(b).tolist() == [2.0, 16.0, 18.0]
    assert a.div(b).tolist() == [0.5, 1.0, 2.0] and a.pow(2).tolist() == [1.0, 16.0, 36.0]
    assert [f(b).tolist() for f in (a.eq, a.ne, a.lt, a.le, a.gt, a.ge)] == [
        [False, True, False], [True, False, True], [True, False, False], [True, True, False],
        [False, False, True], [False, True, True]]
    assert Tensor([-7.0, 7.0]).div(2, rounding_mode="trunc").tolist() == [-3.0, 3.0]
    assert Tensor([-7.0, 7.0]).div(2, rounding_mode="floor").tolist() == [-4.0, 3.0]
    floor_int = Tensor([-7, 7]).div(2, rounding_mode="floor")
    assert floor_int.dtype == np.int64 and floor_int.tolist() == [-4, 3]  # integer ÷ integer stays integer
    assert abs(Tensor([-2.0, 3.0])).tolist() == [2.0, 3.0]
    m = Tensor(np.arange(6.0).reshape(2, 3))
    assert m.t().shape == (3, 2) and a.t().tolist() == a.tolist() and Tensor(2.0).t().item() == 2.0
    assert m.expand_as(minigrad.zeros(4, 2, 3)).shape == (4, 2, 3) and a.reshape_as(m[:1].T).shape == (3, 1)
    assert Tensor(np.ones(6)).view_as(m).shape == (2, 3) and Tensor([1, 2]).type_as(m).dtype == np.float64
    assert Tensor([1, 4]).reciprocal().tolist() == [1.0, 0.25] and Tensor([1, 4]).reciprocal().dtype == np.float32


SCALAR_REDUCTIONS = ["sum", "mean", "max", "min", "var", "std", "logsumexp", "argmax", "argmin"]


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("reduction", SCALAR_REDUCTIONS)
def test_reducing_a_0d_tensor_over_dim_0_or_minus_1_works_as_in_torch(reduction, dim):
    torch = pytest.importorskip("torch")
    ours = getattr(Tensor(np.float64(2.5)), reduction)(dim=dim)
    torch_name = {"max": "amax", "min": "amin"}.get(reduction, reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that var/std of one element has no degrees of freedom
        theirs = getattr(torch.tensor(2.5, dtype=torch.float64), torch_name)(dim)
    assert ours.shape == () and np.array_equal(ours.data, theirs.numpy(), equal_nan=True)
    with pytest.raises(IndexError, match=rf"{reduction}: dimension 1 out of range for a tensor with 0 dimensions"):
        getattr(Tensor(2.5), reduction)(dim=1)


def test_0d_tensor_gradients_through_dim_0():
    x = leaf(2.5)
    (x.mean(dim=0) + x.max(dim=-1) + x.logsumexp(dim=0)).backward()
    assert x.grad == 3.0
    assert Tensor(2.0).softmax(0).item() == 1.0 and Tensor(2.0).log_softmax(-1).item() == 0.0  # as torch


@pytest.mark.parametrize("shape, dim", [((0,), 0), ((2, 0), 1), ((0, 3), 0), ((0, 3), 1), ((2, 0, 3), -2)])
def test_softmax_and_logsumexp_over_an_empty_dimension_as_torch(shape, dim):
    torch = pytest.importorskip("torch")
    for name in ("softmax", "log_softmax", "logsumexp"):
        x = leaf(np.zeros(shape))
        y = getattr(x, name)(dim)
        ref = getattr(torch.zeros(shape, dtype=torch.float64), name)(dim)
        assert y.shape == tuple(ref.shape) and np.array_equal(y.data, ref.numpy()), name  # logsumexp: -inf
        y.sum().backward()
        assert x.grad.shape == shape


def test_log_of_no_terms_is_minus_inf_without_a_warning():
    assert Tensor([-INF, -INF]).logsumexp(0).item() == -INF


def test_empty_argmax_and_max_are_clear_errors_as_in_torch():
    for name in ("argmax", "argmin", "max", "min"):
        with pytest.raises(ValueError, match=rf"{name}: cannot reduce over an empty dimension \(input shape \(2, 0\)"):
            getattr(minigrad.zeros(2, 0), name)(dim=1)
    assert minigrad.zeros(0, 3).argmax(dim=1).shape == (0,)  # nothing to reduce over an empty *other* dim: fine


# ------------------------------------------------------------------ shape ops and factories
def test_repeat_flip_tril_triu_cumsum_on_small_cases():
    x = Tensor([[1, 2], [3, 4]])
    assert x.repeat(1, 2).tolist() == [[1, 2, 1, 2], [3, 4, 3, 4]]
    assert x.repeat(2, 1, 1).shape == (2, 2, 2) and x.repeat(0, 1).shape == (0, 2)
    assert x.flip(0).tolist() == [[3, 4], [1, 2]] and x.flip(0, 1).tolist() == [[4, 3], [2, 1]]
    assert x.flip().tolist() == x.tolist() and Tensor(5.0).flip(0).item() == 5.0
    assert x.tril().tolist() == [[1, 0], [3, 4]] and x.triu(1).tolist() == [[0, 2], [0, 0]]
    assert x.tril(-1).tolist() == [[0, 0], [3, 0]] and x.tril().dtype == np.int64
    assert Tensor(np.ones((2, 3), bool)).triu().dtype == np.bool_
    assert x.cumsum(0).tolist() == [[1, 2], [4, 6]] and x.cumsum(-1).tolist() == [[1, 3], [3, 7]]
    assert Tensor([True, False, True]).cumsum(0).tolist() == [1, 1, 2]
    assert Tensor(2.5).cumsum(0).item() == 2.5 and Tensor([1, 2]).cumsum(0, dtype="float64").dtype == np.float64


def test_factories():
    assert minigrad.eye(3).tolist() == np.eye(3).tolist() and minigrad.eye(3).dtype == np.float32
    assert minigrad.eye(2, 3, dtype="int64").tolist() == [[1, 0, 0], [0, 1, 0]]
    e = minigrad.empty(2, 3)
    assert e.shape == (2, 3) and e.dtype == np.float32 and not e.data.any()  # zeroed: same seed, same numbers
    assert minigrad.empty((4,), dtype="float64").dtype == np.float64
    t = Tensor(np.arange(6.0).reshape(2, 3))
    assert minigrad.empty_like(t).shape == (2, 3) and minigrad.empty_like(t).dtype == np.float64
    filled = minigrad.full_like(t, 7)
    assert filled.dtype == np.float64 and (filled.data == 7).all()
    assert minigrad.full_like(t, 1.5, dtype="float32").dtype == np.float32
    assert minigrad.full_like(t, 2, requires_grad=True).requires_grad
    assert minigrad.randint(5, (3,), generator=minigrad.Generator(0)).tolist() == \
        minigrad.randint(0, 5, (3,), generator=minigrad.Generator(0)).tolist()  # torch's randint(high, size)


def test_factories_match_torch():
    torch = pytest.importorskip("torch")
    assert minigrad.eye(2, 4).tolist() == torch.eye(2, 4).tolist()
    t = np.arange(4.0).reshape(2, 2)
    assert minigrad.full_like(Tensor(t), 3).tolist() == torch.full_like(torch.from_numpy(t), 3).tolist()
    assert minigrad.empty(0, 3).shape == tuple(torch.empty(0, 3).shape)


def test_new_activations_are_modules_too():
    x = Tensor(np.linspace(-4, 4, 9))
    pairs = [(minigrad.nn.ELU(0.5), F.elu(x, 0.5)), (minigrad.nn.CELU(2.0), F.celu(x, 2.0)),
             (minigrad.nn.LeakyReLU(0.1), F.leaky_relu(x, 0.1)), (minigrad.nn.Hardtanh(-2, 2), F.hardtanh(x, -2, 2)),
             (minigrad.nn.ReLU6(), F.relu6(x)), (minigrad.nn.Hardswish(), F.hardswish(x)),
             (minigrad.nn.Softsign(), F.softsign(x)), (minigrad.nn.Mish(), F.mish(x))]
    for module, expected in pairs:
        np.testing.assert_array_equal(module(x).data, expected.data)


# ------------------------------------------------------------------ special values: exact math
LIMITS = [  # (name, f, inputs, values, derivatives)
    ("elu", lambda t: F.elu(t, alpha=2.0), [-INF, INF], [-2.0, INF], [0.0, 1.0]),
    ("celu", lambda t: F.celu(t, alpha=0.5), [-INF, INF], [-0.5, INF], [0.0, 1.0]),
    ("leaky_relu", lambda t: F.leaky_relu(t, 0.1), [-INF, INF], [-INF, INF], [0.1, 1.0]),
    ("hardtanh", F.hardtanh, [-INF, INF], [-1.0, 1.0], [0.0, 0.0]),
    ("relu6", F.relu6, [-INF, INF], [0.0, 6.0], [0.0, 0.0]),
    ("hardswish", F.hardswish, [-INF, INF], [0.0, INF], [0.0, 1.0]),
    ("softsign", F.softsign, [-INF, INF], [-1.0, 1.0], [0.0, 0.0]),
    ("mish", F.mish, [-INF, INF], [-0.0, INF], [0.0, 1.0]),
    ("log2", lambda t: t.log2(), [0.0, INF], [-INF, INF], [INF, 0.0]),
    ("floor", lambda t: t.floor(), [-INF, INF], [-INF, INF], [0.0, 0.0]),
    ("ceil", lambda t: t.ceil(), [-INF, INF], [-INF, INF], [0.0, 0.0]),
    ("sign", lambda t: t.sign(), [-INF, INF, -0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name, fn, inputs, values, derivatives", LIMITS, ids=[c[0] for c in LIMITS])
def test_limits_at_infinity_are_exact(name, fn, inputs, values, derivatives, dtype):
    with np.errstate(divide="ignore"):  # log2(0) = -inf and its derivative 1/0 are the exact answers
        y, g = grad_of(fn, inputs, dtype)
    np.testing.assert_array_equal(y, np.asarray(values, dtype))
    np.testing.assert_array_equal(g, np.asarray(derivatives, dtype))
    assert y.dtype == dtype


@pytest.mark.parametrize("name", ["elu", "celu", "leaky_relu", "hardtanh", "relu6", "hardswish", "softsign", "mish"])
def test_activations_propagate_nan(name):
    y, g = grad_of(getattr(F, name), [NAN, 1.0])
    assert np.isnan(y[0]) and np.isfinite(y[1])


def test_exact_values_of_the_new_math():
    assert Tensor([8.0, 0.125]).log2().tolist() == [3.0, -3.0]  # np.log2, not log(x)/log(2)
    assert Tensor(0.0).tan().item() == 0.0
    assert Tensor([1.0, INF, 1.0]).cumsum(0).tolist() == [1.0, INF, INF]


# ------------------------------------------------------------------ unclear errors made clear
def test_ragged_lists():
    with pytest.raises(ValueError, match=r"Tensor: data is a ragged nested list \(at depth 1 there are lists "
                                         r"of length 1 and lists of length 2\)"):
        Tensor([[1, 2], [3]])
    with pytest.raises(ValueError, match=r"at depth 1 there are lists of length 2 and numbers"):
        minigrad.tensor([[1, 2], 3])
    with pytest.raises(ValueError, match=r"embedding: ids is a ragged nested list"):
        minigrad.nn.Embedding(5, 2)([[1, 2], [3]])
    with pytest.raises(ValueError, match=r"add: the other operand is a ragged nested list"):
        Tensor([1.0, 2.0]) + [[1.0], [2.0, 3.0]]


def test_operand_that_is_not_numbers():
    t = Tensor([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"add: the other operand must hold numbers \(bool, integer or float\), "
                                        r"got dtype <U3 \(str 'abc'\)"):
        t + "abc"
    with pytest.raises(TypeError, match=r"add: the other operand must hold numbers .*, got None"):
        t + None  # used to give [nan, nan, nan]
    with pytest.raises(TypeError, match=r"mul: the other operand .* got None"):
        None * t
    with pytest.raises(TypeError, match=r"lt: the other operand .* got None"):
        t < None  # noqa: B015
    with pytest.raises(TypeError, match=r"eq: the other operand .* got None"):
        t.eq(None)
    with pytest.raises(TypeError, match=r"matmul: the other operand"):
        t @ "abc"
    with pytest.raises(TypeError, match=r"where: the other operand .* got None"):
        minigrad.where(t > 1, t, None)
    with pytest.raises(TypeError, match=r"maximum: the other operand .* got dtype <U1"):
        minigrad.maximum(t, "a")
    with pytest.raises(TypeError, match=r"add: alpha must be a number, got str 'x'"):
        t.add(t, alpha="x")
    with pytest.raises(ValueError, match=r"div: rounding_mode must be None, 'trunc' or 'floor', got 'round'"):
        t.div(2, rounding_mode="round")


def test_data_that_is_not_numbers():
    with pytest.raises(TypeError, match=r"Tensor: data must hold numbers \(bool, integer or float\), got dtype <U1"):
        Tensor(np.array(["a", "b"]))
    with pytest.raises(TypeError, match=r"Tensor: data must hold numbers .* got dtype object"):
        Tensor(np.array([1, None], dtype=object))
    with pytest.raises(TypeError, match=r"Tensor: data must hold numbers .* got None"):
        Tensor(None)
    with pytest.raises(TypeError, match=r"Tensor: data is a list of Tensors; join them with minigrad.stack"):
        Tensor([Tensor(1.0), Tensor(2.0)])
    with pytest.raises(TypeError, match=r"tensor: data must hold numbers .* got dtype <U1"):
        minigrad.tensor(["a"], dtype="float32")  # NumPy would parse the strings as numbers


def test_bad_dtypes():
    with pytest.raises(TypeError, match=r"Tensor: dtype 'float99' is not a dtype; expected e.g. 'float32'"):
        Tensor([1.0], dtype="float99")
    with pytest.raises(TypeError, match=r"Tensor: dtype complex128 is not supported; expected a bool, integer "
                                        r"or float dtype"):
        Tensor([1.0], dtype=complex)
    with pytest.raises(TypeError, match=r"zeros: dtype 'float99' is not a dtype"):
        minigrad.zeros(2, dtype="float99")
    with pytest.raises(TypeError, match=r"randint: dtype must be an integer dtype, got float32"):
        minigrad.randint(0, 5, (2,), dtype="float32")


def test_bad_sizes():
    with pytest.raises(TypeError, match=r"zeros: sizes must be integers, got str 'a' in \('a',\)"):
        minigrad.zeros("a")
    with pytest.raises(TypeError, match=r"ones: sizes must be integers, got float 2.5"):
        minigrad.ones(2.5, 3)
    with pytest.raises(ValueError, match=r"randn: negative dimension in size \(-1,\)"):
        minigrad.randn(-1)
    with pytest.raises(TypeError, match=r"reshape: sizes must be integers, got str 'a'"):
        Tensor([1.0]).reshape("a")
    with pytest.raises(ValueError, match=r"eye: negative dimension"):
        minigrad.eye(-2)


def test_randint_and_arange_ranges():
    with pytest.raises(ValueError, match=r"randint: high must be greater than low .* got low=5, high=2"):
        minigrad.randint(5, 2, (3,))
    with pytest.raises(TypeError, match=r"randint: high must be an integer, got float 2.5"):
        minigrad.randint(0, 2.5, (3,))
    with pytest.raises(ValueError, match=r"arange: step must be nonzero, got 0"):
        minigrad.arange(0, 5, 0)  # used to raise ZeroDivisionError
    with pytest.raises(ValueError, match=r"arange: step -1 goes away from end 5 \(start 0\)"):
        minigrad.arange(0, 5, -1)
    with pytest.raises(ValueError, match=r"arange: end must be finite, got inf"):
        minigrad.arange(0, INF)
    with pytest.raises(TypeError, match=r"arange: end must be a number, got str '5'"):
        minigrad.arange("5")
    assert minigrad.arange(3, 3).shape == (0,) and minigrad.arange(5, 0, -2).tolist() == [5, 3, 1]


def test_scalars_where_torch_needs_a_dimension():
    with pytest.raises(ValueError, match=r"cat: tensor 1 is 0-dimensional \(a scalar\), which cannot be "
                                         r"concatenated; use minigrad.stack"):
        minigrad.cat([Tensor([1.0]), Tensor(2.0)])  # used to raise ZeroDivisionError
    with pytest.raises(ValueError, match=r"split: expects a tensor with at least 1 dimension, got a 0-dimensional"):
        Tensor(2.0).split(1)  # used to raise IndexError: tuple index out of range
    with pytest.raises(ValueError, match=r"chunk: expects a tensor with at least 1 dimension"):
        Tensor(2.0).chunk(1)
    with pytest.raises(ValueError, match=r"t: expects a tensor with at most 2 dimensions, got shape \(2, 2, 2\)"):
        minigrad.zeros(2, 2, 2).t()


def test_arguments_that_are_not_numbers_or_integers():
    t = Tensor([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"pow: the other operand must hold numbers .* got dtype <U1 \(str 'a'\)"):
        t.pow("a")  # used to be NumPy's "could not convert string to float"
    with pytest.raises(TypeError, match=r"pow: the other operand .* got None"):
        t ** None
    assert (t ** np.float64(2)).tolist() == [1.0, 4.0, 9.0] and (t ** np.array(2)).tolist() == [1.0, 4.0, 9.0]
    with pytest.raises(TypeError, match=r"clamp: min must be a number, got str 'a'"):
        t.clamp("a")  # used to be UFuncTypeError
    with pytest.raises(TypeError, match=r"clamp: max must be a number, got list \[1.0\]"):
        t.clamp(0.0, [1.0])
    with pytest.raises(TypeError, match=r"tril: diagonal must be an integer, got float 1.5"):
        minigrad.zeros(2, 2).tril(1.5)  # used to run with diagonal 1.5
    with pytest.raises(TypeError, match=r"triu: diagonal must be an integer, got str 'a'"):
        minigrad.zeros(2, 2).triu("a")
    with pytest.raises(TypeError, match=r"cumsum: dim must be an integer, got NoneType None"):
        t.cumsum(None)
    with pytest.raises(TypeError, match=r"softmax: dim must be an integer, got str 'a'"):
        t.softmax("a")
    with pytest.raises(TypeError, match=r"sum: dim must be an integer, got float 0.5"):
        t.sum(dim=0.5)
    with pytest.raises(TypeError, match=r"chunk: chunks must be an integer, got float 2.0"):
        t.chunk(2.0)
    with pytest.raises(TypeError, match=r"split: sizes must be integers, got str 'a'"):
        t.split([1, "a"])
    with pytest.raises(TypeError, match=r"full_like: fill_value must be a number, got NoneType None"):
        minigrad.full_like(t, None)  # used to fill with NaN
    with pytest.raises(TypeError, match=r"full_like: fill_value must be a number, got list \[1, 2\]"):
        minigrad.full_like(t, [1, 2])
    with pytest.raises(TypeError, match=r"full: fill_value must be a number, got str 'a'"):
        minigrad.full((2,), "a")
    with pytest.raises(TypeError, match=r"maximum: expects at least one Tensor, got int 1 and int 2"):
        minigrad.maximum(1, 2)  # used to be AttributeError: 'int' object has no attribute '_lift'
    with pytest.raises(TypeError, match=r"minimum: expects at least one Tensor"):
        minigrad.minimum(1.0, 2.0)
    with pytest.raises(TypeError, match=r"stack: the other operand must hold numbers .* got None"):
        minigrad.stack([t, None])  # used to say "tensor 1 has shape ()"
    with pytest.raises(TypeError, match=r"and: expects bool or integer tensors, got dtypes bool and float64"):
        (t > 1) & 1.5
    with pytest.raises(TypeError, match=r"or: expects bool or integer tensors, got dtypes float32 and bool"):
        t | (t > 1)
    assert ((t > 1) & (t < 3)).tolist() == [False, True, False] and (Tensor([6, 3]) | 1).tolist() == [7, 3]
    with pytest.raises(TypeError, match=r"expand_as: expects a Tensor, got tuple \(2, 3\)"):
        t.expand_as((2, 3))
    with pytest.raises(TypeError, match=r"Tensor: requires_grad must be True or False, got str 'no'"):
        Tensor([1.0], requires_grad="no")  # used to be truthy: a leaf that requires grad
    with pytest.raises(TypeError, match=r"requires_grad_: requires_grad must be True or False, got int 1"):
        Tensor([1.0]).requires_grad_(1)
    assert Tensor([1.0], requires_grad=np.bool_(True)).requires_grad


@pytest.mark.parametrize("make, message", [
    (lambda: minigrad.nn.ELU("a"), r"ELU: alpha must be a number, got str 'a'"),
    (lambda: minigrad.nn.CELU(None), r"CELU: alpha must be a number, got NoneType None"),
    (lambda: minigrad.nn.CELU(0), r"CELU: alpha must be nonzero"),
    (lambda: minigrad.nn.LeakyReLU("x"), r"LeakyReLU: negative_slope must be a number, got str 'x'"),
    (lambda: minigrad.nn.Hardtanh("a"), r"Hardtanh: min_val must be a number, got str 'a'"),
    (lambda: minigrad.nn.Hardtanh(2, 1), r"Hardtanh: min_val \(2\) must not be greater than max_val \(1\)"),
    (lambda: minigrad.nn.Softplus("a"), r"Softplus: beta must be a number, got str 'a'"),
])
def test_activation_modules_check_their_arguments(make, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make()  # used to be float()'s "could not convert string to float"


def test_bad_arguments_of_the_new_ops():
    x = Tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"repeat: got 1 repeat counts for a tensor with 2 dimensions"):
        x.repeat(2)
    with pytest.raises(ValueError, match=r"repeat: repeat counts must be >= 0, got \(1, -1\)"):
        x.repeat(1, -1)
    with pytest.raises(ValueError, match=r"flip: dims \(0, -2\) name a dimension twice"):
        x.flip(0, -2)
    with pytest.raises(IndexError, match=r"flip: dimension 2 out of range for a tensor with 2 dimensions"):
        x.flip(2)
    with pytest.raises(ValueError, match=r"tril: the input must have at least 2 dimensions, got shape \(3,\)"):
        Tensor([1.0, 2.0, 3.0]).tril()
    with pytest.raises(IndexError, match=r"cumsum: dimension 5 out of range"):
        x.cumsum(5)
    with pytest.raises(ValueError, match=r"celu: alpha must be nonzero"):
        F.celu(x, alpha=0.0)
    with pytest.raises(ValueError, match=r"hardtanh: min_val \(1.0\) must not be greater than max_val \(0.0\)"):
        F.hardtanh(x, 1.0, 0.0)
    with pytest.raises(TypeError, match=r"leaky_relu: input must be a floating-point tensor, got dtype int64"):
        F.leaky_relu(Tensor([1, 2]))
    with pytest.raises(TypeError, match=r"elu: alpha must be a number, got str"):
        F.elu(x, alpha="1")
    with pytest.raises(TypeError, match=r"full_like: expected a Tensor, got list"):
        minigrad.full_like([1.0], 2.0)


def test_save_to_an_existing_folder(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    with pytest.raises(IsADirectoryError, match=r"save: '.*weights' is a folder; expected a file path inside it "
                                                r"\(e\.g\. '.*weights/model\.safetensors'\)"):
        save({"w": np.zeros(2)}, folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights"] and not list(folder.iterdir())  # no temp left


def _checkpoint_with_tree(path, tree: str):
    save({"model/w": np.zeros(2)}, path, metadata={"format": "minigrad.checkpoint", "version": "1", "tree": tree})


def test_damaged_checkpoint_trees(tmp_path):
    good = tmp_path / "good.safetensors"
    save_checkpoint(good, {"w": np.ones(2)}, step=3)
    assert load_checkpoint(good)["step"] == 3
    path = tmp_path / "ck.safetensors"
    _checkpoint_with_tree(path, '{"model": {"w": {"__array__": "model/w"')  # cut short
    with pytest.raises(ValueError, match=r"load_checkpoint: '.*ck.safetensors' is damaged: its 'tree' metadata is "
                                         r"not valid JSON"):
        load_checkpoint(path)
    _checkpoint_with_tree(path, '{"model": {"w": {"__array__": "model/v"}}, "optimizer": null}')
    with pytest.raises(ValueError, match=r"is damaged: its tree names the array 'model/v', which the file does "
                                         r"not hold"):
        load_checkpoint(path)
    _checkpoint_with_tree(path, "[1, 2]")
    with pytest.raises(ValueError, match=r"is damaged: its 'tree' metadata is not a mapping with a 'model' entry"):
        load_checkpoint(path)
    _checkpoint_with_tree(path, '{"model": {}, "extra": {"__dict__": [1]}}')
    with pytest.raises(ValueError, match=r"is damaged: its 'tree' metadata does not decode"):
        load_checkpoint(path)


# ------------------------------------------------------------------ silent garbage refused (models/)
def test_vocab_encode_refuses_tokens_that_are_not_str():
    from models.text.vocab import Vocab

    vocab = Vocab.build([["a", "b"]])
    with pytest.raises(TypeError, match=r"Vocab.encode: tokens must be str, got int 1 at position 0; to turn ids "
                                        r"back into tokens use Vocab.decode"):
        vocab.encode([1, 2])  # used to give [<unk>, <unk>]
    with pytest.raises(TypeError, match=r"got list \['a'\] at position 1"):
        vocab.encode(["a", ["a"]])
    assert vocab.encode(["a", "zzz"]).tolist() == [vocab.stoi["a"], vocab.unk_id]


@pytest.mark.parametrize("score", ["nan", "NaN", "inf", "-inf"])
@pytest.mark.parametrize("task, header", [("stsb", "index\tsentence1\tsentence2\tscore"),
                                          ("sick-sts", "pair_ID\tsentence_A\tsentence_B\trelatedness_score")])
def test_regression_scores_must_be_finite(tmp_path, task, header, score):
    from models.data.glue import SICK_TASKS, read_task_file

    path = tmp_path / "train.tsv"
    path.write_text(f"{header}\n0\tA man eats.\tA man is eating.\t4.5\n1\tA dog.\tA cat.\t{score}\n", encoding="utf-8")
    spec = SICK_TASKS.get(task, task)
    with pytest.raises(ValueError, match=rf"read_task_file: train.tsv line 3: score '{score}' is not a finite number"):
        read_task_file(path, spec)
    path.write_text(f"{header}\n0\tA man eats.\tA man is eating.\t4.5\n", encoding="utf-8")
    assert read_task_file(path, spec)[0].label == 4.5


# ------------------------------------------------------------------ the CLI: one error line, exit status 2
def _recipe_out_and_required(name: str):
    """Whether recipe ``name`` takes ``--out``, and the flags it cannot run without (``--task sst2``)."""
    import argparse
    import importlib

    from models.cli import RECIPES

    parser = argparse.ArgumentParser()
    importlib.import_module(RECIPES[name][0]).add_arguments(parser)
    required = [a for a in parser._actions if a.required and a.option_strings]
    return "--out" in parser._option_string_actions, [x for a in required for x in (a.option_strings[0], a.choices[0])]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_refuses_an_out_that_is_a_file_before_it_starts(tmp_path, capsys, name):
    from models.cli import main

    has_out, required = _recipe_out_and_required(name)
    if not has_out:
        pytest.skip(f"{name} writes no files")
    existing = tmp_path / "results.txt"
    existing.write_text("keep me")
    assert main([name, *required, "--out", str(existing)]) == 2
    assert f"{name} recipe: --out '{existing}' is an existing file; --out names the folder" in _one_error_line(capsys)
    assert main([name, *required, "--out", str(existing / "run1")]) == 2
    assert f"is inside '{existing}', which is an existing file" in _one_error_line(capsys)
    assert existing.read_text() == "keep me"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_reports_a_bad_flag_on_one_line(capsys, name):
    from models.cli import main

    assert main([name, *_recipe_out_and_required(name)[1], "--no-such-flag"]) == 2  # not argparse's usage block
    assert _one_error_line(capsys) == (f"error: python -m models {name}: unrecognized arguments: --no-such-flag "
                                       f"(the flags: python -m models {name} --help)\n")


def test_a_flag_out_of_range_and_a_missing_required_flag_are_one_line(capsys):
    from models.cli import main

    assert main(["word2vec", "--epochs", "-1"]) == 2
    assert "word2vec: argument --epochs: must be >= 1, got -1" in _one_error_line(capsys)
    assert main(["finetune"]) == 2
    assert "finetune: the following arguments are required: --task" in _one_error_line(capsys)
    assert main(["mlp-demo", "--steps", "-1"]) == 2  # used to be SystemExit: a message without "error:", status 1
    assert _one_error_line(capsys) == "error: mlp-demo recipe: --steps must be positive, got -1\n"


def test_quantize_argument_and_file_errors(tmp_path, capsys, monkeypatch):
    from models.cli import main

    assert main(["quantize", "--steps", "-1", "--out", str(tmp_path)]) == 2
    assert _one_error_line(capsys) == "error: quantize recipe: --steps must be positive, got -1\n"
    missing = tmp_path / "missing.safetensors"
    assert main(["quantize", "--checkpoint", str(missing), "--out", str(tmp_path)]) == 2
    assert _one_error_line(capsys) == f"error: load: no such file: '{missing}'\n"
    monkeypatch.setenv("MINIGRAD_TRACEBACK", "1")  # for debugging: the exception itself
    with pytest.raises(ValueError, match="--steps must be positive"):
        main(["quantize", "--steps", "-1", "--out", str(tmp_path)])


def test_an_os_error_names_the_recipe_and_the_file(capsys, monkeypatch):
    from models import cli

    def run(args):
        raise PermissionError(13, "Permission denied", "runs/locked")

    monkeypatch.setattr(cli.importlib, "import_module", lambda path: type("Recipe", (), {
        "add_arguments": staticmethod(lambda parser: None), "run": staticmethod(run)}))
    assert cli.main(["ngram"]) == 2
    assert _one_error_line(capsys) == "error: ngram recipe: Permission denied: 'runs/locked'\n"
