"""BERT pre-training (book § 4.2.6): the self-supervised data set and the training loop.

Data, as Google's ``create_pretraining_data.py`` (Devlin et al. 2019, §3.1 and appendix A.2):

1. **Documents → sentences → token ids.** Documents are separated by blank lines; sentences are
   cut with ``split_sentences`` and WordPiece-tokenized.
2. **Segment pairs for Next Sentence Prediction.** Sentences of one document are packed into a
   chunk of about ``max_seq_length`` tokens (with probability ``short_seq_prob`` a shorter random
   target length, so the model also sees short inputs), cut at a random sentence boundary into
   A and B. With probability ½ B is replaced by text from a random *other* document
   (label NotNext = 1), else B is the real continuation (IsNext = 0). The pair is truncated to
   fit ``[CLS] A [SEP] B [SEP]``, removing tokens from the longer side, at a random end.
3. **Masked LM.** 15 % of the non-special tokens are chosen (exactly round(0.15 · n) per
   sequence, at least one); of these 80 % become ``[MASK]``, 10 % a random token, 10 % stay.
   Labels are the original ids at chosen positions and −100 elsewhere. *Static* masking draws the
   masks once (BERT); *dynamic* masking draws them anew for every batch (RoBERTa).

Everything random takes a seed; a batch's masks depend only on (seed, epoch, batch index), so a
resumed run sees exactly the batches of an uninterrupted one.

Loop (``models.training``): loss = L_MLM + L_NSP with the MLM logits computed only at masked
positions, AdamW (no decay on biases and LayerNorm), linear warm-up then linear decay, gradient
accumulation, gradient clipping at 1.0, checkpoints with ``--resume``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

import minigrad
from minigrad.optim import AdamW, get_linear_schedule_with_warmup

from models.bert.heads import IGNORE_INDEX
from models.text.normalize import split_sentences
from models.training import TrainConfig, Trainer, attach_dropout_generator, evaluating, weight_decay_groups

IS_NEXT, NOT_NEXT = 0, 1  # HF's next_sentence_label convention


# ----------------------------------------------------------------------------------------------
# 1. documents -> sentences -> ids
# ----------------------------------------------------------------------------------------------
def documents_from_text(text: str) -> list[list[str]]:
    """Google's input format: documents separated by blank lines; each document split into sentences."""
    if not isinstance(text, str):
        raise TypeError(f"documents_from_text: expected a str, got {type(text).__name__}")
    docs = [split_sentences(block) for block in text.replace("\r\n", "\n").split("\n\n")]
    return [d for d in docs if d]


def default_documents() -> list[list[str]]:
    """The embedded corpus: each of CPython's ``pydoc_data.topics`` help topics is one document."""
    from pydoc_data.topics import topics

    return [d for d in (split_sentences(topics[key]) for key in sorted(topics)) if d]


def tokenize_documents(documents: list[list[str]], tokenizer) -> list[list[list[int]]]:
    """Each sentence → its WordPiece ids (no special tokens); empty sentences and documents dropped."""
    out = []
    for doc in documents:
        ids = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(s)) for s in doc]
        ids = [s for s in ids if s]
        if ids:
            out.append(ids)
    return out


# ----------------------------------------------------------------------------------------------
# 2. NSP segment pairs
# ----------------------------------------------------------------------------------------------
def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng: np.random.Generator) -> None:
    """In place: drop tokens from the longer segment, from its front or back at random (so the
    model does not learn that truncated text always ends abruptly), until both fit."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _random_segment(documents, skip: int, target_length: int, rng) -> list[int]:
    """Text from a random document other than ``skip``, from a random sentence on, ≥ target_length."""
    other = int(rng.integers(0, len(documents) - 1))
    other += other >= skip  # uniform over the other documents
    doc = documents[other]
    tokens = []
    for sentence in doc[int(rng.integers(0, len(doc))):]:
        tokens.extend(sentence)
        if len(tokens) >= target_length:
            break
    return tokens


def pairs_from_document(documents, index: int, max_seq_length: int, short_seq_prob: float, rng):
    """(tokens_a, tokens_b, is_random_next) pairs from ``documents[index]`` (Google's algorithm).

    One change: Google forces a random B whenever a chunk holds a single sentence, which pushes
    NotNext above 50 %; here a real-next chunk of one sentence borrows the next sentence, and a
    document's lone last sentence whose coin says IsNext is dropped, so the classes stay 50 / 50.
    """
    document = documents[index]
    max_num_tokens = max_seq_length - 3  # room for [CLS], [SEP], [SEP]
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_num_tokens + 1))
    pairs, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            random_next = rng.random() < 0.5
            if not random_next and len(chunk) == 1 and i + 1 < len(document):
                i += 1  # borrow the next sentence so A and B can both be real
                chunk.append(document[i])
            if len(chunk) == 1 and not random_next:  # a lone last sentence has no real next:
                break  # dropped, so that every pair's label comes from the fair coin
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            tokens_a = [t for s in chunk[:a_end] for t in s]
            if random_next:
                tokens_b = _random_segment(documents, index, target - len(tokens_a), rng)
                i -= len(chunk) - a_end  # the unused sentences are not wasted: they start the next chunk
            else:
                tokens_b = [t for s in chunk[a_end:] for t in s]
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            if tokens_a and tokens_b:
                pairs.append((tokens_a, tokens_b, random_next))
            chunk, length = [], 0
        i += 1
    return pairs


@dataclass
class PretrainingData:
    """Padded arrays of N NSP pairs ``[CLS] A [SEP] B [SEP] [PAD]…`` (L = max_seq_length).

    ``special_tokens_mask`` marks ``[CLS]``, ``[SEP]`` and ``[PAD]``: never masked.
    ``next_sentence_label``: 0 IsNext, 1 NotNext. ``masked_input_ids``/``labels`` exist after
    ``apply_static_masking``.
    """

    input_ids: np.ndarray  # (N, L) int64
    token_type_ids: np.ndarray  # (N, L)
    attention_mask: np.ndarray  # (N, L)
    special_tokens_mask: np.ndarray  # (N, L) bool
    next_sentence_label: np.ndarray  # (N,)
    vocab_size: int
    mask_token_id: int
    masked_input_ids: np.ndarray | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def subset(self, index) -> "PretrainingData":
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return PretrainingData(self.input_ids[index], self.token_type_ids[index], self.attention_mask[index],
                               self.special_tokens_mask[index], self.next_sentence_label[index],
                               self.vocab_size, self.mask_token_id, pick(self.masked_input_ids), pick(self.labels))


def create_pretraining_data(documents: list[list[list[int]]], tokenizer, max_seq_length: int = 128,
                            short_seq_prob: float = 0.1, dupe_factor: int = 1, seed: int = 0) -> PretrainingData:
    """NSP pairs from tokenized documents (``dupe_factor`` passes, each with new random cuts)."""
    if not isinstance(max_seq_length, int) or max_seq_length < 5:
        raise ValueError(f"create_pretraining_data: max_seq_length must be an int >= 5, got {max_seq_length!r}")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise ValueError(f"create_pretraining_data: short_seq_prob must be in [0, 1], got {short_seq_prob!r}")
    if len(documents) < 2:
        raise ValueError(f"create_pretraining_data: NSP needs at least 2 documents (random next segments come "
                         f"from another document), got {len(documents)}")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(dupe_factor):
        for index in range(len(documents)):
            pairs += pairs_from_document(documents, index, max_seq_length, short_seq_prob, rng)
    order = rng.permutation(len(pairs))
    return pair_arrays([(a, b, NOT_NEXT if random_next else IS_NEXT) for a, b, random_next in pairs], order,
                       tokenizer, max_seq_length)


def pair_arrays(pairs: list, order, tokenizer, max_seq_length: int) -> PretrainingData:
    """``[CLS] A [SEP] B [SEP] [PAD]…`` rows of (tokens_a, tokens_b, label) ``pairs`` taken in ``order``;
    the label goes to ``next_sentence_label`` (NSP here; ALBERT's sentence order in ``models.pretraining_data``)."""
    N, L = len(pairs), max_seq_length
    ids = np.full((N, L), tokenizer.pad_token_id, dtype=np.int64)
    types = np.zeros((N, L), dtype=np.int64)
    attn = np.zeros((N, L), dtype=np.int64)
    special = np.ones((N, L), dtype=bool)
    labels = np.zeros(N, dtype=np.int64)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    for row, k in enumerate(order):
        a, b, label = pairs[k]
        seq = [cls_id, *a, sep_id, *b, sep_id]
        n = len(seq)
        ids[row, :n] = seq
        types[row, len(a) + 2:n] = 1  # segment B, including its [SEP]
        attn[row, :n] = 1
        special[row, 1:len(a) + 1] = False
        special[row, len(a) + 2:n - 1] = False
        labels[row] = label
    return PretrainingData(ids, types, attn, special, labels, len(tokenizer.vocab), tokenizer.mask_token_id)


# ----------------------------------------------------------------------------------------------
# 3. masked LM
# ----------------------------------------------------------------------------------------------
def mask_tokens(input_ids: np.ndarray, special_tokens_mask: np.ndarray, vocab_size: int, mask_token_id: int,
                rng: np.random.Generator, mlm_probability: float = 0.15, max_predictions: int | None = None):
    """BERT's masking of a batch (B, T) → (masked ids, labels).

    Per row: k = max(1, round(p · n)) of the n non-special tokens chosen uniformly (at most
    ``max_predictions``); each chosen token → [MASK] w.p. 0.8, a uniform random id w.p. 0.1,
    itself w.p. 0.1. labels = original id at chosen positions, −100 elsewhere.
    """
    ids = np.asarray(input_ids)
    special = np.asarray(special_tokens_mask, dtype=bool)
    if ids.ndim != 2 or special.shape != ids.shape:
        raise ValueError(f"mask_tokens: input_ids and special_tokens_mask must both be (B, T), got "
                         f"{ids.shape} and {special.shape}")
    if not 0.0 < mlm_probability < 1.0:
        raise ValueError(f"mask_tokens: mlm_probability must be in (0, 1), got {mlm_probability!r}")
    B, T = ids.shape
    candidates = ~special  # (B, T)
    n = candidates.sum(axis=1)  # (B,)
    k = np.where(n > 0, np.maximum(1, np.rint(n * mlm_probability)), 0).astype(np.int64)
    if max_predictions is not None:
        k = np.minimum(k, max_predictions)
    keys = np.where(candidates, rng.random((B, T)), 2.0)  # specials sort last
    order = np.argsort(keys, axis=1, kind="stable")  # (B, T) a random permutation of the candidates
    take = np.arange(T)[None, :] < k[:, None]  # (B, T) the first k of each row
    chosen = np.zeros((B, T), dtype=bool)
    chosen[np.nonzero(take)[0], order[take]] = True
    u = rng.random((B, T))
    random_ids = rng.integers(0, vocab_size, (B, T))
    masked = np.where(chosen & (u < 0.8), mask_token_id, ids)
    masked = np.where(chosen & (u >= 0.8) & (u < 0.9), random_ids, masked)
    labels = np.where(chosen, ids, IGNORE_INDEX)
    return masked.astype(np.int64), labels.astype(np.int64)


def apply_static_masking(data: PretrainingData, seed: int = 0, mlm_probability: float = 0.15,
                         max_predictions: int | None = None) -> PretrainingData:
    """BERT's static masking: draw each sequence's masks once, reuse them every epoch."""
    rng = np.random.default_rng([seed, 0x5EED])
    data.masked_input_ids, data.labels = mask_tokens(data.input_ids, data.special_tokens_mask, data.vocab_size,
                                                     data.mask_token_id, rng, mlm_probability, max_predictions)
    return data


def iterate_batches(data: PretrainingData, batch_size: int, epoch: int, seed: int, masking: str = "dynamic",
                    start: int = 0, mlm_probability: float = 0.15):
    """Yield (batch index, batch dict) of epoch ``epoch`` from batch ``start`` on.

    The order is a permutation drawn from (seed, epoch); dynamic masks from (seed, epoch, batch),
    so any batch can be rebuilt without replaying the ones before it. Each batch is trimmed to
    its longest sequence.
    """
    if masking not in ("dynamic", "static"):
        raise ValueError(f"iterate_batches: masking must be 'dynamic' or 'static', got {masking!r}")
    if masking == "static" and data.labels is None:
        raise ValueError("iterate_batches: static masking needs apply_static_masking(data) first")
    order = np.random.default_rng([seed, epoch]).permutation(len(data))
    for b in range(start, num_batches(len(data), batch_size)):
        rows = order[b * batch_size:(b + 1) * batch_size]
        T = int(data.attention_mask[rows].sum(axis=1).max())
        if masking == "static":
            ids, labels = data.masked_input_ids[rows, :T], data.labels[rows, :T]
        else:
            rng = np.random.default_rng([seed, epoch, b])
            ids, labels = mask_tokens(data.input_ids[rows, :T], data.special_tokens_mask[rows, :T],
                                      data.vocab_size, data.mask_token_id, rng, mlm_probability)
        yield b, {"input_ids": ids, "token_type_ids": data.token_type_ids[rows, :T],
                  "attention_mask": data.attention_mask[rows, :T], "labels": labels,
                  "next_sentence_label": data.next_sentence_label[rows]}


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------
@dataclass
class PretrainConfig:
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum_steps: int = 1
    max_grad_norm: float = 1.0
    masking: str = "dynamic"
    seed: int = 0
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: at each epoch end only)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "grad_accum_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"PretrainConfig: {name} must be a positive int, got {v!r}")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise ValueError(f"PretrainConfig: warmup_ratio must be in [0, 1], got {self.warmup_ratio!r}")
        if self.masking not in ("dynamic", "static"):
            raise ValueError(f"PretrainConfig: masking must be 'dynamic' or 'static', got {self.masking!r}")


parameter_groups = weight_decay_groups  # BERT's AdamW groups: no decay on biases and LayerNorm


def pretraining_step_metrics(out) -> dict:
    """Losses and accuracies of one forward pass (MLM accuracy over the masked tokens only)."""
    mlm_logits, mlm_labels = out["masked_lm_logits"].data, out["masked_lm_labels"]
    nsp_logits = out["seq_relationship_logits"].data
    return {"loss": float(out["loss"].data), "mlm_loss": float(out["masked_lm_loss"].data),
            "nsp_loss": float(out["next_sentence_loss"].data),
            "mlm_correct": int((mlm_logits.argmax(-1) == mlm_labels).sum()), "mlm_count": int(mlm_labels.size),
            "nsp_logits": nsp_logits}


@dataclass
class History:
    """Per optimizer step: losses, accuracies, learning rate."""

    step: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    mlm_loss: list = field(default_factory=list)
    nsp_loss: list = field(default_factory=list)
    mlm_accuracy: list = field(default_factory=list)
    nsp_accuracy: list = field(default_factory=list)
    lr: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_steps(cls, steps: dict) -> "History":
        """From the per-step columns of a ``models.training`` history."""
        return cls(**{name: list(steps.get(name, [])) for name in cls.__dataclass_fields__})


def pretraining_loss(model, batch) -> tuple:
    """L_MLM + L_NSP of one batch (MLM logits only at the masked positions), with its parts and
    accuracies as metrics, for ``models.training``."""
    out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], labels=batch["labels"],
                next_sentence_label=batch["next_sentence_label"], skip_padding=True)
    m = pretraining_step_metrics(out)
    nsp_labels = batch["next_sentence_label"]
    nsp_correct = int((m["nsp_logits"].argmax(-1) == nsp_labels).sum())
    return out["loss"], {"mlm_loss": m["mlm_loss"], "nsp_loss": m["nsp_loss"],  # accuracies: (hits, total)
                         "mlm_accuracy": (m["mlm_correct"], m["mlm_count"]),
                         "nsp_accuracy": (nsp_correct, len(nsp_labels))}


def pretraining_trainer(model, num_examples: int, config: PretrainConfig, loss_fn: Callable = pretraining_loss,
                        checkpoint_path=None, max_steps: int | None = None, progress: bool = False,
                        log: Callable | None = None, time_budget: float | None = None, rngs: dict | None = None,
                        run_config: dict | None = None, total_steps: int | None = None) -> Trainer:
    """The ``models.training.Trainer`` of a pre-training run of ``num_examples`` sequences: AdamW (no decay on
    biases and LayerNorm), linear warm-up then decay over all the optimizer steps, clipping, accumulation,
    seeded dropout. ``loss_fn(model, batch)``: the objective (BERT's MLM + NSP by default; RoBERTa's, ALBERT's
    and ELECTRA's in ``models.pretraining_data``); ``rngs``: more random streams its steps draw from (saved in
    checkpoints); ``run_config``: more options a resumed run must share; ``total_steps``: the length of the
    schedule when the run is a number of steps rather than of epochs (with ``max_steps``)."""
    steps_per_epoch = num_batches(num_batches(num_examples, config.batch_size), config.grad_accum_steps)
    total_steps = total_steps or steps_per_epoch * config.epochs
    optimizer = AdamW(parameter_groups(model, config.weight_decay), lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    generator = minigrad.Generator(config.seed)  # dropout masks
    attach_dropout_generator(model, generator)
    return Trainer(model, optimizer, loss_fn,
                   TrainConfig(epochs=config.epochs, grad_accum_steps=config.grad_accum_steps,
                               max_grad_norm=config.max_grad_norm, max_steps=max_steps, time_budget=time_budget,
                               checkpoint_every=config.checkpoint_every),
                   scheduler=scheduler, checkpoint_path=checkpoint_path,
                   rngs={"dropout": generator, "global": minigrad.default_generator, **(rngs or {})},
                   run_config={**{k: v for k, v in asdict(config).items() if k != "checkpoint_every"},
                               **(run_config or {})},
                   name="pretrain", log=log, progress=progress)


def pretrain(model, data: PretrainingData, config: PretrainConfig, checkpoint_path=None, resume: bool = False,
             max_steps: int | None = None, progress: bool = False, log: Callable | None = None,
             time_budget: float | None = None) -> History:
    """Train ``model`` (a ``BertForPreTraining``) on ``data`` with ``models.training``; returns the
    per-step history and leaves the model in eval mode.

    ``checkpoint_path``: one safetensors file rewritten atomically at each epoch end (and every
    ``config.checkpoint_every`` steps); ``resume=True`` continues from it, and the result equals an
    uninterrupted run. ``max_steps`` stops early (after a checkpoint), e.g. to test resuming;
    ``time_budget`` (seconds, all sessions) too.
    ``progress`` draws a bar (on a terminal only); ``log(line)`` gets one line per finished epoch.
    """
    loop = pretraining_trainer(model, len(data), config, pretraining_loss, checkpoint_path, max_steps, progress, log,
                               time_budget)
    if resume:
        loop.resume()

    def batches(epoch: int):  # masks depend on (seed, epoch, batch) only: any batch can be rebuilt
        return (batch for _, batch in iterate_batches(data, config.batch_size, epoch, config.seed, config.masking))

    loop.fit(batches)
    model.eval()
    return History.from_steps(loop.history["steps"])


def evaluate(model, data: PretrainingData, batch_size: int = 64, seed: int = 1234) -> dict:
    """MLM accuracy (masked tokens) and NSP accuracy on ``data`` with fixed, seeded masks."""
    correct = count = nsp_correct = 0
    loss_sum = 0.0
    with evaluating(model):
        for _, batch in iterate_batches(data, batch_size, 0, seed, "dynamic"):
            out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                        labels=batch["labels"], next_sentence_label=batch["next_sentence_label"], skip_padding=True)
            m = pretraining_step_metrics(out)
            correct += m["mlm_correct"]
            count += m["mlm_count"]
            loss_sum += m["mlm_loss"] * m["mlm_count"]
            nsp_correct += int((m["nsp_logits"].argmax(-1) == batch["next_sentence_label"]).sum())
    return {"mlm_accuracy": correct / max(count, 1), "mlm_loss": loss_sum / max(count, 1),
            "mlm_perplexity": math.exp(min(loss_sum / max(count, 1), 50.0)),
            "nsp_accuracy": nsp_correct / max(len(data), 1)}
