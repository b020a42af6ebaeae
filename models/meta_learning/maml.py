"""MAML (Finn et al. 2017, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks") on a
small BiLSTM + self-attention sentence classifier.

A task's support set adapts the weights θ by a few steps of gradient descent; the meta-objective
is the loss of the adapted weights θ'_S on the task's queries (Finn et al. Algorithm 2)::

    θ'_0 = θ;   θ'_{s+1} = θ'_s − α ∇ L_support(θ'_s),   s = 0 … S−1    inner loop (α, S)
    L_meta(θ) = L_query(θ'_S(θ)),   θ ← Adam(θ, ∇_θ L_meta)           outer loop, a meta-batch of tasks

**Second order** (default): the inner gradients are taken with ``minigrad.grad(create_graph=True)``,
so ∇_θ L_meta differentiates *through* the inner loop — it contains the Hessian-vector products
∏_s (I − α ∇² L_support(θ'_s)) applied to ∇ L_query(θ'_S). **First order** (``first_order=True``,
FOMAML, Finn et al. § 5.2) treats the inner gradients as constants, so dθ'_S/dθ = I and the
meta-gradient is simply ∇ L_query evaluated at θ'_S.

**What the inner loop adapts** (``adapt``): ``"all"`` every weight; ``"encoder"`` all but the
word embeddings (ten support reviews touch a few hundred of 30k rows); ``"top"`` (default) the
attention pooling and the output layer, the BiLSTM and embeddings only in the outer loop — the
"almost no inner loop" finding of Raghu et al. 2020 (ANIL), where adapting the head matches
adapting everything. All three are exact second-order MAML for the weights they adapt (tested
against torch). ``"top"`` is what makes real-data runs affordable: the support's BiLSTM states do
not change during the inner loop, so they are computed once and the inner gradients never pass
through the recurrence, whose create_graph backward replays BPTT as thousands of small Tensor
ops (about 40 k graph nodes per episode at 32 tokens, several seconds). The meta-gradient of the
BiLSTM then has two parts, through the query states and through the support states (which the
adapted weights depend on); both are computed, the second by one more backward from the states.

The classifier's output layer has one row per class *position* of the episode; since class order
is random per episode, the meta-learned initial head cannot prefer "positive" — adaptation on the
support has to decide which position is which (the point of MAML).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

import minigrad
from minigrad import functional as F
from minigrad.function import Function
from minigrad.nn import Linear, Module
from minigrad.tensor import Tensor
from models.meta_learning.base import FewShotLearner, accuracy
from models.meta_learning.encoder import ConfigDict, EncoderConfig, SentenceEncoder, check_batch, check_positive
from models.meta_learning.episodes import EpisodeBatch, check_support

SMALL_ENCODER = EncoderConfig(embed_dim=64, hidden_size=32, attention_dim=32, attention_hops=4)
ADAPT = ("top", "encoder", "all")
_BODY = ("encoder.embedding.", "encoder.bilstm.")  # below the attention pooling


@contextmanager
def parameters_replaced(module: Module, values: dict):
    """Run ``module`` with some parameters replaced by Tensors (fast weights), then put the
    Parameters back — ``torch.func.functional_call`` for minigrad. ``values`` maps dotted names of
    ``named_parameters`` to Tensors of the same shape."""
    swapped = []
    try:
        for name, value in values.items():
            prefix, _, leaf = name.rpartition(".")
            owner = module.get_submodule(prefix)
            original = owner._parameters.get(leaf)
            if original is None:
                raise KeyError(f"parameters_replaced: {type(module).__name__} has no parameter {name!r}")
            if tuple(value.shape) != tuple(original.shape):
                raise ValueError(f"parameters_replaced: {name} has shape {tuple(original.shape)}, "
                                 f"got a value of shape {tuple(value.shape)}")
            owner._parameters[leaf] = value  # the registry itself: Module.__setattr__ accepts only Parameters
            swapped.append((owner, leaf, original))
        yield module
    finally:
        for owner, leaf, original in reversed(swapped):
            owner._parameters[leaf] = original


class _Precomputed(Function):
    """A scalar whose gradients with respect to its inputs are already known: y = value,
    dy/dx_i = grads_i. It hands a meta-gradient assembled from two backward passes to a training
    loop that calls ``loss.backward()`` once."""

    def forward(self, *params, value, grads):
        self.grads = grads
        return np.asarray(value)

    def backward(self, g):
        return tuple(g * grad for grad in self.grads)


class SentenceClassifier(Module):
    """Encoder → Linear: logits (B, N) over the episode's N class positions."""

    def __init__(self, encoder: EncoderConfig, n_way: int, generator=None, dtype=None):
        super().__init__()
        self.encoder = SentenceEncoder(encoder, generator=generator, dtype=dtype)
        self.head = Linear(encoder.output_size, n_way, dtype=dtype, generator=generator)

    def classify_states(self, h: Tensor, lengths: np.ndarray) -> Tensor:
        """Logits from BiLSTM states (B, T, 2u): attention pooling, then the head."""
        return self.head(self.encoder.pool(h, lengths))

    def forward(self, texts) -> Tensor:
        return self.head(self.encoder(texts.ids, texts.attention_mask))


@dataclass
class MAMLConfig(ConfigDict):
    encoder: EncoderConfig = field(default_factory=lambda: EncoderConfig(**SMALL_ENCODER.to_dict()))
    n_way: int = 2
    inner_steps: int = 5  # S
    inner_lr: float = 0.1  # α
    first_order: bool = False
    adapt: str = "top"  # what the inner loop adapts: "top", "encoder" or "all" (module docstring)
    eval_inner_steps: int | None = None  # steps at evaluation (None: inner_steps)

    def __post_init__(self):
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig.from_dict(self.encoder)
        check_positive("MAMLConfig", n_way=self.n_way, inner_steps=self.inner_steps)
        if self.eval_inner_steps is not None:
            check_positive("MAMLConfig", eval_inner_steps=self.eval_inner_steps)
        if not (isinstance(self.inner_lr, (int, float)) and self.inner_lr > 0):
            raise ValueError(f"MAMLConfig: inner_lr must be a number > 0, got {self.inner_lr!r}")
        if self.adapt not in ADAPT:
            raise ValueError(f"MAMLConfig: adapt must be one of {ADAPT}, got {self.adapt!r}")


class MAML(FewShotLearner):
    """``learner``'s initial weights θ, meta-trained so a few inner steps on a support set fit its task."""

    config_class = MAMLConfig

    def __init__(self, config: MAMLConfig, seed: int = 0, dtype=None):
        super().__init__()
        self.config = config
        self.learner = SentenceClassifier(config.encoder, config.n_way, minigrad.Generator(seed), dtype)

    def adapted_names(self) -> list[str]:
        """The parameters the inner loop adapts."""
        names = [n for n, _ in self.learner.named_parameters()]
        if self.config.adapt == "all":
            return names
        frozen = _BODY if self.config.adapt == "top" else _BODY[:1]
        return [n for n in names if not n.startswith(frozen)]

    def adapt(self, support, labels, steps: int | None = None, create_graph: bool | None = None,
              support_states: Tensor | None = None) -> dict:
        """θ'_S: the fast weights after ``steps`` inner SGD steps on the support set. With
        ``create_graph`` (default: not ``first_order``) they stay differentiable functions of θ
        through the inner gradients; otherwise only through θ'_0 = θ (first order).
        ``support_states``: the support's BiLSTM states, when the inner loop adapts only the top."""
        c = self.config
        steps = c.inner_steps if steps is None else steps
        create_graph = (not c.first_order) if create_graph is None else create_graph
        labels = check_support("MAML.adapt", labels, c.n_way)
        params = dict(self.learner.named_parameters())
        fast = {n: params[n] for n in self.adapted_names()}
        if c.adapt == "top" and support_states is None:
            ids, lengths = check_batch("MAML.adapt", support.ids, support.attention_mask, c.encoder.vocab_size)
            with minigrad.no_grad():  # constants of the inner loop
                support_states = self.learner.encoder.contextual(ids, lengths)
        for _ in range(steps):
            with parameters_replaced(self.learner, fast):
                logits = self.learner(support) if support_states is None else \
                    self.learner.classify_states(support_states, support.lengths)
                loss = F.cross_entropy(logits, labels)
            # retain_graph: the walk must not free the nodes that made the fast weights from θ
            grads = minigrad.grad(loss, list(fast.values()), create_graph=create_graph, retain_graph=True)
            fast = {n: w - c.inner_lr * g for (n, w), g in zip(fast.items(), grads)}
        return fast

    def query_logits(self, fast: dict, query) -> Tensor:
        with parameters_replaced(self.learner, fast):
            return self.learner(query)

    def episode_loss(self, batch: EpisodeBatch):
        """L_query(θ'_S(θ)) of one task; its backward is the task's meta-gradient."""
        if self.config.adapt == "top":
            return self._episode_loss_top(batch)
        fast = self.adapt(batch.support, batch.support_labels)
        logits = self.query_logits(fast, batch.query)
        return F.cross_entropy(logits, batch.query_labels), {"accuracy": accuracy(logits, batch.query_labels),
                                                            "size": batch.size}

    def _episode_loss_top(self, batch: EpisodeBatch):
        """The same meta-loss when only the top adapts: the support states h_s enter the inner loop as
        a leaf, so its gradients stop there; the meta-gradient is then completed by h_s's own backward:
        ∇θ_body L = ∂L/∂θ_body (through the queries) + (∂L/∂h_s) ∂h_s/∂θ_body."""
        c, learner = self.config, self.learner
        ids, lengths = check_batch("MAML", batch.support.ids, batch.support.attention_mask, c.encoder.vocab_size)
        states = learner.encoder.contextual(ids, lengths)  # (N·K, T, 2u), a graph to the body's weights
        states_leaf = Tensor(states.data, requires_grad=True)
        fast = self.adapt(batch.support, batch.support_labels, support_states=states_leaf)
        logits = self.query_logits(fast, batch.query)
        loss = F.cross_entropy(logits, batch.query_labels)
        named = [(n, p) for n, p in learner.named_parameters() if p.requires_grad]
        params = [p for _, p in named]
        *grads, d_states = minigrad.grad(loss, params + [states_leaf], allow_unused=True)
        grads = [np.zeros(p.shape, p.dtype) if g is None else g.data for p, g in zip(params, grads)]
        body = [i for i, (n, _) in enumerate(named) if n.startswith(_BODY)]
        if d_states is not None and body:  # None: first order, the fast weights ignore the support states
            through_support = minigrad.grad(states, [params[i] for i in body], grad_outputs=d_states.data,
                                            allow_unused=True)
            for i, g in zip(body, through_support):
                if g is not None:
                    grads[i] = grads[i] + g.data
        meta_loss = _Precomputed.apply(*params, value=loss.data, grads=grads)
        return meta_loss, {"accuracy": accuracy(logits, batch.query_labels), "size": batch.size}

    def read_support(self, support, labels, n_way: int) -> dict:
        """Adaptation at evaluation: first-order steps (nothing differentiates through them), then
        the fast weights as constants."""
        if n_way != self.config.n_way:
            raise ValueError(f"MAML: built for n_way={self.config.n_way}, got a {n_way}-way task")
        with minigrad.enable_grad():  # evaluation runs under no_grad; the inner loop needs gradients
            fast = self.adapt(support, labels, self.config.eval_inner_steps, create_graph=False)
        return {n: w.detach() for n, w in fast.items()}

    def score_queries(self, fast: dict, query) -> np.ndarray:
        with minigrad.no_grad():
            return self.query_logits(fast, query).data
