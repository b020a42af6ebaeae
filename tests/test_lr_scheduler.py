"""minigrad.optim.lr_scheduler: lr sequences equal to torch's / transformers' schedulers, the paper
formula for Noam, state_dict round trips through JSON, and errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
from minigrad.optim import SGD, Adam, lr_scheduler
from minigrad.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearWarmupDecay,
    NoamLR,
    StepLR,
    get_linear_schedule_with_warmup,
)


def _params(n=2):
    return [minigrad.Tensor(np.zeros(2), requires_grad=True) for _ in range(n)]


def _groups(params, lrs):
    return [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]


def _lr_sequence(opt, sched, steps):
    """The lrs of every group for optimizer steps 1..steps (read before each scheduler.step())."""
    seq = []
    for _ in range(steps):
        seq.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return np.array(seq)


def _torch_optimizer(lrs):
    torch = pytest.importorskip("torch")
    params = [torch.zeros(2, requires_grad=True) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=1.0)


LRS = [0.1, 0.03]


# ----------------------------------------------------------------------------------------------
# Same lr sequence as the reference schedulers
# ----------------------------------------------------------------------------------------------
def test_lambda_lr_matches_torch_with_one_lambda_per_group():
    torch = pytest.importorskip("torch")
    lambdas = [lambda e: 0.95 ** e, lambda e: 1.0 / (1 + e)]
    opt = SGD(_groups(_params(), LRS), lr=1.0)
    topt = _torch_optimizer(LRS)
    ours = _lr_sequence(opt, LambdaLR(opt, lambdas), 30)
    theirs = _lr_sequence(topt, torch.optim.lr_scheduler.LambdaLR(topt, lambdas), 30)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15)
    assert ours[3, 1] == pytest.approx(0.03 / 4)


@settings(max_examples=20, deadline=None)
@given(warmup=st.integers(0, 12), extra=st.integers(0, 20))
def test_linear_warmup_decay_matches_transformers(warmup, extra):
    transformers = pytest.importorskip("transformers")
    total = warmup + extra + 1
    opt = SGD(_groups(_params(), LRS), lr=1.0)
    topt = _torch_optimizer(LRS)
    ours = _lr_sequence(opt, get_linear_schedule_with_warmup(opt, warmup, total), total + 5)
    theirs = _lr_sequence(topt, transformers.get_linear_schedule_with_warmup(topt, warmup, total), total + 5)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0)
    assert ours[-1].tolist() == [0.0, 0.0]  # past the end: lr stays 0


def test_linear_warmup_decay_by_hand():
    opt = SGD(_params(1), lr=1.0)
    lrs = _lr_sequence(opt, LinearWarmupDecay(opt, num_warmup_steps=4, num_training_steps=8), 10)[:, 0]
    np.testing.assert_allclose(lrs, [0, 0.25, 0.5, 0.75, 1.0, 0.75, 0.5, 0.25, 0, 0])


@pytest.mark.parametrize("make", [
    (lambda optim, o: optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    (lambda optim, o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.001)),
], ids=["StepLR", "CosineAnnealingLR"])
def test_step_and_cosine_match_torch(make):
    torch = pytest.importorskip("torch")
    opt = SGD(_groups(_params(), LRS), lr=1.0)
    topt = _torch_optimizer(LRS)
    ours = _lr_sequence(opt, make(minigrad.optim, opt), 35)
    theirs = _lr_sequence(topt, make(torch.optim, topt), 35)
    # torch updates these recursively, we use the closed form: equal up to rounding
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-15)


def test_cosine_and_step_by_hand():
    opt = SGD(_params(1), lr=1.0)
    lrs = _lr_sequence(opt, CosineAnnealingLR(opt, T_max=4), 5)[:, 0]
    np.testing.assert_allclose(lrs, [1.0, (1 + math.sqrt(0.5)) / 2, 0.5, (1 - math.sqrt(0.5)) / 2, 0.0],
                               atol=1e-15)
    opt = SGD(_params(1), lr=2.0)
    np.testing.assert_allclose(_lr_sequence(opt, StepLR(opt, 2, gamma=0.1), 5)[:, 0],
                               [2.0, 2.0, 0.2, 0.2, 0.02])


def test_noam_follows_the_paper_formula():
    # Vaswani et al. 2017, eq. 3, with d_model = 512 and warmup_steps = 4000 (the paper's values)
    opt = Adam(_params(1), lr=123.0)  # the optimizer's own lr is ignored
    sched = NoamLR(opt, d_model=512, warmup_steps=4000)
    lrs = _lr_sequence(opt, sched, 8000)[:, 0]
    step = np.arange(1, 8001)
    expected = 512**-0.5 * np.minimum(step**-0.5, step * 4000**-1.5)
    np.testing.assert_allclose(lrs, expected, rtol=1e-13)
    assert lrs.argmax() + 1 == 4000  # the peak is at the end of warm-up
    assert lrs[3999] == pytest.approx(1 / math.sqrt(512 * 4000))
    assert lrs[0] == pytest.approx(512**-0.5 * 4000**-1.5)
    opt = Adam(_params(1))
    assert NoamLR(opt, d_model=64, warmup_steps=10, factor=2.0).get_last_lr() == [
        pytest.approx(2.0 / 8.0 * 10**-1.5)]


def test_noam_matches_annotated_transformer_lambda_lr_in_torch():
    # The Annotated Transformer: LambdaLR(Adam(lr=1), rate(step)) with step 0 -> 1; ours counts from 1
    torch = pytest.importorskip("torch")

    def rate(step, model_size=32, factor=2.0, warmup=7):
        step = max(step, 1)
        return factor * (model_size ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5)))

    topt = _torch_optimizer([1.0])
    theirs = _lr_sequence(topt, torch.optim.lr_scheduler.LambdaLR(topt, rate), 30)[:, 0]
    opt = SGD(_params(1), lr=1.0)
    ours = _lr_sequence(opt, NoamLR(opt, d_model=32, warmup_steps=7, factor=2.0), 29)[:, 0]
    np.testing.assert_allclose(ours, theirs[1:], rtol=1e-13)


def test_scheduler_drives_the_optimizer_update():
    # SGD without momentum: p moves by exactly lr_k * g at step k
    p = minigrad.Tensor(np.zeros(1), requires_grad=True)
    opt = SGD([p], lr=1.0)
    sched = LinearWarmupDecay(opt, 2, 4)
    moves = []
    for _ in range(5):
        before = p.data.copy()
        p.grad = np.ones(1)
        opt.step()
        sched.step()
        moves.append(float(before[0] - p.data[0]))
    np.testing.assert_allclose(moves, [0.0, 0.5, 1.0, 0.5, 0.0])


# ----------------------------------------------------------------------------------------------
# state_dict: JSON-friendly, without the lambdas, and resuming continues the same sequence
# ----------------------------------------------------------------------------------------------
class WarmupFactor:
    """A callable object: its attributes are state (saved), unlike a lambda's code."""

    def __init__(self, warmup):
        self.warmup = warmup

    def __call__(self, epoch):
        return min(1.0, (epoch + 1) / self.warmup)


SCHEDULES = {
    "lambda": lambda o: LambdaLR(o, lambda e: 0.9 ** e),
    "linear": lambda o: LinearWarmupDecay(o, 5, 30),
    "noam": lambda o: NoamLR(o, d_model=16, warmup_steps=6, factor=3.0),
    "step": lambda o: StepLR(o, 4, gamma=0.5),
    "cosine": lambda o: CosineAnnealingLR(o, 12, eta_min=1e-4),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_state_dict_round_trip_through_json_resumes_exactly(name):
    make = SCHEDULES[name]
    opt = Adam(_groups(_params(), LRS))
    full = _lr_sequence(opt, make(opt), 40)

    opt = Adam(_groups(_params(), LRS))
    sched = make(opt)
    first = _lr_sequence(opt, sched, 15)
    sched_state = json.loads(json.dumps(sched.state_dict()))  # fails on a function object
    opt_state = opt.state_dict()
    opt_state["param_groups"] = json.loads(json.dumps(opt_state["param_groups"]))

    opt = Adam(_groups(_params(), [9.0, 9.0]))  # a fresh run with different lrs
    sched = make(opt)
    opt.load_state_dict(opt_state)
    sched.load_state_dict(sched_state)
    rest = _lr_sequence(opt, sched, 25)
    np.testing.assert_array_equal(np.concatenate([first, rest]), full)


def test_lambda_lr_state_dict_skips_functions_but_keeps_callable_objects():
    opt = SGD(_groups(_params(), LRS), lr=1.0)
    sched = LambdaLR(opt, [lambda e: 1.0, WarmupFactor(4)])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"warmup": 4}]
    assert state["last_epoch"] == 0 and state["base_lrs"] == LRS
    json.dumps(state)
    other = LambdaLR(SGD(_groups(_params(), LRS), lr=1.0), [lambda e: 1.0, WarmupFactor(99)])
    other.load_state_dict(state)
    assert other.lr_lambdas[1].warmup == 4 and callable(other.lr_lambdas[0])


def test_get_last_lr_and_initial_lr():
    opt = SGD(_groups(_params(), LRS), lr=1.0)
    sched = StepLR(opt, 1, gamma=0.5)
    assert sched.get_last_lr() == LRS and sched.last_epoch == 0
    sched.step()
    assert sched.get_last_lr() == [0.05, 0.015] and sched.last_epoch == 1
    assert [g["initial_lr"] for g in opt.param_groups] == LRS
    assert lr_scheduler.LRScheduler is minigrad.optim.LRScheduler


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
def _opt():
    return SGD(_groups(_params(), LRS), lr=1.0)


@pytest.mark.parametrize("build, error, match", [
    (lambda: LambdaLR(_opt(), [lambda e: 1.0]), ValueError, "expected 2 lr_lambdas"),
    (lambda: LambdaLR(_opt(), 0.5), TypeError, "lr_lambda must be callable"),
    (lambda: LambdaLR("adam", lambda e: 1.0), TypeError, "expected a minigrad Optimizer, got str"),
    (lambda: LinearWarmupDecay(_opt(), 10, 5), ValueError, "num_warmup_steps=10 exceeds num_training_steps=5"),
    (lambda: LinearWarmupDecay(_opt(), -1, 5), ValueError, "invalid num_warmup_steps=-1"),
    (lambda: LinearWarmupDecay(_opt(), 1, 5.5), TypeError, "num_training_steps must be an int"),
    (lambda: NoamLR(_opt(), d_model=0, warmup_steps=10), ValueError, "invalid d_model=0"),
    (lambda: NoamLR(_opt(), d_model=8, warmup_steps=0), ValueError, "invalid warmup_steps=0"),
    (lambda: StepLR(_opt(), 0), ValueError, "invalid step_size=0"),
    (lambda: CosineAnnealingLR(_opt(), 10, eta_min=-1.0), ValueError, r"invalid eta_min=-1\.0"),
    (lambda: StepLR(_opt(), 2, last_epoch=5), ValueError, r"param_groups\[0\] has no 'initial_lr'"),
])
def test_bad_scheduler_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_load_state_dict_mismatch_is_named():
    sched = StepLR(_opt(), 2)
    with pytest.raises(ValueError, match="saved base_lrs has 3 entries, the optimizer has 2"):
        sched.load_state_dict({"last_epoch": 3, "base_lrs": [1.0, 1.0, 1.0]})
    with pytest.raises(ValueError, match="'last_epoch' key"):
        sched.load_state_dict({})
