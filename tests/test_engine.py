"""Autograd behaviour beyond single ops: accumulation, grad modes, long chains, higher order,
errors a user can act on, dtype policy, randomness."""
import numpy as np
import pytest

import minigrad
from minigrad import Tensor


def leaf(arr, dtype=np.float64):
    return Tensor(np.asarray(arr, dtype=dtype), requires_grad=True)


# ------------------------------------------------------------------ accumulation and modes
def test_gradients_accumulate_until_zeroed():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [3 + 2, 3 + 4])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad, [3, 3])


def test_tensor_used_twice_gets_summed_gradient():
    x = leaf([2.0])
    y = x * x + x  # dy/dx = 2x + 1
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [5.0])


def test_leaves_never_share_a_grad_array():
    # Add hands the same gradient to both inputs; clipping one in place must not change the other
    a, b = leaf(np.ones(3)), leaf(np.ones(3))
    (a + b).sum().backward()
    a.grad *= 10
    np.testing.assert_allclose(b.grad, np.ones(3))


def test_caller_gradient_is_not_aliased():
    x = leaf(np.ones(3))
    g = np.ones(3)
    (x * 1.0).backward(g)
    x.grad += 1
    np.testing.assert_allclose(g, np.ones(3))


def test_no_grad_records_nothing_and_enable_grad_inside_restores():
    x = leaf([1.0])
    with minigrad.no_grad():
        y = x * 2
        with minigrad.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    assert minigrad.is_grad_enabled()


def test_non_leaf_grad_only_when_retained():
    x = leaf([1.0, 2.0])
    h = x * 2
    k = x * 3
    h.retain_grad()
    (h * k).sum().backward()
    np.testing.assert_allclose(h.grad, 3 * x.data)
    assert k.grad is None


def test_detach_cuts_the_graph():
    x = leaf([3.0])
    y = x * x.detach()
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0])


def test_long_chain_has_no_recursion_limit():
    x = leaf([1.0])
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001 ** 20_000], rtol=1e-9)


# ------------------------------------------------------------------ freed graphs, errors
def test_backward_twice_needs_retain_graph():
    x = leaf([1.0])
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, [4 * np.e])
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_backward_on_non_scalar_needs_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*\(2,\)"):
        (x * 2).backward()


def test_backward_grad_shape_checked():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"gradient 0 has shape \(3,\), output has shape \(2,\)"):
        (x * 2).backward(np.ones(3))


def test_backward_without_graph_is_clear():
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()


def test_matmul_shape_error_names_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        minigrad.randn(2, 3) @ minigrad.randn(4, 5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: minigrad.randn(2, 3) + minigrad.randn(4, 3), r"add: shapes \(2, 3\) and \(4, 3\) cannot be broadcast"),
        (lambda: minigrad.randn(2, 3).reshape(4, 2), r"cannot reshape tensor of shape \(2, 3\)"),
        (lambda: minigrad.randn(2, 3).sum(axis=2), r"dimension 2 out of range"),
        (lambda: minigrad.randn(2, 3).transpose(0, 5), r"transpose: dimension 5 out of range"),
        (lambda: minigrad.cat([minigrad.randn(2, 3), minigrad.randn(2, 4)]), r"cat: tensor 1 has shape \(2, 4\)"),
        (lambda: minigrad.randn(2, 3).expand(3, 3), r"expand: cannot expand shape \(2, 3\)"),
        (lambda: minigrad.randn(2, 3)[5], r"indexing a tensor of shape \(2, 3\)"),
        (lambda: minigrad.randn(2, 3).gather(1, minigrad.tensor([[0, 3]])), r"gather: index out of range"),
        (lambda: minigrad.functional.embedding(minigrad.tensor([5]), minigrad.randn(3, 2)), r"ids must lie in \[0, 3\)"),
        (lambda: minigrad.randn(3).split([1, 1]), r"split: sections \[1, 1\] sum to 2"),
    ],
)
def test_shape_errors_are_clear(make, message):
    with pytest.raises((ValueError, IndexError)) as info:
        make()
    assert info.match(message)


# ------------------------------------------------------------------ dtypes
def test_float32_default_and_float64_kept():
    assert minigrad.tensor([1.0, 2.0]).dtype == np.float32
    assert minigrad.tensor([1, 2]).dtype == np.int64
    assert minigrad.tensor(np.zeros(2)).dtype == np.float64
    assert minigrad.randn(2).dtype == np.float32


def test_mixed_float_dtypes_are_refused():
    a = minigrad.randn(2)
    b = minigrad.randn(2, dtype=np.float64)
    with pytest.raises(TypeError, match="mixed float dtypes float32 and float64"):
        a + b
    with pytest.raises(TypeError, match="mixed float dtypes"):
        a @ b


def test_scalars_and_arrays_take_the_tensor_dtype():
    a = minigrad.randn(2)
    assert (a * 2.5).dtype == np.float32
    assert (a + np.ones(2)).dtype == np.float32
    assert (np.ones(2) * a).dtype == np.float32  # ndarray defers to Tensor


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        Tensor(np.arange(3), requires_grad=True)


def test_comparisons_do_not_require_grad():
    x = leaf([1.0, 2.0])
    for r in (x == 1.0, x != 1.0, x < 2, x <= 2, x > 1, x >= 1):
        assert r.dtype == np.bool_ and not r.requires_grad


def test_cast_is_differentiable():
    x = leaf([1.5, 2.0], dtype=np.float32)
    y = (x.double() * 2).sum()
    y.backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


# ------------------------------------------------------------------ ties
def test_max_ties_split_gradient_evenly():
    x = leaf([1.0, 3.0, 3.0])
    x.max().backward()
    np.testing.assert_allclose(x.grad, [0, 0.5, 0.5])


def test_maximum_ties_split_between_sides():
    a, b = leaf([1.0, 2.0]), leaf([1.0, 0.0])
    minigrad.maximum(a, b).sum().backward()
    np.testing.assert_allclose(a.grad, [0.5, 1.0])
    np.testing.assert_allclose(b.grad, [0.5, 0.0])


def test_ties_match_torch():
    torch = pytest.importorskip("torch")
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x = leaf(data)
    x.max(axis=1).sum().backward()
    t = torch.tensor(data, requires_grad=True)
    torch.amax(t, dim=1).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy())


# ------------------------------------------------------------------ minigrad.grad
def test_grad_returns_without_touching_dot_grad():
    x = leaf([1.0, 2.0])
    (g,) = minigrad.grad((x * x).sum(), x)
    np.testing.assert_allclose(g.data, [2.0, 4.0])
    assert x.grad is None


def test_grad_of_non_leaf_input():
    x = leaf([1.0, 2.0])
    h = x * 3
    y = (h * h).sum()
    gh, gx = minigrad.grad(y, [h, x])
    np.testing.assert_allclose(gh.data, 2 * h.data)
    np.testing.assert_allclose(gx.data, 18 * x.data)


def test_grad_runs_only_the_nodes_that_lead_to_its_inputs(monkeypatch):
    """An unrolled loop: each step's gradient with respect to the current fast weight runs that
    step's nodes only — not the earlier steps' graphs behind it, which grow with every step (before
    the walk was pruned: 4, 15, 26, 37 nodes). The values are the analytic derivative with respect
    to the current weight, and the meta-gradient through the whole unroll is still exact."""
    import minigrad.autograd as autograd

    calls = []
    run_node = autograd._input_grads

    def counting(node, g, create_graph):
        calls.append(type(node).__name__)
        return run_node(node, g, create_graph)

    monkeypatch.setattr(autograd, "_input_grads", counting)
    w, side = leaf([0.5, -1.0]), leaf([2.0, 3.0])
    fast = w
    per_step = []
    for _ in range(4):
        loss = ((fast * side).tanh() * fast).sum()
        calls.clear()
        (g,) = minigrad.grad(loss, fast, create_graph=True)
        per_step.append(len(calls))
        x, s = fast.data, side.data
        np.testing.assert_allclose(g.data, np.tanh(x * s) + x * s * (1 - np.tanh(x * s) ** 2), rtol=1e-12)
        fast = fast - 0.1 * g
    assert per_step == [per_step[0]] * 4 and per_step[0] <= 4  # Sum, Mul, Tanh, Mul: nothing behind `fast`
    (meta,) = minigrad.grad(fast.sum(), w)  # the whole unroll is still there for the meta-gradient
    eps, f = 1e-6, lambda v: _unroll(v, side.data).sum()
    numeric = [(f(w.data + eps * e) - f(w.data - eps * e)) / (2 * eps) for e in np.eye(2)]
    np.testing.assert_allclose(meta.data, numeric, rtol=1e-6)


def _unroll(x, s, steps=4):
    for _ in range(steps):
        x = x - 0.1 * (np.tanh(x * s) + x * s * (1 - np.tanh(x * s) ** 2))
    return x


def test_grad_allow_unused():
    x, z = leaf([1.0]), leaf([1.0])
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        minigrad.grad((x * 2).sum(), [x, z])
    gx, gz = minigrad.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None and gx.data[0] == 2.0


def test_grad_with_grad_outputs():
    x = leaf([1.0, 2.0])
    (g,) = minigrad.grad(x * x, x, grad_outputs=np.array([1.0, 10.0]))
    np.testing.assert_allclose(g.data, [2.0, 40.0])


def test_third_derivative():
    x = leaf([0.7])
    y = x.sin()
    (d1,) = minigrad.grad(y.sum(), x, create_graph=True)
    (d2,) = minigrad.grad(d1.sum(), x, create_graph=True)
    (d3,) = minigrad.grad(d2.sum(), x)
    np.testing.assert_allclose([d1.item(), d2.item(), d3.item()], [np.cos(0.7), -np.sin(0.7), -np.cos(0.7)])


def _mlp(ns, params, x):
    w1, b1, w2, b2 = params
    h = (x @ w1 + b1).tanh()
    return ((h @ w2 + b2) ** 2).sum()


def test_hessian_vector_product_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    shapes = [(5, 8), (8,), (8, 3), (3,)]
    values = [rng.standard_normal(s) for s in shapes]
    vectors = [rng.standard_normal(s) for s in shapes]
    x = rng.standard_normal((4, 5))

    params = [leaf(v) for v in values]
    loss = _mlp(None, params, Tensor(x))
    grads = minigrad.grad(loss, params, create_graph=True)
    dot = sum((g * Tensor(v)).sum() for g, v in zip(grads, vectors))
    hvp = minigrad.grad(dot, params)

    def torch_loss(*ps):
        return _mlp(None, ps, torch.from_numpy(x))

    _, ref = torch.autograd.functional.hvp(
        torch_loss, tuple(torch.from_numpy(v) for v in values), tuple(torch.from_numpy(v) for v in vectors)
    )
    for ours, theirs in zip(hvp, ref):
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------ randomness
def test_manual_seed_reproduces():
    minigrad.manual_seed(123)
    a = minigrad.randn(5).data.copy()
    minigrad.manual_seed(123)
    np.testing.assert_array_equal(a, minigrad.randn(5).data)
    g1, g2 = minigrad.Generator(7), minigrad.Generator(7)
    np.testing.assert_array_equal(minigrad.rand(3, generator=g1).data, minigrad.rand(3, generator=g2).data)


def test_dropout_mask_statistics_and_gradient():
    x = leaf(np.ones((200, 200)))
    y = minigrad.functional.dropout(x, p=0.25, generator=minigrad.Generator(0))
    kept = y.data != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y.data[kept], 1 / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, y.data)  # gradient is the same scaled mask
    assert minigrad.functional.dropout(x, p=0.5, training=False) is x
