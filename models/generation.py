"""Text generation for every decoder of the book (GPT-2 § 5.3 and its successors): one ``generate``,
greedy, beam search and sampling, with the key/value cache — the same tokens as Hugging Face's
``generate`` on the same weights.

A language model gives P(x_t | x_<t); generating text is choosing tokens one at a time from it.

* **Greedy**: x_t = argmax P(· | x_<t).
* **Beam search** keeps the ``num_beams`` best partial continuations by Σ log P; a finished one
  (it emitted ``eos_token_id``, or reached ``max_new_tokens``) is scored Σ log P / n^α, n its new
  tokens, α = ``length_penalty`` (HF's rule, with its ``early_stopping`` True / False / "never").
* **Sampling** draws x_t from P after reshaping it, in HF's order (``process_scores``):
  repetition penalty (Keskar et al. 2019: a seen token's logit z becomes z/θ if z > 0, z·θ if not),
  temperature (z/τ), top-k (keep the k largest; Fan et al. 2018), top-p (keep the smallest set of
  most likely tokens whose mass exceeds p: nucleus sampling, Holtzman et al. 2020).

**Batches of prompts** are left-padded (``GPT2Tokenizer(padding_side="left")``) so that every
prompt ends at the last column and the new tokens line up; the attention mask hides the padding,
and positions are counted from each prompt's first real token (cumsum(mask) − 1, as HF).

**The model side** is a small protocol, so any decoder plugs in (GPT, GPT-2, a Llama):

    out = model(input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    out["logits"]           # (N, 1, V): the next-token logits of each row
    out["past_key_values"]  # the cache, extended by the t new positions (a DecoderCache, or any
                            # object with get_seq_length() and reorder_(rows))

with ``input_ids`` (N, t) the t new tokens of each row (the whole prompt first, then one at a
time), ``attention_mask`` (N, P + t) over the P cached and t new positions, ``position_ids``
(N, t) the positions of the new tokens (a rotary model rotates by them). The model also has
``config.vocab_size``, ``config.eos_token_id``, ``config.pad_token_id`` and ``max_positions``.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

import minigrad
from minigrad.nn.attention import KVCache
from minigrad.random import Generator

__all__ = ["DecoderCache", "GenerationOptions", "generate", "process_scores", "repetition_penalty",
           "temperature_scale", "top_k_filter", "top_p_filter", "log_softmax"]

_NEG = np.float32(-1.0e9)  # HF's "impossible" score in beam search (finite, so sums stay ordered)


class DecoderCache:
    """The keys and values of every layer for the positions seen so far (HF's ``DynamicCache``).

    A forward pass with ``past_key_values=cache`` appends its new positions to ``cache.layers[i]``
    (a ``minigrad.nn.KVCache`` per layer) and attends over all of them, so each generated token
    costs one position, not the whole sequence again."""

    def __init__(self, num_layers: int):
        self.layers = [KVCache() for _ in range(int(num_layers))]

    @classmethod
    def for_forward(cls, past_key_values, use_cache: bool, num_layers: int, owner: str):
        """(cache, P) for a decoder's forward: ``past_key_values`` (P cached positions), a new empty
        cache when ``use_cache`` asks for one, or (None, 0); anything but a DecoderCache is refused."""
        cache = past_key_values
        if cache is None and use_cache:
            cache = cls(num_layers)
        if cache is not None and not isinstance(cache, cls):
            raise TypeError(f"{owner}: past_key_values must be a DecoderCache, got {type(cache).__name__}")
        return cache, 0 if cache is None else cache.get_seq_length()

    def get_seq_length(self) -> int:
        """P, the number of cached positions."""
        return len(self.layers[0]) if self.layers else 0

    def reorder_(self, rows) -> None:
        """Keep rows ``rows`` of the batch, in that order (beam search: the surviving hypotheses)."""
        for layer in self.layers:
            layer.reorder_(rows)

    def __repr__(self) -> str:
        return f"DecoderCache(layers={len(self.layers)}, positions={self.get_seq_length()})"


# ----------------------------------------------------------------------------------------------
# The next-token distribution: HF's logits processors, on float32 (N, V) scores
# ----------------------------------------------------------------------------------------------
def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in the scores' dtype."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def repetition_penalty(scores: np.ndarray, input_ids: np.ndarray, penalty: float, ignore_prefix=None) -> np.ndarray:
    """CTRL's penalty (Keskar et al. 2019) on every token already in ``input_ids`` (N, t):
    z → z / θ where z > 0, z · θ where z ≤ 0 (θ > 1 discourages repeats). ``ignore_prefix`` (N,):
    leading positions of each row not counted (its left padding), as HF."""
    N, V = scores.shape
    seen = np.zeros((N, V + 1), dtype=bool)  # column V absorbs the ignored positions
    ids = np.where(np.arange(input_ids.shape[1])[None, :] < (0 if ignore_prefix is None else ignore_prefix[:, None]),
                   V, np.minimum(input_ids, V))
    seen[np.arange(N)[:, None], ids] = True
    theta = scores.dtype.type(penalty)
    penalised = np.where(scores < 0, scores * theta, scores / theta)
    return np.where(seen[:, :V], penalised, scores)


def temperature_scale(scores: np.ndarray, temperature: float) -> np.ndarray:
    """z / τ: τ < 1 sharpens the distribution, τ > 1 flattens it."""
    return scores / scores.dtype.type(temperature)


def top_k_filter(scores: np.ndarray, top_k: int, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Tokens below the k-th largest score get −∞ (ties with it are kept, as HF)."""
    k = min(max(int(top_k), min_tokens_to_keep), scores.shape[-1])
    kth = np.partition(scores, -k, axis=-1)[:, -k:].min(axis=-1, keepdims=True)  # (N, 1)
    return np.where(scores < kth, -np.inf, scores).astype(scores.dtype)


def top_p_filter(scores: np.ndarray, top_p: float, min_tokens_to_keep: int = 1) -> np.ndarray:
    """Nucleus: sorted by probability, the least likely tokens whose mass adds up to at most 1 − p get −∞
    (so the kept set is the smallest whose mass exceeds p). HF's rule, with its float32
    probabilities summed in float64, as torch's cumsum does."""
    order = np.argsort(scores, axis=-1, kind="stable")  # ascending
    probs = _softmax(np.take_along_axis(scores, order, axis=-1))
    mass = np.cumsum(probs.astype(np.float64), axis=-1).astype(scores.dtype)
    drop_sorted = mass <= scores.dtype.type(1.0 - top_p)
    drop_sorted[:, -min_tokens_to_keep:] = False
    drop = np.empty_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=-1)
    return np.where(drop, -np.inf, scores).astype(scores.dtype)


@dataclass
class GenerationOptions:
    """Every decoding choice of ``generate``, checked once (HF's ``GenerationConfig`` names)."""

    max_new_tokens: int = 20
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50  # HF's default; 0 switches top-k off (the book's top_k=0)
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    num_beams: int = 1
    num_return_sequences: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    eos_token_id: list | None = None
    pad_token_id: int | None = None
    use_cache: bool = True

    def __post_init__(self):
        def whole(name: str, low: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"generate: {name} must be an int >= {low}, got {value!r}")

        def real(name: str):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
                raise ValueError(f"generate: {name} must be a finite number, got {value!r}")
            return float(value)

        whole("max_new_tokens", 1), whole("top_k", 0), whole("num_beams", 1), whole("num_return_sequences", 1)
        if real("temperature") <= 0 and self.do_sample:
            raise ValueError(f"generate: temperature must be > 0 when sampling, got {self.temperature!r} "
                             "(for greedy decoding pass do_sample=False)")
        if not 0.0 < real("top_p") <= 1.0:
            raise ValueError(f"generate: top_p must be in (0, 1], got {self.top_p!r}")
        if real("repetition_penalty") <= 0:
            raise ValueError(f"generate: repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        real("length_penalty")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"generate: early_stopping must be True, False or 'never', got {self.early_stopping!r}")
        if self.num_return_sequences > self.num_beams and not self.do_sample:
            raise ValueError(f"generate: num_return_sequences={self.num_return_sequences} needs num_beams >= it "
                             f"(or do_sample=True), got num_beams={self.num_beams}")
        if self.pad_token_id is None and self.eos_token_id:
            self.pad_token_id = self.eos_token_id[0]  # finished rows are padded with eos, as HF

    def min_tokens_to_keep(self) -> int:
        """Sampling keeps at least one token; beam sampling one more than the eos tokens (HF)."""
        return 1 + len(self.eos_token_id or ()) if self.num_beams > 1 else 1


def process_scores(scores: np.ndarray, input_ids: np.ndarray, options: GenerationOptions,
                   ignore_prefix=None) -> np.ndarray:
    """The scores ``generate`` picks from, in HF's order: repetition penalty, then — sampling only —
    temperature, top-k, top-p. ``scores`` (N, V) float32, ``input_ids`` (N, t) the sequences so far."""
    o = options
    if o.repetition_penalty != 1.0:
        scores = repetition_penalty(scores, input_ids, o.repetition_penalty, ignore_prefix)
    if o.do_sample:
        if o.temperature != 1.0:
            scores = temperature_scale(scores, o.temperature)
        if o.top_k:
            scores = top_k_filter(scores, o.top_k, o.min_tokens_to_keep())
        if o.top_p < 1.0:
            scores = top_p_filter(scores, o.top_p, o.min_tokens_to_keep())
    return scores


# ----------------------------------------------------------------------------------------------
# The model, step by step
# ----------------------------------------------------------------------------------------------
class _Decoder:
    """The model seen by the search: the next-token scores (N, V) of each row, with or without the cache."""

    def __init__(self, model, ids: np.ndarray, mask: np.ndarray, use_cache: bool):
        self.model, self.use_cache = model, use_cache
        self.mask = mask  # (N, t) grows by one column per step
        self.positions = np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 0)  # counted from the first real token
        self.cache = None
        self.pending = ids  # the tokens the model has not seen yet

    def scores(self) -> np.ndarray:
        if self.use_cache:
            t = self.pending.shape[1]
            out = self.model(self.pending, attention_mask=self.mask, position_ids=self.positions[:, -t:],
                             past_key_values=self.cache, use_cache=True, logits_to_keep=1)
            self.cache = out["past_key_values"]
        else:  # everything again, for contrast: O(t²) work per token instead of O(t)
            out = self.model(self.pending, attention_mask=self.mask, position_ids=self.positions, logits_to_keep=1)
        logits = out["logits"]
        return np.asarray(getattr(logits, "data", logits))[:, -1].astype(np.float32)  # (N, V), as HF: float32

    def advance(self, tokens: np.ndarray, sequences: np.ndarray) -> None:
        """The chosen ``tokens`` (N,) become the next input; ``sequences`` (N, t) is the whole text so far."""
        self.mask = np.concatenate([self.mask, np.ones((len(tokens), 1), dtype=self.mask.dtype)], axis=1)
        self.positions = np.concatenate([self.positions, self.positions[:, -1:] + 1], axis=1)
        self.pending = tokens[:, None] if self.use_cache else sequences

    def reorder(self, rows: np.ndarray) -> None:
        if self.cache is not None:
            self.cache.reorder_(rows)


def _stream(streamer, ids: np.ndarray, first: bool = False) -> None:
    """HF's streamer protocol (``put`` the prompt, then each new token; ``end``) or a plain callable of the new tokens."""
    if streamer is None:
        return
    if hasattr(streamer, "put"):
        streamer.put(ids)
    elif not first:
        streamer(ids)


def _sample_or_greedy(decoder: _Decoder, ids: np.ndarray, options: GenerationOptions, rng, streamer,
                      ignore_prefix) -> np.ndarray:
    """HF's ``_sample``: one token per row and step; a finished row gets ``pad_token_id``."""
    eos = np.asarray(options.eos_token_id or [], dtype=np.int64)
    unfinished = np.ones(len(ids), dtype=bool)
    sequences = ids
    for step in range(options.max_new_tokens):
        scores = process_scores(decoder.scores(), sequences, options, ignore_prefix)  # (N, V)
        if options.do_sample:
            cdf = np.cumsum(_softmax(scores.astype(np.float64)), axis=1)
            u = rng.random(len(cdf))[:, None] * cdf[:, -1:]  # inverse CDF: the first token whose mass passes u
            tokens = (cdf < u).sum(axis=1)
        else:
            tokens = scores.argmax(axis=1)  # ties: the lowest id, as torch
        if eos.size:
            tokens = np.where(unfinished, tokens, options.pad_token_id)
            unfinished &= ~np.isin(tokens, eos)
        sequences = np.concatenate([sequences, tokens[:, None].astype(np.int64)], axis=1)
        _stream(streamer, tokens)
        if not unfinished.any() or step == options.max_new_tokens - 1:
            break
        decoder.advance(tokens, sequences)
    return sequences


def _beam_search(decoder: _Decoder, ids: np.ndarray, options: GenerationOptions, rng, batch: int,
                 ignore_prefix) -> np.ndarray:
    """HF's vectorised ``_beam_search``, in NumPy: K = num_beams live hypotheses per prompt, the 2K best
    extensions ranked each step (so K stay live when some end), the K best finished kept apart."""
    o, K = options, options.num_beams
    eos = np.asarray(o.eos_token_id or [], dtype=np.int64)
    prompt_len = ids.shape[1]
    max_length = prompt_len + o.max_new_tokens
    keep = max(2, 1 + len(eos)) * K  # candidates ranked per prompt
    in_top_k = np.arange(keep) < K
    fill = ((o.pad_token_id or int(eos[0])) if eos.size else -1)  # HF's padding of shorter finished beams
    running = np.full((batch, K, max_length), fill, dtype=np.int64)
    running[:, :, :prompt_len] = ids.reshape(batch, K, prompt_len)
    finished = running.copy()
    running_scores = np.zeros((batch, K), dtype=np.float32)
    running_scores[:, 1:] = _NEG  # all beams start equal: only the first one may expand at step 1
    finished_scores = np.full((batch, K), _NEG, dtype=np.float32)
    is_finished = np.zeros((batch, K), dtype=bool)
    improvable = np.ones((batch, 1), dtype=bool)  # could a live beam still beat the finished ones?
    running_parents = np.full((batch, K, o.max_new_tokens), -1, dtype=np.int64)
    finished_parents = running_parents.copy()
    rows = np.arange(batch)[:, None]
    cur = prompt_len
    while True:
        flat = running[:, :, :cur].reshape(batch * K, cur)
        log_probs = process_scores(log_softmax(decoder.scores()), flat, o, ignore_prefix)  # (B·K, V)
        V = log_probs.shape[1]
        totals = (log_probs.reshape(batch, K, V) + running_scores[:, :, None]).reshape(batch, K * V)
        if o.do_sample:  # beam sampling: candidates drawn without replacement, then ranked
            probs = _softmax(totals.astype(np.float64))
            if ((probs > 0).sum(axis=1) < keep).any():
                raise ValueError(f"generate: beam sampling draws {keep} candidates per prompt, but top_k / top_p "
                                 f"left fewer tokens with a non-zero probability; raise top_k or top_p")
            pick = np.stack([rng.choice(K * V, size=keep, replace=False, p=p / p.sum()) for p in probs])
            pick = np.take_along_axis(pick, np.argsort(-totals[rows, pick], axis=1, kind="stable"), axis=1)
        else:
            pick = np.argsort(-totals, axis=1, kind="stable")[:, :keep]  # (B, 2K) best first
        cand_scores = totals[rows, pick]
        parent, token = pick // V, pick % V
        cand = running[rows, parent].copy()  # (B, 2K, max_length)
        cand[:, :, cur] = token
        cand_parents = running_parents[rows, parent].copy()
        cand_parents[:, :, cur - prompt_len] = parent + rows * K  # row of the flat (B·K) batch
        ends = np.isin(token, eos) | (cur + 1 >= max_length)  # (B, 2K)
        # the K best candidates that did not end stay live
        live_scores = cand_scores + ends.astype(np.float32) * _NEG
        best = np.argsort(-live_scores, axis=1, kind="stable")[:, :K]
        running, running_scores = cand[rows, best], live_scores[rows, best]
        running_parents = cand_parents[rows, best]
        # those among the top K that ended join the finished ones, scored with the length penalty
        just_ended = ends & in_top_k[None, :]
        scored = cand_scores / np.float32((cur + 1 - prompt_len) ** o.length_penalty)
        full = is_finished.all(axis=1, keepdims=True) & (o.early_stopping is True)
        scored = scored + full * _NEG + (~improvable) * _NEG + (~just_ended) * _NEG
        merged_scores = np.concatenate([finished_scores, scored.astype(np.float32)], axis=1)
        top = np.argsort(-merged_scores, axis=1, kind="stable")[:, :K]
        finished = np.concatenate([finished, cand], axis=1)[rows, top]
        finished_scores = merged_scores[rows, top]
        finished_parents = np.concatenate([finished_parents, cand_parents], axis=1)[rows, top]
        is_finished = np.concatenate([is_finished, just_ended], axis=1)[rows, top]
        cur += 1
        # can the best live beam still beat the worst finished one? (HF's heuristic, by early_stopping)
        length = max_length - prompt_len if (o.early_stopping == "never" and o.length_penalty > 0) \
            else cur - prompt_len
        best_possible = running_scores[:, :1] / np.float32(length ** o.length_penalty)
        worst = np.where(is_finished, finished_scores.min(axis=1, keepdims=True), _NEG)
        improvable &= (best_possible > worst).any(axis=1, keepdims=True)
        open_beams = not (is_finished.all() and o.early_stopping is True)
        if not (improvable.any() and open_beams and not ends.all()):
            break
        decoder.reorder(running_parents[:, :, cur - 1 - prompt_len].reshape(-1))  # the cache follows the beams
        decoder.advance(running[:, :, cur - 1].reshape(-1), running[:, :, :cur].reshape(batch * K, cur))
    n = o.num_return_sequences
    out, parents = finished[:, :n].reshape(batch * n, max_length), finished_parents[:, :n].reshape(batch * n, -1)
    generated = int((parents != -1).sum(axis=1).max())
    return out[:, :prompt_len + generated]


def _config_ids(value, fallback, name: str) -> list | None:
    """eos/pad from the arguments, else the model's config; [] means none."""
    value = fallback if value is None else value
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"generate: {name} must be a token id >= 0 or a list of them, got {value!r}")
    return [int(v) for v in values]


def generate(model, input_ids, attention_mask=None, *, max_new_tokens: int = 20, do_sample: bool = False,
             temperature: float = 1.0, top_k: int = 50, top_p: float = 1.0, repetition_penalty: float = 1.0,
             num_beams: int = 1, num_return_sequences: int = 1, length_penalty: float = 1.0,
             early_stopping: bool | str = False, eos_token_id=None, pad_token_id: int | None = None,
             generator=None, seed: int | None = None, streamer=None, use_cache: bool = True) -> np.ndarray:
    """Continue each prompt of ``input_ids`` (B, T) — left-padded, with ``attention_mask`` (B, T) —
    by up to ``max_new_tokens`` tokens; returns prompt + new ids, (B · num_return_sequences, T + n)
    int64, as HF's ``generate`` (finished rows padded with ``pad_token_id``).

    ``num_beams`` > 1: beam search (``length_penalty``, ``early_stopping``); else greedy, or with
    ``do_sample`` sampling after ``temperature`` / ``top_k`` / ``top_p`` (HF's defaults: 1.0, 50,
    1.0); ``repetition_penalty`` in every mode. ``eos_token_id`` / ``pad_token_id`` default to the
    model config's (``eos_token_id=[]``: none). Randomness: ``seed`` (an int), or ``generator`` (a
    ``minigrad.Generator`` or NumPy Generator), else minigrad's global stream — the same seed gives
    the same text. ``streamer``: called with the (B,) new tokens of each step, or an object with
    HF's ``put`` / ``end``. ``use_cache=False`` recomputes the whole sequence at each step.
    """
    config = model.config
    options = GenerationOptions(max_new_tokens, bool(do_sample), temperature, top_k, top_p, repetition_penalty,
                                num_beams, num_return_sequences, length_penalty, early_stopping,
                                _config_ids(eos_token_id, getattr(config, "eos_token_id", None), "eos_token_id"),
                                (_config_ids(pad_token_id, getattr(config, "pad_token_id", None), "pad_token_id")
                                 or [None])[0], bool(use_cache))
    ids = np.asarray(getattr(input_ids, "data", input_ids))
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or ids.shape[1] == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"generate: input_ids must be (batch, prompt_len) integers with prompt_len >= 1, got "
                         f"shape {ids.shape} dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    if ids.min() < 0 or ids.max() >= config.vocab_size:
        raise ValueError(f"generate: input_ids must lie in [0, vocab_size={config.vocab_size}), got min "
                         f"{ids.min()} and max {ids.max()}")
    mask = np.ones_like(ids) if attention_mask is None else np.asarray(getattr(attention_mask, "data", attention_mask))
    if mask.shape != ids.shape or not np.isin(mask, (0, 1)).all():
        raise ValueError(f"generate: attention_mask must be 0/1 of the shape of input_ids {ids.shape}, got "
                         f"{mask.shape}")
    mask = mask.astype(np.int64)
    if (mask[:, -1] == 0).any():
        raise ValueError("generate: a prompt ends with padding; pad prompts on the left (padding_side='left')")
    total = ids.shape[1] + options.max_new_tokens
    if total > model.max_positions:
        raise ValueError(f"generate: prompt of {ids.shape[1]} tokens + max_new_tokens={options.max_new_tokens} "
                         f"= {total} exceeds the model's {model.max_positions} positions (n_positions); "
                         "shorten the prompt or generate fewer tokens")
    if options.num_beams > 1 and streamer is not None:
        raise ValueError("generate: streamer cannot be used with beam search (the best beam is known only at the end)")
    rng = Generator(seed).np if seed is not None else (
        generator if isinstance(generator, np.random.Generator) else minigrad.random._rng(generator))
    batch = ids.shape[0]
    expand = max(options.num_beams, options.num_return_sequences)
    ids, mask = np.repeat(ids, expand, axis=0), np.repeat(mask, expand, axis=0)  # (B·K, T), K rows per prompt
    ignore_prefix = mask.argmax(axis=1) if not mask.all() else None  # left padding, not seen by the penalty
    _stream(streamer, ids, first=True)
    decoder = _Decoder(model, ids, mask, options.use_cache)
    with minigrad.no_grad():
        if options.num_beams > 1:
            out = _beam_search(decoder, ids, options, rng, batch, ignore_prefix)
        else:
            out = _sample_or_greedy(decoder, ids, options, rng, streamer, ignore_prefix)
    if streamer is not None and hasattr(streamer, "end"):
        streamer.end()
    return out
