"""RoBERTa (book § 4.4; Liu et al. 2019, "RoBERTa: A Robustly Optimized BERT Pretraining Approach"), with
Hugging Face's names: an HF ``RobertaModel`` checkpoint opens here and ours opens in HF.

    from models.roberta import RobertaConfig, RobertaForMaskedLM
    model = RobertaForMaskedLM.from_pretrained("path/to/roberta")
    out = model(input_ids, attention_mask=mask)              # out.logits (B, T, V)

RoBERTa *is* BERT's encoder. What the paper changed is how it is trained (``models.pretraining_data``):
dynamic masking, no next-sentence prediction, FULL-SENTENCES inputs, batches of 8k sequences, more
data, and a byte-level BPE vocabulary of 50k (``models.text.roberta_tokenizer``). In the model itself
only three details differ from BERT's, all inherited from fairseq:

* **positions are numbered from padding_idx + 1**: token t of a row gets position
  p_t = padding_idx + (number of non-padding tokens up to t), and a padding token gets padding_idx,
  whose (zero) row of the position table never learns (HF's ``create_position_ids_from_input_ids``).
  With padding_idx 1, roberta-base has 514 positions for 512 tokens;
* **one token type**: ``type_vocab_size`` is 1 (no segments A/B: no NSP);
* the heads: the MLM head is ``lm_head`` (always erf-GELU), the classifier reads h_<s> through
  dense → tanh → out_proj instead of BERT's pooler.

Everything else — embeddings sum, attention with its padding mask and packing, the post-LayerNorm
blocks, the tied decoder, HF's initialisation and checkpoint rules — is ``models.bert``'s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigrad import nn
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.parameter import Parameter
from minigrad.nn.sparse import Embedding
from minigrad.tensor import Tensor

from models.bert.config import BertConfig, _layer_norm, _linear, backbone_shapes
from models.bert.config import count_parameters  # noqa: F401  (BERT's encoder: roberta-base 124,645,632)
from models.bert.functional import activation
from models.bert.heads import FirstTokenClassificationHead, MaskedLMForward, SequenceClassifierForward
from models.bert.hf_io import CheckpointLayout
from models.bert.modeling import BertEmbeddings, BertModel, BertPreTrainedModel


@dataclass
class RobertaConfig(BertConfig):
    """BERT's fields with roberta-base's values: 50,265 byte-level BPE tokens, ``<pad>`` = 1, 514
    positions (512 tokens after padding_idx + 1), one token type, LayerNorm ε = 1e-5."""

    vocab_size: int = 50265
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    pad_token_id: int = 1

    model_type = "roberta"

    def __post_init__(self):
        super().__post_init__()
        if self.pad_token_id is None:
            raise ValueError("RobertaConfig: pad_token_id must be set: RoBERTa numbers positions from it")
        if self.max_position_embeddings <= self.pad_token_id + 1:
            raise ValueError(f"RobertaConfig: max_position_embeddings={self.max_position_embeddings} leaves no "
                             f"position after padding_idx + 1 = {self.pad_token_id + 1}")

    @property
    def max_tokens(self) -> int:
        """The longest input: positions run from padding_idx + 1 to max_position_embeddings − 1."""
        return self.max_position_embeddings - self.pad_token_id - 1


def create_position_ids_from_input_ids(input_ids: np.ndarray, padding_idx: int) -> np.ndarray:
    """fairseq's ``make_positions``:  p_t = padding_idx + Σ_{s ≤ t} [x_s ≠ pad]  for real tokens,
    p_t = padding_idx for padding   (B, T) int64."""
    real = (np.asarray(input_ids) != padding_idx).astype(np.int64)  # (B, T)
    return np.cumsum(real, axis=1) * real + padding_idx


class RobertaEmbeddings(BertEmbeddings):
    """BERT's input representation with fairseq's positions: the position table has a padding row."""

    def __init__(self, config: RobertaConfig, dtype=None):
        super().__init__(config, dtype)
        self.padding_idx = config.pad_token_id
        self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size,
                                             padding_idx=self.padding_idx, dtype=dtype)

    def position_ids(self, input_ids: np.ndarray) -> np.ndarray:
        positions = create_position_ids_from_input_ids(input_ids, self.padding_idx)  # (B, T)
        limit = self.position_embeddings.num_embeddings
        if positions.size and positions.max() >= limit:
            raise ValueError(f"RobertaModel: a row has {positions.max() - self.padding_idx} tokens, but positions "
                             f"run from padding_idx + 1 = {self.padding_idx + 1} to max_position_embeddings − 1 = "
                             f"{limit - 1}: at most {limit - self.padding_idx - 1} tokens; truncate the input")
        return positions


# ----------------------------------------------------------------------------------------------
# Shapes without allocation (the encoder's names are BERT's)
# ----------------------------------------------------------------------------------------------
def head_shapes(config: RobertaConfig, head: str) -> dict[str, tuple]:
    """Shapes of a head's own parameters (the tied ``lm_head.decoder`` is not listed)."""
    H = config.hidden_size
    heads = {"model": {},
             "masked_lm": {**_linear("lm_head.dense", H, H), **_layer_norm("lm_head.layer_norm", H),
                           "lm_head.bias": (config.vocab_size,)},
             "sequence_classification": {**_linear("classifier.dense", H, H),
                                         **_linear("classifier.out_proj", H, config.num_labels)}}
    if head not in heads:
        raise ValueError(f"roberta head_shapes: head must be one of {sorted(heads)}, got {head!r}")
    return heads[head]


ROBERTA_LAYOUT = CheckpointLayout(prefix="roberta", backbone_shapes=backbone_shapes, head_shapes=head_shapes,
                                  tied_names=("lm_head.decoder.weight", "lm_head.decoder.bias"),
                                  head_roots=("lm_head", "classifier", "qa_outputs"), heads_with_pooler=("model",))


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class RobertaPreTrainedModel(BertPreTrainedModel):
    """HF's initialisation (BERT's: the padding rows of both tables zero) and RoBERTa's checkpoint names."""

    base_model_prefix = "roberta"
    config_class = RobertaConfig
    checkpoint_layout = ROBERTA_LAYOUT


class RobertaModel(RobertaPreTrainedModel, BertModel):
    """BERT's encoder with RoBERTa's positions: ``last_hidden_state`` (B, T, H) and ``pooler_output``.

    Padding is found from the ids (``<pad>``), as HF does, for the positions; the attention mask
    decides which keys are attended. ``skip_padding``: as ``BertModel``.
    """

    embeddings_class = RobertaEmbeddings


class RobertaLMHead(nn.Module):
    """logits = LayerNorm(GELU(h W_dᵀ + b_d)) E_tokᵀ + b   — BERT's MLM head under fairseq's names,
    always the erf GELU; the decoder's weight is the word-embedding matrix and its bias is ``bias``."""

    def __init__(self, config: RobertaConfig, word_embeddings: Parameter, dtype=None):
        super().__init__()
        H = config.hidden_size
        self.dense = nn.Linear(H, H, dtype=dtype)
        self.layer_norm = LayerNorm(H, eps=config.layer_norm_eps, dtype=dtype)
        self.decoder = nn.Linear(H, config.vocab_size, bias=False, dtype=dtype)
        self.bias = Parameter(np.zeros(config.vocab_size, dtype=self.decoder.weight.dtype))
        self.decoder.weight, self.decoder.bias = word_embeddings, self.bias  # tied (HF's _tied_weights_keys)

    def forward(self, h: Tensor) -> Tensor:
        return self.decoder(self.layer_norm(activation(self.dense(h), "gelu")))  # (..., V)


class RobertaForMaskedLM(MaskedLMForward, RobertaPreTrainedModel):
    """RoBERTa with ``lm_head`` (no pooler, as HF); ``logits`` (B, T, V), or with ``labels`` the logits at the
    masked positions only and HF's loss (``models.bert.heads.MaskedLMForward``)."""

    head = "masked_lm"

    def __init__(self, config: RobertaConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.roberta = RobertaModel(config, add_pooling_layer=False, dtype=dtype, initialize=False)
        self.lm_head = RobertaLMHead(config, self.roberta.embeddings.word_embeddings.weight, dtype)
        if initialize:
            self.init_weights(generator)

    def mlm_head(self, h: Tensor) -> Tensor:
        return self.lm_head(h)  # (..., V)


class RobertaClassificationHead(FirstTokenClassificationHead):
    """logits = W_o Dropout(tanh(W_d Dropout(h_<s>) + b_d)) + b_o   — read from the first token, no pooler."""

    act = "tanh"


class RobertaForSequenceClassification(SequenceClassifierForward, RobertaPreTrainedModel):
    """RoBERTa + ``classifier`` on h_<s>; the loss follows HF's ``problem_type`` rules (BERT's, shared)."""

    head = "sequence_classification"

    def __init__(self, config: RobertaConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.roberta = RobertaModel(config, add_pooling_layer=False, dtype=dtype, initialize=False)
        self.classifier = RobertaClassificationHead(config, dtype)
        if initialize:
            self.init_weights(generator)

    def classify(self, out) -> Tensor:
        return self.classifier(out["last_hidden_state"])  # (B, num_labels)


__all__ = ["RobertaConfig", "RobertaEmbeddings", "RobertaModel", "RobertaPreTrainedModel", "RobertaLMHead",
           "RobertaForMaskedLM", "RobertaClassificationHead", "RobertaForSequenceClassification",
           "create_position_ids_from_input_ids", "head_shapes", "count_parameters", "ROBERTA_LAYOUT"]
