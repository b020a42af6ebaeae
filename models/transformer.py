"""The Transformer for translation (book ch. 3; Vaswani et al., 2017, "Attention Is All You Need").

An encoder-decoder built from the shared blocks of ``minigrad.nn`` (``Transformer``,
``MultiheadAttention`` with its key/value cache, ``SinusoidalPositionalEncoding``,
``Embedding``, ``cross_entropy``), in the annotated-transformer / nanoGPT style:

    x_src = Embed_src(src) · √d_model + PE                       (§3.4, §3.5)
    memory = Encoder(x_src, src_padding_mask)                      (§3.1)
    h = Decoder(Embed_tgt(tgt_in) · √d_model + PE, memory, causal) (§3.1, masked self-attention)
    p(y_t | y_<t, x) = softmax(h_t Wᵀ + b)                          (§3.4: W tied to Embed_tgt)

Training minimises label-smoothed cross-entropy (§5.4, ε = 0.1) with Adam (β₁ = 0.9,
β₂ = 0.98, ε = 1e-9) and the Noam warm-up schedule (§5.3, eq. 3). Decoding is greedy or beam
search (``models.beam_search``) with a length penalty; both reuse the encoder memory (computed
once) and a per-layer key/value cache so each step costs one new position, and
``check_cached_decoding`` shows the cache changes nothing but the speed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Sequence

import numpy as np

from minigrad.nn import Linear, Module, Parameter, init
from minigrad.nn.losses import cross_entropy
from minigrad.nn.positional import SinusoidalPositionalEncoding
from minigrad.nn.sparse import Embedding
from minigrad.nn.transformer import Transformer
from minigrad.optim import Adam
from minigrad.optim.lr_scheduler import NoamLR
from minigrad.random import Generator
from minigrad.tensor import Tensor
from models.training import evaluating


@dataclass
class TransformerConfig:
    """Sizes and options of ``TransformerTranslator`` (the paper's base model is d_model 512,
    8 heads, 6 + 6 layers, ff 2048, dropout 0.1, ε_ls 0.1; the defaults here fit a CPU)."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 256
    nhead: int = 4
    num_encoder_layers: int = 3
    num_decoder_layers: int = 3
    dim_feedforward: int = 1024
    dropout: float = 0.1
    label_smoothing: float = 0.1
    max_len: int = 256  # longest sequence the positional table covers
    pad_id: int = 0
    bos_id: int = 2
    eos_id: int = 3
    share_embeddings: bool = False  # one table for source and target (needs a joint vocab)
    tie_output: bool = True  # output projection W = target embedding table (§3.4)
    norm_first: bool = False  # Pre-LN instead of the paper's Post-LN

    def __post_init__(self):
        fn = "TransformerConfig"
        for f in ("src_vocab_size", "tgt_vocab_size", "d_model", "nhead", "dim_feedforward", "max_len"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"{fn}: {f} must be a positive int, got {v!r}")
        for f in ("num_encoder_layers", "num_decoder_layers"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{fn}: {f} must be an int >= 1, got {v!r}")
        if self.d_model % self.nhead:
            raise ValueError(f"{fn}: d_model ({self.d_model}) must be divisible by nhead ({self.nhead})")
        for f in ("dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, f) < 1.0:
                raise ValueError(f"{fn}: {f} must be in [0, 1), got {getattr(self, f)!r}")
        for f in ("pad_id", "bos_id", "eos_id"):
            v = getattr(self, f)
            if not 0 <= v < min(self.src_vocab_size, self.tgt_vocab_size):
                raise ValueError(f"{fn}: {f}={v} must be a valid id in both vocabularies "
                                 f"(sizes {self.src_vocab_size}, {self.tgt_vocab_size})")
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(f"{fn}: share_embeddings needs one joint vocabulary, got sizes "
                             f"{self.src_vocab_size} (source) and {self.tgt_vocab_size} (target)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TransformerConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _check_ids(fn: str, name: str, ids, vocab_size: int) -> np.ndarray:
    """Token ids as an int64 (B, T) array, with a clear error for anything else."""
    arr = ids.data if isinstance(ids, Tensor) else np.asarray(ids)
    if arr.ndim != 2 or arr.dtype.kind not in "iu" or arr.shape[1] == 0:
        raise ValueError(f"{fn}: {name} must be a non-empty (B, T) integer array, got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        raise ValueError(f"{fn}: {name} ids must lie in [0, {vocab_size}), got min {arr.min()} max {arr.max()}")
    return arr.astype(np.int64, copy=False)


class TransformerTranslator(Module):
    """Encoder-decoder Transformer for translation; batch first: src (B, S), tgt (B, T) ids."""

    def __init__(self, config: TransformerConfig, seed: int = 0):
        super().__init__()
        c = self.config = config
        self.generator = Generator(seed)  # parameter init and every dropout mask: reproducible
        g = self.generator
        self.src_embed = Embedding(c.src_vocab_size, c.d_model, padding_idx=c.pad_id, generator=g)
        if c.share_embeddings:
            self.tgt_embed = self.src_embed
        else:
            self.tgt_embed = Embedding(c.tgt_vocab_size, c.d_model, padding_idx=c.pad_id, generator=g)
        self.pos = SinusoidalPositionalEncoding(c.d_model, c.max_len, dropout=c.dropout, batch_first=True)
        self.transformer = Transformer(c.d_model, c.nhead, c.num_encoder_layers, c.num_decoder_layers,
                                       c.dim_feedforward, c.dropout, batch_first=True, norm_first=c.norm_first,
                                       generator=g)
        if c.tie_output:
            self.out_bias = Parameter(np.zeros(c.tgt_vocab_size, dtype=np.float32))
        else:
            self.out_proj = Linear(c.d_model, c.tgt_vocab_size, generator=g)
        # embeddings ~ N(0, 1/d): after the √d scale they have unit variance, like the positions,
        # and a tied output layer starts with logits of unit variance
        for emb in {id(self.src_embed): self.src_embed, id(self.tgt_embed): self.tgt_embed}.values():
            init.normal_(emb.weight, 0.0, c.d_model ** -0.5, generator=g)
            emb.weight.data[c.pad_id] = 0.0
        # every dropout (incl. attention dropout) draws from the model's one stream, saved in
        # checkpoints; Transformer deep-copies its layers, so their generators are copies
        for m in self.modules():
            if m is not self and "generator" in vars(m):
                m.generator = g

    # ------------------------------------------------------------------ the network
    def embed(self, emb: Embedding, ids: np.ndarray, offset: int = 0) -> Tensor:
        """Embed(ids) · √d_model + PE(offset …)   (§3.4, §3.5)"""
        x = emb(ids) * math.sqrt(self.config.d_model)  # (B, T, D)
        return self.pos(x, offset=offset)  # (B, T, D)

    def encode(self, src) -> tuple[Tensor, np.ndarray]:
        """memory = Encoder(Embed(src)), and the source padding mask (True = padding)."""
        src = _check_ids("TransformerTranslator.encode", "src", src, self.config.src_vocab_size)
        src_pad = src == self.config.pad_id  # (B, S)
        memory = self.transformer.encode(self.embed(self.src_embed, src), src_key_padding_mask=src_pad)
        return memory, src_pad  # (B, S, D), (B, S)

    def decode(self, tgt_in, memory: Tensor, src_pad: np.ndarray, cache=None, offset: int = 0) -> Tensor:
        """Decoder states (B, T, D) for target inputs ``tgt_in`` at positions offset … offset+T−1.

        Causal self-attention: position t sees y_≤t only. With ``cache`` (from ``new_cache``)
        only the new tokens are fed; earlier keys/values come from the cache."""
        tgt_in = _check_ids("TransformerTranslator.decode", "tgt_in", tgt_in, self.config.tgt_vocab_size)
        y = self.embed(self.tgt_embed, tgt_in, offset)  # (B, T, D)
        return self.transformer.decode(y, memory, memory_key_padding_mask=src_pad, tgt_is_causal=True,
                                       cache=cache)

    def logits(self, h: Tensor) -> Tensor:
        """h Wᵀ + b over the target vocabulary: (B, T, D) → (B, T, V)."""
        B, T, D = h.shape
        flat = h.reshape(B * T, D)  # one GEMM for all positions
        if self.config.tie_output:
            out = flat @ self.tgt_embed.weight.T + self.out_bias  # (B·T, V)
        else:
            out = self.out_proj(flat)
        return out.reshape(B, T, -1)

    def forward(self, src, tgt_in) -> Tensor:
        """Teacher-forced logits (B, T, V) of the next target token at every position."""
        memory, src_pad = self.encode(src)
        return self.logits(self.decode(tgt_in, memory, src_pad))

    def loss(self, src, tgt, label_smoothing: float | None = None, reduction: str = "mean") -> Tensor:
        """Label-smoothed cross-entropy (§5.4) of tgt[:, 1:] given tgt[:, :-1]; padding ignored.

            ℓ = −Σ_c q'_c log p_c,   q' = (1 − ε)·onehot(y) + ε / V
        """
        tgt = _check_ids("TransformerTranslator.loss", "tgt", tgt, self.config.tgt_vocab_size)
        if tgt.shape[1] < 2:
            raise ValueError(f"TransformerTranslator.loss: tgt needs <s> and at least one more token, got {tgt.shape}")
        eps = self.config.label_smoothing if label_smoothing is None else label_smoothing
        logits = self(src, tgt[:, :-1])  # (B, T-1, V)
        V = logits.shape[-1]
        return cross_entropy(logits.reshape(-1, V), tgt[:, 1:].reshape(-1), ignore_index=self.config.pad_id,
                             label_smoothing=eps, reduction=reduction)

    def new_cache(self):
        return self.transformer.decoder.new_cache()

    def cross_attention_weights(self, src, tgt_in, layer: int = -1) -> np.ndarray:
        """Encoder-decoder attention of decoder layer ``layer``, averaged over heads: (B, T, S),
        row t = where output position t looks in the source (the book's alignment heatmap)."""
        with evaluating(self):
            memory, src_pad = self.encode(src)
            y = self.embed(self.tgt_embed, _check_ids("cross_attention_weights", "tgt_in", tgt_in,
                                                      self.config.tgt_vocab_size))
            layers = self.transformer.decoder.layers
            index = range(len(layers))[layer]
            for blk in list(layers)[:index]:
                y = blk(y, memory, memory_key_padding_mask=src_pad, tgt_is_causal=True)
            blk = layers[index]
            sa = lambda x: blk.self_attn(x, x, x, is_causal=True, need_weights=False)[0]  # noqa: E731
            x = y + sa(blk.norm1(y)) if blk.norm_first else blk.norm1(y + sa(y))  # first sub-layer
            q = blk.norm2(x) if blk.norm_first else x
            _, w = blk.multihead_attn(q, memory, memory, key_padding_mask=src_pad, need_weights=True)
        return w.data  # (B, T, S)

    # ------------------------------------------------------------------ decoding
    def _step_log_probs(self, tgt_in, memory, src_pad, cache) -> np.ndarray:
        """log p(next | prefix) (B, V) as a NumPy array; with a cache ``tgt_in`` is the new token."""
        offset = len(cache[0]) if cache is not None else 0
        h = self.decode(tgt_in, memory, src_pad, cache=cache, offset=offset)  # (B, T, D)
        return self.logits(h[:, -1:]).log_softmax(-1).data[:, 0]  # (B, V)

    def greedy_decode(self, src, max_len: int | None = None, use_cache: bool = True) -> list[list[int]]:
        """Batched greedy decoding: y_t = argmax p(y | y_<t, x) until </s> (or ``max_len`` tokens).

        Returns one token list per source row (without <s>, with </s> when reached)."""
        c = self.config
        with evaluating(self):
            memory, src_pad = self.encode(src)
            B = memory.shape[0]
            max_len = self._max_len(src_pad, max_len)
            ys = np.full((B, 1), c.bos_id, dtype=np.int64)  # (B, t)
            done = np.zeros(B, dtype=bool)
            cache = self.new_cache() if use_cache else None
            for _ in range(max_len):
                feed = ys[:, -1:] if use_cache else ys
                nxt = self._step_log_probs(feed, memory, src_pad, cache).argmax(-1)  # (B,)
                nxt = np.where(done, c.pad_id, nxt)
                ys = np.concatenate([ys, nxt[:, None]], axis=1)
                done |= nxt == c.eos_id
                if done.all():
                    break
        return [_strip(row[1:], c.eos_id, c.pad_id) for row in ys]

    def beam_decode(self, src, beam_size: int = 4, max_len: int | None = None, length_penalty: float = 0.6,
                    use_cache: bool = True) -> list[tuple[list[int], float]]:
        """Beam search for ONE source sentence ``src`` (1, S) with the shared ``beam_search``
        (GNMT length penalty lp = ((5 + |y|) / 6)^α). The encoder runs once; the K live
        hypotheses share its memory (repeated) and each carries its own key/value cache.
        Returns (tokens, score) pairs, best first."""
        from models.beam_search import beam_search

        src = _check_ids("TransformerTranslator.beam_decode", "src", src, self.config.src_vocab_size)
        if src.shape[0] != 1:
            raise ValueError(f"TransformerTranslator.beam_decode: one sentence (1, S) at a time, got {src.shape}")
        c = self.config
        with evaluating(self):
            memory, src_pad = self.encode(src)
            max_len = self._max_len(src_pad, max_len)
            state = (memory, src_pad, self.new_cache() if use_cache else None)

            def step(tokens, state):  # tokens (K, t): feed only the newest one when cached
                memory, src_pad, cache = state
                feed = tokens[:, -1:] if cache is not None else tokens
                return self._step_log_probs(feed, memory, src_pad, cache), state

            def reorder(state, index):  # keep/repeat hypotheses: memory rows and their caches
                memory, src_pad, cache = state
                index = np.asarray(index, dtype=np.int64)
                for layer in cache or ():
                    layer.reorder_(index)
                return Tensor._wrap(memory.data[index]), src_pad[index], cache

            result = beam_search(step, state, bos_id=c.bos_id, eos_id=c.eos_id, beam_size=beam_size,
                                 max_len=max_len, length_penalty=length_penalty, reorder=reorder)
        return result

    def translate(self, src, beam_size: int = 1, max_len: int | None = None, length_penalty: float = 0.6,
                  use_cache: bool = True) -> list[list[int]]:
        """Best token list per source row (without <s> and </s>): greedy for beam 1, else beam search."""
        src = _check_ids("TransformerTranslator.translate", "src", src, self.config.src_vocab_size)
        if beam_size == 1:
            rows = self.greedy_decode(src, max_len, use_cache)
        else:
            rows = []
            for row in src:
                row = row[row != self.config.pad_id][None] if (row != self.config.pad_id).any() else row[None]
                rows.append(self.beam_decode(row, beam_size, max_len, length_penalty, use_cache)[0][0])
        eos = self.config.eos_id
        return [r[:-1] if r and r[-1] == eos else r for r in rows]

    def _max_len(self, src_pad: np.ndarray, max_len: int | None) -> int:
        """Default output budget: the longest source + 10 tokens, within the position table."""
        if max_len is None:
            max_len = int((~src_pad).sum(1).max()) + 10
        if not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"TransformerTranslator: max_len must be a positive int, got {max_len!r}")
        return min(int(max_len), self.config.max_len - 1)


def _strip(row: np.ndarray, eos_id: int, pad_id: int) -> list[int]:
    """Tokens up to and including the first </s> (the rest is padding after the end)."""
    out = []
    for t in row.tolist():
        out.append(t)
        if t == eos_id:
            break
    return out


def check_cached_decoding(model: TransformerTranslator, src, beam_size: int = 1, max_len: int | None = None) -> bool:
    """True when decoding with the key/value cache gives exactly the tokens of full recomputation."""
    return model.translate(src, beam_size, max_len, use_cache=True) == model.translate(src, beam_size, max_len,
                                                                                       use_cache=False)


# ---------------------------------------------------------------------- training helpers
def make_optimizer(model: TransformerTranslator, warmup_steps: int = 4000, factor: float = 1.0,
                   last_step: int = -1) -> tuple[Adam, NoamLR]:
    """Adam(β = 0.9, 0.98, ε = 1e-9) with the Noam schedule (§5.3, eq. 3):

        lr = factor · d_model^−0.5 · min(step^−0.5, step · warmup^−1.5)
    """
    opt = Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    sched = NoamLR(opt, model.config.d_model, warmup_steps, factor=factor, last_epoch=last_step)
    return opt, sched


def batch_loss(model: TransformerTranslator, batch) -> tuple[Tensor, dict]:
    """Label-smoothed loss of one ``ParallelBatch`` for ``models.training``; its size is its
    number of target tokens (the epoch's loss is per token)."""
    return model.loss(batch.src, batch.tgt), {"size": batch.num_target_tokens}


def evaluate_loss(model: TransformerTranslator, batches) -> dict:
    """Mean per-token NLL (no smoothing) and perplexity = exp(NLL) over (src, tgt) batches."""
    from models.metrics import perplexity

    nll, tokens = 0.0, 0
    with evaluating(model):
        for src, tgt in batches:
            nll += float(model.loss(src, tgt, label_smoothing=0.0, reduction="sum").item())
            tokens += int((np.asarray(tgt)[:, 1:] != model.config.pad_id).sum())
    return {"loss": nll / max(tokens, 1), "perplexity": perplexity(nll, tokens), "tokens": tokens}


def translate_corpus(model: TransformerTranslator, sources: Sequence[np.ndarray], batch_size: int = 64,
                     beam_size: int = 1, length_penalty: float = 0.6, max_len: int | None = None,
                     progress=None) -> list[list[int]]:
    """Translate id sequences (each without padding) in length-sorted padded batches; returns
    token lists in the input order."""
    order = np.argsort([len(s) for s in sources], kind="stable")
    out: list[list[int] | None] = [None] * len(sources)
    pad = model.config.pad_id
    chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for chunk in (progress(chunks) if progress else chunks):
        width = max(len(sources[i]) for i in chunk)
        src = np.full((len(chunk), width), pad, dtype=np.int64)
        for r, i in enumerate(chunk):
            src[r, :len(sources[i])] = sources[i]
        for i, toks in zip(chunk, model.translate(src, beam_size=beam_size, max_len=max_len, length_penalty=length_penalty)):
            out[i] = toks
    return out


def bleu(hypotheses: Sequence[str], references: Sequence[str], lowercase: bool = False) -> float:
    """Corpus BLEU of detokenised strings, 0–100: sacrebleu's (13a tokenisation), case-insensitive
    with ``lowercase`` (for models trained on lower-cased text)."""
    from models.metrics import corpus_bleu

    return float(corpus_bleu(list(hypotheses), [[r] for r in references], lowercase=lowercase).score)
