"""ELECTRA (book § 4.6; Clark et al. 2020, "ELECTRA: Pre-training Text Encoders as Discriminators Rather
Than Generators"), with Hugging Face's names: HF ``ElectraForMaskedLM`` (generator) and
``ElectraForPreTraining`` (discriminator) checkpoints open here, and ours in HF.

    from models.electra import ElectraConfig, ElectraPretrainer, generator_config
    disc = ElectraConfig(vocab_size=8000, embedding_size=128, hidden_size=256, num_hidden_layers=4)
    pair = ElectraPretrainer(generator_config(disc, 0.25), disc)
    loss, parts = pair(batch, rng)                    # L_MLM + λ L_RTD, λ = 50

**Replaced-token detection** (Clark et al. § 2). BERT learns from the 15 % of tokens it masks. ELECTRA
learns from every token: a small masked-LM *generator* fills the masked positions with tokens
**sampled** from its softmax, and the *discriminator* — the model that is kept — says for every
token whether it is the original or a replacement:

    x̂_i ~ p_G(x_i | x_masked)  at the masked positions i,   x̂_t = x_t elsewhere
    L = L_MLM(G) + λ · Σ_t BCE(D(x̂)_t, [x̂_t ≠ x_t]) / (real tokens),   λ = 50

A sampled token equal to the original counts as original. No gradient flows through the sampling
(the discriminator's loss does not train the generator, unlike a GAN's). Generator and discriminator
share the embeddings (token, position and segment tables with their LayerNorm, as the official
code does); the generator is a fraction of the discriminator's width (``generator_config``: ¼ of
the hidden size, heads and feed-forward, the paper's best size).

The encoder is BERT's (``models.bert``): the same names (``electra.encoder.layer.0.attention.self…``),
the embeddings E wide (``embedding_size``) and projected to H by ``embeddings_project`` when E ≠ H,
no pooler. The data side (masks, sampling, labels) is in ``models.pretraining_data``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import minigrad
from minigrad import nn
from minigrad.nn.losses import binary_cross_entropy_with_logits
from minigrad.nn.normalization import LayerNorm
from minigrad.tensor import Tensor

from models.bert.config import BertConfig, _layer_norm, _linear, backbone_shapes as bert_backbone_shapes
from models.bert.functional import activation
from models.bert.heads import FirstTokenClassificationHead, MaskedLMForward, SequenceClassifierForward
from models.bert.hf_io import CheckpointLayout
from models.bert.modeling import BertModel, BertPreTrainedModel
from models.pretraining_data import electra_discriminator_inputs, roc_auc, sample_replacements

RTD_WEIGHT = 50.0  # λ of Clark et al. § 3.1 (the discriminator's loss is much smaller per token)


@dataclass
class ElectraConfig(BertConfig):
    """BERT's fields plus ``embedding_size``; defaults are google/electra-small-discriminator (E = 128,
    H = 256, 12 layers, 4 heads, feed-forward 1024)."""

    embedding_size: int = 128
    hidden_size: int = 256
    num_attention_heads: int = 4
    intermediate_size: int = 1024

    model_type = "electra"

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.embedding_size, bool) or not isinstance(self.embedding_size, int) or self.embedding_size < 1:
            raise ValueError(f"ElectraConfig: embedding_size must be an int >= 1, got {self.embedding_size!r}")


def generator_config(discriminator: ElectraConfig, fraction: float = 0.25) -> ElectraConfig:
    """The generator of ``discriminator``: hidden size × ``fraction``, one head per 64 dimensions (at
    least one), feed-forward 4 × hidden, the same depth and the same (shared) embeddings — the official
    code's rule (Clark et al. § 3.2: a generator ¼–½ the discriminator's size works best)."""
    if not isinstance(discriminator, ElectraConfig):
        raise TypeError(f"generator_config: discriminator must be an ElectraConfig, got {type(discriminator).__name__}")
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0):
        raise ValueError(f"generator_config: fraction must be in (0, 1], got {fraction!r}")
    hidden = max(1, int(round(discriminator.hidden_size * fraction)))
    heads = max(1, hidden // 64)
    while hidden % heads:
        heads -= 1
    return discriminator.replace(hidden_size=hidden, num_attention_heads=heads, intermediate_size=4 * hidden)


SHARED_FIELDS = ("vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size", "pad_token_id",
                 "layer_norm_eps")


def check_pair(generator: ElectraConfig, discriminator: ElectraConfig) -> None:
    """The generator and the discriminator share their embeddings: these fields must agree."""
    for name, config in (("generator", generator), ("discriminator", discriminator)):
        if not isinstance(config, ElectraConfig):
            raise TypeError(f"ElectraPretrainer: the {name} config must be an ElectraConfig, got "
                            f"{type(config).__name__}")
    diff = {f: (getattr(generator, f), getattr(discriminator, f)) for f in SHARED_FIELDS
            if getattr(generator, f) != getattr(discriminator, f)}
    if diff:
        shown = ", ".join(f"{f}: generator {g!r} vs discriminator {d!r}" for f, (g, d) in diff.items())
        raise ValueError(f"ElectraPretrainer: generator and discriminator share the embeddings, so their configs "
                         f"must agree on {SHARED_FIELDS}; they differ in {shown}")


# ----------------------------------------------------------------------------------------------
# Shapes without allocation
# ----------------------------------------------------------------------------------------------
def backbone_shapes(config: ElectraConfig, add_pooling_layer: bool = False) -> dict[str, tuple]:
    """``{HF name: shape}`` of ``ElectraModel``: BERT's encoder with E-wide tables, the E → H projection
    when E ≠ H, and no pooler (``add_pooling_layer`` is ignored: ELECTRA has none)."""
    E, H = config.embedding_size, config.hidden_size
    shapes = bert_backbone_shapes(config, add_pooling_layer=False)  # the tables E wide (config.embedding_size)
    if E != H:
        shapes.update(_linear("embeddings_project", E, H))
    return shapes


def head_shapes(config: ElectraConfig, head: str) -> dict[str, tuple]:
    """Shapes of a head's own parameters (the tied ``generator_lm_head.weight`` is not listed)."""
    E, H = config.embedding_size, config.hidden_size
    heads = {"model": {},
             "masked_lm": {**_linear("generator_predictions.dense", H, E),
                           **_layer_norm("generator_predictions.LayerNorm", E),
                           "generator_lm_head.bias": (config.vocab_size,)},
             "pretraining": {**_linear("discriminator_predictions.dense", H, H),
                             **_linear("discriminator_predictions.dense_prediction", H, 1)},
             "sequence_classification": {**_linear("classifier.dense", H, H),
                                         **_linear("classifier.out_proj", H, config.num_labels)}}
    if head not in heads:
        raise ValueError(f"electra head_shapes: head must be one of {sorted(heads)}, got {head!r}")
    return heads[head]


def count_parameters(config: ElectraConfig) -> int:
    """Parameters of ``ElectraModel(config)`` from shapes only (electra-small: 13,483,008)."""
    return sum(math.prod(s) for s in backbone_shapes(config).values())


ELECTRA_LAYOUT = CheckpointLayout(prefix="electra", backbone_shapes=backbone_shapes, head_shapes=head_shapes,
                                  tied_names=("generator_lm_head.weight",),
                                  head_roots=("generator_predictions", "generator_lm_head", "discriminator_predictions",
                                              "classifier", "qa_outputs"), heads_with_pooler=())


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------
class ElectraPreTrainedModel(BertPreTrainedModel):
    """HF's initialisation (BERT's) and ELECTRA's checkpoint names."""

    base_model_prefix = "electra"
    config_class = ElectraConfig
    checkpoint_layout = ELECTRA_LAYOUT


class ElectraModel(ElectraPreTrainedModel, BertModel):
    """BERT's encoder reading E-wide embeddings through ``embeddings_project`` (E → H, when E ≠ H);
    ``last_hidden_state`` (B, T, H), no pooler."""

    def __init__(self, config: ElectraConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config, add_pooling_layer=False, dtype=dtype, initialize=False)
        if config.embedding_size != config.hidden_size:  # HF has the Linear only then
            self.embeddings_project = nn.Linear(config.embedding_size, config.hidden_size, dtype=dtype)
        if initialize:
            self.init_weights(generator)

    def embed(self, ids, types, packing):
        e = self.embeddings(ids, types, packing)  # (B, T, E)
        return self.embeddings_project(e) if "embeddings_project" in self._modules else e  # (B, T, H)


class ElectraGeneratorPredictions(nn.Module):
    """h' = LayerNorm(GELU(h W_dᵀ + b_d)), narrowing H → E before the tied decoder (erf GELU, as HF)."""

    def __init__(self, config: ElectraConfig, dtype=None):
        super().__init__()
        self.LayerNorm = LayerNorm(config.embedding_size, eps=config.layer_norm_eps, dtype=dtype)
        self.dense = nn.Linear(config.hidden_size, config.embedding_size, dtype=dtype)

    def forward(self, h: Tensor) -> Tensor:
        return self.LayerNorm(activation(self.dense(h), "gelu"))  # (..., E)


class ElectraForMaskedLM(MaskedLMForward, ElectraPreTrainedModel):
    """The generator: ELECTRA + ``generator_predictions`` + ``generator_lm_head`` (E → V, its weight the
    word-embedding matrix, its bias its own); ``logits`` or the masked positions' (``MaskedLMForward``)."""

    head = "masked_lm"

    def __init__(self, config: ElectraConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.electra = ElectraModel(config, dtype=dtype, initialize=False)
        self.generator_predictions = ElectraGeneratorPredictions(config, dtype)
        self.generator_lm_head = nn.Linear(config.embedding_size, config.vocab_size, dtype=dtype)
        self.generator_lm_head.weight = self.electra.embeddings.word_embeddings.weight  # tied (V, E)
        if initialize:
            self.init_weights(generator)

    def mlm_head(self, h: Tensor) -> Tensor:
        """logits = E_tok h' + b over the V words   (..., V)."""
        return self.generator_lm_head(self.generator_predictions(h))


class ElectraDiscriminatorPredictions(nn.Module):
    """One logit per token: is it a replacement?   s_t = w · act(h_t W_dᵀ + b_d) + b   (B, T)."""

    def __init__(self, config: ElectraConfig, dtype=None):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, dtype=dtype)
        self.dense_prediction = nn.Linear(config.hidden_size, 1, dtype=dtype)
        self.hidden_act = config.hidden_act

    def forward(self, h: Tensor) -> Tensor:
        return self.dense_prediction(activation(self.dense(h), self.hidden_act)).squeeze(-1)  # (B, T)


class ElectraForPreTraining(ElectraPreTrainedModel):
    """The discriminator: per-token replaced/original logits ``logits`` (B, T).

    ``labels`` (B, T): 1 where the token was replaced, 0 where it is the original. The loss is HF's:
    binary cross-entropy with logits over the tokens whose attention mask is 1 (all tokens without one).
    """

    head = "pretraining"

    def __init__(self, config: ElectraConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.electra = ElectraModel(config, dtype=dtype, initialize=False)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(config, dtype)
        if initialize:
            self.init_weights(generator)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, output_attentions=False,
                output_hidden_states=False, skip_padding: bool = False):
        out = self.electra(input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states,
                           skip_padding)
        logits = self.discriminator_predictions(out["last_hidden_state"])  # (B, T)
        out["logits"] = logits
        if labels is not None:
            target = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
            if target.shape != logits.shape or not np.isin(target, (0, 1)).all():
                raise ValueError(f"ElectraForPreTraining: labels must be 0 (original) or 1 (replaced) of shape "
                                 f"{logits.shape}, got shape {target.shape}")
            real = np.ones(target.shape, dtype=bool) if attention_mask is None else \
                np.asarray(attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask) == 1
            rows, cols = np.nonzero(real)
            out["loss"] = binary_cross_entropy_with_logits(logits[rows, cols], target[rows, cols].astype(logits.dtype))
        return out


class ElectraClassificationHead(FirstTokenClassificationHead):
    """logits = W_o Dropout(GELU(W_d Dropout(h_[CLS]) + b_d)) + b_o  (HF's: GELU where RoBERTa has tanh)."""

    act = "gelu"


class ElectraForSequenceClassification(SequenceClassifierForward, ElectraPreTrainedModel):
    """The discriminator fine-tuned: ELECTRA + ``classifier``; HF's ``problem_type`` rules (BERT's)."""

    head = "sequence_classification"

    def __init__(self, config: ElectraConfig, dtype=None, generator=None, initialize: bool = True):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.electra = ElectraModel(config, dtype=dtype, initialize=False)
        self.classifier = ElectraClassificationHead(config, dtype)
        if initialize:
            self.init_weights(generator)

    def classify(self, out) -> Tensor:
        return self.classifier(out["last_hidden_state"])  # (B, num_labels)


# ----------------------------------------------------------------------------------------------
# Pre-training: generator + discriminator
# ----------------------------------------------------------------------------------------------
class ElectraPretrainer(nn.Module):
    """The generator (``ElectraForMaskedLM``) and the discriminator (``ElectraForPreTraining``) trained
    together, with one ``embeddings`` module (the discriminator's) in both.

    ``forward(batch, rng)`` takes a masked batch (``input_ids`` with 15 % masked, ``labels`` −100 except
    at the masked positions, ``original_ids``, ``attention_mask``, ``token_type_ids``) and a NumPy
    generator for the sampling; it returns (L_MLM + λ·L_RTD, the parts and accuracies).
    """

    def __init__(self, generator_config: ElectraConfig, discriminator_config: ElectraConfig,
                 rtd_weight: float = RTD_WEIGHT, dtype=None, generator=None):
        super().__init__()
        check_pair(generator_config, discriminator_config)
        if not (isinstance(rtd_weight, (int, float)) and rtd_weight >= 0):
            raise ValueError(f"ElectraPretrainer: rtd_weight must be a number >= 0, got {rtd_weight!r}")
        self.rtd_weight = float(rtd_weight)
        self.discriminator = ElectraForPreTraining(discriminator_config, dtype=dtype, generator=generator)
        self.generator = ElectraForMaskedLM(generator_config, dtype=dtype, generator=generator)
        self.share_embeddings()

    def share_embeddings(self) -> None:
        """The generator looks tokens up in the discriminator's tables (its decoder is tied to them too)."""
        shared = self.discriminator.electra.embeddings
        self.generator.electra.embeddings = shared
        self.generator.generator_lm_head.weight = shared.word_embeddings.weight

    def forward(self, batch: dict, rng: np.random.Generator) -> tuple[Tensor, dict]:
        mask, types = batch["attention_mask"], batch["token_type_ids"]
        gen = self.generator(batch["input_ids"], mask, types, labels=batch["labels"], skip_padding=True)
        with minigrad.no_grad():  # sampling is not differentiated (the discriminator does not train G)
            sampled = sample_replacements(gen["masked_lm_logits"].data, rng)  # (N,)
        disc_ids, rtd_labels = electra_discriminator_inputs(batch["original_ids"], batch["labels"], sampled)
        disc = self.discriminator(disc_ids, mask, types, labels=rtd_labels, skip_padding=True)
        loss = gen["loss"] + disc["loss"] * self.rtd_weight
        real = np.asarray(mask) == 1
        scores, truth = disc["logits"].data[real], rtd_labels[real]
        predicted = gen["masked_lm_logits"].data.argmax(-1)
        parts = {"mlm_loss": float(gen["loss"].data), "rtd_loss": float(disc["loss"].data),
                 "mlm_accuracy": (int((predicted == gen["masked_lm_labels"]).sum()), int(predicted.size)),
                 "rtd_accuracy": (int(((scores > 0) == (truth == 1)).sum()), int(truth.size)),
                 "rtd_auc": roc_auc(truth, scores), "replaced": float(truth.mean()) if truth.size else 0.0}
        return loss, parts

    def num_parameters(self) -> int:
        """Trainable parameters of both models, the shared embeddings counted once."""
        return sum(p.data.size for p in self.parameters())

    def save_pretrained(self, directory) -> None:
        """``directory/generator`` and ``directory/discriminator``, each an HF checkpoint (as Google's release)."""
        from pathlib import Path

        self.generator.save_pretrained(Path(directory) / "generator")
        self.discriminator.save_pretrained(Path(directory) / "discriminator")


__all__ = ["ElectraConfig", "ElectraModel", "ElectraPreTrainedModel", "ElectraForMaskedLM", "ElectraForPreTraining",
           "ElectraForSequenceClassification", "ElectraGeneratorPredictions", "ElectraDiscriminatorPredictions",
           "ElectraClassificationHead", "ElectraPretrainer", "generator_config", "check_pair", "backbone_shapes",
           "head_shapes", "count_parameters", "ELECTRA_LAYOUT", "RTD_WEIGHT", "SHARED_FIELDS"]
