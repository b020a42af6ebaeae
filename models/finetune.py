"""Fine-tuning BERT (book §§ 4.2.9-4.2.10; Devlin et al. 2019 §3.2 and §A.3).

Fine-tuning puts a small head on the pre-trained encoder and trains *every* weight on the task for
a few epochs with a small learning rate. The recipe of the BERT paper, as here:

* AdamW (Loshchilov & Hutter 2019), lr ~ 2e-5 … 5e-5, weight decay 0.01 (not on biases and
  LayerNorm), linear warm-up over the first 10 % of the steps, then linear decay to 0:
      lr(s) = lr · s / W  (s < W),   lr · (S − s) / (S − W)  afterwards
* gradient clipping to a global norm of 1:   g ← g · min(1, 1 / ‖g‖₂)
* evaluation after every epoch, the best checkpoint kept, early stopping after ``patience``
  epochs without improvement.

Batches are *length-bucketed*: examples are shuffled, sorted by length inside chunks of
``bucket_batches`` batches, and cut into batches padded only to their own longest sentence
(dynamic padding) — most of the compute saved on short sentences.

``Trainer`` is task-agnostic (classification, regression, QA): it needs the training lengths, a
function building a batch from indices, a loss function and an evaluation function. Everything
random draws from two seeded streams (batch order, dropout) whose states go in the checkpoint, so
``resume`` continues exactly where an interrupted run stopped: same batches, same dropout masks,
same numbers as an uninterrupted run.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import minigrad
from minigrad import nn
from minigrad.nn.dropout import Dropout
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import AdamW
from minigrad.optim.lr_scheduler import get_linear_schedule_with_warmup
from minigrad.serialization import load as load_weights
from minigrad.serialization import load_checkpoint, save, save_checkpoint
from models.progress import progress_bar

# ----------------------------------------------------------------------------------------------
# Encoding and batching
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedDataset:
    """Tokenised examples of variable length: ``input_ids[i]``, ``token_type_ids[i]`` (lists of
    ints, ``[CLS] a [SEP] (b [SEP])``) and ``labels`` (N,) int64 classes or float32 scores."""

    input_ids: list
    token_type_ids: list
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64)


def encode_examples(examples: Sequence, tokenizer, max_seq_length: int = 128,
                    regression: bool = False) -> EncodedDataset:
    """GLUE ``InputExample`` s → token ids, truncated to ``max_seq_length`` (longest segment first)."""
    if not examples:
        raise ValueError("encode_examples: got no examples")
    if any(ex.label is None for ex in examples):
        raise ValueError("encode_examples: every example needs a label (unlabelled test files cannot be used)")
    pairs = examples[0].text_b is not None
    enc = tokenizer([ex.text_a for ex in examples], [ex.text_b for ex in examples] if pairs else None,
                    truncation=True, max_length=max_seq_length)
    labels = np.array([ex.label for ex in examples], dtype=np.float32 if regression else np.int64)
    return EncodedDataset(enc["input_ids"], enc["token_type_ids"], labels)


def collate(data: EncodedDataset, indices, pad_token_id: int = 0) -> dict[str, np.ndarray]:
    """Dynamic padding: the batch is padded to its own longest sequence.  ids, types, mask (B, T)."""
    indices = np.asarray(indices, dtype=np.int64)
    T = max(len(data.input_ids[i]) for i in indices)
    B = len(indices)
    ids = np.full((B, T), pad_token_id, dtype=np.int64)
    types = np.zeros((B, T), dtype=np.int64)
    mask = np.zeros((B, T), dtype=np.int64)
    for b, i in enumerate(indices):
        n = len(data.input_ids[i])
        ids[b, :n], types[b, :n], mask[b, :n] = data.input_ids[i], data.token_type_ids[i], 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": data.labels[indices]}


def length_bucketed_batches(lengths, batch_size: int, rng: np.random.Generator | None = None,
                            bucket_batches: int = 50) -> list[np.ndarray]:
    """Batches of indices with similar lengths.

    Training (``rng`` given): shuffle, sort by length inside chunks of ``bucket_batches · batch_size``
    examples, cut into batches, shuffle the batch order — random, yet little padding.
    Evaluation (``rng`` None): sorted by length, in order.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or len(lengths) == 0:
        raise ValueError(f"length_bucketed_batches: lengths must be a non-empty 1-D array, got shape {lengths.shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"length_bucketed_batches: batch_size must be a positive int, got {batch_size!r}")
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    perm = rng.permutation(len(lengths))
    chunk = batch_size * bucket_batches
    batches = []
    for c in range(0, len(perm), chunk):
        part = perm[c:c + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


# ----------------------------------------------------------------------------------------------
# Model helpers
# ----------------------------------------------------------------------------------------------
def attach_dropout_generator(model: nn.Module, generator: minigrad.Generator) -> None:
    """Give every Dropout layer one seeded stream, so masks are reproducible and resumable."""
    for module in model.modules():
        if isinstance(module, Dropout):
            module.generator = generator


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on weight matrices, none on biases and LayerNorm γ/β (BERT's rule)."""
    no_decay_ids = {id(m.weight) for m in model.modules() if isinstance(m, LayerNorm) and m.weight is not None}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or id(p) in no_decay_ids else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------
@dataclass
class TrainingConfig:
    """Hyper-parameters of fine-tuning (defaults: Devlin et al. §A.3, HF ``TrainingArguments``)."""

    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    patience: int | None = 2  # epochs without improvement before stopping; None: never
    seed: int = 0
    checkpoint_every: int = 0  # also save a resumable checkpoint every N steps (0: only per epoch)
    time_budget: float | None = None  # seconds of training; stops early (and says so) when exceeded

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainingConfig: {name} must be a positive int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"TrainingConfig: lr must be positive, got {self.lr!r}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"TrainingConfig: warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ValueError(f"TrainingConfig: patience must be a positive int or None, got {self.patience!r}")


class Trainer:
    """Fine-tune ``model``: ``Trainer(...).fit()`` → history; best weights loaded at the end.

    ``make_batch(indices) -> dict`` builds a batch, ``loss_fn(model, batch) -> Tensor`` its loss,
    ``evaluate(model) -> {metric: value}`` scores the model (called in eval mode, no grad).
    ``main_metric`` chooses the best epoch (larger is better). With ``out_dir``, ``last.ckpt``
    (resumable state) and ``best.safetensors`` (weights) are written there atomically.
    """

    def __init__(self, model: nn.Module, train_lengths, make_batch: Callable, loss_fn: Callable,
                 evaluate: Callable, main_metric: str, config: TrainingConfig, out_dir=None,
                 log: Callable = print, progress: bool = True):
        self.model, self.make_batch, self.loss_fn, self.evaluate = model, make_batch, loss_fn, evaluate
        self.train_lengths = np.asarray(train_lengths)
        self.main_metric, self.config, self.log, self.progress = main_metric, config, log, progress
        self.out_dir = None if out_dir is None else Path(out_dir)
        c = config
        self.steps_per_epoch = math.ceil(len(self.train_lengths) / c.batch_size)
        total = self.steps_per_epoch * c.epochs
        self.optimizer = AdamW(parameter_groups(model, c.weight_decay), lr=c.lr, weight_decay=c.weight_decay)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(c.warmup_ratio * total), total)
        self.batch_rng = np.random.default_rng(c.seed)  # batch order
        self.dropout = minigrad.Generator(c.seed + 1)  # dropout masks
        attach_dropout_generator(model, self.dropout)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.epoch_rng_state = self.batch_rng.bit_generator.state
        self.history = {"loss": [], "eval": []}  # loss: [step, value]; eval: {epoch, step, metrics}
        self.best_score, self.best_epoch, self.bad_epochs = -math.inf, None, 0
        self.best_state = None  # in-memory copy when there is no out_dir
        self.stopped = None  # why training ended early, if it did

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / "last.ckpt"

    def save_checkpoint(self, path=None) -> None:
        """Everything to resume: weights, AdamW moments, schedule, both random streams, position."""
        path = Path(path) if path is not None else self.checkpoint_path
        trainer = {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
                   "epoch_rng_state": self.epoch_rng_state, "dropout_state": self.dropout.get_state(),
                   "history": self.history, "best_score": self.best_score, "best_epoch": self.best_epoch,
                   "bad_epochs": self.bad_epochs, "config": asdict(self.config)}
        extra = {}
        if self.best_state is not None:
            extra["best_state"] = self.best_state
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, self.model, self.optimizer, scheduler=self.scheduler, trainer=trainer, **extra)

    def resume(self, path=None) -> "Trainer":
        """Restore a ``save_checkpoint`` file; ``fit`` then continues as if never interrupted."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None or not path.is_file():
            raise FileNotFoundError(f"Trainer.resume: no checkpoint at {path}")
        state = load_checkpoint(path)
        t = state["trainer"]
        saved, now = dict(t["config"]), asdict(self.config)
        for key in ("time_budget", "checkpoint_every", "patience"):  # may change between sessions
            saved.pop(key, None), now.pop(key, None)
        if saved != now:
            raise ValueError(f"Trainer.resume: the checkpoint was made with {saved}, this run uses {now}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step_in_epoch, self.global_step = t["epoch"], t["step_in_epoch"], t["global_step"]
        self.epoch_rng_state = t["epoch_rng_state"]
        self.dropout.set_state(t["dropout_state"])
        self.history = {"loss": [list(x) for x in t["history"]["loss"]], "eval": list(t["history"]["eval"])}
        self.best_score, self.best_epoch, self.bad_epochs = t["best_score"], t["best_epoch"], t["bad_epochs"]
        self.best_state = state.get("best_state")
        self.log(f"resumed from {path}: epoch {self.epoch + 1}, step {self.global_step}")
        return self

    # -- training ----------------------------------------------------------------------------------
    def _epoch_batches(self) -> list[np.ndarray]:
        self.batch_rng.bit_generator.state = self.epoch_rng_state  # same order when resumed mid-epoch
        return length_bucketed_batches(self.train_lengths, self.config.batch_size, self.batch_rng)

    def train_step(self, batch) -> float:
        loss = self.loss_fn(self.model, batch)
        loss.backward()
        if self.config.max_grad_norm:
            clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        return float(loss.item())

    def fit(self, stop_after_steps: int | None = None) -> dict:
        """Train for the configured epochs (``stop_after_steps``: simulate an interruption)."""

        c, start = self.config, time.perf_counter()
        while self.epoch < c.epochs and self.stopped is None:
            batches = self._epoch_batches()
            self.model.train()
            bar = progress_bar(batches[self.step_in_epoch:], desc=f"epoch {self.epoch + 1}/{c.epochs}", unit="batch",
                               disable=not self.progress)
            for indices in bar:
                loss = self.train_step(self.make_batch(indices))
                self.global_step += 1
                self.step_in_epoch += 1
                self.history["loss"].append([self.global_step, loss])
                bar.set_postfix(loss=f"{loss:.4f}")
                if stop_after_steps is not None and self.global_step >= stop_after_steps:
                    self._save_if(True)
                    return self.history
                if c.checkpoint_every and self.global_step % c.checkpoint_every == 0:
                    self._save_if(self.checkpoint_path is not None)
                if c.time_budget is not None and time.perf_counter() - start > c.time_budget:
                    self.stopped = f"time budget of {c.time_budget:.0f} s reached at step {self.global_step}"
                    break
            bar.close()
            self._end_epoch(partial=self.stopped is not None)
        self.load_best()
        return self.history

    def _save_if(self, condition: bool) -> None:
        if condition and self.checkpoint_path is not None:
            self.save_checkpoint()

    def _end_epoch(self, partial: bool = False) -> None:
        metrics = self.run_evaluation()
        score = metrics[self.main_metric]
        entry = {"epoch": self.epoch + 1, "step": self.global_step, "partial": partial, **metrics}
        self.history["eval"].append(entry)
        improved = score > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = score, self.epoch + 1, 0
            self._keep_best()
        else:
            self.bad_epochs += 1
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
        self.log(f"epoch {self.epoch + 1}: step {self.global_step}, {shown}" + (" (best)" if improved else ""))
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.epoch_rng_state = self.batch_rng.bit_generator.state
        patience = self.config.patience
        if patience is not None and self.bad_epochs >= patience and self.epoch < self.config.epochs:
            self.stopped = f"early stopping: no better {self.main_metric} for {self.bad_epochs} epochs"
            self.log(self.stopped)
        self._save_if(True)

    def run_evaluation(self) -> dict:
        was_training = self.model.training
        self.model.eval()
        with minigrad.no_grad():
            metrics = self.evaluate(self.model)
        self.model.train(was_training)
        if self.main_metric not in metrics:
            raise KeyError(f"Trainer: evaluate() returned {sorted(metrics)}, without the main metric "
                           f"{self.main_metric!r}")
        return metrics

    def _keep_best(self) -> None:
        state = {k: np.array(v, copy=True) for k, v in self.model.state_dict().items()}
        if self.out_dir is None:
            self.best_state = state
        else:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save(state, self.out_dir / "best.safetensors", metadata={"epoch": str(self.best_epoch)})

    def load_best(self) -> None:
        """Put the best epoch's weights back into the model."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif self.out_dir is not None and (self.out_dir / "best.safetensors").is_file():
            self.model.load_state_dict(load_weights(self.out_dir / "best.safetensors"))


# ----------------------------------------------------------------------------------------------
# Sequence classification / regression on GLUE-style data
# ----------------------------------------------------------------------------------------------
def classification_loss(model, batch) -> "minigrad.Tensor":
    """Cross-entropy (classes) or MSE (num_labels == 1) of ``BertForSequenceClassification``."""
    return model(batch["input_ids"], attention_mask=batch["attention_mask"],
                 token_type_ids=batch["token_type_ids"], labels=batch["labels"])["loss"]


def predict_logits(model, data: EncodedDataset, batch_size: int = 64, pad_token_id: int = 0) -> np.ndarray:
    """Logits (N, num_labels) in the original order; batches sorted by length for speed."""
    out = None
    for indices in length_bucketed_batches(data.lengths, batch_size):
        batch = collate(data, indices, pad_token_id)
        logits = model(batch["input_ids"], attention_mask=batch["attention_mask"],
                       token_type_ids=batch["token_type_ids"])["logits"].data
        if out is None:
            out = np.zeros((len(data), logits.shape[1]), dtype=np.float64)
        out[indices] = logits
    return out


def predictions_from_logits(logits: np.ndarray, regression: bool) -> np.ndarray:
    """Class = argmax of the logits; regression = the single output."""
    return logits[:, 0] if regression else logits.argmax(axis=1)


def evaluate_classifier(model, tokenizer, examples, task: str, max_seq_length: int = 128,
                        label_mean: float = 0.0, label_scale: float = 1.0, batch_size: int = 64) -> tuple:
    """(metrics, predictions) of a fine-tuned classifier/regressor on labelled examples, in eval mode
    without gradients. Regression outputs are mapped back with the training standardisation
    (``trainer.label_standardisation`` after ``fine_tune_classifier``)."""
    from models.data.glue import compute_metrics, get_task

    spec = get_task(task)
    data = encode_examples(examples, tokenizer, max_seq_length, spec.is_regression)
    was_training = model.training
    model.eval()
    with minigrad.no_grad():
        preds = predictions_from_logits(predict_logits(model, data, batch_size, tokenizer.pad_token_id),
                                        spec.is_regression)
    model.train(was_training)
    if spec.is_regression:
        preds = preds * label_scale + label_mean
    return compute_metrics(spec, data.labels, preds), preds


def fine_tune_classifier(model, tokenizer, train_examples, eval_examples, task: str, config: TrainingConfig,
                         max_seq_length: int = 128, out_dir=None, resume: bool = False, log=print,
                         progress: bool = True):
    """Fine-tune ``BertForSequenceClassification`` on GLUE-style examples; returns (trainer,
    eval predictions, eval labels) with the best weights loaded. Regression targets are
    standardised with the training mean and std for training, predictions mapped back."""
    from models.data.glue import compute_metrics, get_task

    spec = get_task(task)
    regression = spec.is_regression
    if model.config.num_labels != spec.num_labels:
        raise ValueError(f"fine_tune_classifier: task {spec.name} needs num_labels={spec.num_labels}, "
                         f"the model has {model.config.num_labels}")
    train = encode_examples(train_examples, tokenizer, max_seq_length, regression)
    evaluation = encode_examples(eval_examples, tokenizer, max_seq_length, regression)
    pad = tokenizer.pad_token_id
    mean, scale = 0.0, 1.0
    if regression:  # learn z = (y − mean) / std: a fresh head starts near 0, not near the scores' mean
        mean, scale = float(train.labels.mean()), float(train.labels.std()) or 1.0
        train = EncodedDataset(train.input_ids, train.token_type_ids,
                               ((train.labels - mean) / scale).astype(np.float32))

    def predict(m):
        preds = predictions_from_logits(predict_logits(m, evaluation, 64, pad), regression)
        return preds * scale + mean if regression else preds

    seen = []  # (history length, predictions) of each evaluation in this session

    def evaluate(m):
        preds = predict(m)
        seen.append((len(trainer.history["eval"]), preds))
        return compute_metrics(spec, evaluation.labels, preds)

    trainer = Trainer(model, train.lengths, lambda idx: collate(train, idx, pad), classification_loss,
                      evaluate, spec.metrics[0], config, out_dir, log, progress)
    trainer.label_standardisation = (mean, scale)  # for evaluate_classifier on other splits
    if resume:
        trainer.resume()
    trainer.fit()
    best = [p for n, p in seen if trainer.best_epoch is not None and n == trainer.best_epoch - 1]
    if best:  # the best weights were evaluated in this session: reuse, no second pass
        return trainer, best[-1], evaluation.labels
    model.eval()
    with minigrad.no_grad():
        preds = predict(model)
    return trainer, preds, evaluation.labels


__all__ = ["EncodedDataset", "encode_examples", "collate", "length_bucketed_batches",
           "attach_dropout_generator", "parameter_groups", "TrainingConfig", "Trainer", "classification_loss",
           "predict_logits", "predictions_from_logits", "evaluate_classifier", "fine_tune_classifier"]

