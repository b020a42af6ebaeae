"""minigrad.optim (SGD, Adam, AdamW) and gradient clipping against torch.optim, hand-computed steps,
checkpoint resumption through a safetensors file, and error messages.

The test problem is f(x) = 1/2 x^T A x + b^T x + sum(sin x) over three parameters (a matrix, a
vector and a 0-d scalar) flattened into x; each side computes the gradient from its *own*
parameters, so a difference in one step would feed into the next ones.
"""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minigrad
import minigrad.optim
from minigrad.nn.utils import clip_grad_norm_, clip_grad_value_
from minigrad.optim import SGD, Adam, AdamW

SHAPES = [(3, 4), (4,), ()]
N = sum(int(np.prod(s)) for s in SHAPES)
STEPS = 100


def _torch():
    return pytest.importorskip("torch")


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((N, N))
    a = m @ m.T / N + np.eye(N)  # symmetric positive definite, eigenvalues ~ 1..5
    b = rng.standard_normal(N)
    x0 = [rng.standard_normal(s) for s in SHAPES]
    return a, b, x0


def _gradient(arrays, a, b, sign):
    """sign * grad f at the parameters: A x + b + cos x, split back into the parameter shapes."""
    x = np.concatenate([np.ravel(arr) for arr in arrays])
    g = sign * (a @ x + b + np.cos(x))
    out, start = [], 0
    for arr in arrays:
        out.append(g[start:start + arr.size].reshape(arr.shape))
        start += arr.size
    return out


def _make_params(lib, x0, dtype=np.float64):
    if lib == "torch":
        torch = _torch()
        return [torch.tensor(np.array(x, dtype=dtype), requires_grad=True) for x in x0]
    return [minigrad.Tensor(np.array(x, dtype=dtype), requires_grad=True) for x in x0]


def _arrays(lib, params):
    return [p.detach().numpy() if lib == "torch" else p.data for p in params]


def _set_grads(lib, params, grads):
    for p, g in zip(params, grads):
        if lib == "torch":
            p.grad = _torch().from_numpy(np.array(g, dtype=p.detach().numpy().dtype))
        else:
            p.grad = np.asarray(g, dtype=p.data.dtype)


def _trajectory(lib, make_opt, steps=STEPS, sign=1.0):
    """Parameter values after every step; ``make_opt(optim_module, params)`` builds the optimizer."""
    a, b, x0 = _problem()
    params = _make_params(lib, x0)
    opt = make_opt(_torch().optim if lib == "torch" else minigrad.optim, params)
    history = []
    for _ in range(steps):
        _set_grads(lib, params, _gradient(_arrays(lib, params), a, b, sign))
        opt.step()
        history.append(np.concatenate([np.ravel(arr).copy() for arr in _arrays(lib, params)]))
    return np.array(history)


def _assert_same_trajectory(make_opt, sign=1.0, **kw):
    """Each side follows its own gradients (differences would feed back into later steps)."""
    ours = _trajectory("minigrad", make_opt, sign=sign, **kw)
    theirs = _trajectory("torch", make_opt, sign=sign, **kw)
    assert np.all(np.isfinite(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)


def _assert_same_trajectory_on_shared_gradients(make_opt, sign=1.0, steps=STEPS, dtype=np.float64, rtol=1e-6):
    """Both optimizers get the gradient at torch's parameters, so the comparison tests the update
    rule only: near the optimum Adam with constant lr can be chaotic (beta1 = 0: sign-like steps),
    and there a rounding difference fed back through the gradient doubles every step or two."""
    a, b, x0 = _problem()
    mine, theirs = _make_params("minigrad", x0, dtype), _make_params("torch", x0, dtype)
    opt, topt = make_opt(minigrad.optim, mine), make_opt(_torch().optim, theirs)
    for step in range(steps):
        grads = _gradient(_arrays("torch", theirs), a, b, sign)
        _set_grads("minigrad", mine, grads)
        _set_grads("torch", theirs, grads)
        opt.step()
        topt.step()
        for p, tp in zip(mine, theirs):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=rtol, atol=rtol / 100,
                                       err_msg=f"after step {step + 1}")
    assert all(np.all(np.isfinite(tp.detach().numpy())) for tp in theirs)


# ----------------------------------------------------------------------------------------------
# Trajectories equal to torch.optim (float64, 100 steps, every option combination)
# ----------------------------------------------------------------------------------------------
@st.composite
def sgd_options(draw):
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
    nesterov = momentum > 0 and draw(st.booleans())
    dampening = 0.0 if nesterov else draw(st.sampled_from([0.0, 0.1, 0.5]))
    return dict(lr=draw(st.sampled_from([0.01, 0.05])), momentum=momentum, dampening=dampening,
                weight_decay=draw(st.sampled_from([0.0, 0.01, 0.1])), nesterov=nesterov,
                maximize=draw(st.booleans()))


@st.composite
def adam_options(draw):
    return dict(lr=draw(st.sampled_from([1e-3, 0.02, 0.1])),
                betas=(draw(st.sampled_from([0.0, 0.5, 0.9])), draw(st.sampled_from([0.9, 0.99, 0.999]))),
                eps=draw(st.sampled_from([1e-8, 1e-3])), weight_decay=draw(st.sampled_from([0.0, 0.01, 0.1])),
                amsgrad=draw(st.booleans()), maximize=draw(st.booleans()))


@settings(max_examples=25, deadline=None)
@given(opts=sgd_options())
def test_sgd_trajectory_matches_torch(opts):
    # maximize=True ascends -f, so the trajectory stays bounded either way
    _assert_same_trajectory_on_shared_gradients(lambda optim, ps: optim.SGD(ps, **opts),
                                                sign=-1.0 if opts["maximize"] else 1.0)


@settings(max_examples=25, deadline=None)
@given(opts=adam_options(), name=st.sampled_from(["Adam", "AdamW"]))
# beta1 = 0 near the optimum: chaotic with feedback (see _assert_same_trajectory_on_shared_gradients)
@example(opts=dict(lr=0.02, betas=(0.0, 0.99), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False),
         name="Adam")
def test_adam_trajectory_matches_torch(opts, name):
    _assert_same_trajectory_on_shared_gradients(lambda optim, ps: getattr(optim, name)(ps, **opts),
                                                sign=-1.0 if opts["maximize"] else 1.0)


@pytest.mark.parametrize("make_opt", [
    lambda optim, ps: optim.SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01, "momentum": 0.5}],
                                lr=0.05, momentum=0.9, nesterov=False),
    lambda optim, ps: optim.Adam([{"params": ps[:2], "lr": 0.1}, {"params": ps[2:], "betas": (0.5, 0.9)}],
                                 lr=1e-2, amsgrad=True),
    lambda optim, ps: optim.AdamW([{"params": ps[1:]}, {"params": ps[:1], "weight_decay": 0.5}], lr=0.03),
], ids=["sgd", "adam", "adamw"])
def test_param_groups_with_different_hyperparameters_match_torch(make_opt):
    _assert_same_trajectory_on_shared_gradients(make_opt)


def test_sgd_momentum_trajectory_with_its_own_gradients_matches_torch():
    # heavy-ball SGD on a strongly convex problem contracts, so the two runs may follow their own
    # gradients: a difference in one step would show up in all later ones
    _assert_same_trajectory(lambda optim, ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01))


@pytest.mark.parametrize("name, kw", [("SGD", dict(lr=0.05, momentum=0.9)), ("Adam", dict(lr=0.05))])
def test_float32_parameters_stay_float32_and_match_torch(name, kw):
    _assert_same_trajectory_on_shared_gradients(lambda optim, ps: getattr(optim, name)(ps, **kw),
                                                dtype=np.float32, rtol=1e-4)


# ----------------------------------------------------------------------------------------------
# Hand-computed steps (no torch needed)
# ----------------------------------------------------------------------------------------------
def test_sgd_momentum_two_steps_by_hand():
    p = minigrad.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    p.grad = np.array([1.0, 2.0])
    opt.step()  # first step: buffer = g (no dampening), p = p - lr * g
    np.testing.assert_allclose(p.data, [0.9, -2.2])
    p.grad = np.array([3.0, -1.0])
    opt.step()  # buffer = 0.9 * [1, 2] + 0.5 * [3, -1] = [2.4, 1.3]
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [2.4, 1.3])
    np.testing.assert_allclose(p.data, [0.9 - 0.24, -2.2 - 0.13])


def test_adam_first_step_by_hand():
    # step 1: m_hat = g, v_hat = g^2, so p moves by lr * g / (|g| + eps)
    g = np.array([0.5, -3.0, 1e-9])
    p = minigrad.Tensor(np.zeros(3), requires_grad=True)
    opt = Adam([p], lr=0.1, eps=1e-8)
    p.grad = g.copy()
    opt.step()
    np.testing.assert_allclose(p.data, -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    assert opt.state[p]["step"] == 1
    np.testing.assert_allclose(opt.state[p]["exp_avg"], 0.1 * g)
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"], 0.001 * g * g)


def test_adamw_decays_weights_before_the_adam_step():
    p = minigrad.Tensor(np.array([2.0]), requires_grad=True)
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = np.array([4.0])
    opt.step()  # p = 2 * (1 - 0.05) - 0.1 * 4 / (4 + 1e-8)
    np.testing.assert_allclose(p.data, [1.9 - 0.1 * 4 / (4 + 1e-8)], rtol=1e-12)


def test_step_updates_data_in_place_and_leaves_grads_alone():
    for opt_cls, kw in [(SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True)),
                        (Adam, dict(weight_decay=0.1, maximize=True, amsgrad=True)), (AdamW, {})]:
        p = minigrad.Tensor(np.ones((2, 3)), requires_grad=True)
        data = p.data
        grad = np.arange(6.0).reshape(2, 3)
        p.grad = grad.copy()
        opt = opt_cls([p], **kw)
        opt.step()
        opt.step()
        assert p.data is data, f"{opt_cls.__name__} rebound .data"
        np.testing.assert_array_equal(p.grad, grad)
        assert not np.allclose(p.data, 1.0)


def test_params_without_grad_are_skipped():
    p, q = (minigrad.Tensor(np.ones(2), requires_grad=True) for _ in range(2))
    opt = Adam([p, q], lr=0.1)
    p.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(q.data, np.ones(2))
    assert q not in opt.state and p in opt.state
    np.testing.assert_allclose(p.data, 0.9 * np.ones(2), rtol=1e-6)


def test_zero_grad():
    p = minigrad.Tensor(np.ones(3), requires_grad=True)
    opt = SGD([p], lr=0.1)
    p.grad = np.ones(3)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and not grad.any()
    opt.zero_grad()
    assert p.grad is None


def test_closure_is_called_and_its_loss_returned():
    p = minigrad.Tensor(np.array([3.0]), requires_grad=True)
    opt = SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 9.0
    np.testing.assert_allclose(p.data, [3.0 - 0.25 * 6.0])


def test_trains_with_minigrad_autograd():
    # the optimizer on real engine gradients: least squares converges to the solution
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 3))
    w_true = np.array([[1.0], [-2.0], [0.5]])
    y = minigrad.Tensor(x @ w_true)
    w = minigrad.Tensor(np.zeros((3, 1)), requires_grad=True)
    opt = Adam([w], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = ((minigrad.Tensor(x) @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.data, w_true, atol=1e-3)


# ----------------------------------------------------------------------------------------------
# state_dict: torch's structure, and resuming mid-training continues the same trajectory
# ----------------------------------------------------------------------------------------------
def _save_checkpoint(path, opt_state, sched_state=None):
    """What a safetensors checkpoint helper does: arrays as tensors, everything else as JSON."""
    from safetensors.numpy import save_file

    tensors, scalars = {}, {}
    for idx, entries in opt_state["state"].items():
        for key, value in entries.items():
            if isinstance(value, np.ndarray):
                tensors[f"state.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    meta = {"param_groups": opt_state["param_groups"], "scalars": scalars, "scheduler": sched_state}
    save_file(tensors, str(path), metadata={"optimizer": json.dumps(meta)})


def _load_checkpoint(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = json.loads(f.metadata()["optimizer"])
        state = {k: dict(v) for k, v in meta["scalars"].items()}
        for name in f.keys():
            _, idx, key = name.split(".", 2)
            state.setdefault(idx, {})[key] = f.get_tensor(name)
    return {"state": state, "param_groups": meta["param_groups"]}, meta["scheduler"]


RESUME_CASES = {
    "sgd-nesterov-linear-warmup": (
        lambda ps: SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.02}], lr=0.05, momentum=0.9,
                       nesterov=True, weight_decay=0.01),
        lambda opt: minigrad.optim.get_linear_schedule_with_warmup(opt, 10, 120)),
    "adam-amsgrad-lambda": (
        lambda ps: Adam(ps, lr=0.05, betas=(0.8, 0.99), amsgrad=True, weight_decay=0.01),
        lambda opt: minigrad.optim.LambdaLR(opt, lambda e: 0.97 ** e)),
    "adamw-noam": (
        lambda ps: AdamW(ps, lr=1.0, betas=(0.9, 0.98), eps=1e-9),
        lambda opt: minigrad.optim.NoamLR(opt, d_model=16, warmup_steps=20)),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_from_safetensors_checkpoint_continues_the_same_trajectory(case, tmp_path):
    make_opt, make_sched = RESUME_CASES[case]
    a, b, x0 = _problem()

    def run(params, opt, sched, steps):
        for _ in range(steps):
            for p, g in zip(params, _gradient([p.data for p in params], a, b, 1.0)):
                p.grad = g
            opt.step()
            sched.step()

    params = _make_params("minigrad", x0)
    opt = make_opt(params)
    sched = make_sched(opt)
    run(params, opt, sched, 100)
    expected, expected_lr = [p.data.copy() for p in params], sched.get_last_lr()

    params = _make_params("minigrad", x0)
    opt = make_opt(params)
    sched = make_sched(opt)
    run(params, opt, sched, 50)
    _save_checkpoint(tmp_path / "optim.safetensors", opt.state_dict(), sched.state_dict())
    saved_params = [p.data.copy() for p in params]
    run(params, opt, sched, 7)  # training goes on after the save; the checkpoint must not change

    resumed = [minigrad.Tensor(x, requires_grad=True) for x in saved_params]
    opt = make_opt(resumed)
    sched = make_sched(opt)
    opt_state, sched_state = _load_checkpoint(tmp_path / "optim.safetensors")
    opt.load_state_dict(opt_state)
    sched.load_state_dict(sched_state)
    run(resumed, opt, sched, 50)
    for got, want in zip(resumed, expected):
        np.testing.assert_array_equal(got.data, want)
    assert sched.get_last_lr() == expected_lr


@pytest.mark.parametrize("name, kw", [
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1)),
])
def test_state_dict_has_torch_structure_and_loads_torch_state(name, kw):
    torch = _torch()
    a, b, x0 = _problem()
    mine, theirs = _make_params("minigrad", x0), _make_params("torch", x0)
    groups = lambda ps: [{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01}]  # noqa: E731
    opt, topt = getattr(minigrad.optim, name)(groups(mine), **kw), getattr(torch.optim, name)(groups(theirs), **kw)

    def run(lib, params, o, steps):
        for _ in range(steps):
            _set_grads(lib, params, _gradient(_arrays(lib, params), a, b, 1.0))
            o.step()

    run("minigrad", mine, opt, 20)
    run("torch", theirs, topt, 20)
    ours, ref = opt.state_dict(), topt.state_dict()
    assert [g["params"] for g in ours["param_groups"]] == [g["params"] for g in ref["param_groups"]]
    for g, tg in zip(ours["param_groups"], ref["param_groups"]):
        assert {k: g[k] for k in g} == {k: tg[k] for k in g}
    assert ours["state"].keys() == ref["state"].keys()
    for idx, entries in ours["state"].items():
        assert entries.keys() == ref["state"][idx].keys()
        for key, value in entries.items():
            np.testing.assert_allclose(value, ref["state"][idx][key].numpy() if key != "step"
                                       else ref["state"][idx][key].item(), rtol=1e-10, atol=1e-14)

    # continue from torch's state in a fresh minigrad optimizer: same path as torch
    resumed = [minigrad.Tensor(p.detach().numpy().copy(), requires_grad=True) for p in theirs]
    opt = getattr(minigrad.optim, name)(groups(resumed), **kw)
    opt.load_state_dict({"state": {i: {k: v.numpy() for k, v in s.items()} for i, s in ref["state"].items()},
                         "param_groups": ref["param_groups"]})
    run("minigrad", resumed, opt, 30)
    run("torch", theirs, topt, 30)
    for p, tp in zip(resumed, theirs):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_state_dict_is_a_copy_and_json_friendly():
    p = minigrad.Tensor(np.ones(2), requires_grad=True)
    opt = Adam([p], lr=0.1)
    p.grad = np.ones(2)
    opt.step()
    sd = opt.state_dict()
    json.dumps(sd["param_groups"])
    assert sd["state"][0]["step"] == 1 and isinstance(sd["state"][0]["step"], int)
    opt.step()
    np.testing.assert_allclose(sd["state"][0]["exp_avg"], [0.1, 0.1])  # not the live buffer


# ----------------------------------------------------------------------------------------------
# Errors a user can act on
# ----------------------------------------------------------------------------------------------
def _param(shape=(2,)):
    return minigrad.Tensor(np.zeros(shape), requires_grad=True)


@pytest.mark.parametrize("build, error, match", [
    (lambda: SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda: SGD(_param(), lr=0.1), TypeError, "single Tensor"),
    (lambda: SGD({_param()}, lr=0.1), TypeError, "not a set"),
    (lambda: SGD([np.zeros(2)], lr=0.1), TypeError, "must be a minigrad Tensor, got ndarray"),
    (lambda: SGD([minigrad.Tensor(np.zeros(2))], lr=0.1), ValueError, "does not require grad"),
    (lambda: SGD([_param() * 2], lr=0.1), ValueError, "not a leaf"),
    (lambda: SGD([_param()]), ValueError, "required hyperparameter 'lr'"),
    (lambda: SGD([_param()], lr=-0.1), ValueError, r"invalid lr=-0\.1"),
    (lambda: SGD([_param()], lr="0.1"), TypeError, "lr must be a real number"),
    (lambda: SGD([_param()], lr=0.1, momentum=-0.5), ValueError, r"invalid momentum=-0\.5"),
    (lambda: SGD([_param()], lr=0.1, weight_decay=-1.0), ValueError, r"invalid weight_decay=-1\.0"),
    (lambda: SGD([_param()], lr=0.1, nesterov=True), ValueError, "nesterov=True requires momentum > 0"),
    (lambda: SGD([_param()], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     r"dampening=0\.1"),
    (lambda: Adam([_param()], lr=float("nan")), ValueError, "invalid lr=nan"),
    (lambda: Adam([_param()], betas=(1.0, 0.999)), ValueError, r"invalid betas\[0\]=1\.0"),
    (lambda: Adam([_param()], betas=(0.9, -0.1)), ValueError, r"invalid betas\[1\]=-0\.1"),
    (lambda: Adam([_param()], betas=(0.9,)), ValueError, "betas must be a pair"),
    (lambda: AdamW([_param()], eps=-1e-8), ValueError, "AdamW: invalid eps=-1e-08"),
    (lambda: Adam([{"params": [_param()], "lr": -1.0}]), ValueError, r"invalid lr=-1\.0"),
])
def test_bad_arguments_raise_clear_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_duplicate_parameters_are_refused():
    p, q = _param(), _param()
    with pytest.raises(ValueError, match="more than one parameter group"):
        SGD([{"params": [p]}, {"params": [q, p]}], lr=0.1)
    with pytest.raises(ValueError, match="appears twice in the same group"):
        SGD([p, q, p], lr=0.1)
    opt = Adam([p])
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    opt.add_param_group({"params": [q], "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["betas"] == (0.9, 0.999)


def test_grad_of_the_wrong_shape_is_named():
    p = _param((2, 3))
    opt = Adam([p])
    p.grad = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"shape \(2, 3\) has a \.grad of shape \(3, 2\)"):
        opt.step()


def test_load_state_dict_mismatches_are_named():
    p, q = _param(), _param((3,))
    opt = Adam([p, q])
    p.grad, q.grad = np.ones(2), np.ones(3)
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="2 parameter groups, this optimizer has 1"):
        Adam([_param(), _param((3,))]).load_state_dict(
            {"state": {}, "param_groups": state["param_groups"] * 2})
    with pytest.raises(ValueError, match="group 0 has 2 parameters, this optimizer's group 0 has 1"):
        Adam([_param()]).load_state_dict(state)
    with pytest.raises(ValueError, match=r"state\[0\]\['exp_avg'\] has shape \(2,\), but parameter 0 has shape \(3,\)"):
        Adam([_param((3,)), _param()]).load_state_dict(state)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


# ----------------------------------------------------------------------------------------------
# Gradient clipping
# ----------------------------------------------------------------------------------------------
def _with_grads(grads):
    params = []
    for g in grads:
        p = minigrad.Tensor(np.zeros(np.shape(g)), requires_grad=True)
        p.grad = None if g is None else np.array(g, dtype=np.float64)
        params.append(p)
    return params


def _torch_with_grads(grads):
    torch = _torch()
    params = []
    for g in grads:
        p = torch.zeros(np.shape(g), dtype=torch.float64, requires_grad=True)
        p.grad = None if g is None else torch.tensor(np.array(g, dtype=np.float64))
        params.append(p)
    return params


def test_clip_grad_norm_by_hand():
    params = _with_grads([[3.0], [4.0], None])
    total = clip_grad_norm_(params, max_norm=1.0)
    assert total == 5.0
    np.testing.assert_allclose([params[0].grad[0], params[1].grad[0]], np.array([3.0, 4.0]) / (5.0 + 1e-6))
    assert params[2].grad is None
    params = _with_grads([[3.0], [4.0]])
    assert clip_grad_norm_(params, max_norm=10.0) == 5.0  # short enough: untouched
    np.testing.assert_array_equal(params[1].grad, [4.0])
    assert clip_grad_norm_(_with_grads([None]), 1.0) == 0.0


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(st.sampled_from([(), (3,), (2, 3), (4, 1, 2)]), min_size=1, max_size=4),
       scale=st.sampled_from([1e-3, 1.0, 100.0]), max_norm=st.sampled_from([0.0, 0.5, 1.0, 50.0]),
       norm_type=st.sampled_from([2.0, 1.0, 3.0, math.inf]), seed=st.integers(0, 2**16))
def test_clip_grad_norm_matches_torch(shapes, scale, max_norm, norm_type, seed):
    torch = _torch()
    rng = np.random.default_rng(seed)
    grads = [scale * rng.standard_normal(s) for s in shapes]
    ours, theirs = _with_grads(grads), _torch_with_grads(grads)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(total, ref.item(), rtol=1e-12)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("bad", [math.inf, math.nan])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clip_grad_norm_nonfinite_is_exact(bad, norm_type):
    """A non-finite total norm: an error when asked (as torch), else the gradients are scaled by the coefficient
    max_norm / (norm + 1e-6), which is 0 for an inf norm and nan for a nan norm (torch's rule, checked against
    that arithmetic rather than torch's special values)."""
    torch = _torch()
    grads = [[1.0, bad], [2.0, -3.0]]
    with pytest.raises(RuntimeError, match="cannot be clipped"):
        clip_grad_norm_(_with_grads(grads), 1.0, norm_type=norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(_torch_with_grads(grads), 1.0, norm_type=norm_type,
                                       error_if_nonfinite=True)
    ours = _with_grads(grads)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inf·0 = nan is intended here: no RuntimeWarning
        total = clip_grad_norm_(ours, 1.0, norm_type=norm_type)
    coef = 1.0 / (bad + 1e-6)  # 0.0 or nan
    np.testing.assert_array_equal(total, bad)
    with np.errstate(invalid="ignore"):
        expected = [np.array(g) * coef for g in grads]  # inf·0 = nan, finite·0 = 0, anything·nan = nan
    for p, e in zip(ours, expected):
        np.testing.assert_array_equal(p.grad, e)


def test_clip_grad_value_matches_torch():
    torch = _torch()
    grads = [np.linspace(-3, 3, 7), np.array([[0.5, -10.0]])]
    ours, theirs = _with_grads(grads), _torch_with_grads(grads)
    clip_grad_value_(ours, 1.5)
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for p, tp in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())
    np.testing.assert_array_equal(ours[1].grad, [[0.5, -1.5]])


@pytest.mark.parametrize("call, error, match", [
    (lambda ps: clip_grad_norm_(ps, -1.0), ValueError, r"max_norm must be >= 0, got -1\.0"),
    (lambda ps: clip_grad_norm_(ps, "1"), TypeError, "max_norm must be a real number"),
    (lambda ps: clip_grad_norm_([np.ones(2)], 1.0), TypeError, r"parameters\[0\] must be a minigrad Tensor"),
    (lambda ps: clip_grad_value_(ps, -0.5), ValueError, r"clip_value must be >= 0, got -0\.5"),
])
def test_clipping_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(_with_grads([[1.0, 2.0]]))
