"""One training loop for every recipe of the book.

    trainer = Trainer(model, optimizer, loss_fn, TrainConfig(epochs=8, max_grad_norm=1.0),
                      evaluate=validation_metrics, checkpoint_path=out / "checkpoint.safetensors")
    if args.resume:
        trainer.resume()
    trainer.fit(batches)        # batches(epoch) -> that epoch's batches (or one iterable for all)

**An optimizer step.** Zero the gradients; for each of ``grad_accum_steps`` micro-batches compute
``loss_fn(model, batch)`` and back-propagate it divided by the number of micro-batches (so the
summed gradients are their mean, as for one batch that many times larger); clip the global
gradient norm to ``max_grad_norm``; step the optimizer; step the learning-rate schedule. The
schedule therefore counts optimizer steps, not micro-batches.

**An epoch** ends with an evaluation — ``evaluate(model)`` runs inside ``evaluating(model)``:
eval mode, no gradients — which also keeps the weights of the best evaluation (``best_metric``),
then one log line and a checkpoint. ``max_steps``, a time budget or early stopping can end
training sooner; each stops between two optimizer steps and leaves a checkpoint there.

**Exact resume.** A checkpoint is one safetensors file: model, optimizer, scheduler, the loop's
position (epoch, batches done in it, optimizer steps), history, best evaluation, and the state of
every random stream. The loop knows two kinds of stream:

* ``epoch_rngs`` *make the batches* (shuffling, masking, negative sampling). Their state is
  saved as it was when the epoch began: a resumed run rebuilds the epoch's batches from it and
  skips the ones already trained on.
* ``rngs`` *are drawn during the steps* (dropout masks, teacher forcing): saved as they are.

Anything else that changes from batch to batch (a hidden state carried between windows) goes in
``state``: objects with ``state_dict()`` / ``load_state_dict()``. With all that, a run stopped
anywhere and resumed ends with the same weights, bit for bit, as one that never stopped.
"""
from __future__ import annotations

import itertools
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

import minigrad
from minigrad.nn import Dropout, LayerNorm
from minigrad.nn.utils import clip_grad_norm_
from models.progress import progress_bar

__all__ = ["TrainConfig", "Trainer", "evaluating", "attach_dropout_generator", "weight_decay_groups",
           "epoch_columns"]


# ----------------------------------------------------------------------------------------------
# Helpers every recipe uses
# ----------------------------------------------------------------------------------------------
@contextmanager
def evaluating(model):
    """``with evaluating(model):`` — eval mode (dropout off) and no gradients inside; the mode the
    model had comes back on every exit, an exception included."""
    was_training = model.training
    model.eval()
    try:
        with minigrad.no_grad():
            yield model
    finally:
        model.train(was_training)


def attach_dropout_generator(model, generator: minigrad.Generator) -> None:
    """Give every Dropout layer of ``model`` the one seeded stream ``generator``, so that dropout
    masks are reproducible and (with the generator in ``Trainer(rngs=...)``) resumable."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.generator = generator


def weight_decay_groups(model, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: decay on the weight matrices, none on biases and LayerNorm γ/β
    (BERT's rule, kept by its successors). Parameters stay in ``named_parameters`` order."""
    layer_norm_ids = {id(m.weight) for m in model.modules() if isinstance(m, LayerNorm) and m.weight is not None}
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith("bias") or id(param) in layer_norm_ids else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def epoch_columns(history: dict, *keys: str) -> dict[str, list]:
    """Per-epoch values of a ``Trainer.history`` as columns: ``{key: [epoch 1's, epoch 2's, …]}``."""
    return {key: [record.get(key) for record in history["epochs"]] for key in keys}


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """How long and how to train. Steps are optimizer steps; times are seconds of ``fit`` (all
    sessions of a resumed run together, evaluations included)."""

    epochs: int = 1
    grad_accum_steps: int = 1  # micro-batches per optimizer step
    max_grad_norm: float | None = None  # clip the global gradient norm to this (None or 0: no clipping)
    max_steps: int | None = None  # stop after this many optimizer steps (resuming continues exactly)
    time_budget: float | None = None  # stop once training has taken this long
    whole_epochs: bool = False  # with a time budget: start no epoch that would end past it
    eval_every: int = 0  # also evaluate every N optimizer steps (0: at the end of each epoch only)
    best_metric: str | tuple[str, ...] | None = None  # evaluation metric(s) that pick the best weights
    best_mode: str | tuple[str, ...] = "min"  # "min" or "max" for each best_metric; later ones break ties
    patience: int | None = None  # early stopping: evaluations without a better best_metric
    checkpoint_every: int = 0  # also checkpoint every N optimizer steps

    def __post_init__(self):
        def check_int(name: str, low: int, optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"TrainConfig: {name} must be an int >= {low}{' or None' if optional else ''}, "
                                 f"got {value!r}")

        for name in ("epochs", "grad_accum_steps"):
            check_int(name, 1)
        for name in ("eval_every", "checkpoint_every"):
            check_int(name, 0)
        check_int("max_steps", 1, optional=True)
        check_int("patience", 1, optional=True)
        for name in ("max_grad_norm", "time_budget"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"TrainConfig: {name} must be a number >= 0 or None, got {value!r}")
        metrics, modes = self.metrics_and_modes()
        if any(mode not in ("min", "max") for mode in modes) or (metrics and len(modes) != len(metrics)):
            raise ValueError(f"TrainConfig: best_mode must be 'min' or 'max' for each best_metric, got "
                             f"best_metric={self.best_metric!r}, best_mode={self.best_mode!r}")
        if self.patience is not None and not metrics:
            raise ValueError("TrainConfig: patience (early stopping) needs a best_metric to watch")

    def metrics_and_modes(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``best_metric`` and ``best_mode`` as tuples of the same length (one mode may serve all)."""
        metrics = () if self.best_metric is None else (
            (self.best_metric,) if isinstance(self.best_metric, str) else tuple(self.best_metric))
        modes = (self.best_mode,) if isinstance(self.best_mode, str) else tuple(self.best_mode)
        if len(modes) == 1 and len(metrics) > 1:
            modes = modes * len(metrics)
        return metrics, modes


# ----------------------------------------------------------------------------------------------
# Random streams
# ----------------------------------------------------------------------------------------------
def _rng_state(stream) -> dict:
    """State of a ``numpy.random.Generator`` or a ``minigrad.Generator``."""
    return stream.bit_generator.state if isinstance(stream, np.random.Generator) else stream.get_state()


def _set_rng_state(stream, state: dict) -> None:
    if isinstance(stream, np.random.Generator):
        stream.bit_generator.state = state
    else:
        stream.set_state(state)


def _format_number(value) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class _EpochTotals:
    """Running sums over the micro-batches of the current epoch (saved in checkpoints, so an
    epoch split over two sessions is summarised as one)."""

    def __init__(self, state: dict | None = None):
        state = state or {}
        self.batches = int(state.get("batches", 0))
        self.sized = bool(state.get("sized", False))  # did loss_fn give sizes?
        self.size = float(state.get("size", 0.0))
        self.loss = float(state.get("loss", 0.0))  # Σ loss · size
        self.metrics = dict(state.get("metrics", {}))  # Σ metric · size
        self.pooled = {k: list(v) for k, v in state.get("pooled", {}).items()}  # [Σ hits, Σ total]
        self.seconds = float(state.get("seconds", 0.0))

    def add(self, loss: float, metrics: dict, size: float | None) -> None:
        self.batches += 1
        self.sized = self.sized or size is not None
        size = 1.0 if size is None else size
        self.size += size
        self.loss += loss * size
        for key, value in metrics.items():
            if isinstance(value, tuple):
                hits, total = self.pooled.setdefault(key, [0.0, 0.0])
                self.pooled[key] = [hits + value[0], total + value[1]]
            else:
                self.metrics[key] = self.metrics.get(key, 0.0) + value * size

    def means(self) -> dict:
        """The epoch's training loss and metrics (size-weighted means; pooled ratios)."""
        out = {"train_loss": self.loss / self.size}
        out.update({f"train_{key}": value / self.size for key, value in self.metrics.items()})
        out.update({f"train_{key}": _ratio(hits, total) for key, (hits, total) in self.pooled.items()})
        return out

    def state_dict(self) -> dict:
        return {"batches": self.batches, "sized": self.sized, "size": self.size, "loss": self.loss,
                "metrics": self.metrics, "pooled": self.pooled, "seconds": self.seconds}


def _ratio(hits: float, total: float) -> float:
    return hits / total if total else 0.0


def _metric_value(value):
    """A metric of ``loss_fn``: a number, or a (hits, total) pair that is pooled over batches."""
    if isinstance(value, tuple):
        hits, total = value
        return (float(hits), float(total))
    return float(value)


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
class Trainer:
    """Train ``model`` with ``optimizer`` on the loss ``loss_fn(model, batch)``.

    ``loss_fn`` returns the batch's mean loss as a scalar Tensor, or ``(loss, metrics)``. A metric
    is a number (averaged over the micro-batches of a step, and over an epoch weighted by size), or
    a ``(hits, total)`` pair, pooled: Σ hits / Σ total (an accuracy over all tokens). The reserved
    ``metrics["size"]`` is what the batch's mean runs over (examples, tokens): it weights the
    epoch's mean loss, and the epoch record counts it (``size_unit``) and its rate per second.
    ``evaluate(model) -> {metric: number}`` is called at the end of each epoch (and every
    ``config.eval_every`` steps). ``run_config`` — the options that shape the run — is stored in
    the checkpoint, and ``resume`` refuses a checkpoint made with other values.

    After ``fit``: ``history["steps"]`` has one column per quantity (step, epoch, loss, lr,
    grad_norm, metrics), one entry per optimizer step; ``history["epochs"]`` one record per
    finished epoch (``train_loss``, ``train_<metric>``, seconds, throughput, and the evaluation
    at its end); ``history["evals"]`` every evaluation. ``best`` is the best evaluation,
    ``stopped`` why ``fit`` ended early (None when all epochs ran).
    """

    def __init__(self, model, optimizer, loss_fn: Callable, config: TrainConfig | None = None, *,
                 scheduler=None, evaluate: Callable | None = None, checkpoint_path=None, best_path=None,
                 rngs: dict | None = None, epoch_rngs: dict | None = None, state: dict | None = None,
                 run_config: dict | None = None, name: str = "training", log: Callable | None = print,
                 progress: bool = True, size_unit: str = "items"):
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.config = TrainConfig() if config is None else config
        self.scheduler, self.evaluate = scheduler, evaluate
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.best_path = None if best_path is None else Path(best_path)
        self.rngs, self.epoch_rngs, self.state = dict(rngs or {}), dict(epoch_rngs or {}), dict(state or {})
        self.run_config = dict(run_config or {})
        self.name, self.log, self.progress, self.size_unit = name, log, progress, size_unit
        # where the run is
        self.epoch = 0  # epochs finished
        self.step_in_epoch = 0  # micro-batches of the current epoch trained on
        self.global_step = 0  # optimizer steps
        self.elapsed = 0.0  # seconds spent in fit(), over all sessions
        self.history: dict[str, Any] = {"steps": {}, "epochs": [], "evals": []}
        self.best_index: int | None = None  # which of history["evals"] is the best so far
        self.bad_evals = 0  # evaluations since the best one
        self.stopped: str | None = None
        self._totals = _EpochTotals()
        self._epoch_rng_states = {name: _rng_state(s) for name, s in self.epoch_rngs.items()}
        self._best_weights = None  # kept in memory when there is no best_path
        self._resumed: dict | None = None  # states to set again once the resumed epoch's batches exist
        self._unsaved = False  # trained or evaluated since the last checkpoint
        self._fitting = False  # inside fit(): the clock runs
        self._clock = self._tick = time.perf_counter()

    @property
    def best(self) -> dict | None:
        """The record of the best evaluation so far (None before any, or without best_metric)."""
        return None if self.best_index is None else self.history["evals"][self.best_index]

    # ------------------------------------------------------------------------------------ fit
    def fit(self, batches: Callable[[int], Iterable] | Iterable) -> dict:
        """Train until ``config.epochs`` epochs are done, unless ``max_steps``, the time budget or
        early stopping ends it first (``stopped`` says which); returns ``history``.

        ``batches(epoch)`` gives the batches of epoch ``epoch`` (from 0); it must give the same
        ones again for the same epoch and states of ``epoch_rngs``. A plain iterable is read again
        every epoch. The model's train/eval mode is restored afterwards."""
        self.stopped = None
        self._clock, self._fitting = time.perf_counter() - self.elapsed, True
        was_training = self.model.training
        try:
            while self.epoch < self.config.epochs and self.stopped is None:
                if self._stopping(before_epoch=True):
                    break
                if self._train_epoch(batches):  # False: stopped inside the epoch
                    self._end_epoch()
        finally:
            self.elapsed, self._fitting = self._seconds(), False
            self.model.train(was_training)
        return self.history

    def _train_epoch(self, batches) -> bool:
        """Optimizer steps over the rest of the current epoch; False if training stopped inside it."""
        epoch_batches, remaining = self._epoch_batches(batches)
        bar = progress_bar(total=remaining, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", unit="batch",
                           disable=not self.progress)
        self.model.train()
        window: list = []  # (loss, metrics) of the micro-batches of the step being accumulated
        self._tick = time.perf_counter()
        try:
            for batch in epoch_batches:
                if not window:
                    if self._stopping():
                        return False
                    self.optimizer.zero_grad()
                window.append(self._forward_backward(batch))
                self.step_in_epoch += 1
                if len(window) == self.config.grad_accum_steps:
                    self._finish_step(window, bar)
                    window = []
            if window:  # the epoch's last window, shorter than grad_accum_steps
                self._finish_step(window, bar)
            return True
        finally:
            bar.close()

    def _epoch_batches(self, batches) -> tuple[Iterable, int | None]:
        """The current epoch's batches after the ones already trained on (a resumed epoch), and
        how many remain when that is known."""
        if self._resumed is not None:  # rebuild the epoch from the streams as they were at its start
            self._set_states(self.epoch_rngs, self._resumed["epoch_rng"])
        self._epoch_rng_states = {name: _rng_state(s) for name, s in self.epoch_rngs.items()}
        source = batches(self.epoch) if callable(batches) else batches
        total = len(source) if hasattr(source, "__len__") else None
        iterator = iter(source)
        skipped = sum(1 for _ in itertools.islice(iterator, self.step_in_epoch))
        if skipped < self.step_in_epoch:
            raise ValueError(f"{self.name}: epoch {self.epoch + 1} has {skipped} batches, but the checkpoint was "
                             f"made after {self.step_in_epoch} of them; the batches must be the same on resume")
        if self._resumed is not None and skipped:  # mid-epoch: building the batches may have reseeded
            self._restore_step_streams(self._resumed)   # the step streams, which had moved on since
        self._resumed = None
        return iterator, None if total is None else total - skipped

    def _forward_backward(self, batch) -> tuple[float, dict]:
        """Loss of one micro-batch, back-propagated (scaled by 1 / grad_accum_steps)."""
        out = self.loss_fn(self.model, batch)
        loss, metrics = out if isinstance(out, tuple) else (out, {})
        if not isinstance(loss, minigrad.Tensor) or loss.data.size != 1:
            raise TypeError(f"{self.name}: loss_fn must return a scalar Tensor (or (Tensor, metrics)), got "
                            f"{type(loss).__name__} {getattr(loss, 'shape', '')}")
        accum = self.config.grad_accum_steps
        (loss * (1.0 / accum) if accum > 1 else loss).backward()
        return float(loss.item()), {key: _metric_value(value) for key, value in metrics.items()}

    def _finish_step(self, window: list, bar) -> None:
        """Optimizer and schedule step after ``window``'s backward passes; bookkeeping, periodic
        evaluation and checkpoint."""
        accum = self.config.grad_accum_steps
        if len(window) < accum:  # the summed gradients were divided by accum: make them the window's mean
            self._scale_gradients(accum / len(window))
        grad_norm = None
        if self.config.max_grad_norm:
            grad_norm = float(clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm))
        lr = float(self.optimizer.param_groups[0]["lr"])  # the rate this step uses
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_step += 1
        self._unsaved = True
        self._record_step(window, lr, grad_norm)
        self._update_bar(bar, len(window), lr)
        if self.config.eval_every and self.global_step % self.config.eval_every == 0 and self.evaluate:
            record, improved = self._evaluate()
            self._log(f"step {self.global_step}: " + self._metrics_text(record) + (" (best)" if improved else ""))
        now = time.perf_counter()  # the epoch's time counts up to here, so a checkpoint has it
        self._totals.seconds, self._tick = self._totals.seconds + now - self._tick, now
        if self.config.checkpoint_every and self.global_step % self.config.checkpoint_every == 0:
            self.save_checkpoint()

    def _scale_gradients(self, factor: float) -> None:
        for param in self.model.parameters():
            if param.grad is not None:
                param.grad *= factor

    def _record_step(self, window: list, lr: float, grad_norm: float | None) -> None:
        losses = [loss for loss, _ in window]
        record = {"step": self.global_step, "epoch": self.epoch + 1, "loss": sum(losses) / len(losses), "lr": lr}
        if grad_norm is not None:
            record["grad_norm"] = grad_norm
        for key, first in window[0][1].items():
            values = [metrics[key] for _, metrics in window]
            if isinstance(first, tuple):  # pooled: all hits over all totals
                record[key] = _ratio(sum(h for h, _ in values), sum(t for _, t in values))
            elif key != "size":
                record[key] = sum(values) / len(values)
        for key, value in record.items():
            self.history["steps"].setdefault(key, []).append(value)
        for loss, metrics in window:
            self._totals.add(loss, {k: v for k, v in metrics.items() if k != "size"}, metrics.get("size"))

    def _update_bar(self, bar, batches: int, lr: float) -> None:
        bar.update(batches)
        if not bar.disable:
            recent = self.history["steps"]["loss"][-20:]
            postfix = {"loss": f"{sum(recent) / len(recent):.4f}"}
            if self.scheduler is not None:
                postfix["lr"] = f"{lr:.2e}"
            bar.set_postfix(postfix, refresh=False)

    # ------------------------------------------------------------------------------------ epochs
    def _end_epoch(self) -> None:
        """Evaluate, summarise and log the epoch, move to the next one and checkpoint."""
        if self._totals.batches == 0:
            raise ValueError(f"{self.name}: epoch {self.epoch + 1} has no batches")
        evaluation, improved = None, False
        if self.evaluate is not None:
            last = self.history["evals"][-1] if self.history["evals"] else None
            if last is not None and last["step"] == self.global_step:  # evaluated at this very step already
                evaluation, improved = last, self.best_index == len(self.history["evals"]) - 1
            else:
                evaluation, improved = self._evaluate()
        record = self._epoch_record(evaluation)
        self.history["epochs"].append(record)
        self._log(self._epoch_line(record) + (" (best)" if improved else ""))
        self.epoch, self.step_in_epoch, self._totals = self.epoch + 1, 0, _EpochTotals()
        self._epoch_rng_states = {name: _rng_state(s) for name, s in self.epoch_rngs.items()}
        self.save_checkpoint()

    def _epoch_record(self, evaluation: dict | None) -> dict:
        t = self._totals
        record = {"epoch": self.epoch + 1, "step": self.global_step, **t.means(), "seconds": t.seconds}
        if t.sized:  # loss_fn gave sizes: count them and their rate
            record[self.size_unit] = int(t.size) if float(t.size).is_integer() else t.size
            record[f"{self.size_unit}_per_second"] = t.size / t.seconds if t.seconds > 0 else math.inf
        record["elapsed"] = self._seconds()
        if evaluation is not None:
            record.update({k: v for k, v in evaluation.items() if k not in ("epoch", "step", "partial")})
        return record

    def _epoch_line(self, record: dict) -> str:
        """``epoch 3/8 (step 240): train loss 4.123 | valid loss 4.01, valid ppl 55.2 | 3.1 s, 12,345 tokens/s``"""
        train = [f"train loss {_format_number(record['train_loss'])}"]
        train += [f"{key.replace('_', ' ')} {_format_number(value)}" for key, value in record.items()
                  if key.startswith("train_") and key != "train_loss"]
        skip = {"epoch", "step", "seconds", "elapsed", self.size_unit, f"{self.size_unit}_per_second"}
        evaluation = [f"{key.replace('_', ' ')} {_format_number(value)}" for key, value in record.items()
                      if key not in skip and not key.startswith("train_")]
        timing = f"{record['seconds']:.1f} s"
        if f"{self.size_unit}_per_second" in record:
            timing += f", {record[f'{self.size_unit}_per_second']:,.0f} {self.size_unit}/s"
        parts = [", ".join(train)] + ([", ".join(evaluation)] if evaluation else []) + [timing]
        return f"epoch {record['epoch']}/{self.config.epochs} (step {record['step']}): " + " | ".join(parts)

    # ------------------------------------------------------------------------------------ evaluation
    def _evaluate(self, partial: bool = False) -> tuple[dict, bool]:
        """Run ``evaluate`` in eval mode without gradients, record it, keep the best weights."""
        with evaluating(self.model):
            metrics = self.evaluate(self.model)
        bad = {k: v for k, v in metrics.items()
               if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))}
        if bad:
            raise TypeError(f"{self.name}: evaluate() must return numbers; got {sorted(bad)} of other types")
        # partial: made when a time budget ended training inside an epoch
        record = {"epoch": self.epoch + 1, "step": self.global_step, "partial": partial,
                  **{k: (int(v) if isinstance(v, (int, np.integer)) else float(v)) for k, v in metrics.items()}}
        self.history["evals"].append(record)
        self._unsaved = True
        return record, self._track_best(record)

    def _score(self, record: dict) -> tuple:
        metrics, modes = self.config.metrics_and_modes()
        missing = [m for m in metrics if m not in record]
        if missing:
            raise KeyError(f"{self.name}: evaluate() returned {sorted(record)}, without the best_metric {missing}")
        return tuple(record[m] if mode == "max" else -record[m] for m, mode in zip(metrics, modes))

    def _track_best(self, record: dict) -> bool:
        """True if ``record`` is the best evaluation so far (ties keep the earlier one)."""
        if not self.config.best_metric:
            return False
        score = self._score(record)
        if self.best is not None and not score > self._score(self.best):
            self.bad_evals += 1
            return False
        self.best_index, self.bad_evals = len(self.history["evals"]) - 1, 0
        weights = {k: np.array(v, copy=True) for k, v in self.model.state_dict().items()}
        if self.best_path is None:
            self._best_weights = weights
        else:
            self.best_path.parent.mkdir(parents=True, exist_ok=True)
            minigrad.save(weights, self.best_path,
                          metadata={"epoch": str(record["epoch"]), "step": str(record["step"])})
        return True

    def load_best(self) -> bool:
        """Put the weights of the best evaluation back into the model; False when there is none."""
        if self.best is None:
            return False
        if self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)
        elif self.best_path is not None and self.best_path.is_file():
            self.model.load_state_dict(minigrad.load(self.best_path))
        else:
            return False
        return True

    # ------------------------------------------------------------------------------------ stopping
    def _stopping(self, before_epoch: bool = False) -> bool:
        """Whether training must stop now; if so, say why, evaluate what a time budget cut short,
        and checkpoint."""
        kind, reason = self._reason_to_stop(before_epoch)
        if kind is None:
            return False
        self.stopped = reason
        self._log(f"stopped: {reason}")
        last = self.history["evals"][-1] if self.history["evals"] else None
        if kind == "time budget" and self.evaluate and (last is None or last["step"] != self.global_step):
            self._evaluate(partial=True)  # the run is over: its final weights may be the best ones
        if self._unsaved:
            self.save_checkpoint()
        return True

    def _reason_to_stop(self, before_epoch: bool) -> tuple[str | None, str]:
        """(kind, message) of what ends training now — max_steps, early stopping, time budget —
        or (None, "") to go on."""
        c = self.config
        if c.max_steps is not None and self.global_step >= c.max_steps:
            return "max_steps", f"max_steps {c.max_steps} reached (epoch {self.epoch + 1})"
        if c.patience is not None and self.bad_evals >= c.patience:
            return "early stopping", f"early stopping: no better {c.best_metric} in {self.bad_evals} evaluations"
        if c.time_budget:
            spent, budget = self._seconds(), _format_seconds(c.time_budget)
            if not c.whole_epochs and spent >= c.time_budget:
                return "time budget", f"time budget {budget} reached at step {self.global_step}"
            per_epoch = spent / self.epoch if self.epoch else 0.0
            if c.whole_epochs and before_epoch and self.epoch and spent + per_epoch > c.time_budget:
                return "time budget", (f"time budget {budget}: another epoch (about {_format_seconds(per_epoch)}) "
                                       f"would end past it, stopping after epoch {self.epoch}")
        return None, ""

    def _seconds(self) -> float:
        """Seconds of training so far, all sessions."""
        return time.perf_counter() - self._clock if self._fitting else self.elapsed

    def _log(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def _metrics_text(self, record: dict) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {_format_number(v)}" for k, v in record.items()
                         if k not in ("epoch", "step", "partial"))

    # ------------------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path=None) -> None:
        """Everything needed to continue exactly, in one safetensors file (written atomically)."""
        path = self.checkpoint_path if path is None else Path(path)
        if path is None:
            return
        loop = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                "elapsed": self._seconds(), "history": self.history, "best_index": self.best_index,
                "bad_evals": self.bad_evals, "epoch_totals": self._totals.state_dict()}
        extra = {}
        if self.best_path is None and self._best_weights is not None:
            extra["best_weights"] = self._best_weights
        path.parent.mkdir(parents=True, exist_ok=True)
        minigrad.save_checkpoint(
            path, self.model, self.optimizer, scheduler=self.scheduler, loop=loop,
            rng={name: _rng_state(s) for name, s in self.rngs.items()}, epoch_rng=self._epoch_rng_states,
            state={name: obj.state_dict() for name, obj in self.state.items()}, config=self.run_config,
            train_config=asdict(self.config), **extra)
        self._unsaved = False

    def resume(self, path=None) -> "Trainer":
        """Load a checkpoint of this loop: ``fit`` then continues as if it had never stopped."""
        path = self.checkpoint_path if path is None else Path(path)
        if path is None or not path.is_file():
            raise FileNotFoundError(f"{self.name}: asked to resume, but there is no checkpoint at "
                                    f"{str(path)!r}")
        state = minigrad.load_checkpoint(path)
        if "loop" not in state:
            raise ValueError(f"{self.name}: {str(path)!r} is not a checkpoint of models.training (no loop state)")
        self._check_run_config(state.get("config") or {}, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        loop = state["loop"]
        self.epoch, self.step_in_epoch, self.global_step = loop["epoch"], loop["step_in_epoch"], loop["global_step"]
        self.elapsed, self.history, self.best_index = float(loop["elapsed"]), loop["history"], loop["best_index"]
        self.bad_evals, self._totals = loop["bad_evals"], _EpochTotals(loop["epoch_totals"])
        self._best_weights = state.get("best_weights")
        self._set_states(self.epoch_rngs, state["epoch_rng"])
        self._epoch_rng_states = dict(state["epoch_rng"])
        self._restore_step_streams(state)
        self._resumed = state  # set again after the first epoch's batches are built (they may reseed)
        self._unsaved = False
        self._log(f"resumed from {path}: {self.epoch} epochs and {self.global_step} steps done")
        return self

    def _check_run_config(self, saved: dict, path) -> None:
        now = self.run_config
        diff = {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)}
        if diff:
            raise ValueError(f"{self.name}: cannot resume {str(path)!r}: the checkpoint was made with other options "
                             f"(different settings, as (saved, now)): {diff}")

    def _restore_step_streams(self, state: dict) -> None:
        self._set_states(self.rngs, state["rng"])
        for name, obj in self.state.items():
            obj.load_state_dict(state["state"][name])

    def _set_states(self, streams: dict, states: dict) -> None:
        missing = sorted(set(streams) - set(states))
        if missing:
            raise ValueError(f"{self.name}: the checkpoint has no state for the random streams {missing}")
        for name, stream in streams.items():
            _set_rng_state(stream, states[name])
