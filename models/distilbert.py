"""DistilBERT (book § 4.7; Sanh et al. 2019, "DistilBERT, a distilled version of BERT: smaller, faster,
cheaper and lighter"), with Hugging Face's names: an HF ``DistilBertModel`` checkpoint opens here.

    from models.distilbert import DistilBertConfig, DistilBertForSequenceClassification
    model = DistilBertForSequenceClassification.from_pretrained("path/to/distilbert")
    out = model(input_ids, attention_mask=mask)            # out.logits (B, num_labels)

DistilBERT *is* BERT's encoder with three things taken away (Sanh et al. § 3):

* half the layers (6 of bert-base's 12), the student of a distillation (``models.distillation``);
* the token-type (segment) embeddings — there is no next-sentence prediction to need them;
* the pooler — a classifier reads h_[CLS] through its own ``pre_classifier`` (ReLU) instead.

So every block here is BERT's (``models.bert.modeling``): the same embeddings (without segments:
``type_vocab_size`` is 0), the same multi-head attention with its packing and kernel, the same
post-LayerNorm block and encoder loop. ``DistilBertConfig`` is HF's config (``dim``, ``n_layers``,
``n_heads``, ``hidden_dim`` …) that also answers to BERT's names (``hidden_size``, …, as HF's
``attribute_map``), which is the switch the shared blocks read. What differs is only where HF keeps
the weights (``transformer.layer.0.attention.q_lin``, ``sa_layer_norm``, ``ffn.lin1``,
``output_layer_norm``) and one detail of HF's block: no dropout on the attention output.

Parameters (``count_parameters``): the default config has 66,362,880 = 23,835,648 in the embeddings
+ 6 × 7,087,872 in the layers, i.e. 42.5 M without embeddings against bert-base's 85.6 M (the
book's figures). At 512 tokens the Linear layers take 6 · 512 · (4·768² + 2·768·3072) = 21.75 G
multiply-adds, half of bert-base's 43.5 G (the book prints 87.0 G for bert-base: twice 43.5, FLOPs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from minigrad import nn
from minigrad.nn.dropout import Dropout
from minigrad.nn.normalization import LayerNorm
from minigrad.tensor import Tensor

from models.bert.config import _IGNORED_KEYS, ACTIVATIONS, PROBLEM_TYPES, _layer_norm, _linear
from models.bert.functional import Packing, activation, check_inputs
from models.bert.heads import BertForSequenceClassification, masked_lm_loss
from models.bert.modeling import BertEmbeddings, BertEncoder, BertPreTrainedModel, BertSelfAttention, ModelOutput
from models.hf_checkpoint import CONFIG_NAME, checkpoint_folder, load_matching, read_weights, write_checkpoint
from models.hf_config import HFConfig

LAYER_NORM_EPS = 1e-12  # HF's DistilBERT fixes every LayerNorm's epsilon (no config field)
TIED_NAMES = ("vocab_projector.weight",)  # the MLM projection is the word-embedding matrix
HEAD_ROOTS = ("vocab_transform", "vocab_layer_norm", "vocab_projector", "pre_classifier", "classifier",
              "qa_outputs")


# ----------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------
@dataclass
class DistilBertConfig(HFConfig):
    """HF's ``DistilBertConfig`` fields; defaults are distilbert-base-uncased (6 layers, 768 wide)."""

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False  # fixed sin/cos position table at initialisation (still trained, as HF)
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072  # the feed-forward width (BERT's intermediate_size)
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    initializer_range: float = 0.02
    qa_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    pad_token_id: int = 0
    num_labels: int = 2
    problem_type: str | None = None
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # other HF keys, kept for round trips

    model_type = "distilbert"
    ignored_keys = _IGNORED_KEYS  # BERT's: the same HF bookkeeping keys
    carries_labels = True

    def __post_init__(self):
        ints = {"vocab_size": 1, "max_position_embeddings": 1, "n_layers": 0, "n_heads": 1, "dim": 1,
                "hidden_dim": 1, "num_labels": 1}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"DistilBertConfig: {name} must be an int >= {low}, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"DistilBertConfig: dim={self.dim} is not a multiple of n_heads={self.n_heads}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"DistilBertConfig: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        for name in ("dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ValueError(f"DistilBertConfig: {name} must be a probability in [0, 1), got {p!r}")
        if not isinstance(self.sinusoidal_pos_embds, bool):
            raise ValueError(f"DistilBertConfig: sinusoidal_pos_embds must be a bool, "
                             f"got {self.sinusoidal_pos_embds!r}")
        if not (isinstance(self.initializer_range, (int, float)) and self.initializer_range >= 0):
            raise ValueError(f"DistilBertConfig: initializer_range must be >= 0, got {self.initializer_range!r}")
        if self.pad_token_id is not None and not (isinstance(self.pad_token_id, int)
                                                  and 0 <= self.pad_token_id < self.vocab_size):
            raise ValueError(f"DistilBertConfig: pad_token_id must be in [0, vocab_size={self.vocab_size}) or None, "
                             f"got {self.pad_token_id!r}")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"DistilBertConfig: problem_type must be None or one of {PROBLEM_TYPES}, "
                             f"got {self.problem_type!r}")

    # -- BERT's names for the same numbers (HF's attribute_map): what the shared BERT blocks read --
    hidden_size = property(lambda self: self.dim)
    num_hidden_layers = property(lambda self: self.n_layers)
    num_attention_heads = property(lambda self: self.n_heads)
    intermediate_size = property(lambda self: self.hidden_dim)
    hidden_act = property(lambda self: self.activation)
    hidden_dropout_prob = property(lambda self: self.dropout)
    attention_probs_dropout_prob = property(lambda self: self.attention_dropout)
    head_dim = property(lambda self: self.dim // self.n_heads)
    layer_norm_eps = LAYER_NORM_EPS
    type_vocab_size = 0  # no segment embeddings


# ----------------------------------------------------------------------------------------------
# Shapes without allocation (BERT's shape helpers, under DistilBERT's names)
# ----------------------------------------------------------------------------------------------
def backbone_shapes(config: DistilBertConfig) -> dict[str, tuple]:
    """``{HF name: shape}`` of every parameter of ``DistilBertModel`` (embeddings and L layers)."""
    H, I = config.dim, config.hidden_dim
    shapes = {"embeddings.word_embeddings.weight": (config.vocab_size, H),
              "embeddings.position_embeddings.weight": (config.max_position_embeddings, H),
              **_layer_norm("embeddings.LayerNorm", H)}
    for i in range(config.n_layers):
        p = f"transformer.layer.{i}"
        for name in ("q_lin", "k_lin", "v_lin", "out_lin"):
            shapes.update(_linear(f"{p}.attention.{name}", H, H))
        shapes.update(_layer_norm(f"{p}.sa_layer_norm", H))
        shapes.update(_linear(f"{p}.ffn.lin1", H, I))
        shapes.update(_linear(f"{p}.ffn.lin2", I, H))
        shapes.update(_layer_norm(f"{p}.output_layer_norm", H))
    return shapes


def head_shapes(config: DistilBertConfig, head: str) -> dict[str, tuple]:
    """Shapes of a head's own parameters (the tied ``vocab_projector.weight`` is not listed)."""
    H = config.dim
    heads = {"model": {},
             "masked_lm": {**_linear("vocab_transform", H, H), **_layer_norm("vocab_layer_norm", H),
                           "vocab_projector.bias": (config.vocab_size,)},
             "sequence_classification": {**_linear("pre_classifier", H, H),
                                         **_linear("classifier", H, config.num_labels)}}
    if head not in heads:
        raise ValueError(f"head_shapes: head must be one of {sorted(heads)}, got {head!r}")
    return heads[head]


def count_parameters(config: DistilBertConfig, embeddings: bool = True) -> int:
    """Parameters of ``DistilBertModel(config)`` from shapes only (66,362,880 for the default config;
    42,527,232 = 6 × 7,087,872 with ``embeddings=False``)."""
    return sum(math.prod(s) for name, s in backbone_shapes(config).items()
               if embeddings or not name.startswith("embeddings."))


# ----------------------------------------------------------------------------------------------
# The block: BERT's, under DistilBERT's names
# ----------------------------------------------------------------------------------------------
class DistilBertSelfAttention(BertSelfAttention):
    """BERT's multi-head self-attention (heads, padding mask, packing and kernel inherited) with
    DistilBERT's names, and the output projection inside:  out_lin(softmax(QKᵀ/√d + M) V)."""

    def add_projections(self, H: int, dtype) -> None:
        self.q_lin = nn.Linear(H, H, dtype=dtype)
        self.k_lin = nn.Linear(H, H, dtype=dtype)
        self.v_lin = nn.Linear(H, H, dtype=dtype)
        self.out_lin = nn.Linear(H, H, dtype=dtype)  # BERT's attention.output.dense

    def projections(self, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.q_lin(hidden), self.k_lin(hidden), self.v_lin(hidden)

    def forward(self, hidden: Tensor, key_mask, output_attentions: bool = False, packing: Packing | None = None):
        context, weights = super().forward(hidden, key_mask, output_attentions, packing)  # (B, T, H)
        return self.out_lin(context), weights  # (B, T, H); HF applies no dropout here (BERT does)


class FFN(nn.Module):
    """Position-wise feed-forward network:  Dropout(act(x W_1ᵀ + b_1) W_2ᵀ + b_2)."""

    def __init__(self, config: DistilBertConfig, dtype=None):
        super().__init__()
        self.lin1 = nn.Linear(config.dim, config.hidden_dim, dtype=dtype)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim, dtype=dtype)
        self.dropout = Dropout(config.dropout)
        self.hidden_act = config.activation

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.lin2(activation(self.lin1(x), self.hidden_act)))  # (B, T, H)


class TransformerBlock(nn.Module):
    """BERT's post-LayerNorm encoder block (Vaswani et al. § 3.1):

        a = LayerNorm(x + Attention(x))           sa_layer_norm
        y = LayerNorm(a + FFN(a))                 output_layer_norm
    """

    def __init__(self, config: DistilBertConfig, dtype=None):
        super().__init__()
        self.attention = DistilBertSelfAttention(config, dtype)
        self.sa_layer_norm = LayerNorm(config.dim, eps=LAYER_NORM_EPS, dtype=dtype)
        self.ffn = FFN(config, dtype)
        self.output_layer_norm = LayerNorm(config.dim, eps=LAYER_NORM_EPS, dtype=dtype)

    def forward(self, hidden: Tensor, key_mask, output_attentions: bool = False, packing: Packing | None = None):
        attended, weights = self.attention(hidden, key_mask, output_attentions, packing)  # (B, T, H)
        attended = self.sa_layer_norm(attended + hidden)  # (B, T, H)
        return self.output_layer_norm(self.ffn(attended) + attended), weights  # (B, T, H)


def sinusoidal_positions(n_positions: int, dim: int) -> np.ndarray:
    """HF's fixed position table (Vaswani et al. § 3.5): angle = t / 10000^(2⌊j/2⌋ / dim), sin at even j,
    cos at odd j   (n_positions, dim)."""
    t = np.arange(n_positions)[:, None]
    j = np.arange(dim)[None, :]
    angle = t / np.power(10000.0, 2 * (j // 2) / dim)
    return np.where(j % 2 == 0, np.sin(angle), np.cos(angle)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class DistilBertPreTrainedModel(BertPreTrainedModel):
    """BERT's initialisation (+ the optional sinusoidal table) and HF DistilBERT checkpoints by name."""

    config_class = DistilBertConfig
    base_model_prefix = "distilbert"

    def init_weights(self, generator=None) -> "DistilBertPreTrainedModel":
        super().init_weights(generator)
        if self.config.sinusoidal_pos_embds:
            for name, module in self.named_modules():
                if isinstance(module, BertEmbeddings):
                    table = module.position_embeddings.weight
                    table.data[...] = sinusoidal_positions(*table.shape)
        return self

    @classmethod
    def from_pretrained(cls, directory, dtype=None, **config_overrides):
        """Load ``config.json`` + ``model.safetensors`` written by HF ``save_pretrained`` (or ours)."""
        return load_pretrained(cls, directory, dtype=dtype, **config_overrides)

    def save_pretrained(self, directory) -> None:
        """Write ``config.json`` + ``model.safetensors`` that HF ``from_pretrained`` loads (atomic)."""
        state = {k: v for k, v in self.state_dict().items() if k not in TIED_NAMES}
        config = self.config.to_dict()
        config.update(architectures=[type(self).__name__], tie_word_embeddings=True,
                      dtype=str(next(iter(state.values())).dtype))
        write_checkpoint(Path(directory), state, config)


class DistilBertModel(DistilBertPreTrainedModel):
    """The bare encoder: ``last_hidden_state`` (B, T, H). No pooler, no token types.

    ``attention_mask`` (B, T) is 1 for real tokens. ``token_type_ids`` is accepted, so that code
    written for BERT (``models.finetune``) runs unchanged, and not used: DistilBERT has no segment
    embeddings (HF's DistilBERT takes no such argument). ``skip_padding``: as ``BertModel``.
    """

    def __init__(self, config: DistilBertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config, dtype)  # type_vocab_size 0: word + position embeddings
        self.transformer = BertEncoder(config, dtype, block=TransformerBlock)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_attentions: bool = False,
                output_hidden_states: bool = False, skip_padding: bool = False) -> ModelOutput:
        ids, _, key_mask = check_inputs(self.config, input_ids, attention_mask, None, type(self).__name__)
        packing = Packing(key_mask[:, 0, 0]) if skip_padding and key_mask is not None else None
        hidden = self.embeddings(ids, None, packing)  # (B, T, H), or (N, H) packed
        hidden, all_hidden, all_weights = self.transformer(hidden, key_mask, output_attentions,
                                                           output_hidden_states, packing)
        if packing is not None:
            hidden = packing.pad(hidden)  # (N, H) -> (B, T, H), zeros at the padding
        out = ModelOutput(last_hidden_state=hidden)
        if output_hidden_states:
            out["hidden_states"] = tuple(all_hidden)
        if output_attentions:
            out["attentions"] = tuple(all_weights)
        return out


class DistilBertForMaskedLM(DistilBertPreTrainedModel):
    """DistilBERT with the MLM head:  logits = LayerNorm(act(h W_tᵀ + b_t)) E_tokᵀ + b,  E_tok tied.

    With ``labels`` the logits are computed only at the masked positions (``masked_lm_logits`` (N, V));
    the loss is HF's cross-entropy over the positions whose label is not −100. The full ``logits``
    (B, T, V) come when ``labels`` is None or ``full_logits=True``.
    """

    head = "masked_lm"

    def __init__(self, config: DistilBertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.distilbert = DistilBertModel(config, dtype=dtype, initialize=False)
        self.vocab_transform = nn.Linear(config.dim, config.dim, dtype=dtype)
        self.vocab_layer_norm = LayerNorm(config.dim, eps=LAYER_NORM_EPS, dtype=dtype)
        self.vocab_projector = nn.Linear(config.dim, config.vocab_size, dtype=dtype)
        self.vocab_projector.weight = self.distilbert.embeddings.word_embeddings.weight  # tied (V, H)
        if initialize:
            self.init_weights(generator)

    def prediction_logits(self, h: Tensor) -> Tensor:
        return self.vocab_projector(self.vocab_layer_norm(activation(self.vocab_transform(h), self.config.activation)))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False, full_logits: bool | None = None, skip_padding: bool = False):
        out = self.distilbert(input_ids, attention_mask, None, output_attentions, output_hidden_states, skip_padding)
        hidden = out["last_hidden_state"]  # (B, T, H)
        if full_logits or (full_logits is None and labels is None):
            out["logits"] = self.prediction_logits(hidden)  # (B, T, V)
        if labels is not None:
            loss, logits, targets = masked_lm_loss(self.prediction_logits, hidden, labels, self.config.vocab_size)
            out["masked_lm_logits"], out["masked_lm_labels"], out["loss"] = logits, targets, loss
        return out


class DistilBertForSequenceClassification(DistilBertPreTrainedModel):
    """logits = W_c Dropout(ReLU(W_p h_[CLS] + b_p)) + b_c   (B, num_labels) — no pooler, a ReLU layer.

    The loss follows HF's ``problem_type`` rules (BERT's, shared): MSE, cross-entropy or BCE."""

    head = "sequence_classification"

    def __init__(self, config: DistilBertConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.distilbert = DistilBertModel(config, dtype=dtype, initialize=False)
        self.pre_classifier = nn.Linear(config.dim, config.dim, dtype=dtype)
        self.classifier = nn.Linear(config.dim, config.num_labels, dtype=dtype)
        self.dropout = Dropout(config.seq_classif_dropout)
        if initialize:
            self.init_weights(generator)

    problem_type = BertForSequenceClassification.problem_type
    _loss = BertForSequenceClassification._loss

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False, skip_padding: bool = False):
        out = self.distilbert(input_ids, attention_mask, None, output_attentions, output_hidden_states, skip_padding)
        pooled = self.pre_classifier(out["last_hidden_state"][:, 0]).relu()  # (B, H) from the [CLS] token
        out["logits"] = self.classifier(self.dropout(pooled))  # (B, num_labels)
        if labels is not None:
            out["loss"] = self._loss(out["logits"], labels)
        return out


# ----------------------------------------------------------------------------------------------
# Checkpoints (HF's rules, as models.bert.hf_io)
# ----------------------------------------------------------------------------------------------
def expected_shapes(config: DistilBertConfig, head: str) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(backbone shapes, head shapes) with the names the class uses in ``state_dict``."""
    prefix = "" if head == "model" else "distilbert."
    return {prefix + k: v for k, v in backbone_shapes(config).items()}, head_shapes(config, head)


def _normalise_names(state: dict, head: str) -> dict:
    """The ``distilbert.`` prefix as ``head`` needs it (HF adds or removes it the same way)."""
    out = {}
    for name, array in state.items():
        root = name.split(".", 1)[0]
        if head == "model" and root == "distilbert":
            name = name[len("distilbert."):]
        elif head != "model" and root in ("embeddings", "transformer"):
            name = "distilbert." + name
        out[name] = array
    return out


def load_pretrained(cls, directory, dtype=None, **config_overrides):
    """``cls.from_pretrained(directory)``: every name and shape checked before the model is built; a
    head wholly absent from the file is freshly initialised (with a warning); the heads of other
    classes, the tied ``vocab_projector.weight`` and position-id buffers are skipped, as HF does."""
    owner = f"{cls.__name__}.from_pretrained"
    directory = checkpoint_folder(directory, owner)
    config = DistilBertConfig.from_json_file(directory / CONFIG_NAME, **config_overrides)
    state = _normalise_names(read_weights(directory, owner), cls.head)
    backbone, own_head = expected_shapes(config, cls.head)
    expected = {**backbone, **own_head}
    fresh = list(own_head) if own_head and not any(k in state for k in own_head) else []

    def skippable(name: str) -> bool:
        return (name in TIED_NAMES or name.endswith("position_ids")
                or (name.split(".", 1)[0] in HEAD_ROOTS and name not in expected))

    summary = (f"vocab_size={config.vocab_size}, dim={config.dim}, n_layers={config.n_layers}, "
               f"hidden_dim={config.hidden_dim}, max_position_embeddings={config.max_position_embeddings}")
    return load_matching(cls, config, state, expected, owner, summary, dtype=dtype, skippable=skippable,
                         may_be_absent=fresh)


__all__ = ["DistilBertConfig", "DistilBertModel", "DistilBertForMaskedLM", "DistilBertForSequenceClassification",
           "DistilBertPreTrainedModel", "DistilBertSelfAttention", "FFN", "TransformerBlock", "backbone_shapes",
           "head_shapes", "count_parameters", "sinusoidal_positions", "load_pretrained", "LAYER_NORM_EPS"]
