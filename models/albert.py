"""ALBERT (book § 4.5; Lan et al. 2020, "ALBERT: A Lite BERT for Self-supervised Learning of Language
Representations"), with Hugging Face's names: an HF ``AlbertModel`` checkpoint opens here and ours in HF.

    from models.albert import AlbertConfig, AlbertForPreTraining
    model = AlbertForPreTraining(AlbertConfig(num_hidden_layers=12, num_hidden_groups=1))
    out = model(input_ids, attention_mask=mask, labels=mlm_labels, sentence_order_label=sop)

ALBERT is BERT with two ways of having far fewer parameters, and one other pre-training task:

* **Factorized embedding parameterization** (Lan et al. § 3.1). BERT's V × H token table ties the
  embedding width to the hidden size. ALBERT looks tokens up in a V × E table (E = 128) and maps
  them to H with one E × H matrix: V·E + E·H parameters instead of V·H (3.9 M + 0.1 M instead of
  23.4 M for V = 30,000, H = 768). The position and segment tables are E wide too.
* **Cross-layer parameter sharing** (§ 3.1). The L layers are ``num_hidden_groups`` groups of
  ``inner_group_num`` layers; layer i runs group ⌊i·G / L⌋. With G = 1 (ALBERT's default) one set
  of weights is applied L times: albert-base-v2 has 11.7 M parameters where bert-base has 109.5 M.
  ``layer_transitions`` measures what the paper's Figure 1 shows: how far each application moves
  the hidden states (L2 distance and cosine similarity of its input and output).
* **Sentence-order prediction** (§ 3.1) replaces NSP: two *consecutive* segments of one document,
  in order (label 0) or swapped (label 1) — the topic no longer gives the answer away
  (``models.pretraining_data.sop_pairs``).

Every computation is BERT's (``models.bert``): the embeddings (E wide), the multi-head attention with
its padding mask, packing and kernel (``AlbertAttention`` *is* ``BertSelfAttention`` with the output
projection and Add & Norm inside, under HF's names), the post-LayerNorm feed-forward sub-layer, the
MLM head (E wide, decoder tied), HF's initialisation and checkpoint rules. One detail follows HF:
the feed-forward output has no dropout before its Add & Norm (HF defines the layer but never calls it;
ALBERT's dropout is 0 anyway).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minigrad import nn
from minigrad.nn.dropout import Dropout
from minigrad.nn.losses import cross_entropy
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.parameter import Parameter
from minigrad.tensor import Tensor

from models.bert.config import BertConfig, _layer_norm, _linear, embedding_shapes
from models.bert.functional import activation, check_inputs
from models.bert.heads import MaskedLMForward, SequenceClassifierForward, _check_class_labels, _mlm_outputs
from models.bert.hf_io import CheckpointLayout
from models.bert.modeling import BertEmbeddings, BertModel, BertPreTrainedModel, BertSelfAttention, run_layers
from models.pretraining_data import IN_ORDER, SWAPPED  # noqa: F401  (HF's sentence_order_label: 0 / 1)
from models.training import evaluating


@dataclass
class AlbertConfig(BertConfig):
    """BERT's fields plus ALBERT's; defaults are albert-base-v2 (E = 128, H = 768, 12 layers sharing one
    set of weights, 12 heads, gelu_new, no dropout, 30,000 SentencePiece tokens)."""

    vocab_size: int = 30000
    embedding_size: int = 128  # E: the width of the token/position/segment tables
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    num_hidden_groups: int = 1  # G: groups of layers with their own weights (1: every layer shares them)
    inner_group_num: int = 1  # layers inside a group, each with its own weights
    classifier_dropout_prob: float = 0.1  # before the SOP and sequence-classification heads

    model_type = "albert"

    def __post_init__(self):
        super().__post_init__()
        for name in ("embedding_size", "num_hidden_groups", "inner_group_num"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"AlbertConfig: {name} must be an int >= 1, got {value!r}")
        p = self.classifier_dropout_prob
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"AlbertConfig: classifier_dropout_prob must be a probability in [0, 1), got {p!r}")

    def group_of_layer(self, i: int) -> int:
        """HF's rule: layer i (of L) runs group ⌊i / (L / G)⌋."""
        return int(i / (self.num_hidden_layers / self.num_hidden_groups))

    def to_dict(self) -> dict:
        out = super().to_dict()
        out.pop("classifier_dropout", None)  # BERT's field; ALBERT's is classifier_dropout_prob
        return out


# ----------------------------------------------------------------------------------------------
# Shapes without allocation: the parameter counts of the book (§ 4.5)
# ----------------------------------------------------------------------------------------------
def layer_shapes(prefix: str, config: AlbertConfig) -> dict[str, tuple]:
    """One ALBERT layer: attention (Q, K, V, output, LayerNorm), feed-forward, LayerNorm."""
    H, I = config.hidden_size, config.intermediate_size
    shapes = _layer_norm(f"{prefix}.full_layer_layer_norm", H)
    for name in ("query", "key", "value", "dense"):
        shapes.update(_linear(f"{prefix}.attention.{name}", H, H))
    shapes.update(_layer_norm(f"{prefix}.attention.LayerNorm", H))
    shapes.update(_linear(f"{prefix}.ffn", H, I))
    shapes.update(_linear(f"{prefix}.ffn_output", I, H))
    return shapes


def backbone_shapes(config: AlbertConfig, add_pooling_layer: bool = True) -> dict[str, tuple]:
    """``{HF name: shape}`` of every parameter of ``AlbertModel``: G × inner layers, not L."""
    E, H = config.embedding_size, config.hidden_size
    shapes = {**embedding_shapes(config), **_linear("encoder.embedding_hidden_mapping_in", E, H)}  # E wide
    for g in range(config.num_hidden_groups):
        for i in range(config.inner_group_num):
            shapes.update(layer_shapes(f"encoder.albert_layer_groups.{g}.albert_layers.{i}", config))
    if add_pooling_layer:
        shapes.update(_linear("pooler", H, H))
    return shapes


def head_shapes(config: AlbertConfig, head: str) -> dict[str, tuple]:
    """Shapes of a head's own parameters (the tied ``predictions.decoder`` is not listed)."""
    E, H = config.embedding_size, config.hidden_size
    mlm = {**_layer_norm("predictions.LayerNorm", E), "predictions.bias": (config.vocab_size,),
           **_linear("predictions.dense", H, E)}
    heads = {"model": {}, "masked_lm": mlm,
             "pretraining": {**mlm, **_linear("sop_classifier.classifier", H, config.num_labels)},
             "sequence_classification": _linear("classifier", H, config.num_labels)}
    if head not in heads:
        raise ValueError(f"albert head_shapes: head must be one of {sorted(heads)}, got {head!r}")
    return heads[head]


def count_parameters(config: AlbertConfig, add_pooling_layer: bool = True) -> int:
    """Parameters of ``AlbertModel(config)`` from shapes only (albert-base-v2: 11,683,584)."""
    return sum(math.prod(s) for s in backbone_shapes(config, add_pooling_layer).values())


def parameter_breakdown(config: BertConfig) -> dict[str, int]:
    """Where the parameters of a BERT or ALBERT encoder are, from shapes only:
    ``token/position/segment tables`` (with their LayerNorm), ``E→H mapping`` (ALBERT only), ``layers``
    (the distinct ones), ``pooler``, ``total`` — for the book's comparison of the two (§ 4.5)."""
    from models.bert.config import backbone_shapes as bert_shapes

    shapes = backbone_shapes(config) if isinstance(config, AlbertConfig) else bert_shapes(config)
    parts = {"token/position/segment tables": 0, "E→H mapping": 0, "layers": 0, "pooler": 0}
    for name, shape in shapes.items():
        part = ("E→H mapping" if "embedding_hidden_mapping_in" in name else "pooler" if name.startswith("pooler")
                else "token/position/segment tables" if name.startswith("embeddings.") else "layers")
        parts[part] += math.prod(shape)
    parts["total"] = sum(parts.values())
    return parts


ALBERT_LAYOUT = CheckpointLayout(prefix="albert", backbone_shapes=backbone_shapes, head_shapes=head_shapes,
                                 tied_names=("predictions.decoder.weight", "predictions.decoder.bias"),
                                 head_roots=("predictions", "sop_classifier", "classifier", "qa_outputs"))


# ----------------------------------------------------------------------------------------------
# The layer: BERT's, under ALBERT's names
# ----------------------------------------------------------------------------------------------
class AlbertAttention(BertSelfAttention):
    """BERT's multi-head self-attention (heads, padding mask, packing and kernel inherited), with the
    output projection and Add & Norm inside, as HF names them:

        a = LayerNorm(x + Dropout(MultiHead(x) W_Oᵀ + b_O))        query/key/value, dense, LayerNorm
    """

    def __init__(self, config: AlbertConfig, dtype=None):
        super().__init__(config, dtype)  # query, key, value; dropout on the attention weights
        H = config.hidden_size
        self.dense = nn.Linear(H, H, dtype=dtype)
        self.LayerNorm = LayerNorm(H, eps=config.layer_norm_eps, dtype=dtype)
        self.output_dropout = Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: Tensor, key_mask, output_attentions: bool = False, packing=None):
        context, weights = super().forward(hidden, key_mask, output_attentions, packing)  # (B, T, H)
        return self.LayerNorm(self.output_dropout(self.dense(context)) + hidden), weights  # (B, T, H)


class AlbertLayer(nn.Module):
    """One encoder block:  a = Attention sub-layer(x);  y = LayerNorm(a + W_2 act(W_1 a + b_1) + b_2)."""

    def __init__(self, config: AlbertConfig, dtype=None):
        super().__init__()
        H, I = config.hidden_size, config.intermediate_size
        self.full_layer_layer_norm = LayerNorm(H, eps=config.layer_norm_eps, dtype=dtype)
        self.attention = AlbertAttention(config, dtype)
        self.ffn = nn.Linear(H, I, dtype=dtype)
        self.ffn_output = nn.Linear(I, H, dtype=dtype)
        self.hidden_act = config.hidden_act

    def forward(self, hidden: Tensor, key_mask, output_attentions: bool = False, packing=None):
        attended, weights = self.attention(hidden, key_mask, output_attentions, packing)  # (B, T, H)
        feed_forward = self.ffn_output(activation(self.ffn(attended), self.hidden_act))  # (B, T, H)
        return self.full_layer_layer_norm(feed_forward + attended), weights  # HF: no dropout here


class AlbertLayerGroup(nn.Module):
    """``inner_group_num`` layers with their own weights, run one after the other."""

    def __init__(self, config: AlbertConfig, dtype=None):
        super().__init__()
        self.albert_layers = nn.ModuleList([AlbertLayer(config, dtype) for _ in range(config.inner_group_num)])


class AlbertTransformer(nn.Module):
    """E → H, then L applications of the shared groups: layer i runs group ⌊i·G / L⌋.

        h_0 = e W_mapᵀ + b_map        h_{l+1} = Layer_{g(l)}(h_l)

    ``forward`` returns BERT's encoder triple: the last hidden state, every hidden state when asked
    (h_0 then the output of every layer application, HF's order), every attention map when asked.
    ``applications`` runs the shared weights another number of times than L (the sharing demo).
    """

    def __init__(self, config: AlbertConfig, dtype=None):
        super().__init__()
        self.config = config
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size, dtype=dtype)
        self.albert_layer_groups = nn.ModuleList([AlbertLayerGroup(config, dtype)
                                                  for _ in range(config.num_hidden_groups)])

    def forward(self, hidden: Tensor, key_mask, output_attentions=False, output_hidden_states=False, packing=None,
                applications: int | None = None):
        hidden = self.embedding_hidden_mapping_in(hidden)  # (B, T, E) -> (B, T, H), or packed (N, ·)
        L = self.config.num_hidden_layers
        layers = (layer for i in range(L if applications is None else applications)
                  for layer in self.albert_layer_groups[self.config.group_of_layer(i % L)].albert_layers)
        return run_layers(layers, hidden, key_mask, output_attentions, output_hidden_states, packing)


class AlbertPooler(nn.Linear):
    """pooled = tanh(h_[CLS] W_pᵀ + b_p) — HF keeps it as a bare Linear named ``pooler``."""

    def __init__(self, config: AlbertConfig, dtype=None):
        super().__init__(config.hidden_size, config.hidden_size, dtype=dtype)

    def forward(self, hidden: Tensor) -> Tensor:
        return super().forward(hidden[:, 0]).tanh()  # (B, H)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class AlbertPreTrainedModel(BertPreTrainedModel):
    """HF's initialisation (BERT's) and ALBERT's checkpoint names."""

    base_model_prefix = "albert"
    config_class = AlbertConfig
    checkpoint_layout = ALBERT_LAYOUT


class AlbertModel(AlbertPreTrainedModel, BertModel):
    """BERT's model with E-wide embeddings and the shared-layer encoder: ``last_hidden_state`` (B, T, H)
    and ``pooler_output`` (B, H). ``hidden_states`` has 1 + L·inner_group_num entries (HF's)."""

    embeddings_class = BertEmbeddings  # E wide: the config has an embedding_size
    encoder_class = AlbertTransformer
    pooler_class = AlbertPooler


class AlbertMLMHead(nn.Module):
    """logits = LayerNorm(act(h W_dᵀ + b_d)) E_tokᵀ + b: BERT's MLM head, narrowing H → E before the
    tied E-wide decoder (``decoder.bias`` is ``bias``)."""

    def __init__(self, config: AlbertConfig, word_embeddings: Parameter, dtype=None):
        super().__init__()
        E = config.embedding_size
        self.LayerNorm = LayerNorm(E, eps=config.layer_norm_eps, dtype=dtype)
        self.bias = Parameter(np.zeros(config.vocab_size, dtype=word_embeddings.dtype))
        self.dense = nn.Linear(config.hidden_size, E, dtype=dtype)
        self.decoder = nn.Linear(E, config.vocab_size, bias=False, dtype=dtype)
        self.decoder.weight, self.decoder.bias = word_embeddings, self.bias  # tied (HF's _tied_weights_keys)
        self.hidden_act = config.hidden_act

    def forward(self, h: Tensor) -> Tensor:
        return self.decoder(self.LayerNorm(activation(self.dense(h), self.hidden_act)))  # (..., V)


class AlbertSOPHead(nn.Module):
    """Sentence-order logits = Dropout(pooled) W_sᵀ + b_s   (B, num_labels): in order or swapped."""

    def __init__(self, config: AlbertConfig, dtype=None):
        super().__init__()
        self.dropout = Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels, dtype=dtype)

    def forward(self, pooled: Tensor) -> Tensor:
        return self.classifier(self.dropout(pooled))


class AlbertForPreTraining(AlbertPreTrainedModel):
    """ALBERT with the MLM and SOP heads; loss = L_MLM + L_SOP.

    ``sentence_order_label``: 0 when the segments are in their order, 1 when swapped. With ``labels``
    the MLM logits are computed only at the masked positions (``masked_lm_logits`` (N, V)); the full
    ``prediction_logits`` (B, T, V) when ``labels`` is None or ``full_logits=True``.
    """

    head = "pretraining"

    def __init__(self, config: AlbertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.albert = AlbertModel(config, dtype=dtype, initialize=False)
        self.predictions = AlbertMLMHead(config, self.albert.embeddings.word_embeddings.weight, dtype)
        self.sop_classifier = AlbertSOPHead(config, dtype)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, sentence_order_label=None,
                output_attentions=False, output_hidden_states=False, full_logits: bool | None = None,
                skip_padding: bool = False):
        out = self.albert(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states,
                          skip_padding)
        out["sop_logits"] = self.sop_classifier(out["pooler_output"])  # (B, num_labels)
        mlm = _mlm_outputs(out, self.predictions, out["last_hidden_state"], labels, self.config.vocab_size,
                           full_logits)
        sop = None
        if sentence_order_label is not None:
            target = _check_class_labels("AlbertForPreTraining: sentence_order_label", sentence_order_label,
                                         out["sop_logits"].shape[0], self.config.num_labels)
            sop = out["sentence_order_loss"] = cross_entropy(out["sop_logits"], target)
        if mlm is not None or sop is not None:
            out["loss"] = mlm if sop is None else sop if mlm is None else mlm + sop
        return out


class AlbertForMaskedLM(MaskedLMForward, AlbertPreTrainedModel):
    """ALBERT with the MLM head only (no pooler, as HF); ``logits`` or the masked positions' (``MaskedLMForward``)."""

    head = "masked_lm"

    def __init__(self, config: AlbertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False, dtype=dtype, initialize=False)
        self.predictions = AlbertMLMHead(config, self.albert.embeddings.word_embeddings.weight, dtype)
        if initialize:
            self.init_weights(generator)

    def mlm_head(self, h: Tensor) -> Tensor:
        return self.predictions(h)  # (..., V)


class AlbertForSequenceClassification(SequenceClassifierForward, AlbertPreTrainedModel):
    """logits = Dropout(pooled) W_cᵀ + b_c (B, num_labels); HF's ``problem_type`` rules (BERT's, shared)."""

    head = "sequence_classification"

    def __init__(self, config: AlbertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertModel(config, dtype=dtype, initialize=False)
        self.dropout = Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels, dtype=dtype)
        if initialize:
            self.init_weights(generator)

    def classify(self, out) -> Tensor:
        return self.classifier(self.dropout(out["pooler_output"]))  # (B, num_labels)


# ----------------------------------------------------------------------------------------------
# The sharing demo (Lan et al. Figure 1)
# ----------------------------------------------------------------------------------------------
def layer_transitions(model: AlbertModel, input_ids, attention_mask=None, applications: int | None = None) -> dict:
    """Apply the shared layers ``applications`` times (default L) and measure each application l:

        L2 distance  ‖h_l − h_{l−1}‖₂   and   cosine similarity  cos(h_l, h_{l−1}),

    averaged over the real tokens of the batch (Lan et al. Figure 1: with shared weights the
    transitions are smoother than BERT's — they settle instead of jumping from layer to layer).
    Returns ``{"l2": [...], "cosine": [...]}``, one value per application.
    """
    if not isinstance(model, AlbertModel):
        raise TypeError(f"layer_transitions: model must be an AlbertModel, got {type(model).__name__}")
    ids, types, key_mask = check_inputs(model.config, input_ids, attention_mask, None, "layer_transitions")
    real = np.ones(ids.shape, dtype=bool) if key_mask is None else key_mask[:, 0, 0]
    with evaluating(model):
        hidden = model.embed(ids, types, None)
        _, states, _ = model.encoder(hidden, key_mask, output_hidden_states=True, applications=applications)
    l2, cosine = [], []
    for before, after in zip(states, states[1:]):
        a, b = before.data[real].astype(np.float64), after.data[real].astype(np.float64)  # (N, H)
        l2.append(float(np.linalg.norm(b - a, axis=-1).mean()))
        cosine.append(float(((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).mean()))
    return {"l2": l2, "cosine": cosine}


__all__ = ["AlbertConfig", "AlbertModel", "AlbertPreTrainedModel", "AlbertForPreTraining", "AlbertForMaskedLM",
           "AlbertForSequenceClassification", "AlbertAttention", "AlbertLayer", "AlbertLayerGroup",
           "AlbertTransformer", "AlbertPooler", "AlbertMLMHead", "AlbertSOPHead", "backbone_shapes", "head_shapes",
           "count_parameters", "parameter_breakdown", "layer_transitions", "ALBERT_LAYOUT", "IN_ORDER", "SWAPPED"]
