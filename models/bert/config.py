"""``BertConfig``: the hyper-parameters of a BERT model, with Hugging Face's field names (book § 4.2).

The same ``config.json`` opens in ``transformers`` and here. The parameter shapes follow from the
config alone, so ``parameter_shapes`` lists every tensor of a model *without allocating it* — what
``count_parameters`` uses to report BERT-base's 109,482,240 parameters (Devlin et al. 2019, Table 1:
"BERT_BASE (L=12, H=768, A=12, Total Parameters=110M)"), and what ``from_pretrained`` uses to check
a checkpoint's shapes before building anything.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from models.hf_config import HFConfig

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "tanh")
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
# Keys HF writes that say nothing about the architecture we build; read and dropped silently.
_IGNORED_KEYS = {"architectures", "model_type", "transformers_version", "_name_or_path", "torch_dtype", "dtype",
                 "gradient_checkpointing", "use_cache", "tie_word_embeddings", "bos_token_id", "eos_token_id",
                 "output_attentions", "output_hidden_states", "return_dict", "chunk_size_feed_forward"}


@dataclass
class BertConfig(HFConfig):
    """BERT's size and regularisation. Defaults are bert-base-uncased (L=12, H=768, A=12)."""

    vocab_size: int = 30522
    hidden_size: int = 768  # H
    num_hidden_layers: int = 12  # L
    num_attention_heads: int = 12  # A
    intermediate_size: int = 3072  # 4H, the feed-forward width
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2  # segments A and B
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02
    classifier_dropout: float | None = None  # None: hidden_dropout_prob (as HF)
    num_labels: int = 2  # for the sequence-classification head
    problem_type: str | None = None  # None: regression when num_labels == 1, else single-label
    extra: dict = field(default_factory=dict, repr=False, compare=False)  # other HF keys, kept for round trips

    ignored_keys = _IGNORED_KEYS
    carries_labels = True
    model_type = "bert"  # HF's model_type; a subclass (RobertaConfig, AlbertConfig, …) sets its own

    def __post_init__(self):
        name_ = type(self).__name__  # the subclass (RobertaConfig, …) names itself in errors
        ints = {"vocab_size": 1, "hidden_size": 1, "num_hidden_layers": 0, "num_attention_heads": 1,
                "intermediate_size": 1, "max_position_embeddings": 1, "type_vocab_size": 1, "num_labels": 1}
        for name, low in ints.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name_}: {name} must be an int >= {low}, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"{name_}: hidden_size={self.hidden_size} is not a multiple of "
                             f"num_attention_heads={self.num_attention_heads}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"{name_}: hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            p = getattr(self, name)
            if p is None and name == "classifier_dropout":
                continue
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
                raise ValueError(f"{name_}: {name} must be a probability in [0, 1), got {p!r}")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise ValueError(f"{name_}: layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not (isinstance(self.initializer_range, (int, float)) and self.initializer_range >= 0):
            raise ValueError(f"{name_}: initializer_range must be >= 0, got {self.initializer_range!r}")
        if self.pad_token_id is not None and not (isinstance(self.pad_token_id, int)
                                                  and 0 <= self.pad_token_id < self.vocab_size):
            raise ValueError(f"{name_}: pad_token_id must be in [0, vocab_size={self.vocab_size}) or None, "
                             f"got {self.pad_token_id!r}")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"{name_}: problem_type must be None or one of {PROBLEM_TYPES}, "
                             f"got {self.problem_type!r}")
        position_type = self.extra.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ValueError(f"{name_}: only position_embedding_type='absolute' is implemented, "
                             f"got {position_type!r}")
        for flag in ("is_decoder", "add_cross_attention"):
            if self.extra.get(flag):
                raise ValueError(f"{name_}: {flag}=True (a BERT decoder) is not implemented; "
                                 "this is the encoder of chapter 4")

    @property
    def head_dim(self) -> int:
        """d_k = H / A, the width of one attention head."""
        return self.hidden_size // self.num_attention_heads


# ----------------------------------------------------------------------------------------------
# Shapes without allocation
# ----------------------------------------------------------------------------------------------

def _linear(prefix: str, n_in: int, n_out: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (n_out, n_in), f"{prefix}.bias": (n_out,)}


def _layer_norm(prefix: str, n: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (n,), f"{prefix}.bias": (n,)}


def embedding_shapes(config: BertConfig) -> dict[str, tuple]:
    """The token, position and segment tables and their LayerNorm (``BertEmbeddings``): E wide when the config
    has an ``embedding_size`` (ALBERT, ELECTRA), else H."""
    E = getattr(config, "embedding_size", config.hidden_size)
    shapes = {"embeddings.word_embeddings.weight": (config.vocab_size, E),
              "embeddings.position_embeddings.weight": (config.max_position_embeddings, E)}
    if config.type_vocab_size:
        shapes["embeddings.token_type_embeddings.weight"] = (config.type_vocab_size, E)
    return {**shapes, **_layer_norm("embeddings.LayerNorm", E)}


def backbone_shapes(config: BertConfig, add_pooling_layer: bool = True) -> dict[str, tuple]:
    """``{HF name: shape}`` of every parameter of ``BertModel`` (embeddings, L layers, pooler)."""
    H, I = config.hidden_size, config.intermediate_size
    shapes = embedding_shapes(config)
    for i in range(config.num_hidden_layers):
        p = f"encoder.layer.{i}"
        for name in ("query", "key", "value"):
            shapes.update(_linear(f"{p}.attention.self.{name}", H, H))
        shapes.update(_linear(f"{p}.attention.output.dense", H, H))
        shapes.update(_layer_norm(f"{p}.attention.output.LayerNorm", H))
        shapes.update(_linear(f"{p}.intermediate.dense", H, I))
        shapes.update(_linear(f"{p}.output.dense", I, H))
        shapes.update(_layer_norm(f"{p}.output.LayerNorm", H))
    if add_pooling_layer:
        shapes.update(_linear("pooler.dense", H, H))
    return shapes


def head_shapes(config: BertConfig, head: str) -> dict[str, tuple]:
    """Shapes of a head's own parameters (the tied decoder weight is the word embedding: not listed)."""
    H, V = config.hidden_size, config.vocab_size
    mlm = {**_linear("cls.predictions.transform.dense", H, H),
           **_layer_norm("cls.predictions.transform.LayerNorm", H), "cls.predictions.bias": (V,)}
    heads = {"model": {}, "masked_lm": mlm, "pretraining": {**mlm, **_linear("cls.seq_relationship", H, 2)},
             "sequence_classification": _linear("classifier", H, config.num_labels),
             "question_answering": _linear("qa_outputs", H, 2)}
    if head not in heads:
        raise ValueError(f"head_shapes: head must be one of {sorted(heads)}, got {head!r}")
    return heads[head]


def count_parameters(config: BertConfig, add_pooling_layer: bool = True) -> int:
    """Number of parameters of ``BertModel(config)``, from shapes only (no memory used).

    BERT-base: V·H + P·H + 2H + 2H (embeddings) + L·(4H² + 4H + 2HI + I + H + 4H) + H² + H = 109,482,240.
    """
    return sum(math.prod(s) for s in backbone_shapes(config, add_pooling_layer).values())
