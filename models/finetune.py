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
function building a batch from indices, a loss function and an evaluation function. It is this
recipe on top of the book's one training loop (``models.training``). Everything random draws from
two seeded streams (batch order, dropout) whose states go in the checkpoint, so ``resume``
continues exactly where an interrupted run stopped: same batches, same dropout masks, same numbers
as an uninterrupted run.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import minigrad
from minigrad import nn
from minigrad.optim import AdamW, get_linear_schedule_with_warmup
from models import training
from models.training import TrainConfig, attach_dropout_generator, evaluating, weight_decay_groups

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
# The training loop
# ----------------------------------------------------------------------------------------------
parameter_groups = weight_decay_groups  # AdamW groups: no decay on biases and LayerNorm (BERT's rule)


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
    max_steps: int | None = None  # stop after this many steps (checkpointed; resuming continues exactly)

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
    """Fine-tune ``model`` with BERT's recipe on ``models.training``: ``Trainer(...).fit()`` →
    history; the best epoch's weights are loaded at the end.

    ``make_batch(indices) -> dict`` builds a batch, ``loss_fn(model, batch) -> Tensor`` its loss,
    ``evaluate(model) -> {metric: value}`` scores the model (called in eval mode, no grad).
    ``main_metric`` chooses the best epoch (larger is better). With ``out_dir``, ``last.ckpt``
    (resumable state) and ``best.safetensors`` (weights) are written there atomically.
    Batches are length-bucketed from a seeded stream, dropout masks come from another; both go
    in the checkpoint, so ``resume`` continues with the same batches and masks.
    """

    def __init__(self, model: nn.Module, train_lengths, make_batch: Callable, loss_fn: Callable,
                 evaluate: Callable, main_metric: str, config: TrainingConfig, out_dir=None,
                 log: Callable = print, progress: bool = True):
        self.train_lengths = np.asarray(train_lengths)
        self.make_batch, self.user_loss, self.main_metric, self.config = make_batch, loss_fn, main_metric, config
        self.out_dir = None if out_dir is None else Path(out_dir)
        c = config
        total = math.ceil(len(self.train_lengths) / c.batch_size) * c.epochs
        optimizer = AdamW(parameter_groups(model, c.weight_decay), lr=c.lr, weight_decay=c.weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(c.warmup_ratio * total), total)
        self.batch_rng = np.random.default_rng(c.seed)  # batch order
        self.dropout = minigrad.Generator(c.seed + 1)  # dropout masks
        attach_dropout_generator(model, self.dropout)
        loop_config = TrainConfig(epochs=c.epochs, max_grad_norm=c.max_grad_norm, time_budget=c.time_budget,
                                  max_steps=c.max_steps, best_metric=main_metric, best_mode="max",
                                  patience=c.patience, checkpoint_every=c.checkpoint_every)
        # how long to train, how often to save and how patient to be may change between sessions
        shaping = {k: v for k, v in asdict(c).items()
                   if k not in ("time_budget", "max_steps", "checkpoint_every", "patience")}
        self.loop = training.Trainer(
            model, optimizer, self._loss, loop_config, scheduler=scheduler, evaluate=evaluate,
            checkpoint_path=None if self.out_dir is None else self.out_dir / "last.ckpt",
            best_path=None if self.out_dir is None else self.out_dir / "best.safetensors",
            rngs={"dropout": self.dropout}, epoch_rngs={"batch_order": self.batch_rng}, run_config=shaping,
            name="Trainer", log=log, progress=progress)

    def _loss(self, model, indices):
        return self.user_loss(model, self.make_batch(indices))

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        return length_bucketed_batches(self.train_lengths, self.config.batch_size, self.batch_rng)

    # -- what the loop knows, under fine-tuning's names ----------------------------------------------
    model = property(lambda self: self.loop.model)
    optimizer = property(lambda self: self.loop.optimizer)
    scheduler = property(lambda self: self.loop.scheduler)
    global_step = property(lambda self: self.loop.global_step)
    stopped = property(lambda self: self.loop.stopped)
    checkpoint_path = property(lambda self: self.loop.checkpoint_path)

    @property
    def evaluate(self) -> Callable:
        return self.loop.evaluate

    @evaluate.setter
    def evaluate(self, fn: Callable) -> None:
        self.loop.evaluate = fn

    @property
    def history(self) -> dict:
        """``{"loss": [[step, loss], …], "eval": [{epoch, step, metrics…}, …]}``."""
        steps = self.loop.history["steps"]
        return {"loss": [[s, v] for s, v in zip(steps.get("step", []), steps.get("loss", []))],
                "eval": self.loop.history["evals"]}

    @property
    def best_epoch(self) -> int | None:
        return None if self.loop.best is None else self.loop.best["epoch"]

    @property
    def best_score(self) -> float:
        return -math.inf if self.loop.best is None else self.loop.best[self.main_metric]

    @property
    def best_step(self) -> int | None:
        return None if self.loop.best is None else self.loop.best["step"]

    # -- training ------------------------------------------------------------------------------------
    def save_checkpoint(self, path=None) -> None:
        """Everything to resume: weights, AdamW moments, schedule, both random streams, position."""
        self.loop.save_checkpoint(path)

    def resume(self, path=None) -> "Trainer":
        """Restore a ``save_checkpoint`` file; ``fit`` then continues as if never interrupted."""
        self.loop.resume(path)
        return self

    def fit(self, stop_after_steps: int | None = None) -> dict:
        """Train for the configured epochs, then load the best weights. ``stop_after_steps``
        simulates an interruption: stop (checkpointed) after that many steps, best not loaded."""
        config = self.loop.config
        if stop_after_steps is not None:
            self.loop.config = replace(config, max_steps=stop_after_steps)
        try:
            self.loop.fit(self._epoch_batches)
        finally:
            self.loop.config = config
        if stop_after_steps is None:
            self.load_best()
        return self.history

    def load_best(self) -> None:
        """Put the best epoch's weights back into the model."""
        self.loop.load_best()


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
    with evaluating(model):
        preds = predictions_from_logits(predict_logits(model, data, batch_size, tokenizer.pad_token_id),
                                        spec.is_regression)
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

    seen = {}  # optimizer step -> predictions of the evaluation made there, in this session

    def evaluate(m):
        preds = predict(m)
        seen[trainer.global_step] = preds
        return compute_metrics(spec, evaluation.labels, preds)

    trainer = Trainer(model, train.lengths, lambda idx: collate(train, idx, pad), classification_loss,
                      evaluate, spec.metrics[0], config, out_dir, log, progress)
    trainer.label_standardisation = (mean, scale)  # for evaluate_classifier on other splits
    if resume:
        trainer.resume()
    trainer.fit()
    if trainer.best_step in seen:  # the best weights were evaluated in this session: reuse, no second pass
        return trainer, seen[trainer.best_step], evaluation.labels
    with evaluating(model):
        preds = predict(model)
    return trainer, preds, evaluation.labels


__all__ = ["EncodedDataset", "encode_examples", "collate", "length_bucketed_batches",
           "attach_dropout_generator", "parameter_groups", "TrainingConfig", "Trainer", "classification_loss",
           "predict_logits", "predictions_from_logits", "evaluate_classifier", "fine_tune_classifier"]

