"""PyTorch ports of the package's learners, for the tests and the benchmark only (they import
torch, which the package itself never needs). Each has our parameter names, so
``load_ours(torch, port, ours)`` copies our weights in, and each is written the plain torch way —
``pack_padded_sequence`` for the BiLSTM, the book's routing loop, ``torch.einsum`` for the neural
tensor layer, ``torch.func.functional_call`` and ``torch.autograd.grad(create_graph=True)`` for
MAML — so agreeing with it checks our vectorised forms, not a copy of them.
"""
from __future__ import annotations

import numpy as np

from models.data.arsc import EncodedTexts
from models.meta_learning.encoder import EncoderConfig
from models.meta_learning.episodes import EpisodeBatch
from models.meta_learning.induction import InductionConfig


# ----------------------------------------------------------------------------------------------
def torch_encoder_class(torch):
    nn = torch.nn

    class TorchSentenceEncoder(nn.Module):
        """Embedding → packed BiLSTM → masked self-attention, the hops' outputs averaged (the book's form)."""

        def __init__(self, c: EncoderConfig, dtype):
            super().__init__()
            self.embedding = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=c.pad_id, dtype=dtype)
            self.bilstm = nn.LSTM(c.embed_dim, c.hidden_size, bidirectional=True, batch_first=True, dtype=dtype)
            self.fc1 = nn.Linear(2 * c.hidden_size, c.attention_dim, dtype=dtype)
            self.fc2 = nn.Linear(c.attention_dim, c.attention_hops, dtype=dtype)

        def contextual(self, ids, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.embedding(ids), lengths, batch_first=True,
                                                       enforce_sorted=False)
            return nn.utils.rnn.pad_packed_sequence(self.bilstm(packed)[0], batch_first=True,
                                                    total_length=ids.shape[1])[0]  # (B, T, 2u)

        def forward(self, ids, lengths, states=None):
            h = self.contextual(ids, lengths) if states is None else states
            scores = self.fc2(torch.tanh(self.fc1(h))).transpose(1, 2)  # (B, r, T)
            padding = torch.arange(h.shape[1])[None, None, :] >= lengths[:, None, None]
            weights = torch.softmax(scores.masked_fill(padding, float("-inf")), dim=-1)
            return (weights @ h).mean(dim=1)  # (B, 2u)

    return TorchSentenceEncoder


def torch_induction_class(torch):
    nn = torch.nn
    Encoder = torch_encoder_class(torch)

    class TorchInduction(nn.Module):
        def __init__(self, c: InductionConfig, dtype):
            super().__init__()
            H, h = c.encoder.output_size, c.relation_slices
            self.encoder = Encoder(c.encoder, dtype)
            self.induction, self.relation = nn.Module(), nn.Module()
            self.induction.W = nn.Parameter(torch.empty(H, H, dtype=dtype))
            self.relation.M = nn.Parameter(torch.empty(H, H, h, dtype=dtype))
            book = c.relation == "book"
            self.relation.W = nn.Parameter(torch.empty(c.n_way * h if book else h, c.n_way if book else 1, dtype=dtype))
            self.relation.b = nn.Parameter(torch.empty(c.n_way if book else 1, dtype=dtype))
            self.iterations, self.book = c.routing_iterations, book

        def forward(self, ids, lengths, n_way: int, n_support: int):
            vectors = self.encoder(ids, lengths)
            e = vectors[:n_support].reshape(n_way, n_support // n_way, -1) @ self.induction.W  # (C, K, H)
            b = torch.zeros(e.shape[:2], dtype=e.dtype)
            for _ in range(self.iterations):  # the book's loop, agreement added every round
                d = torch.softmax(b, dim=1).unsqueeze(2)
                c = (d * e).sum(dim=1)
                n2 = (c * c).sum(dim=1, keepdim=True)
                c = n2 / (1 + n2) / torch.sqrt(n2 + 1e-9) * c
                b = b + (e @ c.unsqueeze(2)).squeeze(2)
            v = torch.relu(torch.einsum("ci,ijk,qj->qkc", c, self.relation.M, vectors[n_support:]))  # (Q, h, C)
            if self.book:
                return torch.sigmoid(v.reshape(v.shape[0], -1) @ self.relation.W + self.relation.b)
            return torch.sigmoid((v.transpose(1, 2) @ self.relation.W).squeeze(-1) + self.relation.b)

    return TorchInduction


def torch_classifier_class(torch):
    nn = torch.nn
    Encoder = torch_encoder_class(torch)

    class TorchSentenceClassifier(nn.Module):
        def __init__(self, c: EncoderConfig, n_way: int, dtype):
            super().__init__()
            self.encoder = Encoder(c, dtype)
            self.head = nn.Linear(c.output_size, n_way, dtype=dtype)

        def forward(self, ids, lengths, states=None):
            return self.head(self.encoder(ids, lengths, states))

    return TorchSentenceClassifier


def load_ours(torch, module, ours) -> None:
    """Our weights into the torch port, by name."""
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in ours.state_dict().items()})


def torch_maml_loss(torch, learner, batch: EpisodeBatch, steps: int, lr: float, frozen=(), create_graph=True,
                    support_states_once: bool = False):
    """The query loss after ``steps`` inner SGD steps, differentiated through with ``create_graph``.
    ``support_states_once`` (when ``frozen`` holds the whole BiLSTM): compute the support's BiLSTM
    states once rather than in every inner step, as ours does; autograd needs nothing else."""
    F = torch.nn.functional
    (s_ids, s_lengths), query = (_torch_texts(torch, t) for t in (batch.support, batch.query))
    params = dict(learner.named_parameters())
    fast = {n: p for n, p in params.items() if n not in frozen}
    states = learner.encoder.contextual(s_ids, s_lengths) if support_states_once else None
    for _ in range(steps):
        logits = torch.func.functional_call(learner, {**params, **fast}, (s_ids, s_lengths), {"states": states})
        loss = F.cross_entropy(logits, torch.from_numpy(batch.support_labels))
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph)
        fast = {n: w - lr * g for (n, w), g in zip(fast.items(), grads)}
    logits = torch.func.functional_call(learner, {**params, **fast}, query)
    return F.cross_entropy(logits, torch.from_numpy(batch.query_labels))


def _torch_texts(torch, texts: EncodedTexts):
    return torch.from_numpy(texts.ids), torch.from_numpy(texts.lengths)
