"""The GRU encoder-decoder with attention of chapter 2 ("ask, look up, answer").

An encoder GRU reads the source x_1 … x_S into states h̄_1 … h̄_S; a decoder GRU writes the target
one token at a time, p(y_t | y_<t, x) = softmax(W_o f_t). Without attention the decoder sees the
source only through ONE fixed vector, the encoder's last state (Sutskever et al., 2014) — the
bottleneck the chapter starts from. With attention every step asks a query, looks the answer
up in all encoder states and reads a context vector

    α_t = softmax_s(score(query_t, h̄_s)),     c_t = Σ_s α_ts h̄_s

where padded source positions get α = 0. The decoders differ in the score and where c_t goes:

* ``AttnDecoderRNN`` — the book's (PyTorch tutorial) decoder: α_t = softmax(W_a [e_t; h_{t-1}])
  over ``max_length`` source *positions* (the score does not look at the encoder states),
  c_t = α_t · H̄, then h_t = GRU(relu(W_c [e_t; c_t]), h_{t-1}).
* ``BahdanauAttnDecoder`` — additive attention (Bahdanau et al., 2015), query h_{t-1},
  score vᵀ tanh(W h_{t-1} + U h̄_s), then h_t = GRU([e_t; c_t], h_{t-1}).
* ``LuongAttnDecoder`` — multiplicative attention (Luong et al., 2015), h_t = GRU(e_t, h_{t-1}),
  score h_tᵀ h̄_s (dot) or h_tᵀ W_a h̄_s (general), output from h̃_t = tanh(W_c [c_t; h_t]).
* ``DecoderRNN`` — no attention: h_t = GRU(e_t, h_{t-1}) from h_0 = h̄_S.

All decoders end in log-softmax and keep the hidden state shaped (1, B, H) as torch.nn.GRU.
``Seq2Seq`` ties an encoder and a decoder: teacher-forced training (with a ratio), batched
greedy decoding, beam search (``models.beam_search``) and attention heatmaps.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

import minigrad
from minigrad import Tensor, cat, stack
from minigrad.nn import Linear, Module
from minigrad.nn.attention import AdditiveAttention, LuongAttention, masked_softmax
from minigrad.nn.dropout import Dropout
from minigrad.nn.losses import nll_loss
from minigrad.nn.rnn import GRU
from minigrad.nn.sparse import Embedding

from models.beam_search import beam_search, greedy_search
from models.training import TrainConfig, Trainer, attach_dropout_generator, evaluating

__all__ = [
    "EncoderMemory", "EncoderRNN", "DecoderBase", "AttnDecoderRNN", "BahdanauAttnDecoder", "LuongAttnDecoder",
    "DecoderRNN", "Seq2Seq", "ATTENTION_TYPES", "build_seq2seq", "plot_attention", "Seq2SeqTraining", "train_epoch",
    "evaluate", "epoch_seed",
]

ATTENTION_TYPES = ("book", "bahdanau", "luong", "none")


# ==============================================================================================
# input checks
# ==============================================================================================
def _ids(func: str, ids, ndim: int) -> np.ndarray:
    arr = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if arr.ndim != ndim or arr.size == 0 or arr.dtype.kind not in "iu":
        raise TypeError(f"{func}: expected a non-empty {ndim}-D integer array of token ids, "
                        f"got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _lengths(func: str, lengths, batch: int, width: int) -> np.ndarray:
    """(B,) ints in [1, width]; None means every row is full."""
    if lengths is None:
        return np.full(batch, width, dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.shape != (batch,) or arr.dtype.kind not in "iu":
        raise ValueError(f"{func}: lengths must be ({batch},) integers, got shape {arr.shape} dtype {arr.dtype}")
    if arr.min() < 1 or arr.max() > width:
        raise ValueError(f"{func}: lengths must be in [1, {width}] (the padded width), got {arr.tolist()}")
    return arr.astype(np.int64)


# ==============================================================================================
# encoder
# ==============================================================================================
@dataclass(frozen=True)
class EncoderMemory:
    """What the decoder may look at: ``outputs`` (B, S, H) the encoder states h̄_s, ``mask``
    (B, S) bool True at real source tokens, ``hidden`` (1, B, H) the last real state h̄_S."""

    outputs: Tensor
    mask: np.ndarray
    hidden: Tensor

    @property
    def source_len(self) -> int:
        return int(self.mask.shape[1])

    def repeat(self, k: int) -> "EncoderMemory":
        """One sentence's memory copied for k hypotheses (beam search; no gradient)."""
        if self.mask.shape[0] != 1:
            raise ValueError(f"EncoderMemory.repeat: expects the memory of ONE sentence, got batch {self.mask.shape[0]}")
        return EncoderMemory(Tensor._wrap(np.repeat(self.outputs.data, k, axis=0)), np.repeat(self.mask, k, axis=0),
                             Tensor._wrap(np.repeat(self.hidden.data, k, axis=1)))


class EncoderRNN(Module):
    """Embedding + GRU over the source, batch first: h̄_s = GRU(E[x_s], h̄_{s-1}).

    ``forward(src (B, S), lengths (B,) or None) -> EncoderMemory``. Padding comes after the real
    tokens and a GRU only looks back, so the states at real positions do not depend on the
    padding; the final state is taken at position ``lengths - 1`` (not at S) for each row.
    """

    def __init__(self, vocab_size: int, hidden_size: int, embed_size: int | None = None, *,
                 pad_id: int | None = None, dropout: float = 0.0, dtype=None, generator=None):
        super().__init__()
        embed_size = hidden_size if embed_size is None else embed_size
        self.hidden_size = hidden_size
        self.embedding = Embedding(vocab_size, embed_size, padding_idx=pad_id, dtype=dtype, generator=generator)
        self.dropout = Dropout(dropout, generator=generator)
        self.gru = GRU(embed_size, hidden_size, batch_first=True, dtype=dtype, generator=generator)

    def forward(self, src, lengths=None) -> EncoderMemory:
        src = _ids("EncoderRNN", src, 2)
        B, S = src.shape
        lengths = _lengths("EncoderRNN", lengths, B, S)
        if src.max() >= self.embedding.num_embeddings:
            raise ValueError(f"EncoderRNN: token id {int(src.max())} >= vocab size {self.embedding.num_embeddings}")
        embedded = self.dropout(self.embedding(src))  # (B, S, E)
        outputs, _ = self.gru(embedded)  # (B, S, H)
        last = outputs[np.arange(B), lengths - 1]  # (B, H) the state after the last real token
        mask = np.arange(S)[None, :] < lengths[:, None]  # (B, S)
        return EncoderMemory(outputs, mask, last.unsqueeze(0))


# ==============================================================================================
# decoders
# ==============================================================================================
class DecoderBase(Module):
    """Shared parts of every decoder: embedding + dropout of the previous token, the output
    layer and log-softmax, and the two ways to run the recurrence.

    A subclass computes output features f_t from the embedded input e_t and either overrides
    ``_step`` (one step; attention that feeds the GRU input must go step by step) or
    ``_sequence`` (all T teacher-forced steps at once, when the GRU input does not depend on
    attention); the other one is derived. Both return (features, hidden (1, B, H), weights).
    """

    def __init__(self, vocab_size: int, hidden_size: int, embed_size: int | None, feature_size: int, *,
                 pad_id: int | None, dropout: float, dtype, generator):
        super().__init__()
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.embed_size = hidden_size if embed_size is None else embed_size
        self.embedding = Embedding(vocab_size, self.embed_size, padding_idx=pad_id, dtype=dtype, generator=generator)
        self.dropout = Dropout(dropout, generator=generator)
        self.out = Linear(feature_size, vocab_size, dtype=dtype, generator=generator)

    def prepare(self, memory: EncoderMemory) -> EncoderMemory:
        """Per-decoder view of the encoder memory (the book's decoder pads it to max_length)."""
        return memory

    def _check(self, func: str, hidden: Tensor, batch: int) -> None:
        if not isinstance(hidden, Tensor) or tuple(hidden.shape) != (1, batch, self.hidden_size):
            shape = tuple(hidden.shape) if isinstance(hidden, Tensor) else type(hidden).__name__
            raise ValueError(f"{type(self).__name__}.{func}: hidden must be a (1, B={batch}, H={self.hidden_size}) "
                             f"Tensor, got {shape}")

    def step(self, tokens, hidden: Tensor, memory: EncoderMemory):
        """One decoding step: tokens (B,) → (log_probs (B, V), hidden (1, B, H), weights (B, S) or None)."""
        tokens = _ids(f"{type(self).__name__}.step", tokens, 1)
        self._check("step", hidden, tokens.shape[0])
        embedded = self.dropout(self.embedding(tokens))  # (B, E)
        features, hidden, weights = self._step(embedded, hidden, memory)
        return self.out(features).log_softmax(-1), hidden, weights

    def forward(self, tgt_in, hidden: Tensor, memory: EncoderMemory):
        """Teacher forcing: inputs (B, T) → (log_probs (B, T, V), hidden, weights (B, T, S) or None)."""
        tgt_in = _ids(type(self).__name__, tgt_in, 2)
        self._check("forward", hidden, tgt_in.shape[0])
        embedded = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        features, hidden, weights = self._sequence(embedded, hidden, memory)
        return self.out(features).log_softmax(-1), hidden, weights

    def _step(self, embedded: Tensor, hidden: Tensor, memory: EncoderMemory):
        features, hidden, weights = self._sequence(embedded.unsqueeze(1), hidden, memory)
        return features[:, 0], hidden, None if weights is None else weights[:, 0]

    def _sequence(self, embedded: Tensor, hidden: Tensor, memory: EncoderMemory):
        features, weights = [], []
        for t in range(embedded.shape[1]):
            f, hidden, w = self._step(embedded[:, t], hidden, memory)
            features.append(f)
            weights.append(w)
        return stack(features, 1), hidden, None if weights[0] is None else stack(weights, 1)

    def _gru_step(self, x: Tensor, hidden: Tensor):
        """h_t = GRU(x_t, h_{t-1}) for x (B, I): returns (h_t (B, H), hidden (1, B, H))."""
        out, hidden = self.gru(x.unsqueeze(1), hidden)  # (B, 1, H), (1, B, H)
        return out[:, 0], hidden


class AttnDecoderRNN(DecoderBase):
    """The book's attention decoder (PyTorch seq2seq tutorial), one step::

        e_t = dropout(E[y_{t-1}])                                     (B, E)
        α_t = softmax(W_attn [e_t; h_{t-1}])  over max_length positions (padding masked)
        c_t = α_t · H̄                          ("attn_applied")         (B, H)
        h_t = GRU(relu(W_combine [e_t; c_t]), h_{t-1})
        p_t = log_softmax(W_out h_t)

    The score depends on the position only, not on the encoder state there: the decoder must
    learn *where* to look from its own state (enough for reversal: position S − t).
    """

    def __init__(self, vocab_size: int, hidden_size: int, max_length: int, embed_size: int | None = None, *,
                 pad_id: int | None = None, dropout: float = 0.1, dtype=None, generator=None):
        super().__init__(vocab_size, hidden_size, embed_size, hidden_size, pad_id=pad_id, dropout=dropout,
                         dtype=dtype, generator=generator)
        self.max_length = int(max_length)
        E, H = self.embed_size, hidden_size
        self.attn = Linear(E + H, self.max_length, dtype=dtype, generator=generator)
        self.attn_combine = Linear(E + H, H, dtype=dtype, generator=generator)
        self.gru = GRU(H, H, batch_first=True, dtype=dtype, generator=generator)

    def prepare(self, memory: EncoderMemory) -> EncoderMemory:
        """Pad the encoder states with zeros (and the mask with False) to ``max_length``."""
        B, S, H = memory.outputs.shape
        if S > self.max_length:
            raise ValueError(f"AttnDecoderRNN: the source has {S} positions but max_length={self.max_length}; "
                             "build the decoder with a larger max_length")
        if S == self.max_length:
            return memory
        zeros = Tensor._wrap(np.zeros((B, self.max_length - S, H), dtype=memory.outputs.dtype))
        mask = np.concatenate([memory.mask, np.zeros((B, self.max_length - S), dtype=bool)], axis=1)
        return replace(memory, outputs=cat([memory.outputs, zeros], 1), mask=mask)

    def _step(self, embedded, hidden, memory):
        scores = self.attn(cat([embedded, hidden[0]], -1))  # (B, max_length)
        weights = masked_softmax(scores, memory.mask)  # (B, max_length), 0 on padding
        applied = (weights.unsqueeze(1) @ memory.outputs)[:, 0]  # (B, H) = Σ_s α_s h̄_s
        x = self.attn_combine(cat([embedded, applied], -1)).relu()  # (B, H)
        h, hidden = self._gru_step(x, hidden)
        return h, hidden, weights


class BahdanauAttnDecoder(DecoderBase):
    """Additive attention (Bahdanau, Cho & Bengio, 2015), the query is the previous state::

        c_t, α_t = AdditiveAttention(h_{t-1}, H̄)     e_ts = vᵀ tanh(W h_{t-1} + U h̄_s)
        h_t = GRU([e_t; c_t], h_{t-1}),   p_t = log_softmax(W_out h_t)
    """

    def __init__(self, vocab_size: int, hidden_size: int, embed_size: int | None = None, *,
                 attention_size: int | None = None, pad_id: int | None = None, dropout: float = 0.1, dtype=None,
                 generator=None):
        super().__init__(vocab_size, hidden_size, embed_size, hidden_size, pad_id=pad_id, dropout=dropout,
                         dtype=dtype, generator=generator)
        H = hidden_size
        self.attention = AdditiveAttention(H, H, attention_size or H, dtype=dtype, generator=generator)
        self.gru = GRU(self.embed_size + H, H, batch_first=True, dtype=dtype, generator=generator)

    def _step(self, embedded, hidden, memory):
        context, weights = self.attention(hidden[0], memory.outputs, mask=memory.mask)  # (B, H), (B, S)
        h, hidden = self._gru_step(cat([embedded, context], -1), hidden)
        return h, hidden, weights


class LuongAttnDecoder(DecoderBase):
    """Multiplicative attention (Luong, Pham & Manning, 2015), the query is the NEW state::

        h_t = GRU(e_t, h_{t-1})
        c_t, α_t = LuongAttention(h_t, H̄)     score h_tᵀ h̄_s (dot) or h_tᵀ W_a h̄_s (general)
        h̃_t = tanh(W_c [c_t; h_t]),   p_t = log_softmax(W_out h̃_t)

    The GRU input does not depend on attention, so teacher forcing runs the GRU over all T
    steps in one call and attends for all steps at once.
    """

    def __init__(self, vocab_size: int, hidden_size: int, embed_size: int | None = None, *, method: str = "dot",
                 pad_id: int | None = None, dropout: float = 0.1, dtype=None, generator=None):
        super().__init__(vocab_size, hidden_size, embed_size, hidden_size, pad_id=pad_id, dropout=dropout,
                         dtype=dtype, generator=generator)
        H = hidden_size
        self.method = method
        self.gru = GRU(self.embed_size, H, batch_first=True, dtype=dtype, generator=generator)
        self.attention = LuongAttention(H, method, dtype=dtype, generator=generator)
        self.concat = Linear(2 * H, H, dtype=dtype, generator=generator)

    def _sequence(self, embedded, hidden, memory):
        states, hidden = self.gru(embedded, hidden)  # (B, T, H)
        context, weights = self.attention(states, memory.outputs, mask=memory.mask)  # (B, T, H), (B, T, S)
        return self.concat(cat([context, states], -1)).tanh(), hidden, weights


class DecoderRNN(DecoderBase):
    """No attention (Sutskever et al., 2014): the whole source reaches the decoder only through
    h_0 = h̄_S, the encoder's last state. h_t = GRU(e_t, h_{t-1}), p_t = log_softmax(W_out h_t)."""

    def __init__(self, vocab_size: int, hidden_size: int, embed_size: int | None = None, *,
                 pad_id: int | None = None, dropout: float = 0.1, dtype=None, generator=None):
        super().__init__(vocab_size, hidden_size, embed_size, hidden_size, pad_id=pad_id, dropout=dropout,
                         dtype=dtype, generator=generator)
        self.gru = GRU(self.embed_size, hidden_size, batch_first=True, dtype=dtype, generator=generator)

    def _sequence(self, embedded, hidden, memory):
        states, hidden = self.gru(embedded, hidden)  # (B, T, H)
        return states, hidden, None


# ==============================================================================================
# the encoder-decoder
# ==============================================================================================
class Seq2Seq(Module):
    """Encoder + decoder with training loss, greedy and beam-search decoding.

    ``bos_id``/``eos_id``/``pad_id`` are the TARGET vocabulary's ``<s>``, ``</s>``, ``<pad>``.
    """

    def __init__(self, encoder: EncoderRNN, decoder: DecoderBase, *, bos_id: int, eos_id: int, pad_id: int):
        super().__init__()
        if encoder.hidden_size != decoder.hidden_size:
            raise ValueError(f"Seq2Seq: encoder hidden size {encoder.hidden_size} != decoder hidden size "
                             f"{decoder.hidden_size}")
        self.encoder, self.decoder = encoder, decoder
        self.bos_id, self.eos_id, self.pad_id = int(bos_id), int(eos_id), int(pad_id)

    def encode(self, src, src_lengths=None) -> EncoderMemory:
        return self.decoder.prepare(self.encoder(src, src_lengths))

    def forward(self, src, src_lengths, tgt_in, *, teacher_forcing_ratio: float = 1.0,
                rng: np.random.Generator | None = None):
        """Log-probabilities (B, T, V) of the next target tokens and attention weights (B, T, S).

        Teacher forcing (Williams & Zipser, 1989) feeds the true previous token y_{t-1}; without
        it the decoder feeds its own previous guess (argmax), as at test time. As in the PyTorch
        tutorial the choice is made once per batch: teacher forcing with probability
        ``teacher_forcing_ratio`` (drawn from ``rng``).
        """
        tgt_in = _ids("Seq2Seq.forward", tgt_in, 2)
        src = _ids("Seq2Seq.forward", src, 2)
        memory = self.encode(src, src_lengths)
        if not 0.0 <= teacher_forcing_ratio <= 1.0:
            raise ValueError(f"Seq2Seq.forward: teacher_forcing_ratio must be in [0, 1], got {teacher_forcing_ratio}")
        forced = teacher_forcing_ratio >= 1.0 or (
            teacher_forcing_ratio > 0.0 and (rng if rng is not None else np.random.default_rng()).random()
            < teacher_forcing_ratio)
        if forced:
            log_probs, _, weights = self.decoder(tgt_in, memory.hidden, memory)
        else:
            log_probs, weights = self._free_running(tgt_in[:, 0], tgt_in.shape[1], memory)
        if weights is not None and weights.shape[-1] > src.shape[1]:
            weights = weights[:, :, :src.shape[1]]  # the book's decoder attends over max_length slots
        return log_probs, weights

    def _free_running(self, first, steps: int, memory: EncoderMemory):
        """Decode ``steps`` tokens feeding back the argmax (differentiable log-probs)."""
        tokens, hidden, outs, weights = first, memory.hidden, [], []
        for _ in range(steps):
            lp, hidden, w = self.decoder.step(tokens, hidden, memory)
            outs.append(lp)
            weights.append(w)
            tokens = lp.data.argmax(-1)
        return stack(outs, 1), None if weights[0] is None else stack(weights, 1)

    def loss(self, batch, *, teacher_forcing_ratio: float = 1.0, rng=None) -> Tensor:
        """Mean NLL per target token, −(1/N) Σ log p(y_t | y_<t, x), padding ignored."""
        log_probs, _ = self(batch.src, batch.src_lengths, batch.tgt_in,
                            teacher_forcing_ratio=teacher_forcing_ratio, rng=rng)
        V = log_probs.shape[-1]
        return nll_loss(log_probs.reshape(-1, V), batch.tgt_out.reshape(-1), ignore_index=self.pad_id)

    # ------------------------------------------------------------------ decoding
    def greedy_decode(self, src, src_lengths=None, *, max_len: int = 50):
        """Batched greedy decoding. Returns (tokens per row — ending with ``</s>`` if produced —,
        attention per row as a (len(tokens), S_row) array or None)."""
        src = _ids("Seq2Seq.greedy_decode", src, 2)
        lengths = _lengths("Seq2Seq.greedy_decode", src_lengths, *src.shape)
        if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"Seq2Seq.greedy_decode: max_len must be an int >= 1, got {max_len!r}")
        with evaluating(self):
            memory = self.encode(src, lengths)
            B = src.shape[0]
            tokens = np.full(B, self.bos_id, dtype=np.int64)
            hidden, done = memory.hidden, np.zeros(B, dtype=bool)
            out, weights = [], []
            for _ in range(max_len):
                lp, hidden, w = self.decoder.step(tokens, hidden, memory)
                tokens = lp.data.argmax(-1)
                out.append(tokens)
                weights.append(None if w is None else w.data)
                done |= tokens == self.eos_id
                if done.all():
                    break
        out = np.stack(out, 1)  # (B, T)
        results, attention = [], []
        for b in range(B):
            ends = np.flatnonzero(out[b] == self.eos_id)
            n = int(ends[0]) + 1 if ends.size else out.shape[1]
            results.append(out[b, :n].tolist())
            attention.append(None if weights[0] is None else np.stack([w[b, :lengths[b]] for w in weights[:n]]))
        return results, attention

    def step_fn(self, src_ids):
        """The ``(step, state)`` pair of ``models.beam_search`` for one source sentence (S,):
        the state is the decoder hidden state with the hypotheses first, (K, H)."""
        src_ids = _ids("Seq2Seq.step_fn", src_ids, 1)
        with evaluating(self):
            memory = self.encode(src_ids[None, :])
        repeated = {1: memory}

        def step(tokens: np.ndarray, hidden: np.ndarray):
            k = tokens.shape[0]
            if k not in repeated:
                repeated[k] = memory.repeat(k)
            with evaluating(self):
                lp, h, _ = self.decoder.step(tokens[:, -1], Tensor._wrap(hidden[None]), repeated[k])
            return lp.data, h.data[0]

        return step, memory.hidden.data[0]

    def beam_decode(self, src_ids, *, beam_size: int = 4, max_len: int = 50, length_penalty: float = 0.0):
        """Beam search for one source sentence (S,): up to ``beam_size`` (tokens, score), best first."""
        step, state = self.step_fn(src_ids)
        return beam_search(step, state, bos_id=self.bos_id, eos_id=self.eos_id, beam_size=beam_size,
                           max_len=max_len, length_penalty=length_penalty)

    def greedy_search(self, src_ids, *, max_len: int = 50):
        """Greedy decoding of one sentence through ``models.beam_search.greedy_search``."""
        step, state = self.step_fn(src_ids)
        return greedy_search(step, state, bos_id=self.bos_id, eos_id=self.eos_id, max_len=max_len)

    def attention_for(self, src_ids, output_ids: Sequence[int]) -> np.ndarray | None:
        """Attention weights (len(output), S) when the decoder produces ``output_ids`` (teacher
        forced in eval mode), e.g. for a heatmap of a beam-search result; None without attention."""
        src_ids = _ids("Seq2Seq.attention_for", src_ids, 1)
        tgt_in = np.array([[self.bos_id, *list(output_ids)[:-1]]], dtype=np.int64)
        with evaluating(self):
            _, weights = self(src_ids[None, :], None, tgt_in)
        return None if weights is None else weights.data[0]


def build_seq2seq(attention: str, src_vocab_size: int, tgt_vocab_size: int, *, hidden_size: int = 128,
                  embed_size: int | None = None, max_length: int = 50, luong_method: str = "dot",
                  dropout: float = 0.1, bos_id: int, eos_id: int, pad_id: int, src_pad_id: int | None = None,
                  seed: int = 0, dtype=None) -> Seq2Seq:
    """An encoder-decoder with the named attention: ``book`` (AttnDecoderRNN), ``bahdanau``,
    ``luong`` (``luong_method`` dot/general/concat) or ``none``. ``seed`` fixes the initial
    weights and the dropout masks."""
    if attention not in ATTENTION_TYPES:
        raise ValueError(f"build_seq2seq: attention must be one of {ATTENTION_TYPES}, got {attention!r}")
    init_gen = minigrad.Generator(seed)
    encoder = EncoderRNN(src_vocab_size, hidden_size, embed_size, pad_id=src_pad_id, dtype=dtype,
                         generator=init_gen)
    common = dict(pad_id=pad_id, dropout=dropout, dtype=dtype, generator=init_gen)
    if attention == "book":
        decoder = AttnDecoderRNN(tgt_vocab_size, hidden_size, max_length, embed_size, **common)
    elif attention == "bahdanau":
        decoder = BahdanauAttnDecoder(tgt_vocab_size, hidden_size, embed_size, **common)
    elif attention == "luong":
        decoder = LuongAttnDecoder(tgt_vocab_size, hidden_size, embed_size, method=luong_method, **common)
    else:
        decoder = DecoderRNN(tgt_vocab_size, hidden_size, embed_size, **common)
    model = Seq2Seq(encoder, decoder, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id)
    # dropout draws from its own stream, reseeded every epoch by ``Seq2SeqTraining`` (exact resume)
    model.dropout_generator = minigrad.Generator(seed + 1)
    attach_dropout_generator(model, model.dropout_generator)
    return model


# ==============================================================================================
# the training loop and evaluation shared by every decoder
# ==============================================================================================
def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of everything random in one epoch (batch order, teacher forcing, dropout), so that
    a run resumed at an epoch boundary continues exactly as an uninterrupted one."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)[0])


class Seq2SeqTraining:
    """What ``models.training`` needs to train a ``Seq2Seq`` on a ``ParallelDataset``: the batches
    of an epoch (length-bucketed, shuffled) and the loss of a batch (teacher forcing with
    probability ``teacher_forcing_ratio``, drawn once per batch).

    Everything random in epoch e — batch order, teacher forcing, dropout — is seeded by
    ``epoch_seed(seed, e)`` when the epoch's batches are made, so any epoch can be replayed.
    The loop counts epochs from 0; ``first_epoch`` is the number of its epoch 0 (the recipe counts
    from 1)."""

    def __init__(self, model: Seq2Seq, dataset, *, seed: int = 0, batch_size: int = 32,
                 teacher_forcing_ratio: float = 1.0, first_epoch: int = 1):
        self.model, self.dataset = model, dataset
        self.seed, self.batch_size, self.first_epoch = seed, batch_size, first_epoch
        self.teacher_forcing_ratio = teacher_forcing_ratio
        self.teacher_forcing_rng = np.random.default_rng(0)  # reseeded every epoch

    @property
    def rngs(self) -> dict:
        """The streams drawn from during the steps, for ``Trainer(rngs=...)``."""
        streams = {"teacher_forcing": self.teacher_forcing_rng}
        if getattr(self.model, "dropout_generator", None) is not None:
            streams["dropout"] = self.model.dropout_generator
        return streams

    def batches(self, epoch: int) -> list:
        """The batches of the loop's epoch ``epoch``; seeds the epoch's random streams."""
        s = epoch_seed(self.seed, self.first_epoch + epoch)
        self.teacher_forcing_rng.bit_generator.state = np.random.default_rng(s).bit_generator.state
        if getattr(self.model, "dropout_generator", None) is not None:
            self.model.dropout_generator.manual_seed(s)
        return self.dataset.batches(self.batch_size, seed=s, shuffle=True)

    def loss(self, model: Seq2Seq, batch) -> Tensor:
        return model.loss(batch, teacher_forcing_ratio=self.teacher_forcing_ratio, rng=self.teacher_forcing_rng)


def train_epoch(model: Seq2Seq, dataset, optimizer, *, epoch: int, seed: int = 0, batch_size: int = 32,
                teacher_forcing_ratio: float = 1.0, clip_norm: float | None = 5.0) -> list[float]:
    """One pass over ``dataset`` (a ``ParallelDataset``) with ``models.training``: loss, backward,
    gradient clipping, optimizer step, on the batches of ``Seq2SeqTraining`` for epoch ``epoch``.
    Returns the batch losses."""
    task = Seq2SeqTraining(model, dataset, seed=seed, batch_size=batch_size,
                           teacher_forcing_ratio=teacher_forcing_ratio, first_epoch=epoch)
    trainer = Trainer(model, optimizer, task.loss, TrainConfig(max_grad_norm=clip_norm), log=None)
    trainer.fit(task.batches)
    return trainer.history["steps"]["loss"]


def evaluate(model: Seq2Seq, dataset, *, batch_size: int = 100, max_len: int | None = None) -> dict:
    """Teacher-forced loss and perplexity per target token, and greedy-decoding accuracy:
    ``exact_match`` (share of outputs equal to the reference) and ``token_accuracy`` (share of
    reference positions decoded right). Also returns the decoded ids (``outputs``) in dataset
    order, without ``</s>``."""
    nll, tokens, hits, exact = 0.0, 0, 0, 0
    outputs: list = [None] * len(dataset)
    with evaluating(model):
        for batch in dataset.batches(batch_size, shuffle=False):
            loss = model.loss(batch)
            n = batch.num_target_tokens
            nll += float(loss.item()) * n
            tokens += n
            width = max_len or int(batch.tgt.shape[1]) + 10
            decoded, _ = model.greedy_decode(batch.src, batch.src_lengths, max_len=width)
            for i, out in zip(batch.index, decoded):
                ref = dataset.targets[i][1:-1].tolist()
                out = out[:-1] if out and out[-1] == model.eos_id else out
                outputs[i] = out
                exact += out == ref
                hits += sum(a == b for a, b in zip(out, ref))
    mean = nll / max(tokens, 1)
    return {"loss": mean, "perplexity": float(np.exp(min(mean, 700.0))), "exact_match": exact / len(dataset),
            "token_accuracy": hits / max(sum(len(t) - 2 for t in dataset.targets), 1), "outputs": outputs}


# ==============================================================================================
# attention heatmap
# ==============================================================================================
def plot_attention(path, weights: np.ndarray, source_tokens: Sequence[str], output_tokens: Sequence[str],
                   title: str = "") -> None:
    """Heatmap PNG of attention weights (rows: output tokens, columns: source tokens), written
    atomically. For the reversal task a good model shows the anti-diagonal."""
    from models.plotting import save_figure, subplots

    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(output_tokens), len(source_tokens)):
        raise ValueError(f"plot_attention: weights must be (len(output_tokens), len(source_tokens)) = "
                         f"{(len(output_tokens), len(source_tokens))}, got {w.shape}")
    fig, ax = subplots(figsize=(0.35 * len(source_tokens) + 2.2, 0.35 * len(output_tokens) + 1.6))
    image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), list(source_tokens), rotation=90)
    ax.set_yticks(range(len(output_tokens)), list(output_tokens))
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
