"""Knowledge distillation (book § 4.7): a small student trained to imitate a large teacher.

Hinton et al. 2015 ("Distilling the Knowledge in a Neural Network") and DistilBERT (Sanh et al. 2019):
the teacher's output distribution says more than its label — which wrong classes it finds almost
right — and the student learns from all of it. DistilBERT's loss, term by term:

    L = α_ce · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))     soft targets at temperature T
      + α_hard · CE(z_s, y)                                    the student's own loss: MLM in
                                                               pre-training, the labels in a task
      + α_cos · mean_t (1 − cos(h_s,t, h_t,t))                 hidden states point the same way

z_s, z_t are the student's and teacher's logits (one row per example, or per token for MLM), h the
last hidden states at the real tokens. Defaults are DistilBERT's training script's (``train.py``:
``--temperature 2 --alpha_ce 5.0 --alpha_mlm 2.0 --alpha_cos 1.0``), α_mlm becoming α_hard.

**Why T².** Dividing the logits by T > 1 softens both distributions, so the small probabilities the
teacher gives wrong classes carry weight. But the gradient of the KL term with respect to a student
logit is (1/T)·(p_s,i − p_t,i), and for large T, p_i ≈ (1 + z_i/T)/C, so it is ≈ (z_s,i − z_t,i)/(C·T²):
it shrinks as 1/T². Multiplying the term by T² keeps its gradients the same size whatever T is, so
α_ce keeps meaning the same weight against the hard-label term when T changes (Hinton et al. § 2).

**The student** (``student_from_teacher``) is a DistilBERT (``models.distilbert``): the teacher's
embeddings and every other layer of its encoder — DistilBERT's initialisation "taking one layer out of
two" (Sanh et al. § 3) — and its heads. BERT's segment embedding of sentence A, added to every token
of a single sentence, is folded into the position table, so for one-sentence inputs the student's
embeddings equal the teacher's exactly.

**The task-specific run** (``distill_classifier``, recipe ``python -m models distill``): a teacher
fine-tuned on the task, a 3-layer student from it, trained (a) with this loss and (b) with the hard
labels alone, the same steps on the same batches.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from minigrad.nn.losses import cosine_embedding_loss, cross_entropy, kl_div
from minigrad.tensor import Tensor

from models.bert.config import BertConfig
from models.bert.functional import move_rows
from models.bert.modeling import ModelOutput
from models.distilbert import (LAYER_NORM_EPS, DistilBertConfig, DistilBertForMaskedLM,
                               DistilBertForSequenceClassification, DistilBertModel)

IGNORE_INDEX = -100


# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DistillationConfig:
    """Weights of the three terms and the temperature (DistilBERT's training defaults)."""

    temperature: float = 2.0
    alpha_ce: float = 5.0  # soft targets: T² · KL(teacher ‖ student) at temperature T
    alpha_hard: float = 2.0  # the student's own loss on the true labels (α_mlm in DistilBERT)
    alpha_cos: float = 1.0  # 1 − cos between student and teacher hidden states

    def __post_init__(self):
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (np.isfinite(t) and t > 0):
            raise ValueError(f"DistillationConfig: temperature must be a positive number, got {t!r}")
        for name in ("alpha_ce", "alpha_hard", "alpha_cos"):
            a = getattr(self, name)
            if isinstance(a, bool) or not isinstance(a, (int, float)) or not (np.isfinite(a) and a >= 0):
                raise ValueError(f"DistillationConfig: {name} must be a number >= 0, got {a!r}")
        if not (self.alpha_ce or self.alpha_hard or self.alpha_cos):
            raise ValueError("DistillationConfig: every alpha is 0, so the loss would be 0")


def _array(x, fn: str, name: str) -> np.ndarray:
    arr = np.asarray(x.data if isinstance(x, Tensor) else x)
    if arr.dtype.kind != "f":
        raise TypeError(f"{fn}: {name} must hold floats, got dtype {arr.dtype}")
    return arr


def soft_target_loss(student_logits: Tensor, teacher_logits, temperature: float = 2.0) -> Tensor:
    """T² · KL(softmax(z_t/T) ‖ softmax(z_s/T)), the mean over the N rows of (N, C) logits.

    Equal to torch's ``kl_div(log_softmax(z_s/T), softmax(z_t/T), reduction='batchmean') · T²``.
    The teacher's logits are constants (an array, or a Tensor whose gradient is not taken)."""
    fn = "soft_target_loss"
    if not isinstance(student_logits, Tensor):
        raise TypeError(f"{fn}: student_logits must be a Tensor, got {type(student_logits).__name__}")
    z_t = _array(teacher_logits, fn, "teacher_logits")
    if student_logits.ndim != 2 or z_t.shape != student_logits.shape:
        raise ValueError(f"{fn}: student_logits and teacher_logits must both have shape (N, C); got "
                         f"{student_logits.shape} and {z_t.shape}")
    T = float(temperature)
    scaled = z_t.astype(np.float64) / T
    p_t = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    p_t = (p_t / p_t.sum(axis=-1, keepdims=True)).astype(student_logits.dtype)  # (N, C) soft targets
    log_p_s = (student_logits * (1.0 / T)).log_softmax(-1)  # (N, C)
    return kl_div(log_p_s, p_t, reduction="batchmean") * (T * T)


def hidden_cosine_loss(student_hidden: Tensor, teacher_hidden, attention_mask=None) -> Tensor:
    """mean over the real tokens of 1 − cos(h_s, h_t), hidden states (B, T, H) (DistilBERT's
    ``CosineEmbeddingLoss`` with target 1; padding, where ``attention_mask`` is 0, is left out)."""
    fn = "hidden_cosine_loss"
    if not isinstance(student_hidden, Tensor):
        raise TypeError(f"{fn}: student_hidden must be a Tensor, got {type(student_hidden).__name__}")
    h_t = _array(teacher_hidden, fn, "teacher_hidden")
    if student_hidden.ndim != 3 or h_t.shape != student_hidden.shape:
        raise ValueError(f"{fn}: student_hidden and teacher_hidden must both have shape (B, T, H) — a student "
                         f"as wide as its teacher; got {student_hidden.shape} and {h_t.shape}")
    B, T, H = student_hidden.shape
    if attention_mask is None:
        rows = np.arange(B * T)
    else:
        mask = np.asarray(attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask)
        if mask.shape != (B, T):
            raise ValueError(f"{fn}: attention_mask must have shape {(B, T)}, got {mask.shape}")
        rows = np.flatnonzero(mask.reshape(-1))
    if rows.size == 0:
        raise ValueError(f"{fn}: attention_mask has no real token")
    h_s = move_rows(student_hidden.reshape(B * T, H), rows, np.arange(rows.size), rows.size)  # (N, H)
    h_t = h_t.reshape(B * T, H)[rows].astype(student_hidden.dtype)  # (N, H)
    return cosine_embedding_loss(h_s, h_t, np.ones(rows.size, dtype=np.int64))


def distillation_loss(student_logits: Tensor, teacher_logits, labels=None, student_hidden: Tensor | None = None,
                      teacher_hidden=None, attention_mask=None,
                      config: DistillationConfig | None = None) -> ModelOutput:
    """DistilBERT's loss (module docstring). ``student_logits``/``teacher_logits`` (N, C); ``labels``
    (N,) class ids, −100 where a row has no label (MLM); hidden states (B, T, H) with their
    ``attention_mask`` (B, T). A term whose α is 0 needs no inputs. Returns ``loss`` and the unweighted
    ``soft_loss``, ``hard_loss``, ``cosine_loss`` (those computed)."""
    fn = "distillation_loss"
    config = DistillationConfig() if config is None else config
    if not isinstance(config, DistillationConfig):
        raise TypeError(f"{fn}: config must be a DistillationConfig, got {type(config).__name__}")
    out = ModelOutput()
    terms = []
    if config.alpha_ce:
        out["soft_loss"] = soft_target_loss(student_logits, teacher_logits, config.temperature)
        terms.append(out["soft_loss"] * float(config.alpha_ce))
    if config.alpha_hard:
        if labels is None:
            raise ValueError(f"{fn}: alpha_hard={config.alpha_hard} needs labels (or set alpha_hard=0)")
        targets = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
        if targets.shape != student_logits.shape[:1] or targets.dtype.kind not in "iu":
            raise ValueError(f"{fn}: labels must be {student_logits.shape[0]} integer class ids (−100: none), "
                             f"got shape {targets.shape} dtype {targets.dtype}")
        out["hard_loss"] = cross_entropy(student_logits, targets, ignore_index=IGNORE_INDEX)
        terms.append(out["hard_loss"] * float(config.alpha_hard))
    if config.alpha_cos:
        if student_hidden is None or teacher_hidden is None:
            raise ValueError(f"{fn}: alpha_cos={config.alpha_cos} needs student_hidden and teacher_hidden "
                             "(or set alpha_cos=0)")
        out["cosine_loss"] = hidden_cosine_loss(student_hidden, teacher_hidden, attention_mask)
        terms.append(out["cosine_loss"] * float(config.alpha_cos))
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    out["loss"] = total
    return out


# ----------------------------------------------------------------------------------------------
# The student: the teacher's embeddings and every other layer, as a DistilBERT
# ----------------------------------------------------------------------------------------------
BERT_TO_DISTILBERT_BLOCK = {  # one encoder block's weights: BERT's name → DistilBERT's name
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}
BERT_TO_DISTILBERT_HEADS = {  # the heads' weights (the NSP head has no DistilBERT counterpart)
    "masked_lm": {"cls.predictions.transform.dense": "vocab_transform",
                  "cls.predictions.transform.LayerNorm": "vocab_layer_norm"},
    "sequence_classification": {"bert.pooler.dense": "pre_classifier", "classifier": "classifier"},
}
BERT_TO_DISTILBERT_HEADS["pretraining"] = BERT_TO_DISTILBERT_HEADS["masked_lm"]
STUDENT_CLASSES = {"model": DistilBertModel, "masked_lm": DistilBertForMaskedLM, "pretraining": DistilBertForMaskedLM,
                   "sequence_classification": DistilBertForSequenceClassification}


def every_other_layer(num_layers: int) -> tuple[int, ...]:
    """DistilBERT's choice, one layer out of two: (0, 2, 4) of 6, (0, 2, …, 10) of 12."""
    return tuple(range(0, num_layers, 2))


def student_config(teacher_config, n_layers: int) -> DistilBertConfig:
    """The DistilBERT config of a student as wide as a BERT teacher, with ``n_layers`` layers."""
    c = teacher_config
    if c.layer_norm_eps != LAYER_NORM_EPS:
        raise ValueError(f"student_config: the teacher's layer_norm_eps is {c.layer_norm_eps}, DistilBERT's is "
                         f"fixed at {LAYER_NORM_EPS}; the student could not compute what the teacher's layers do")
    classifier_dropout = c.classifier_dropout if c.classifier_dropout is not None else c.hidden_dropout_prob
    return DistilBertConfig(vocab_size=c.vocab_size, max_position_embeddings=c.max_position_embeddings,
                            n_layers=n_layers, n_heads=c.num_attention_heads, dim=c.hidden_size,
                            hidden_dim=c.intermediate_size, dropout=c.hidden_dropout_prob,
                            attention_dropout=c.attention_probs_dropout_prob, activation=c.hidden_act,
                            initializer_range=c.initializer_range, seq_classif_dropout=classifier_dropout,
                            pad_token_id=c.pad_token_id, num_labels=c.num_labels, problem_type=c.problem_type)


def _check_layers(layers, num_layers: int) -> tuple[int, ...]:
    fn = "student_from_teacher"
    try:
        chosen = tuple(int(i) for i in layers)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: layers must be a sequence of layer indices, got {layers!r}") from None
    if not chosen or any(i < 0 or i >= num_layers for i in chosen) or list(chosen) != sorted(set(chosen)):
        raise ValueError(f"{fn}: layers must be distinct increasing indices in [0, {num_layers}) "
                         f"(the teacher has {num_layers} layers), got {list(chosen)}")
    return chosen


def student_from_teacher(teacher, layers=None):
    """A DistilBERT student initialised from a BERT ``teacher`` (BertModel, BertForMaskedLM,
    BertForPreTraining or BertForSequenceClassification): its word embeddings, its position table
    plus the segment-A embedding, its LayerNorms, the encoder layers ``layers`` (default: every other
    one) in that order, and its head (a classifier's pooler becomes ``pre_classifier``; the MLM head is
    copied). Every array is copied; the student shares nothing with the teacher. Returned in eval mode."""
    fn = "student_from_teacher"
    head = getattr(teacher, "head", None)
    if head not in STUDENT_CLASSES or not isinstance(getattr(teacher, "config", None), BertConfig):
        raise TypeError(f"{fn}: teacher must be a BERT model with one of the heads {sorted(STUDENT_CLASSES)}, "
                        f"got {type(teacher).__name__}")
    c = teacher.config
    chosen = _check_layers(every_other_layer(c.num_hidden_layers) if layers is None else layers,
                           c.num_hidden_layers)
    config = student_config(c, len(chosen))
    state = teacher.state_dict()
    src = "" if head == "model" else "bert."  # the teacher's backbone prefix
    dst = "" if head == "model" else "distilbert."
    if head == "sequence_classification" and f"{src}pooler.dense.weight" not in state:
        raise ValueError(f"{fn}: the teacher classifier has no pooler to initialise pre_classifier from")
    dtype = state[f"{src}embeddings.word_embeddings.weight"].dtype
    arrays = {f"{dst}embeddings.word_embeddings.weight": state[f"{src}embeddings.word_embeddings.weight"],
              # every token of sentence A gets W_seg[0]: folded into the positions, the sum is unchanged
              f"{dst}embeddings.position_embeddings.weight": state[f"{src}embeddings.position_embeddings.weight"]
              + state[f"{src}embeddings.token_type_embeddings.weight"][0],
              f"{dst}embeddings.LayerNorm.weight": state[f"{src}embeddings.LayerNorm.weight"],
              f"{dst}embeddings.LayerNorm.bias": state[f"{src}embeddings.LayerNorm.bias"]}
    for new, old in enumerate(chosen):
        for bert_name, distil_name in BERT_TO_DISTILBERT_BLOCK.items():
            for kind in ("weight", "bias"):
                arrays[f"{dst}transformer.layer.{new}.{distil_name}.{kind}"] = \
                    state[f"{src}encoder.layer.{old}.{bert_name}.{kind}"]
    for bert_name, distil_name in BERT_TO_DISTILBERT_HEADS.get(head, {}).items():
        for kind in ("weight", "bias"):
            arrays[f"{distil_name}.{kind}"] = state[f"{bert_name}.{kind}"]
    if head in ("masked_lm", "pretraining"):
        arrays["vocab_projector.bias"] = state["cls.predictions.bias"]
    student = STUDENT_CLASSES[head](config, dtype=dtype, initialize=False)
    student.load_state_dict({k: np.array(v, copy=True) for k, v in arrays.items()}, strict=False)
    missing = [k for k in student.state_dict() if k not in arrays and k != "vocab_projector.weight"]
    if missing:  # a programming error: every student weight has a source
        raise RuntimeError(f"{fn}: no teacher weight for {missing[:6]}")
    return student.eval()


def parameters_without_embeddings(model) -> int:
    """Trainable parameters outside the embeddings (tables and their LayerNorm; a tied MLM projection too):
    the book's 85.6 M of bert-base (pooler included) → 42.5 M of DistilBERT."""
    tables = {id(p) for name, p in model.named_parameters() if ".embeddings." in f".{name}"}
    return sum(p.data.size for p in model.parameters() if id(p) not in tables)


# ----------------------------------------------------------------------------------------------
# Task-specific distillation
# ----------------------------------------------------------------------------------------------
def distill_classifier(student, teacher, tokenizer, train_examples, eval_examples, task: str, training,
                       distillation: DistillationConfig | None, max_seq_length: int = 64, out_dir=None,
                       resume: bool = False, log=print, progress: bool = True):
    """Train ``student`` on a GLUE-style classification task with BERT's fine-tuning recipe
    (``models.finetune.Trainer``: AdamW, warm-up, clipping, length-bucketed batches, best epoch kept).

    With a ``DistillationConfig`` the loss is ``distillation_loss`` against the frozen ``teacher``
    (run in eval mode without gradients on each batch: logits and last hidden states); with
    ``distillation=None`` it is cross-entropy on the labels alone and the teacher is not used. Same
    ``training`` config and seed → the same batches and dropout masks in both cases.
    Returns (trainer, eval predictions, eval labels) with the best weights loaded."""
    from models.data.glue import compute_metrics, get_task
    from models.finetune import (Trainer, classification_loss, collate, encode_examples, predict_logits,
                                 predictions_from_logits)
    from models.training import evaluating

    fn = "distill_classifier"
    spec = get_task(task)
    if spec.is_regression:
        raise ValueError(f"{fn}: task {spec.name} is a regression; soft targets need classes")
    if student.config.num_labels != spec.num_labels:
        raise ValueError(f"{fn}: task {spec.name} needs num_labels={spec.num_labels}, the student has "
                         f"{student.config.num_labels}")
    train = encode_examples(train_examples, tokenizer, max_seq_length)
    evaluation = encode_examples(eval_examples, tokenizer, max_seq_length)
    pad = tokenizer.pad_token_id

    def distilled_loss(model, batch):
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        with evaluating(teacher):
            target = teacher(ids, attention_mask=mask, token_type_ids=types)  # (B, C), (B, T, H)
        out = model(ids, attention_mask=mask)
        parts = distillation_loss(out["logits"], target["logits"].data, batch["labels"], out["last_hidden_state"],
                                  target["last_hidden_state"].data, mask, distillation)
        return parts["loss"], {k: float(v.item()) for k, v in parts.items() if k != "loss"}

    seen = {}

    def evaluate(m):
        preds = predictions_from_logits(predict_logits(m, evaluation, 64, pad), False)
        seen[trainer.global_step] = preds
        return compute_metrics(spec, evaluation.labels, preds)

    loss_fn = classification_loss if distillation is None else distilled_loss
    trainer = Trainer(student, train.lengths, lambda idx: collate(train, idx, pad), loss_fn, evaluate,
                      spec.metrics[0], training, out_dir, log, progress)
    if resume:
        trainer.resume()
    trainer.fit()
    if trainer.best_step in seen:
        return trainer, seen[trainer.best_step], evaluation.labels
    with evaluating(student):
        preds = predictions_from_logits(predict_logits(student, evaluation, 64, pad), False)
    return trainer, preds, evaluation.labels


# ----------------------------------------------------------------------------------------------
# Latency
# ----------------------------------------------------------------------------------------------
def latency_per_sentence(model, data, batch_size: int = 32, repeats: int = 3, pad_token_id: int = 0,
                         threads: int | None = 1) -> float:
    """Seconds per sentence to classify ``data`` (an ``EncodedDataset``) in length-sorted batches of
    ``batch_size``, eval mode, no gradients: the median over ``repeats`` passes (after one warm-up
    pass) of the pass's time / number of sentences. ``threads`` limits the BLAS threads while
    timing (needs ``threadpoolctl``; otherwise the environment's OPENBLAS_NUM_THREADS applies)."""
    from contextlib import nullcontext

    from models.finetune import collate, length_bucketed_batches
    from models.training import evaluating

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"latency_per_sentence: repeats must be a positive int, got {repeats!r}")
    limit = nullcontext()
    if threads is not None:
        try:
            from threadpoolctl import threadpool_limits

            limit = threadpool_limits(limits=threads, user_api="blas")
        except ImportError:
            pass
    batches = [collate(data, idx, pad_token_id) for idx in length_bucketed_batches(data.lengths, batch_size)]

    def one_pass() -> float:
        start = time.perf_counter()
        for b in batches:
            model(b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"])
        return time.perf_counter() - start

    with limit, evaluating(model):
        one_pass()  # warm-up
        seconds = statistics.median(one_pass() for _ in range(repeats))
    return seconds / len(data)


__all__ = ["DistillationConfig", "soft_target_loss", "hidden_cosine_loss", "distillation_loss",
           "BERT_TO_DISTILBERT_BLOCK", "BERT_TO_DISTILBERT_HEADS", "every_other_layer", "student_config",
           "student_from_teacher", "parameters_without_embeddings", "distill_classifier", "latency_per_sentence"]
