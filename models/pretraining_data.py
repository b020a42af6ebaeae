"""The pre-training data of BERT's successors (book §§ 4.4–4.6): what RoBERTa, ALBERT and ELECTRA feed
their encoders. BERT's pieces (``models.bert_pretraining``: tokenized documents, ``mask_tokens``,
``truncate_seq_pair``, the pair arrays) are reused; what is new is here.

**RoBERTa** (Liu et al. 2019, § 4):

* *FULL-SENTENCES* inputs (§ 4.2): no sentence pairs, no NSP. Each input is packed with whole
  sentences taken contiguously from the corpus, up to the maximum length; at the end of a document
  the packing goes on into the next one with a separator token between them (``pack_full_sentences``).
  Almost every row is full: no compute is spent on padding.
* *dynamic masking* (§ 4.1): a new 15 % mask every time a sequence is seen (``epoch_masks`` keyed by
  the epoch), against BERT's *static* masking, where the data was copied 10 times with different
  masks — over 40 epochs each mask is seen 4 times (keyed by epoch mod ``copies``).
* *large batches* (§ 5): 8k sequences, reached on one machine by gradient accumulation — the loop
  (``models.training``) sums the gradients of ``grad_accum_steps`` micro-batches and steps once.
  With FULL-SENTENCES every row has the same number of masked tokens, so 4 × 8 accumulated equal
  one batch of 32 exactly.

**ALBERT** (Lan et al. 2020, § 3.1): *sentence-order prediction*. Two consecutive segments of one
document, in order (label 0) or swapped (label 1), with probability ½ each (``create_sop_data``).
Unlike NSP's random second segment, both segments share the topic: only their order is left to learn.

**ELECTRA** (Clark et al. 2020, § 2): *replaced-token detection*. The generator's predictions at the
masked positions are **sampled** (``sample_replacements``: exact samples of the softmax, by its inverse CDF),
put in place of the masked tokens, and every token is labelled replaced or original
(``electra_discriminator_inputs``: 1 exactly where the token differs from the original, so a sample
equal to the original is original). ``roc_auc`` scores the discriminator.

Every draw is seeded: masks depend on (seed, epoch), batch order on (seed, epoch), so a resumed run
rebuilds exactly the batches of an uninterrupted one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.bert.heads import IGNORE_INDEX
from models.bert_pretraining import PretrainingData, mask_tokens, num_batches, pair_arrays, truncate_seq_pair
from models.metrics.classification import average_ranks

IN_ORDER, SWAPPED = 0, 1  # HF's sentence_order_label
MASKINGS = ("dynamic", "static")
STATIC_COPIES = 10  # BERT's dupe_factor: the data copied 10 times with different masks


# ----------------------------------------------------------------------------------------------
# RoBERTa: FULL-SENTENCES packing
# ----------------------------------------------------------------------------------------------
@dataclass
class PackedSequences:
    """Rows ``[CLS] s₁ s₂ … [SEP]`` of whole contiguous sentences (a ``[SEP]`` also between two
    documents inside a row), right-padded to L = max_seq_length; one segment, so ``token_type_ids`` are 0.
    ``special_tokens_mask`` marks ``[CLS]``, every ``[SEP]`` and the padding: never masked."""

    input_ids: np.ndarray  # (N, L) int64
    attention_mask: np.ndarray  # (N, L)
    special_tokens_mask: np.ndarray  # (N, L) bool
    vocab_size: int
    mask_token_id: int

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def token_type_ids(self) -> np.ndarray:
        return np.zeros_like(self.input_ids)

    def subset(self, index) -> "PackedSequences":
        return PackedSequences(self.input_ids[index], self.attention_mask[index], self.special_tokens_mask[index],
                               self.vocab_size, self.mask_token_id)


def _sentence_stream(documents: list, budget: int):
    """(sentence ids, starts a new document) in corpus order; a sentence longer than ``budget``
    tokens is cut into pieces that fit (nothing is lost)."""
    for doc in documents:
        for i, sentence in enumerate(doc):
            for start in range(0, len(sentence), budget):
                yield sentence[start:start + budget], i == 0 and start == 0


def pack_full_sentences(documents: list, tokenizer, max_seq_length: int = 128) -> PackedSequences:
    """FULL-SENTENCES (Liu et al. § 4.2): fill each row with whole sentences in corpus order until the next
    one would not fit, crossing document boundaries with an extra ``[SEP]``.

    ``documents``: tokenized documents (lists of sentences of token ids, ``bert_pretraining.tokenize_documents``).
    ``tokenizer`` gives ``cls_token_id``, ``sep_token_id``, ``pad_token_id``, ``mask_token_id`` and ``vocab``.
    """
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int) or max_seq_length < 4:
        raise ValueError(f"pack_full_sentences: max_seq_length must be an int >= 4, got {max_seq_length!r}")
    if not documents or not any(documents):
        raise ValueError("pack_full_sentences: got no sentences (documents is empty)")
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    budget = max_seq_length - 2  # room for [CLS] and the final [SEP]
    rows, row = [], []
    for sentence, new_document in _sentence_stream(documents, budget):
        if not sentence:
            continue
        boundary = [sep_id] if new_document and row else []  # the separator between two documents
        if len(row) + len(boundary) + len(sentence) > budget:
            rows.append(row)
            row, boundary = [], []
        row += boundary + list(sentence)
    if row:
        rows.append(row)
    N, L = len(rows), max_seq_length
    ids = np.full((N, L), tokenizer.pad_token_id, dtype=np.int64)
    attention = np.zeros((N, L), dtype=np.int64)
    for r, tokens in enumerate(rows):
        seq = [cls_id, *tokens, sep_id]
        ids[r, :len(seq)] = seq
        attention[r, :len(seq)] = 1
    special = (attention == 0) | (ids == cls_id) | (ids == sep_id)
    return PackedSequences(ids, attention, special, len(tokenizer.vocab), tokenizer.mask_token_id)


# ----------------------------------------------------------------------------------------------
# Dynamic vs static masking
# ----------------------------------------------------------------------------------------------
def mask_key(epoch: int, masking: str, copies: int = STATIC_COPIES) -> int:
    """Which mask a sequence wears in ``epoch``: a new one every epoch (dynamic), or one of ``copies``
    fixed ones in turn (static: the data copied ``copies`` times, each copy masked once)."""
    if masking not in MASKINGS:
        raise ValueError(f"mask_key: masking must be one of {MASKINGS}, got {masking!r}")
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"mask_key: copies must be an int >= 1, got {copies!r}")
    return epoch if masking == "dynamic" else epoch % copies


def epoch_masks(data, epoch: int, seed: int, masking: str = "dynamic", copies: int = STATIC_COPIES,
                mlm_probability: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """(masked ids, labels) of every row of ``data`` for ``epoch``: BERT's 15 % (80 / 10 / 10) masking
    (``bert_pretraining.mask_tokens``), drawn from (seed, mask_key(epoch))."""
    rng = np.random.default_rng([seed, 0x4D41534B, mask_key(epoch, masking, copies)])
    return mask_tokens(data.input_ids, data.special_tokens_mask, data.vocab_size, data.mask_token_id, rng,
                       mlm_probability)


def mlm_batches(data, batch_size: int, epoch: int, seed: int, masking: str = "dynamic",
                copies: int = STATIC_COPIES, mlm_probability: float = 0.15):
    """The batches of ``epoch``: rows in an order drawn from (seed, epoch), each batch trimmed to its
    longest row. A batch: ``input_ids`` (masked), ``labels`` (−100 except at the masked positions),
    ``original_ids``, ``attention_mask``, ``token_type_ids`` and, for sentence pairs, ``pair_label``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"mlm_batches: batch_size must be a positive int, got {batch_size!r}")
    masked, labels = epoch_masks(data, epoch, seed, masking, copies, mlm_probability)
    order = np.random.default_rng([seed, epoch]).permutation(len(data))
    types = data.token_type_ids
    for b in range(num_batches(len(data), batch_size)):
        rows = order[b * batch_size:(b + 1) * batch_size]
        T = int(data.attention_mask[rows].sum(axis=1).max())
        batch = {"input_ids": masked[rows, :T], "labels": labels[rows, :T], "original_ids": data.input_ids[rows, :T],
                 "attention_mask": data.attention_mask[rows, :T], "token_type_ids": types[rows, :T]}
        if isinstance(data, PretrainingData):
            batch["pair_label"] = data.next_sentence_label[rows]
        yield batch


# ----------------------------------------------------------------------------------------------
# ALBERT: sentence-order prediction
# ----------------------------------------------------------------------------------------------
def sop_pairs_from_document(document: list, max_seq_length: int, short_seq_prob: float,
                            rng: np.random.Generator) -> list[tuple[list, list, int]]:
    """(tokens_a, tokens_b, label) pairs of two *consecutive* segments of ``document`` (ALBERT's
    ``create_pretraining_data`` with sentence order): sentences are gathered into a chunk of about
    ``max_seq_length`` tokens (a random shorter target with probability ``short_seq_prob``), cut at a
    random sentence boundary into A and B, and swapped with probability ½ (label 1, else 0).

    A chunk of one sentence borrows the next one; a document's lone last sentence is dropped, so every
    pair holds two real consecutive segments and every label comes from the fair coin.
    """
    max_num_tokens = max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    target = int(rng.integers(2, max_num_tokens + 1)) if rng.random() < short_seq_prob else max_num_tokens
    pairs, chunk, length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i])
        if i == len(document) - 1 or length >= target:
            if len(chunk) == 1 and i + 1 < len(document):
                i += 1  # borrow the next sentence: a pair needs two segments
                chunk.append(document[i])
            if len(chunk) >= 2:
                a_end = int(rng.integers(1, len(chunk)))
                tokens_a = [t for s in chunk[:a_end] for t in s]
                tokens_b = [t for s in chunk[a_end:] for t in s]
                swapped = rng.random() < 0.5
                if swapped:
                    tokens_a, tokens_b = tokens_b, tokens_a
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                if tokens_a and tokens_b:
                    pairs.append((tokens_a, tokens_b, SWAPPED if swapped else IN_ORDER))
            chunk, length = [], 0
        i += 1
    return pairs


def create_sop_data(documents: list, tokenizer, max_seq_length: int = 128, short_seq_prob: float = 0.1,
                    dupe_factor: int = 1, seed: int = 0) -> PretrainingData:
    """Sentence-order pairs ``[CLS] A [SEP] B [SEP]`` of tokenized documents; ``next_sentence_label`` holds
    the sentence-order label (0 in order, 1 swapped). ``dupe_factor`` passes, each with new cuts."""
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int) or max_seq_length < 5:
        raise ValueError(f"create_sop_data: max_seq_length must be an int >= 5, got {max_seq_length!r}")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise ValueError(f"create_sop_data: short_seq_prob must be in [0, 1], got {short_seq_prob!r}")
    rng = np.random.default_rng(seed)
    pairs = [pair for _ in range(dupe_factor) for doc in documents
             for pair in sop_pairs_from_document(doc, max_seq_length, short_seq_prob, rng)]
    if not pairs:
        raise ValueError("create_sop_data: no document has two sentences; sentence order needs at least two")
    return pair_arrays(pairs, rng.permutation(len(pairs)), tokenizer, max_seq_length)


# ----------------------------------------------------------------------------------------------
# ELECTRA: replaced-token detection
# ----------------------------------------------------------------------------------------------
def sample_replacements(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token per row of the generator's logits (N, V), drawn from p = softmax(logits) by inverting its
    cumulative distribution: with u ~ U(0, 1), the token is the first v whose P(≤ v) = Σ_{w ≤ v} p_w exceeds u
    — an exact sample of the categorical distribution, on arrays (no gradient), one uniform per row."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"sample_replacements: logits must be (N, V), got shape {logits.shape}")
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))  # (N, V), unnormalised softmax
    cumulative = np.cumsum(weights, axis=-1)  # (N, V)
    u = rng.random(len(logits)) * cumulative[:, -1]  # (N,) scaled to each row's total
    drawn = np.array([np.searchsorted(row, x, side="right") for row, x in zip(cumulative, u)], dtype=np.int64)
    return np.minimum(drawn, logits.shape[-1] - 1)  # u < total always; the clip only guards rounding


def electra_discriminator_inputs(original_ids, labels, sampled) -> tuple[np.ndarray, np.ndarray]:
    """The discriminator's input and labels: the original ids with the ``sampled`` tokens put at the
    masked positions (``labels`` ≠ −100, in row-major order, as the generator's ``masked_lm_logits``),
    and 1 exactly where the result differs from the original (a sample equal to it is original)."""
    original = np.asarray(original_ids)
    labels = np.asarray(labels)
    if labels.shape != original.shape:
        raise ValueError(f"electra_discriminator_inputs: labels {labels.shape} and original_ids {original.shape} "
                         "must have the same shape")
    positions = np.flatnonzero(labels.reshape(-1) != IGNORE_INDEX)
    sampled = np.asarray(sampled)
    if sampled.shape != positions.shape:
        raise ValueError(f"electra_discriminator_inputs: {len(positions)} masked positions but {sampled.size} "
                         "sampled tokens")
    replaced = original.copy().reshape(-1)
    replaced[positions] = sampled
    replaced = replaced.reshape(original.shape)
    return replaced, (replaced != original).astype(np.int64)


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the probability that a positive scores above a negative (ties ½),
    from the ranks (Mann–Whitney U):  AUC = (Σ ranks of positives − P(P+1)/2) / (P·N).
    NaN when one class is absent (the AUC is undefined)."""
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"roc_auc: {labels.size} labels but {scores.size} scores")
    positive = labels == 1
    P, N = int(positive.sum()), int((~positive).sum())
    if P == 0 or N == 0:
        return float("nan")
    ranks = average_ranks(scores)  # 1-based, ties averaged
    return float((ranks[positive].sum() - P * (P + 1) / 2) / (P * N))


# ----------------------------------------------------------------------------------------------
# The objectives, as ``models.training`` loss functions: (loss, metrics) of one batch
# ----------------------------------------------------------------------------------------------
def _hits(logits: np.ndarray, targets: np.ndarray) -> tuple[int, int]:
    return int((logits.argmax(-1) == targets).sum()), int(targets.size)


def mlm_objective(model, batch: dict) -> tuple:
    """RoBERTa's: the masked-LM loss alone (no NSP); MLM accuracy over the masked tokens."""
    out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], labels=batch["labels"],
                skip_padding=True)
    return out["loss"], {"mlm_accuracy": _hits(out["masked_lm_logits"].data, out["masked_lm_labels"])}


def mlm_nsp_objective(model, batch: dict) -> tuple:
    """BERT's: L_MLM + L_NSP (``bert_pretraining.pretraining_loss``) on a batch of ``mlm_batches``."""
    from models.bert_pretraining import pretraining_loss

    return pretraining_loss(model, {**batch, "next_sentence_label": batch["pair_label"]})


def mlm_sop_objective(model, batch: dict) -> tuple:
    """ALBERT's: L_MLM + L_SOP; MLM accuracy (masked tokens) and sentence-order accuracy."""
    out = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"], labels=batch["labels"],
                sentence_order_label=batch["pair_label"], skip_padding=True)
    return out["loss"], {"mlm_loss": float(out["masked_lm_loss"].data),
                         "sop_loss": float(out["sentence_order_loss"].data),
                         "mlm_accuracy": _hits(out["masked_lm_logits"].data, out["masked_lm_labels"]),
                         "sop_accuracy": _hits(out["sop_logits"].data, batch["pair_label"])}


def rtd_objective(rng: np.random.Generator):
    """ELECTRA's: L_MLM + λ·L_RTD of an ``ElectraPretrainer``, the generator's samples drawn from ``rng``
    (a step stream: put it in the Trainer's ``rngs`` so that a resumed run draws the same samples)."""
    def objective(pair, batch: dict) -> tuple:
        return pair(batch, rng)

    return objective


def evaluate_objective(model, batches, objective) -> dict:
    """The objective's metrics over ``batches`` in eval mode without gradients: (hits, total) metrics pooled
    over all batches, numbers averaged over them, and ``loss``."""
    from models.training import evaluating

    sums: dict = {}
    count = 0
    with evaluating(model):
        for batch in batches:
            loss, metrics = objective(model, batch)
            count += 1
            for key, value in {"loss": float(loss.data), **metrics}.items():
                if isinstance(value, tuple):
                    hits, total = sums.get(key, (0, 0))
                    sums[key] = (hits + value[0], total + value[1])
                else:
                    sums[key] = sums.get(key, 0.0) + value
    if not count:
        raise ValueError("evaluate_objective: got no batches")
    return {key: (value[0] / max(value[1], 1) if isinstance(value, tuple) else value / count)
            for key, value in sums.items()}


__all__ = ["PackedSequences", "pack_full_sentences", "mask_key", "epoch_masks", "mlm_batches",
           "sop_pairs_from_document", "create_sop_data", "sample_replacements", "electra_discriminator_inputs",
           "roc_auc", "mlm_objective", "mlm_nsp_objective", "mlm_sop_objective", "rtd_objective",
           "evaluate_objective", "IN_ORDER", "SWAPPED", "MASKINGS", "STATIC_COPIES"]
