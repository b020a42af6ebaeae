"""The book's Induction Network (§ 5.2; Geng et al. 2019, "Induction Networks for Few-Shot Text
Classification"): encoder → induction (dynamic routing) → relation, module for module as the
book's ``FewShotInduction`` (``encoder``, ``induction``, ``relation``).

    e_s, e_q = Encoder(support), Encoder(queries)              (C·K, H), (Q, H)     H = 2u = 256
    c_i = DynamicRouting(e_s of class i)                       (C, H)  one class vector per class
    r_iq = Relation(c_i, e_q)                                  (Q, C)  in (0, 1)
    loss = mean (r_iq − 1[y_q = i])²                           MSE against one-hot labels

**Dynamic routing** (Geng et al. Algorithm 1; Sabour et al. 2017), r = 3 iterations::

    ê_ij = e_ij W                       (C, K, H)  one shared H × H transform
    b_ij = 0
    repeat r times:
        d_i = softmax_j(b_i)            coupling coefficients: sum to 1 over the K samples of class i
        c_i = squash(Σ_j d_ij ê_ij)     squash(x) = ‖x‖² / (1 + ‖x‖²) · x / ‖x‖   (norm < 1)
        b_ij += ê_ij · c_i              samples that agree with the class vector weigh more

(A sample routes only to its own class, so the coefficients are normalised over the class's
samples, as in the paper and the book's code; normalised over classes they would all be 1.)

**Relation** (a neural tensor layer, h = 100 slices M_k ∈ ℝ^{H×H})::

    v_iq = ReLU([c_iᵀ M_1 e_q, …, c_iᵀ M_h e_q])                (h,) per class and query
    book:     r_q = σ(W [v_1q … v_Cq] + b)     one linear layer over every class's features: (Q, C)
    pairwise: r_iq = σ(w_rᵀ v_iq + b_r)         the paper's eq. 9, the same w_r for every class

``relation="book"`` is the book's code (its ``W`` mixes the classes, so it can learn which class
index is "positive" — harmless in the book, whose loader always puts negatives first; here class
order is random per episode); ``"pairwise"`` scores each class alone, so class order is irrelevant.

**Initialisation.** ``init="book"`` draws every routing and relation parameter from N(0, 1) as the
book's code does (its relation then starts saturated: the book's loss sits at 0.5 for hundreds of
episodes); ``init="scaled"`` (default) draws N(0, 1/fan_in) with zero biases, so the sigmoid starts
in its linear range.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import minigrad
from minigrad import functional as F
from minigrad.nn import Module, Parameter, init
from minigrad.random import Generator
from minigrad.tensor import Tensor
from models.meta_learning.base import FewShotLearner, accuracy
from models.meta_learning.encoder import ConfigDict, EncoderConfig, SentenceEncoder, check_positive
from models.meta_learning.episodes import EpisodeBatch, check_support, join

INITS = ("scaled", "book")
RELATIONS = ("book", "pairwise")


def squash(x: Tensor, eps: float = 1e-9) -> Tensor:
    """squash(x) = ‖x‖² / (1 + ‖x‖²) · x / √(‖x‖² + ε) over the last axis (Sabour et al. eq. 1): the
    direction of x with a length in [0, 1). ε is the book's, so x = 0 gives 0, not NaN."""
    n2 = (x * x).sum(axis=-1, keepdims=True)  # (…, 1)
    return x * (n2 / (1.0 + n2) / (n2 + eps).sqrt())


def _normal(shape, std: float, dtype, generator) -> Parameter:
    p = Parameter(np.empty(shape, dtype=np.dtype(np.float32 if dtype is None else dtype)))
    init.normal_(p, 0.0, std, generator=generator)
    return p


class DynamicRouting(Module):
    """Support vectors (C, K, H) → class vectors (C, H) by ``iterations`` rounds of routing."""

    def __init__(self, hidden: int, iterations: int = 3, init_mode: str = "scaled", dtype=None,
                 generator: Generator | None = None):
        super().__init__()
        check_positive("DynamicRouting", hidden=hidden, iterations=iterations)
        self.iterations = iterations
        self.W = _normal((hidden, hidden), 1.0 if init_mode == "book" else hidden ** -0.5, dtype, generator)

    def forward(self, support: Tensor, return_coupling: bool = False):
        if support.ndim != 3 or support.shape[-1] != self.W.shape[0]:
            raise ValueError(f"DynamicRouting: expected support vectors (C, K, {self.W.shape[0]}), got "
                             f"{tuple(support.shape)}")
        e = support @ self.W  # (C, K, H) ê_ij, the shared transform
        logits = Tensor._wrap(np.zeros(support.shape[:2], dtype=support.dtype))  # (C, K) b_ij = 0
        for step in range(self.iterations):
            coupling = F.softmax(logits, dim=-1)  # (C, K) d_i, sums to 1 over each class's K samples
            classes = squash((coupling.unsqueeze(-1) * e).sum(axis=1))  # (C, H) c_i
            if step < self.iterations - 1:  # the last agreement would never be read
                logits = logits + (e @ classes.unsqueeze(-1)).squeeze(-1)  # (C, K) b_ij += ê_ij · c_i
        return (classes, coupling) if return_coupling else classes


class RelationModule(Module):
    """Class vectors (C, H) and query vectors (Q, H) → relation scores in (0, 1), (Q, C)."""

    def __init__(self, hidden: int, slices: int = 100, n_way: int = 2, mode: str = "book", init_mode: str = "scaled",
                 dtype=None, generator: Generator | None = None):
        super().__init__()
        check_positive("RelationModule", hidden=hidden, slices=slices, n_way=n_way)
        if mode not in RELATIONS:
            raise ValueError(f"RelationModule: mode must be one of {RELATIONS}, got {mode!r}")
        self.mode, self.n_way, self.slices = mode, n_way, slices
        book = init_mode == "book"
        self.M = _normal((hidden, hidden, slices), 1.0 if book else hidden ** -0.5, dtype, generator)  # M_1..M_h
        features = n_way * slices if mode == "book" else slices
        outputs = n_way if mode == "book" else 1
        self.W = _normal((features, outputs), 1.0 if book else features ** -0.5, dtype, generator)
        self.b = _normal((outputs,), 1.0, dtype, generator) if book else \
            Parameter(np.zeros(outputs, dtype=self.W.dtype))

    def forward(self, classes: Tensor, queries: Tensor) -> Tensor:
        H, h = self.M.shape[0], self.slices
        C, Q = classes.shape[0], queries.shape[0]
        if classes.ndim != 2 or queries.ndim != 2 or classes.shape[1] != H or queries.shape[1] != H:
            raise ValueError(f"RelationModule: expected class vectors (C, {H}) and queries (Q, {H}), got "
                             f"{tuple(classes.shape)} and {tuple(queries.shape)}")
        if self.mode == "book" and C != self.n_way:
            raise ValueError(f"RelationModule: the book's relation layer is built for n_way={self.n_way} "
                             f"classes, got {C}")
        cM = (classes @ self.M.reshape(H, H * h)).reshape(C, H, h)  # (C, H, h): c_iᵀ M_k for every k
        v = (cM.transpose(1, 2) @ queries.transpose(0, 1)).relu()  # (C, h, Q): v[i, k, q] = c_iᵀ M_k e_q
        if self.mode == "pairwise":
            scores = (v.permute(2, 0, 1) @ self.W).squeeze(-1) + self.b  # (Q, C, h) @ (h, 1) -> (Q, C)
        else:  # the book concatenates the slices k-major: feature k·C + i
            scores = v.permute(2, 1, 0).reshape(Q, h * C) @ self.W + self.b  # (Q, C)
        return scores.sigmoid()


@dataclass
class InductionConfig(ConfigDict):
    """The book's hyperparameters (§ 5.2): encoder 300 / 128 / 64 / 64, 3 routing iterations, h = 100."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    n_way: int = 2
    routing_iterations: int = 3
    relation_slices: int = 100  # h of the neural tensor layer
    relation: str = "book"
    init: str = "scaled"

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig.from_dict(self.encoder)
        check_positive("InductionConfig", n_way=self.n_way, routing_iterations=self.routing_iterations,
                       relation_slices=self.relation_slices)
        if self.relation not in RELATIONS:
            raise ValueError(f"InductionConfig: relation must be one of {RELATIONS}, got {self.relation!r}")
        if self.init not in INITS:
            raise ValueError(f"InductionConfig: init must be one of {INITS}, got {self.init!r}")


class InductionNetwork(FewShotLearner):
    """Encoder → DynamicRouting → RelationModule, trained with MSE on one-hot query labels."""

    config_class = InductionConfig

    def __init__(self, config: InductionConfig, seed: int = 0, dtype=None):
        super().__init__()
        c = self.config = config
        g = Generator(seed)
        H = c.encoder.output_size
        self.encoder = SentenceEncoder(c.encoder, generator=g, dtype=dtype)
        self.induction = DynamicRouting(H, c.routing_iterations, c.init, dtype=dtype, generator=g)
        self.relation = RelationModule(H, c.relation_slices, c.n_way, c.relation, c.init, dtype=dtype, generator=g)

    def class_vectors(self, support_vectors: Tensor, labels, n_way: int) -> Tensor:
        """(C, H) from support vectors (C·K, H) with their labels (K per class, any order)."""
        labels = check_support("InductionNetwork", labels, n_way, balanced=True)
        order = np.argsort(labels, kind="stable")  # class-major: (C, K, H)
        return self.induction(support_vectors[order].reshape(n_way, len(labels) // n_way, -1))

    def forward(self, batch: EpisodeBatch) -> Tensor:
        """Relation scores (Q, C) of an episode's queries; support and queries share one encoder pass."""
        texts = join(batch.support, batch.query, self.config.encoder.pad_id)
        vectors = self.encoder(texts.ids, texts.attention_mask)  # (C·K + Q, H)
        n_support = len(batch.support_labels)
        return self.relation(self.class_vectors(vectors[:n_support], batch.support_labels, batch.n_way),
                             vectors[n_support:])

    def episode_loss(self, batch: EpisodeBatch):
        scores = self(batch)  # (Q, C)
        one_hot = np.eye(batch.n_way, dtype=scores.dtype)[batch.query_labels]
        return F.mse_loss(scores, one_hot), {"accuracy": accuracy(scores, batch.query_labels), "size": batch.size}

    def read_support(self, support, labels, n_way: int) -> Tensor:
        with minigrad.no_grad():
            return self.class_vectors(self.encoder(support.ids, support.attention_mask), labels, n_way)

    def score_queries(self, classes: Tensor, query) -> np.ndarray:
        with minigrad.no_grad():
            return self.relation(classes, self.encoder(query.ids, query.attention_mask)).data
