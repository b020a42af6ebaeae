"""The one training loop (models.training): accumulation, clipping, the LR schedule, exact resume,
time budget and max_steps, best-metric tracking, early stopping, the per-epoch log line, and
``evaluating()``."""
from __future__ import annotations

import time

import numpy as np
import pytest

import minigrad
from minigrad import nn
from models.training import TrainConfig, Trainer, epoch_columns, evaluating

N_IN, N_OUT = 5, 3


class TinyNet(nn.Module):
    """Linear → tanh → dropout → Linear: small, and random in training mode (dropout)."""

    def __init__(self, seed=0, dropout=0.0, dtype=None):
        super().__init__()
        g = minigrad.Generator(seed)
        self.hidden = nn.Linear(N_IN, 16, dtype=dtype, generator=g)
        self.drop = nn.Dropout(dropout, generator=minigrad.Generator(seed + 1))
        self.out = nn.Linear(16, N_OUT, dtype=dtype, generator=g)

    def forward(self, x):
        return self.out(self.drop(self.hidden(x).tanh()))


def mse(model, batch):
    x, y = batch
    diff = model(minigrad.Tensor(x)) - minigrad.Tensor(y)
    return (diff * diff).mean(), {"size": len(x)}


def data(n=64, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_IN)).astype(dtype)
    y = np.tanh(x @ rng.standard_normal((N_IN, N_OUT))).astype(dtype)
    return x, y


def chunks(x, y, size, order=None):
    order = np.arange(len(x)) if order is None else order
    return [(x[order[i:i + size]], y[order[i:i + size]]) for i in range(0, len(x), size)]


def weights(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------------------------------- steps
def test_accumulating_4_batches_of_8_equals_one_batch_of_32():
    x, y = data(96, dtype=np.float64)
    results = []
    for size, accum in ((32, 1), (8, 4)):
        model = TinyNet(dtype=np.float64)
        opt = minigrad.optim.SGD(model.parameters(), lr=0.1)
        trainer = Trainer(model, opt, mse, TrainConfig(epochs=2, grad_accum_steps=accum), log=None)
        trainer.fit(chunks(x, y, size))
        results.append((weights(model), trainer.history["steps"]))
    (w_big, steps_big), (w_acc, steps_acc) = results
    assert steps_big["step"] == steps_acc["step"] == [1, 2, 3, 4, 5, 6]  # 3 optimizer steps per epoch
    np.testing.assert_allclose(steps_acc["loss"], steps_big["loss"], rtol=1e-6, atol=1e-12)
    for name in w_big:
        np.testing.assert_allclose(w_acc[name], w_big[name], rtol=1e-6, atol=1e-9, err_msg=name)


def test_a_shorter_last_window_is_the_mean_of_its_batches():
    """40 examples in batches of 8 with 4 per step: the last step has one batch, whose gradient
    must not be divided by 4 — it equals one batch of 8 (and the first step one batch of 32)."""
    x, y = data(40, dtype=np.float64)
    acc = TinyNet(dtype=np.float64)
    Trainer(acc, minigrad.optim.SGD(acc.parameters(), lr=0.1), mse,
            TrainConfig(grad_accum_steps=4), log=None).fit(chunks(x, y, 8))
    big = TinyNet(dtype=np.float64)
    Trainer(big, minigrad.optim.SGD(big.parameters(), lr=0.1), mse, log=None).fit([(x[:32], y[:32]), (x[32:], y[32:])])
    for name, value in weights(big).items():
        np.testing.assert_allclose(weights(acc)[name], value, rtol=1e-9, atol=1e-12, err_msg=name)


def test_gradients_are_clipped_to_max_grad_norm():
    x, y = data(16)
    y = y * 100  # huge errors: gradients far above the threshold
    model = TinyNet()
    before = weights(model)
    trainer = Trainer(model, minigrad.optim.SGD(model.parameters(), lr=1.0), mse,
                      TrainConfig(max_grad_norm=0.5), log=None)
    trainer.fit([(x, y)])
    step = np.sqrt(sum(((weights(model)[k] - before[k]).astype(np.float64) ** 2).sum() for k in before))
    assert trainer.history["steps"]["grad_norm"][0] > 10  # the norm before clipping is recorded
    assert step == pytest.approx(0.5, rel=1e-4)  # SGD with lr 1 moves by the clipped gradient


def test_the_schedule_steps_once_per_optimizer_step():
    x, y = data(64)
    model = TinyNet()
    opt = minigrad.optim.SGD(model.parameters(), lr=1.0)
    sched = minigrad.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    trainer = Trainer(model, opt, mse, TrainConfig(epochs=2, grad_accum_steps=2), scheduler=sched, log=None)
    trainer.fit(chunks(x, y, 8))  # 8 batches, 4 optimizer steps per epoch
    assert sched.last_epoch == 8 == trainer.global_step
    np.testing.assert_allclose(trainer.history["steps"]["lr"], [1.0 / (1 + s) for s in range(8)])


def test_loss_fn_must_return_a_scalar_tensor():
    x, y = data(8)
    model = TinyNet()
    trainer = Trainer(model, minigrad.optim.SGD(model.parameters(), lr=0.1), lambda m, b: m(minigrad.Tensor(b[0])),
                      log=None)
    with pytest.raises(TypeError, match="loss_fn must return a scalar Tensor"):
        trainer.fit([(x, y)])


# ---------------------------------------------------------------------------------------- resume
class ShuffledRun:
    """A run with every kind of state: batch order from a NumPy stream (epoch_rngs), dropout from
    a minigrad stream (rngs), accumulation, clipping, a schedule, evaluation and best weights."""

    def __init__(self, tmp_path, name, loss=mse, **config):
        x, y = data(56)
        self.valid = data(16, seed=1)
        self.model = TinyNet(dropout=0.3)
        opt = minigrad.optim.Adam(self.model.parameters(), lr=0.01)
        sched = minigrad.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.9 ** step)
        self.order_rng = np.random.default_rng(5)
        settings = dict(epochs=3, grad_accum_steps=2, max_grad_norm=1.0, best_metric="valid_loss", **config)
        self.trainer = Trainer(self.model, opt, loss, TrainConfig(**settings), scheduler=sched,
                               evaluate=self.evaluate, checkpoint_path=tmp_path / name / "ckpt.safetensors",
                               best_path=tmp_path / name / "best.safetensors",
                               rngs={"dropout": self.model.drop.generator}, epoch_rngs={"order": self.order_rng},
                               run_config={"seed": 5}, log=None)
        self.batches = lambda epoch: chunks(x, y, 8, self.order_rng.permutation(len(x)))  # 7 batches, 4 steps

    def evaluate(self, model):
        loss, _ = mse(model, self.valid)
        return {"valid_loss": float(loss.item())}


class ReseededRun(ShuffledRun):
    """As ShuffledRun, but making an epoch's batches also reseeds the dropout stream (as
    ``Seq2SeqTraining`` does): resumed at an epoch's start that reseeding must count, resumed
    inside an epoch the stream's saved state must."""

    def __init__(self, tmp_path, name, **config):
        super().__init__(tmp_path, name, **config)
        shuffled = self.batches

        def batches(epoch):
            self.model.drop.generator.manual_seed(100 + epoch)
            return shuffled(epoch)

        self.batches = batches


@pytest.mark.parametrize("run", [ShuffledRun, ReseededRun])
@pytest.mark.parametrize("stop_at", [1, 4, 5, 9])  # mid-epoch 1, end of epoch 1, mid-epoch 2, mid-epoch 3
def test_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path, run, stop_at):
    straight = run(tmp_path, "a")
    straight.trainer.fit(straight.batches)

    first = run(tmp_path, "b", max_steps=stop_at)
    first.trainer.fit(first.batches)
    assert first.trainer.global_step == stop_at and first.trainer.stopped.startswith("max_steps")
    minigrad.manual_seed(123)  # a new process: nothing but the checkpoint carries over
    resumed = run(tmp_path, "b")
    resumed.trainer.resume()
    assert resumed.trainer.global_step == stop_at
    resumed.trainer.fit(resumed.batches)

    a, b = straight.trainer, resumed.trainer
    for name, value in weights(straight.model).items():
        np.testing.assert_array_equal(weights(resumed.model)[name], value, err_msg=name)
    assert b.history["steps"] == a.history["steps"]
    assert b.history["evals"] == a.history["evals"]
    timing = ("seconds", "elapsed", "items_per_second")
    assert [{k: v for k, v in r.items() if k not in timing} for r in b.history["epochs"]] == \
        [{k: v for k, v in r.items() if k not in timing} for r in a.history["epochs"]]
    assert b.best == a.best and b.stopped is None
    assert a.load_best() and b.load_best()
    for name, value in weights(straight.model).items():
        np.testing.assert_array_equal(weights(resumed.model)[name], value, err_msg=name)


def test_resume_refuses_other_options_and_a_missing_checkpoint(tmp_path):
    run = ShuffledRun(tmp_path, "a", max_steps=2)
    run.trainer.fit(run.batches)
    other = ShuffledRun(tmp_path, "a")
    other.trainer.run_config = {"seed": 6}
    with pytest.raises(ValueError, match=r"checkpoint was made with other options .*'seed': \(5, 6\)"):
        other.trainer.resume()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        ShuffledRun(tmp_path, "none").trainer.resume()


def test_a_carried_state_object_is_checkpointed(tmp_path):
    """``state`` objects (e.g. a hidden state carried between batches) are saved and restored."""

    class Counter:
        def __init__(self):
            self.seen = 0

        def state_dict(self):
            return {"seen": self.seen}

        def load_state_dict(self, state):
            self.seen = state["seen"]

    x, y = data(32)

    def run(max_steps=None, resume=False):
        counter, model = Counter(), TinyNet()

        def loss(m, batch):
            counter.seen += 1
            return mse(m, batch)[0] * (1 + counter.seen)  # the loss depends on the carried state

        trainer = Trainer(model, minigrad.optim.SGD(model.parameters(), lr=0.05), loss,
                          TrainConfig(epochs=2, max_steps=max_steps), checkpoint_path=tmp_path / "c.safetensors",
                          state={"counter": counter}, log=None)
        if resume:
            trainer.resume()
        trainer.fit(chunks(x, y, 8))
        return weights(model), counter.seen

    straight, seen = run()
    run(max_steps=3)
    resumed, seen_resumed = run(resume=True)
    assert seen == seen_resumed == 8
    for name, value in straight.items():
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


# ---------------------------------------------------------------------------------------- stopping
def test_max_steps_stops_between_steps_with_a_checkpoint(tmp_path):
    run = ShuffledRun(tmp_path, "a", max_steps=6)
    run.trainer.fit(run.batches)
    t = run.trainer
    assert (t.global_step, t.epoch, t.step_in_epoch) == (6, 1, 4)  # 2 steps (4 batches) into epoch 2
    assert "max_steps 6 reached" in t.stopped
    state = minigrad.load_checkpoint(tmp_path / "a" / "ckpt.safetensors")
    assert state["loop"]["global_step"] == 6 and state["loop"]["step_in_epoch"] == 4
    assert [e["step"] for e in t.history["evals"]] == [4]  # no evaluation for the interruption


def slow_mse(model, batch):
    time.sleep(0.03)
    return mse(model, batch)


def test_time_budget_stops_cleanly_with_an_evaluation_and_a_checkpoint(tmp_path):
    run = ShuffledRun(tmp_path, "a", loss=slow_mse, time_budget=0.05)  # the first step (2 batches) takes 0.06 s
    lines = []
    run.trainer.log = lines.append
    run.trainer.fit(run.batches)
    t = run.trainer
    assert t.global_step == 1 and "time budget" in t.stopped
    assert t.history["evals"] == [{"epoch": 1, "step": 1, "partial": True,
                                   "valid_loss": t.history["evals"][0]["valid_loss"]}]
    assert t.best_index == 0 and (tmp_path / "a" / "best.safetensors").is_file()
    assert any(line.startswith("stopped: time budget") for line in lines)
    state = minigrad.load_checkpoint(tmp_path / "a" / "ckpt.safetensors")
    assert state["loop"]["global_step"] == 1 and len(state["loop"]["history"]["evals"]) == 1
    # resumed with more time, it goes on from that step
    more = ShuffledRun(tmp_path, "a", time_budget=3600.0)
    more.trainer.resume()
    more.trainer.fit(more.batches)
    assert more.trainer.global_step == 12 and more.trainer.stopped is None


def test_whole_epoch_time_budget_starts_no_epoch_it_cannot_finish(tmp_path):
    run = ShuffledRun(tmp_path, "a", time_budget=1e-9, whole_epochs=True)  # the first epoch always runs
    run.trainer.fit(run.batches)
    assert run.trainer.epoch == 1 and run.trainer.step_in_epoch == 0 and "after epoch 1" in run.trainer.stopped


# ---------------------------------------------------------------------------------------- best, early stopping
def _scripted(tmp_path, scores, **config):
    x, y = data(16)
    model = TinyNet()
    values = iter(scores)
    trainer = Trainer(model, minigrad.optim.SGD(model.parameters(), lr=0.01), mse,
                      TrainConfig(epochs=len(scores), **config), evaluate=lambda m: next(values), log=None,
                      best_path=tmp_path / "best.safetensors")
    snapshots = []
    trainer.fit(lambda epoch: snapshots.append(weights(model)) or [(x, y)])
    snapshots.append(weights(model))
    return trainer, snapshots[1:]  # the weights after each epoch


@pytest.mark.parametrize("mode, best", [("min", 2), ("max", 3)])
def test_best_metric_tracking_for_min_and_max(tmp_path, mode, best):
    scores = [{"loss": 3.0}, {"loss": 1.0}, {"loss": 5.0}, {"loss": 1.0}]
    trainer, after = _scripted(tmp_path, scores, best_metric="loss", best_mode=mode)
    assert trainer.best["epoch"] == best and trainer.best["loss"] == scores[best - 1]["loss"]
    assert trainer.load_best()
    for name, value in weights(trainer.model).items():
        np.testing.assert_array_equal(value, after[best - 1][name], err_msg=name)


def test_later_best_metrics_break_ties(tmp_path):
    scores = [{"acc": a, "loss": loss} for a, loss in ((0.5, 1.0), (0.9, 0.5), (0.9, 0.4), (0.9, 0.6))]
    trainer, _ = _scripted(tmp_path, scores, best_metric=("acc", "loss"), best_mode=("max", "min"))
    assert trainer.best["epoch"] == 3


def test_early_stopping_after_patience_evaluations_without_a_better_score(tmp_path):
    scores = [{"acc": 0.5}, {"acc": 0.9}, {"acc": 0.4}, {"acc": 0.3}, {"acc": 0.95}, {"acc": 0.1}]
    trainer, _ = _scripted(tmp_path, scores, best_metric="acc", best_mode="max", patience=2)
    assert [e["acc"] for e in trainer.history["evals"]] == [0.5, 0.9, 0.4, 0.3]
    assert trainer.best["epoch"] == 2 and trainer.stopped.startswith("early stopping")


def test_bad_config_and_bad_metrics_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="TrainConfig: epochs must be an int >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="best_mode must be 'min' or 'max'"):
        TrainConfig(best_metric="acc", best_mode="up")
    with pytest.raises(ValueError, match="patience .* needs a best_metric"):
        TrainConfig(patience=2)
    with pytest.raises(TypeError, match="evaluate.. must return numbers"):
        _scripted(tmp_path, [{"acc": "high"}])
    with pytest.raises(KeyError, match="without the best_metric"):
        _scripted(tmp_path, [{"acc": 0.5}], best_metric="loss")


# ---------------------------------------------------------------------------------------- logging
def test_one_log_line_per_epoch_with_train_and_evaluation_numbers(tmp_path):
    lines = []
    run = ShuffledRun(tmp_path, "a")
    run.trainer.log = lines.append
    run.trainer.size_unit = "examples"
    run.trainer.fit(run.batches)
    assert len(lines) == 3
    for epoch, line in enumerate(lines, 1):
        assert line.startswith(f"epoch {epoch}/3 (step {4 * epoch}): train loss ")
        assert "valid loss" in line and " s, " in line and "examples/s" in line
    assert lines[0].endswith("(best)")  # the first evaluation is always the best so far
    record = run.trainer.history["epochs"][0]
    assert record["examples"] == 56 and record["valid_loss"] == run.trainer.history["evals"][0]["valid_loss"]
    steps = run.trainer.history["steps"]
    assert record["train_loss"] == pytest.approx(np.mean(steps["loss"][:4]), rel=0.2)
    assert epoch_columns(run.trainer.history, "epoch")["epoch"] == [1, 2, 3]


def test_metrics_are_averaged_and_hit_counts_pooled():
    """A plain metric is the mean over a step's micro-batches; a (hits, total) pair is pooled."""
    batches = [(np.ones((1, N_IN), np.float32), np.zeros((1, N_OUT), np.float32), hits, total)
               for hits, total in ((1, 4), (3, 4), (0, 2), (2, 2))]

    def loss(model, batch):
        x, y, hits, total = batch
        return mse(model, (x, y))[0], {"hits": float(hits), "accuracy": (hits, total)}

    model = TinyNet()
    trainer = Trainer(model, minigrad.optim.SGD(model.parameters(), lr=0.0), loss,
                      TrainConfig(grad_accum_steps=2), log=None)
    trainer.fit(batches)
    steps, epoch = trainer.history["steps"], trainer.history["epochs"][0]
    assert steps["hits"] == [2.0, 1.0] and steps["accuracy"] == [4 / 8, 2 / 4]
    assert epoch["train_hits"] == 1.5 and epoch["train_accuracy"] == 6 / 12


# ---------------------------------------------------------------------------------------- evaluating()
def test_evaluating_restores_the_mode_after_an_exception():
    model = TinyNet(dropout=0.5)
    for mode in (True, False):
        model.train(mode)
        with pytest.raises(RuntimeError, match="inside"):
            with evaluating(model):
                assert not model.training and not minigrad.is_grad_enabled()
                raise RuntimeError("inside")
        assert model.training is mode and minigrad.is_grad_enabled()


def test_fit_restores_the_model_mode():
    x, y = data(8)
    model = TinyNet().eval()
    Trainer(model, minigrad.optim.SGD(model.parameters(), lr=0.1), mse, log=None).fit([(x, y)])
    assert model.training is False
