"""The task heads on top of ``BertModel`` (book ch. 4: pre-training and fine-tuning), HF's names.

    BertForPreTraining               cls.predictions (MLM) + cls.seq_relationship (NSP)
    BertForMaskedLM                  cls.predictions
    BertForSequenceClassification    pooler → dropout → classifier
    BertForQuestionAnswering         qa_outputs → start / end logits

The MLM decoder is *tied* to the word embeddings (Press & Wolf 2017): ``cls.predictions.decoder``
holds the very Parameter ``bert.embeddings.word_embeddings.weight``, so the V × H matrix is learnt
once. Pre-training computes the vocabulary logits only at the masked positions: the hidden states
are gathered *before* the 30k-way projection, which is most of the compute of a small BERT.
"""
from __future__ import annotations

import numpy as np

from minigrad import nn
from minigrad.nn.dropout import Dropout
from minigrad.nn.losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.parameter import Parameter
from minigrad.tensor import Tensor

from models.bert.config import BertConfig
from models.bert.functional import activation, move_rows
from models.bert.modeling import BertModel, BertPreTrainedModel, ModelOutput

IGNORE_INDEX = -100  # label of the positions that are not predicted (HF / PyTorch convention)


# ----------------------------------------------------------------------------------------------
# Masked language model head (Devlin et al. §3.1 "Task #1: Masked LM")
# ----------------------------------------------------------------------------------------------
class BertPredictionHeadTransform(nn.Module):
    """h' = LayerNorm(act(h W_tᵀ + b_t))  — a last non-linear layer before the vocabulary."""

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, dtype=dtype)
        self.LayerNorm = LayerNorm(config.hidden_size, eps=config.layer_norm_eps, dtype=dtype)
        self.hidden_act = config.hidden_act

    def forward(self, h: Tensor) -> Tensor:
        return self.LayerNorm(activation(self.dense(h), self.hidden_act))  # (..., H)


class BertLMPredictionHead(nn.Module):
    """logits = h' E_tokᵀ + b  over the V words, E_tok the (tied) word-embedding matrix (V, H)."""

    def __init__(self, config: BertConfig, word_embeddings: Parameter, dtype=None):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config, dtype)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False, dtype=dtype)
        self.bias = Parameter(np.zeros(config.vocab_size, dtype=self.decoder.weight.dtype))
        self.tie(word_embeddings)

    def tie(self, word_embeddings: Parameter) -> None:
        """Share the embedding matrix and the bias with the decoder (same Parameter objects, so
        ``state_dict`` lists ``decoder.weight`` and ``decoder.bias`` too, as HF's does)."""
        self.decoder.weight = word_embeddings
        self.decoder.bias = self.bias

    def forward(self, h: Tensor) -> Tensor:
        return self.decoder(self.transform(h))  # (..., V)


def gather_masked(sequence_output: Tensor, labels) -> tuple[Tensor, np.ndarray]:
    """The hidden states (N, H) at the N positions whose label is not −100, and their labels (N,)."""
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    B, T, H = sequence_output.shape
    if labels.shape != (B, T):
        raise ValueError(f"masked LM: labels must have shape (batch, seq_len)={(B, T)}, got {labels.shape}")
    flat = labels.reshape(-1)
    positions = np.flatnonzero(flat != IGNORE_INDEX)  # (N,)
    hidden = move_rows(sequence_output.reshape(B * T, H), positions, np.arange(len(positions)), len(positions))
    return hidden, flat[positions]  # (N, H), (N,)


def masked_lm_loss(head: BertLMPredictionHead, sequence_output: Tensor, labels, vocab_size: int):
    """Masked-LM loss computed only where a token was masked:

        L_MLM = −(1/N) Σ_{i masked} log softmax(h'_i E_tokᵀ + b)[x_i]

    Equal to cross-entropy over the full (B, T, V) logits with ``ignore_index=-100``, at
    roughly 15 % of the cost. Returns (loss, logits (N, V), targets (N,)).
    """
    hidden, targets = gather_masked(sequence_output, labels)  # (N, H), (N,)
    if targets.size and (targets.min() < 0 or targets.max() >= vocab_size):
        raise ValueError(f"masked LM: labels must be -100 or lie in [0, vocab_size={vocab_size}), "
                         f"got min {targets.min()} and max {targets.max()}")
    logits = head(hidden)  # (N, V)
    if targets.size == 0:  # nothing masked in this batch: a zero loss that still has a graph
        return (logits.sum() * 0.0), logits, targets
    return cross_entropy(logits, targets), logits, targets


def _check_class_labels(owner: str, labels, n: int, classes: int) -> np.ndarray:
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(f"{owner}: expected {n} integer class labels of shape ({n},), got "
                         f"shape {labels.shape} dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"{owner}: labels must lie in [0, {classes}), got min {labels.min()} max {labels.max()}")
    return labels


# ----------------------------------------------------------------------------------------------
# Pre-training: MLM + NSP (Devlin et al. §3.1)
# ----------------------------------------------------------------------------------------------
class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig, word_embeddings: Parameter, dtype=None):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, word_embeddings, dtype)
        self.seq_relationship = nn.Linear(config.hidden_size, 2, dtype=dtype)  # NSP: IsNext / NotNext


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig, word_embeddings: Parameter, dtype=None):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, word_embeddings, dtype)


def _mlm_outputs(out: ModelOutput, head: BertLMPredictionHead, sequence_output: Tensor, labels,
                 vocab_size: int, full_logits: bool | None) -> Tensor | None:
    """Fill ``prediction_logits`` (B, T, V) and/or the masked-position ``masked_lm_logits`` (N, V)."""
    if full_logits or (full_logits is None and labels is None):
        out["prediction_logits"] = head(sequence_output)  # (B, T, V)
    if labels is None:
        return None
    loss, logits, targets = masked_lm_loss(head, sequence_output, labels, vocab_size)
    out["masked_lm_logits"], out["masked_lm_labels"] = logits, targets
    out["masked_lm_loss"] = loss
    return loss


class BertForPreTraining(BertPreTrainedModel):
    """BERT with the two pre-training heads; loss = L_MLM + L_NSP (HF's sum).

    ``next_sentence_label``: 0 when B really follows A (IsNext), 1 when B is random (NotNext).
    With ``labels`` the MLM logits are computed only at the masked positions (``masked_lm_logits``
    (N, V)); the full ``prediction_logits`` (B, T, V) come when ``labels`` is None or
    ``full_logits=True``.
    """

    head = "pretraining"

    def __init__(self, config: BertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.bert = BertModel(config, dtype=dtype, initialize=False)
        self.cls = BertPreTrainingHeads(config, self.bert.embeddings.word_embeddings.weight, dtype)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, next_sentence_label=None,
                output_attentions=False, output_hidden_states=False, full_logits: bool | None = None,
                skip_padding: bool = False):
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states,
                        skip_padding)
        sequence_output = out["last_hidden_state"]  # (B, T, H)
        out["seq_relationship_logits"] = self.cls.seq_relationship(out["pooler_output"])  # (B, 2)
        mlm = _mlm_outputs(out, self.cls.predictions, sequence_output, labels, self.config.vocab_size, full_logits)
        nsp = None
        if next_sentence_label is not None:
            target = _check_class_labels("BertForPreTraining: next_sentence_label", next_sentence_label,
                                         sequence_output.shape[0], 2)
            nsp = cross_entropy(out["seq_relationship_logits"], target)
            out["next_sentence_loss"] = nsp
        if mlm is not None or nsp is not None:
            out["loss"] = mlm if nsp is None else nsp if mlm is None else mlm + nsp
        return out


class BertForMaskedLM(BertPreTrainedModel):
    """BERT with the MLM head only (no pooler, as HF)."""

    head = "masked_lm"

    def __init__(self, config: BertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False, dtype=dtype, initialize=False)
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings.weight, dtype)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False, full_logits: bool | None = None,
                skip_padding: bool = False):
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states,
                        skip_padding)
        loss = _mlm_outputs(out, self.cls.predictions, out["last_hidden_state"], labels, self.config.vocab_size,
                            full_logits)
        if "prediction_logits" in out:
            out["logits"] = out["prediction_logits"]
        if loss is not None:
            out["loss"] = loss
        return out


# ----------------------------------------------------------------------------------------------
# Fine-tuning heads (Devlin et al. §3.2, Figure 4)
# ----------------------------------------------------------------------------------------------
class BertForSequenceClassification(BertPreTrainedModel):
    """logits = Dropout(pooled) W_cᵀ + b_c  (B, num_labels).

    Loss as HF: ``num_labels == 1`` → regression, MSE; integer labels → cross-entropy;
    ``problem_type='multi_label_classification'`` → binary cross-entropy with logits.
    """

    head = "sequence_classification"

    def __init__(self, config: BertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, dtype=dtype, initialize=False)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = Dropout(p)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels, dtype=dtype)
        if initialize:
            self.init_weights(generator)

    def problem_type(self, labels: np.ndarray) -> str:
        if self.config.problem_type is not None:
            return self.config.problem_type
        if self.num_labels == 1:
            return "regression"
        return "single_label_classification" if labels.dtype.kind in "iu" else "multi_label_classification"

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False, skip_padding: bool = False):
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states,
                        skip_padding)
        logits = self.classifier(self.dropout(out["pooler_output"]))  # (B, num_labels)
        out["logits"] = logits
        if labels is not None:
            out["loss"] = self._loss(logits, labels)
        return out

    def _loss(self, logits: Tensor, labels) -> Tensor:
        owner = "BertForSequenceClassification"
        labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
        kind, B = self.problem_type(labels), logits.shape[0]
        if kind == "regression":
            if labels.size != B * self.num_labels:
                raise ValueError(f"{owner}: regression labels must have {B * self.num_labels} values, "
                                 f"got shape {labels.shape}")
            return mse_loss(logits.reshape(-1), labels.reshape(-1).astype(logits.dtype))
        if kind == "single_label_classification":
            return cross_entropy(logits, _check_class_labels(owner, labels, B, self.num_labels))
        if labels.shape != logits.shape:
            raise ValueError(f"{owner}: multi-label targets must have shape {logits.shape}, got {labels.shape}")
        return binary_cross_entropy_with_logits(logits, labels.astype(logits.dtype))


class BertForQuestionAnswering(BertPreTrainedModel):
    """Extractive QA (SQuAD): per token, a start score and an end score,
    [start_logits, end_logits] = h W_qaᵀ + b_qa  (B, T) each; loss = (CE(start) + CE(end)) / 2."""

    head = "question_answering"

    def __init__(self, config: BertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False, dtype=dtype, initialize=False)
        self.qa_outputs = nn.Linear(config.hidden_size, 2, dtype=dtype)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None,
                end_positions=None, output_attentions=False, output_hidden_states=False,
                skip_padding: bool = False):
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states,
                        skip_padding)
        logits = self.qa_outputs(out["last_hidden_state"])  # (B, T, 2)
        out["start_logits"], out["end_logits"] = logits[..., 0], logits[..., 1]  # (B, T) each
        if start_positions is not None and end_positions is not None:
            B, T = logits.shape[:2]
            losses = []
            for name, positions, scores in (("start_positions", start_positions, out["start_logits"]),
                                            ("end_positions", end_positions, out["end_logits"])):
                pos = np.asarray(positions.data if isinstance(positions, Tensor) else positions)
                if pos.shape != (B,) or pos.dtype.kind not in "iu":
                    raise ValueError(f"BertForQuestionAnswering: {name} must be {B} integers, got shape "
                                     f"{pos.shape} dtype {pos.dtype}")
                pos = np.clip(pos, 0, T)  # HF: positions outside the sequence are clamped to T, then ignored
                losses.append(cross_entropy(scores, pos, ignore_index=T))
            out["loss"] = (losses[0] + losses[1]) * 0.5
        return out


class FirstTokenClassificationHead(nn.Module):
    """fairseq's sentence classifier, read from the first token instead of BERT's pooler (RoBERTa, ELECTRA):

        logits = W_o Dropout(act(W_d Dropout(h_0) + b_d)) + b_o     (B, num_labels)

    ``act`` is tanh for RoBERTa and GELU for ELECTRA (HF's choices); the names are HF's.
    """

    act = "tanh"

    def __init__(self, config: BertConfig, dtype=None):
        super().__init__()
        H = config.hidden_size
        self.dense = nn.Linear(H, H, dtype=dtype)
        self.dropout = Dropout(config.classifier_dropout if config.classifier_dropout is not None
                               else config.hidden_dropout_prob)
        self.out_proj = nn.Linear(H, config.num_labels, dtype=dtype)

    def forward(self, hidden: Tensor) -> Tensor:
        x = activation(self.dense(self.dropout(hidden[:, 0])), self.act)  # (B, H) from the first token
        return self.out_proj(self.dropout(x))  # (B, num_labels)


# ----------------------------------------------------------------------------------------------
# The forward of a head class, for BERT's successors (RoBERTa, ALBERT, ELECTRA: models.roberta, …)
# ----------------------------------------------------------------------------------------------
class MaskedLMForward:
    """Mixin: encoder (``getattr(self, self.base_model_prefix)``) then ``self.mlm_head`` (..., H) -> (..., V).

    With ``labels`` the vocabulary logits are computed only at the masked positions (``masked_lm_logits``
    (N, V), ``masked_lm_labels``) and ``loss`` is HF's cross-entropy over the labels that are not −100; the
    full ``logits`` (B, T, V) come when ``labels`` is None or ``full_logits=True``.
    """

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False, full_logits: bool | None = None, skip_padding: bool = False):
        out = getattr(self, self.base_model_prefix)(input_ids, attention_mask, token_type_ids, output_attentions,
                                                    output_hidden_states, skip_padding)
        loss = _mlm_outputs(out, self.mlm_head, out["last_hidden_state"], labels, self.config.vocab_size,
                            full_logits)
        if "prediction_logits" in out:
            out["logits"] = out.pop("prediction_logits")  # HF's name in its masked-LM outputs
        if loss is not None:
            out["loss"] = loss
        return out


class SequenceClassifierForward:
    """Mixin: encoder, then ``self.classify(encoder outputs)`` -> ``logits`` (B, num_labels); the loss follows
    HF's ``problem_type`` rules, BERT's (MSE, cross-entropy or BCE)."""

    problem_type = BertForSequenceClassification.problem_type
    _loss = BertForSequenceClassification._loss

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False, skip_padding: bool = False):
        out = getattr(self, self.base_model_prefix)(input_ids, attention_mask, token_type_ids, output_attentions,
                                                    output_hidden_states, skip_padding)
        out["logits"] = self.classify(out)  # (B, num_labels)
        if labels is not None:
            out["loss"] = self._loss(out["logits"], labels)
        return out
