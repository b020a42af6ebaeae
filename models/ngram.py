"""N-gram language models with every classic smoothing (book, chapter 1).

An N-gram model approximates the chain rule with a Markov assumption of order ``n - 1``:

    P(w_1 .. w_T) = prod_t P(w_t | w_1 .. w_{t-1})  ~=  prod_t P(w_t | w_{t-n+1} .. w_{t-1})

Each sentence is padded with ``n - 1`` start symbols ``<s>`` and one end symbol ``</s>``;
words seen fewer than ``min_count`` times become ``<unk>``. ``c(h, w)`` is how often word ``w``
followed context ``h`` and ``c(h) = sum_w c(h, w)``. The predicted vocabulary ``V`` is every
word plus ``</s>`` and ``<unk>`` (``<s>`` is never predicted). Smoothings (Chen & Goodman 1998,
"An Empirical Study of Smoothing Techniques for Language Modeling"):

==================  ==========================================================================
``mle``             ``c(h,w) / c(h)`` — zero for anything unseen (perplexity can be infinite)
``laplace``         ``(c(h,w) + 1) / (c(h) + |V|)`` (add-one)
``add_k``           ``(c(h,w) + k) / (c(h) + k|V|)`` (Lidstone)
``interpolated``    Jelinek–Mercer: ``λ_m P_ML(w|h) + (1 - λ_m) P_{m-1}(w|h')``, λ tunable by EM
``backoff``         absolute-discount backoff (Katz-style, Ney et al. 1994): seen n-grams keep
                    ``(c - D) / c(h)``, the freed mass ``α(h)`` goes to the lower order,
                    renormalised over the unseen words
``kneser_ney``      interpolated Kneser–Ney with continuation counts ``N1+(• h w)`` for the lower
                    orders; ``modified=True`` uses three discounts ``D1, D2, D3+``
``stupid_backoff``  Brants et al. 2007: ``c(h,w)/c(h)`` if seen else ``α S(w|h')`` — a score,
                    *not* a distribution
==================  ==========================================================================

All smoothings but ``stupid_backoff`` define a proper distribution over ``V`` for every
context. The lowest order of ``interpolated``/``backoff``/``kneser_ney`` is interpolated with
the uniform ``1/|V|``, so ``<unk>`` and every word keep a non-zero probability.

Counting is vectorised: an n-gram is hashed to an integer key level by level
(``key = id(first token) * K + id(rest)``, as in a suffix trie), then ``np.unique`` counts
and ``np.searchsorted`` looks up probabilities for a whole text at once.
"""
from __future__ import annotations

from collections import Counter
from itertools import chain, repeat
from typing import Sequence

import numpy as np

from models.decoding import sample
from models.text.vocab import BOS, EOS, PAD, UNK, Vocab

__all__ = ["NGramLM", "SMOOTHINGS"]

SMOOTHINGS = ("mle", "laplace", "add_k", "interpolated", "backoff", "kneser_ney", "stupid_backoff")


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Index of each key in ``sorted_keys`` or -1 when absent (or not ``valid``)."""
    idx = np.searchsorted(sorted_keys, keys)
    idx = np.minimum(idx, max(len(sorted_keys) - 1, 0))
    found = valid & (len(sorted_keys) > 0)
    if len(sorted_keys):
        found &= sorted_keys[idx] == keys
    return np.where(found, idx, -1)


def _discounts(counts: np.ndarray, modified: bool) -> np.ndarray:
    """Discounts ``D[c]`` for ``c = 0, 1, 2, 3+`` from count-of-counts ``n_r`` (Chen & Goodman):

        Y = n1 / (n1 + 2 n2),   D = Y                                (Kneser–Ney)
        D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3   (modified Kneser–Ney)

    Undefined estimates (tiny corpora) fall back to ``Y`` or 0.5; ``D_c`` is clipped to ``[0, c]``.
    """
    n = np.bincount(np.minimum(counts, 5).astype(np.int64), minlength=6)[:5].astype(float)
    y = n[1] / (n[1] + 2 * n[2]) if n[1] > 0 and n[2] > 0 else 0.5
    d = np.array([0.0, y, y, y])
    if modified:
        for c in (1, 2, 3):
            if n[c] > 0 and n[c + 1] > 0:
                d[c] = c - (c + 1) * y * n[c + 1] / n[c]
    return np.clip(d, 0.0, [0.0, 1.0, 2.0, 3.0])


class NGramLM:
    """An order-``n`` language model: ``NGramLM(3, "kneser_ney").fit(sentences)``.

    Parameters: ``k`` (add-k pseudo-count), ``discount`` (fixed ``D`` for ``backoff`` /
    ``kneser_ney``; default: estimated from count-of-counts per order), ``modified``
    (three-discount KN), ``alpha`` (stupid-backoff factor), ``lambdas`` (interpolation
    weights ``λ_1..λ_n``; default 0.99 for the unigram, 0.6 above), ``min_count`` (rarer
    words become ``<unk>``), ``vocab`` (a fixed ``Vocab`` with ``<unk> <s> </s>``, e.g. shared
    with a neural LM so perplexities are comparable).
    """

    def __init__(
        self,
        order: int,
        smoothing: str = "kneser_ney",
        *,
        k: float = 0.5,
        discount: float | None = None,
        modified: bool = False,
        alpha: float = 0.4,
        lambdas: Sequence[float] | None = None,
        min_count: int = 1,
        vocab: Vocab | None = None,
    ):
        if isinstance(order, bool) or not isinstance(order, int) or order < 1:
            raise ValueError(f"NGramLM: order must be an int >= 1, got {order!r}")
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"NGramLM: smoothing must be one of {SMOOTHINGS}, got {smoothing!r}")
        if smoothing == "add_k" and not k > 0:
            raise ValueError(f"NGramLM: add_k needs k > 0, got k={k!r}")
        if discount is not None and not 0 < discount < 1:
            raise ValueError(f"NGramLM: discount must be in (0, 1), got {discount!r}")
        if not 0 < alpha <= 1:
            raise ValueError(f"NGramLM: alpha must be in (0, 1], got {alpha!r}")
        if not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"NGramLM: min_count must be an int >= 1, got {min_count!r}")
        if vocab is not None:
            missing = [s for s in (UNK, BOS, EOS) if s not in vocab.specials]
            if missing:
                raise ValueError(f"NGramLM: vocab must have the specials <unk> <s> </s>; missing {missing}")
        self.order, self.smoothing = order, smoothing
        self.k = 1.0 if smoothing == "laplace" else float(k)
        self.discount, self.modified, self.alpha = discount, modified, float(alpha)
        self.lambdas = self._check_lambdas(lambdas)
        self.min_count, self.vocab = min_count, vocab
        self._fixed_vocab = vocab is not None
        self._fitted = False

    def _check_lambdas(self, lambdas: Sequence[float] | None) -> np.ndarray:
        if lambdas is None:
            return np.array([1.0, 0.99] + [0.6] * (self.order - 1))[: self.order + 1]
        lam = np.asarray(lambdas, dtype=float)
        if lam.shape != (self.order,) or not np.all((lam >= 0) & (lam <= 1)):
            raise ValueError(
                f"NGramLM: lambdas must be {self.order} weights in [0, 1] (λ_1..λ_n), got {list(lambdas)}"
            )
        return np.concatenate([[1.0], lam])  # index m = order; λ_0 = 1 stops at the uniform

    # -- encoding ------------------------------------------------------------------------
    def _check_sentences(self, where: str, sentences: object) -> list[Sequence[str]]:
        if isinstance(sentences, str) or not hasattr(sentences, "__iter__"):
            raise TypeError(f"NGramLM.{where}: expected a list of token lists, got {type(sentences).__name__}")
        sentences = list(sentences)
        for i, s in enumerate(sentences):
            if isinstance(s, str) or not hasattr(s, "__len__"):
                raise TypeError(f"NGramLM.{where}: sentence {i} must be a list of str tokens, got {str(s)[:40]!r}")
        return sentences

    @staticmethod
    def _check_tokens(tokens: list, where: str) -> None:
        if set(map(type, tokens)) - {str}:  # one C-level pass instead of an isinstance per token
            bad = next(t for t in tokens if not isinstance(t, str))
            raise TypeError(f"NGramLM.{where}: tokens must be str, got {type(bad).__name__} ({bad!r})")

    def _encode(self, tokens: list[str], where: str) -> np.ndarray:
        self._check_tokens(tokens, where)
        ids = np.fromiter(map(self._stoi.get, tokens, repeat(self._unk)), dtype=np.int64, count=len(tokens))
        ids[(ids == self._bos) | (ids == self._pad_id)] = self._unk  # a literal "<s>" in text is a word
        return ids

    def _pad(self, sentences: list[Sequence[str]], where: str) -> tuple[np.ndarray, np.ndarray]:
        """Padded id stream ``<s>^(n-1) w_1 .. w_T </s>`` per sentence, and the positions of the
        predicted tokens (everything but the ``<s>`` padding)."""
        pad = self.order - 1
        lens = np.array([len(s) for s in sentences], dtype=np.int64)
        padded = lens + pad + 1
        starts = np.cumsum(padded) - padded
        stream = np.full(int(padded.sum()), self._bos, dtype=np.int64)
        flat = self._encode(list(chain.from_iterable(sentences)), where)
        within = np.arange(flat.size) - np.repeat(np.cumsum(lens) - lens, lens)
        stream[np.repeat(starts + pad, lens) + within] = flat
        stream[starts + pad + lens] = self._eos
        is_event = np.ones(stream.size, dtype=bool)
        is_event[(np.repeat(starts, pad) + np.tile(np.arange(pad), len(lens)))] = False
        return stream, np.flatnonzero(is_event)

    def _histories(self, stream: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """``(Q, n-1)`` previous ids of each event, oldest first."""
        return stream[pos[:, None] - (self.order - 1) + np.arange(self.order - 1)]

    # -- fitting -------------------------------------------------------------------------
    def fit(self, sentences: Sequence[Sequence[str]], held_out: Sequence[Sequence[str]] | None = None) -> "NGramLM":
        """Count n-grams of every order ``1..n`` in ``sentences`` (lists of tokens).

        For ``interpolated``, ``held_out`` sentences (not in ``sentences``) tune ``λ`` by EM.
        """
        sentences = self._check_sentences("fit", sentences)
        if not sentences:
            raise ValueError("NGramLM.fit: got no sentences")
        if not self._fixed_vocab:
            flat = list(chain.from_iterable(sentences))
            self._check_tokens(flat, "fit")
            self.vocab = Vocab.from_counts(Counter(flat), min_freq=self.min_count, specials=(UNK, BOS, EOS))
        v = self.vocab
        self._unk, self._bos, self._eos = v.unk_id, v.bos_id, v.eos_id
        self._pad_id = v.pad_id if PAD in v.specials else -1
        self._stoi = dict(v.stoi)
        self._predictable = np.ones(len(v), dtype=bool)
        self._predictable[[self._bos] + ([self._pad_id] if self._pad_id >= 0 else [])] = False
        self.num_predictable = int(self._predictable.sum())
        stream, pos = self._pad(sentences, "fit")
        self._count(self._histories(stream, pos), stream[pos])
        self._fitted = True
        if self.smoothing == "kneser_ney":
            self._fit_kneser_ney()
        elif self.smoothing == "backoff":
            self._fit_backoff()
        if held_out is not None and self.smoothing == "interpolated":
            self.tune_lambdas(held_out)
        return self

    def _count(self, hist: np.ndarray, words: np.ndarray) -> None:
        """Build the context tables (levels ``L = 0..n-1``) and the event tables (orders ``1..n``).

        Context of length ``L``: ``key = first_token * K_{L-1} + id(rest)``; ``K_L`` = number of
        distinct contexts. Event of order ``m``: ``key = context_id * |vocab| + word``.
        """
        n, nv = self.order, len(self.vocab)
        q = words.shape[0]
        self._ctx_keys: list[np.ndarray] = [np.zeros(0, np.int64), np.zeros(0, np.int64)]
        self._K = [1, nv]
        self._parent = [np.zeros(0, np.int64), np.zeros(nv, np.int64)]
        self._first = [np.zeros(0, np.int64), np.arange(nv)]
        ctx = [np.zeros(q, np.int64), hist[:, -1] if n > 1 else None]
        for level in range(2, n):
            if self._K[level - 1] * nv >= 2**62:
                raise ValueError("NGramLM.fit: too many distinct contexts for 64-bit n-gram keys")
            keys, inverse = np.unique(hist[:, -level] * self._K[level - 1] + ctx[level - 1], return_inverse=True)
            self._ctx_keys.append(keys)
            self._K.append(len(keys))
            self._parent.append(keys % self._K[level - 1])
            self._first.append(keys // self._K[level - 1])
            ctx.append(inverse.reshape(-1))
        self._keys, self._raw = [None], [None]
        for m in range(1, n + 1):
            if self._K[m - 1] * nv >= 2**62:
                raise ValueError("NGramLM.fit: too many distinct contexts for 64-bit n-gram keys")
            keys, counts = np.unique(ctx[m - 1] * nv + words, return_counts=True)
            self._keys.append(keys)
            self._raw.append(counts.astype(np.int64))
        self._use_counts(self._raw)

    def _use_counts(self, counts: list) -> None:
        """Set the counts the smoothing uses per order, and their per-context sums ``c(h)``."""
        nv = len(self.vocab)
        self._eff, self._total, self._types = [None], [None], [None]
        for m in range(1, self.order + 1):
            ctx = self._keys[m] // nv
            c = counts[m]
            self._eff.append(c)
            self._total.append(np.bincount(ctx, weights=c, minlength=self._K[m - 1]))
            self._types.append(np.bincount(ctx, weights=c > 0, minlength=self._K[m - 1]))

    def _fit_kneser_ney(self) -> None:
        """Continuation counts ``N1+(• h w) = |{x : c(x h w) > 0}|`` for orders below ``n``.

        Lower-order n-grams that start with ``<s>`` have no real left context, so they keep raw
        counts (as in KenLM). Then per order: discounts and ``γ(h) = sum_w D(c(h,w)) / c(h)``.
        """
        nv, counts = len(self.vocab), list(self._raw)
        for m in range(1, self.order):
            upper = self._keys[m + 1]
            lower_keys = self._parent[m][upper // nv] * nv + upper % nv
            idx = np.searchsorted(self._keys[m], lower_keys)
            cont = np.bincount(idx, minlength=len(self._keys[m]))
            if m >= 2:
                starts_with_bos = self._first[m - 1][self._keys[m] // nv] == self._bos
                cont = np.where(starts_with_bos, self._raw[m], cont)
            counts[m] = cont
        self._use_counts(counts)
        self._D, self._gamma_mass = [None], [None]
        for m in range(1, self.order + 1):
            d = _discounts(counts[m], self.modified) if self.discount is None else \
                np.array([0.0] + [self.discount] * 3)
            ctx = self._keys[m] // nv
            mass = np.bincount(ctx, weights=d[np.minimum(counts[m], 3)], minlength=self._K[m - 1])
            self._D.append(d)
            self._gamma_mass.append(mass)

    def _fit_backoff(self) -> None:
        """Backoff weights ``α(h) = (D · N1+(h•) / c(h)) / (1 - sum_{w: c(h,w)>0} P_{m-1}(w|h'))``.

        Computed bottom-up: the lower-order probabilities of all seen n-grams are one vectorised
        lookup, summed per context with ``bincount``. A context followed by every word of ``V``
        has no unseen word to give mass to, so it is not discounted.
        """
        nv = len(self.vocab)
        self._D = [None]
        self._ctx_discount, self._alpha = [None], [None]
        for m in range(1, self.order + 1):
            d = _discounts(self._raw[m], False)[1] if self.discount is None else self.discount
            full = self._types[m] >= self.num_predictable
            self._D.append(d)
            self._ctx_discount.append(np.where(full, 0.0, d))
            if m == 1:
                self._alpha.append(None)
                continue
            ev_ctx, ev_word = self._keys[m] // nv, self._keys[m] % nv
            lower = self._probs(self._ctx_chain(ev_ctx, m - 1), ev_word, m - 1)
            seen_mass = np.bincount(ev_ctx, weights=lower, minlength=self._K[m - 1])
            freed = self._ctx_discount[m] * self._types[m] / np.maximum(self._total[m], 1)
            self._alpha.append(np.where(full, 0.0, freed / np.maximum(1.0 - seen_mass, 1e-300)))

    # -- probabilities -------------------------------------------------------------------
    def _ctx_chain(self, ctx: np.ndarray, level: int) -> list[np.ndarray]:
        """Context ids at levels ``0..level`` from ids at ``level`` (via suffix parents)."""
        chain = [ctx]
        for lv in range(level, 0, -1):
            chain.append(self._parent[lv][chain[-1]])
        return chain[::-1]

    def _ctx_ids(self, hist: np.ndarray) -> list[np.ndarray]:
        """Context ids (or -1 if never seen) of each history's suffixes of length ``0..L``."""
        q, length = hist.shape
        ids = [np.zeros(q, np.int64)]
        if length >= 1:
            ids.append(hist[:, -1].copy())
        for level in range(2, length + 1):
            prev = ids[-1]
            key = hist[:, -level] * self._K[level - 1] + np.maximum(prev, 0)
            ids.append(_lookup(self._ctx_keys[level], key, prev >= 0))
        return ids

    def _event(self, m: int, ctx: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(c(h, w), c(h))`` at order ``m`` with the counts the smoothing uses (0 if unseen)."""
        idx = _lookup(self._keys[m], np.maximum(ctx, 0) * len(self.vocab) + w, ctx >= 0)
        c = np.where(idx >= 0, self._eff[m][np.maximum(idx, 0)], 0)
        total = np.where(ctx >= 0, self._total[m][np.maximum(ctx, 0)], 0.0)
        return c, total

    def _probs(self, ctx_ids: list[np.ndarray], w: np.ndarray, top: int) -> np.ndarray:
        """``P(w | h)`` using orders ``1..top`` (``ctx_ids[m-1]`` = context ids for order ``m``)."""
        s, nvp = self.smoothing, self.num_predictable
        if s in ("mle", "laplace", "add_k"):
            c, total = self._event(top, ctx_ids[top - 1], w)
            if s == "mle":
                p = np.where(total > 0, c / np.maximum(total, 1), 0.0)
            else:
                p = (c + self.k) / (total + self.k * nvp)
            return np.where(self._predictable[w], p, 0.0)
        p = np.full(w.shape, 1.0 / nvp)  # P_0: uniform over V
        for m in range(1, top + 1):
            ctx = ctx_ids[m - 1]
            c, total = self._event(m, ctx, w)
            seen_ctx, safe_total = total > 0, np.maximum(total, 1)
            if s == "interpolated":
                # P_m = λ_m c/c(h) + (1 - λ_m) P_{m-1}  (only where the context was seen)
                lam = np.where(seen_ctx, self.lambdas[m], 0.0)
                p = lam * c / safe_total + (1 - lam) * p
            elif s == "kneser_ney":
                # P_m = max(c - D(c), 0)/c(h) + γ(h) P_{m-1},  γ(h) = sum_w D(c(h,w)) / c(h)
                d = self._D[m][np.minimum(c, 3)]
                gamma = self._gamma_mass[m][np.maximum(ctx, 0)] / safe_total
                p = np.where(seen_ctx, np.maximum(c - d, 0) / safe_total + gamma * p, p)
            elif s == "backoff" and m == 1:
                # unigrams: absolute discounting interpolated with the uniform distribution
                d = self._ctx_discount[1][0]
                p = np.maximum(c - d, 0) / safe_total + d * self._types[1][0] / safe_total * p
            elif s == "backoff":
                # P_m = (c - D)/c(h) if c > 0, else α(h) P_{m-1}
                safe_ctx = np.maximum(ctx, 0)
                seen = (c - self._ctx_discount[m][safe_ctx]) / safe_total
                p = np.where(c > 0, seen, np.where(seen_ctx, self._alpha[m][safe_ctx] * p, p))
            else:  # stupid_backoff: S_m = c/c(h) if c > 0, else α S_{m-1}
                p = np.where(c > 0, c / safe_total, self.alpha * p)
        return np.where(self._predictable[w], p, 0.0)

    def _check_fitted(self, where: str) -> None:
        if not self._fitted:
            raise RuntimeError(f"NGramLM.{where}: call fit(sentences) first")

    def _token_id(self, token: str) -> int:
        """Id of a query token: ``<s>`` is the start symbol here, unknown words are ``<unk>``."""
        return self._bos if token == BOS else self._stoi.get(token, self._unk)

    def _context_ids(self, context: Sequence[str]) -> np.ndarray:
        if isinstance(context, str):
            raise TypeError("NGramLM: context must be a sequence of tokens, got a str")
        ids = [self._token_id(t) for t in context]
        return np.asarray(ids[len(ids) - (self.order - 1):] if self.order > 1 else [], dtype=np.int64)

    def prob(self, word: str, context: Sequence[str] = ()) -> float:
        """``P(word | context)``; the last ``n-1`` context tokens are used (a shorter context uses
        the lower-order model, as in ``nltk.lm``). Unknown words count as ``<unk>``."""
        self._check_fitted("prob")
        hist = self._context_ids(context)[None, :]  # (1, L)
        w = np.array([self._token_id(word)])
        return float(self._probs(self._ctx_ids(hist), w, hist.shape[1] + 1)[0])

    def logprob(self, word: str, context: Sequence[str] = ()) -> float:
        """Natural log of ``prob`` (``-inf`` for probability 0)."""
        p = self.prob(word, context)
        return float(np.log(p)) if p > 0 else -np.inf

    def next_word_probs(self, context: Sequence[str] = ()) -> np.ndarray:
        """``P(· | context)`` for every vocabulary id, shape ``(len(vocab),)`` (0 for ``<s>``)."""
        self._check_fitted("next_word_probs")
        hist = self._context_ids(context)
        nv = len(self.vocab)
        return self._probs(self._ctx_ids(np.broadcast_to(hist, (nv, hist.size))), np.arange(nv), hist.size + 1)

    def _event_logprobs(self, sentences: Sequence[Sequence[str]], where: str) -> np.ndarray:
        sentences = self._check_sentences(where, sentences)
        if not sentences:
            raise ValueError(f"NGramLM.{where}: got no sentences")
        stream, pos = self._pad(sentences, where)
        hist = self._histories(stream, pos)
        p = self._probs(self._ctx_ids(hist), stream[pos], self.order)
        with np.errstate(divide="ignore"):
            return np.log(p)

    def perplexity(self, sentences: Sequence[Sequence[str]]) -> float:
        """``PP = exp(-(1/N) sum_i log P(w_i | h_i))`` over all predicted tokens (``</s>``
        included, ``<s>`` not); ``inf`` if any token has probability 0 (e.g. ``mle``)."""
        self._check_fitted("perplexity")
        return float(np.exp(-np.mean(self._event_logprobs(sentences, "perplexity"))))

    def unseen_ngram_rate(self, sentences: Sequence[Sequence[str]]) -> dict[int, float]:
        """For each order ``m``: the fraction of the text's m-grams never seen in training —
        the sparsity that limits N-gram models as ``n`` grows."""
        self._check_fitted("unseen_ngram_rate")
        sentences = self._check_sentences("unseen_ngram_rate", sentences)
        stream, pos = self._pad(sentences, "unseen_ngram_rate")
        ctx = self._ctx_ids(self._histories(stream, pos))
        rates = {}
        for m in range(1, self.order + 1):
            idx = _lookup(self._keys[m], np.maximum(ctx[m - 1], 0) * len(self.vocab) + stream[pos], ctx[m - 1] >= 0)
            rates[m] = float(np.mean((idx < 0) | (self._raw[m][np.maximum(idx, 0)] == 0)))
        return rates

    # -- EM for interpolation weights ---------------------------------------------------
    def tune_lambdas(self, held_out: Sequence[Sequence[str]], iterations: int = 30) -> np.ndarray:
        """Maximise held-out likelihood of Jelinek–Mercer weights by EM (Jelinek & Mercer 1980).

        The nested mixture is a chain of stop/continue choices: from order ``n`` down, stop at
        order ``m`` with probability ``λ_m`` (if its context was seen) and emit ``P_ML,m``.
        E-step: posterior of the stopping order; M-step: ``λ_m = E[stops at m] / E[reaches m]``.
        """
        self._check_fitted("tune_lambdas")
        if self.smoothing != "interpolated":
            raise ValueError(f"NGramLM.tune_lambdas: only for smoothing='interpolated', not {self.smoothing!r}")
        held_out = self._check_sentences("tune_lambdas", held_out)
        stream, pos = self._pad(held_out, "tune_lambdas")
        ctx, w = self._ctx_ids(self._histories(stream, pos)), stream[pos]
        n = self.order
        comp = np.empty((w.size, n + 1))                     # (Q, n+1): P_ML at each order
        seen = np.ones((w.size, n + 1), dtype=bool)
        comp[:, 0] = 1.0 / self.num_predictable
        for m in range(1, n + 1):
            c, total = self._event(m, ctx[m - 1], w)
            comp[:, m], seen[:, m] = c / np.maximum(total, 1), total > 0
        lam = self.lambdas.copy()
        for _ in range(iterations):
            stop = np.where(seen, lam, 0.0)                   # (Q, n+1)
            go_on = np.cumprod((1 - stop)[:, ::-1], axis=1)[:, ::-1]
            weight = stop * np.concatenate([go_on[:, 1:], np.ones((w.size, 1))], axis=1)
            post = weight * comp
            post /= np.maximum(post.sum(axis=1, keepdims=True), 1e-300)
            reached = seen * np.cumsum(post, axis=1)         # stopped at this order or below
            lam[1:] = post[:, 1:].sum(0) / np.maximum(reached[:, 1:].sum(0), 1e-300)
            lam[1:] = np.clip(lam[1:], 1e-6, 1 - 1e-6)       # keep every order in the mix
        self.lambdas = lam
        return lam[1:].copy()

    # -- counts ---------------------------------------------------------------------------
    def count(self, ngram: Sequence[str]) -> int:
        """Raw training count of an n-gram (length ``1..n``): ``c(ngram[:-1], ngram[-1])``."""
        self._check_fitted("count")
        if isinstance(ngram, str) or not 1 <= len(ngram) <= self.order:
            raise ValueError(f"NGramLM.count: ngram must be a sequence of 1..{self.order} tokens, got {ngram!r}")
        ids = np.asarray([self._token_id(t) for t in ngram[:-1]], np.int64)
        ctx = self._ctx_ids(ids[None, :])[-1]
        w = np.array([self._token_id(ngram[-1])])
        idx = _lookup(self._keys[len(ngram)], np.maximum(ctx, 0) * len(self.vocab) + w, ctx >= 0)
        return int(self._raw[len(ngram)][idx[0]]) if idx[0] >= 0 else 0

    def context_count(self, context: Sequence[str]) -> int:
        """``c(h) = sum_w c(h, w)``: how often ``context`` (length ``0..n-1``) was followed by a token."""
        self._check_fitted("context_count")
        if isinstance(context, str) or len(context) > self.order - 1:
            raise ValueError(f"NGramLM.context_count: context must have 0..{self.order - 1} tokens, got {context!r}")
        ids = np.asarray([self._token_id(t) for t in context], np.int64)
        ctx = self._ctx_ids(ids[None, :])[-1]
        nv = len(self.vocab)
        if ctx[0] < 0:
            return 0
        return int(np.bincount(self._keys[len(context) + 1] // nv, weights=self._raw[len(context) + 1],
                               minlength=self._K[len(context)])[ctx[0]])

    def ngram_counts(self, m: int | None = None) -> dict[tuple[str, ...], int]:
        """All order-``m`` n-grams with their raw counts, as ``{(tokens...): count}`` (for
        inspection; order ``n`` by default)."""
        self._check_fitted("ngram_counts")
        m = self.order if m is None else m
        if not 1 <= m <= self.order:
            raise ValueError(f"NGramLM.ngram_counts: m must be in [1, {self.order}], got {m}")
        nv, itos = len(self.vocab), self.vocab.itos
        out = {}
        for key, c in zip(self._keys[m].tolist(), self._raw[m].tolist()):
            ctx, level, toks = key // nv, m - 1, []
            while level >= 2:  # unfold the suffix-trie key: oldest token, then the rest
                k = int(self._ctx_keys[level][ctx])
                toks.append(itos[k // self._K[level - 1]])
                ctx, level = k % self._K[level - 1], level - 1
            if level == 1:
                toks.append(itos[ctx])
            toks.append(itos[key % nv])
            out[tuple(toks)] = c
        return out

    # -- generation ------------------------------------------------------------------------
    def generate(
        self,
        num_words: int,
        context: Sequence[str] = (),
        seed: int | np.random.Generator | None = None,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_at_eos: bool = True,
        skip_unk: bool = False,
    ) -> list[str]:
        """Sample up to ``num_words`` tokens after ``context`` (a sentence start by default).

        Each step draws from ``P(· | last n-1 tokens)`` through ``models.decoding.sample``
        (temperature / top-k / nucleus). ``</s>`` ends the sentence (``stop_at_eos``) or is
        emitted and a new sentence begins. ``skip_unk`` never samples ``<unk>``. With ``mle``, a
        context never seen in training backs off to its longest seen suffix (as ``nltk.lm`` does).
        """
        self._check_fitted("generate")
        if not isinstance(num_words, int) or num_words < 0:
            raise ValueError(f"NGramLM.generate: num_words must be an int >= 0, got {num_words!r}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        history = [BOS] * (self.order - 1) + list(context)
        out: list[str] = []
        for _ in range(num_words):
            p = self._generation_probs(history)
            if skip_unk:
                p[self._unk] = 0.0
            with np.errstate(divide="ignore"):
                logits = np.log(p)
            token = self.vocab.itos[sample(logits, temperature, top_k, top_p, rng=rng)]
            if token == EOS:
                if stop_at_eos:
                    break
                history = [BOS] * (self.order - 1)
            else:
                history.append(token)
            out.append(token)
        return out

    def _generation_probs(self, history: list[str]) -> np.ndarray:
        context = history[len(history) - (self.order - 1):] if self.order > 1 else []
        p = self.next_word_probs(context)
        while p.sum() == 0 and context:  # only mle can give an all-zero row
            context = context[1:]
            p = self.next_word_probs(context)
        return p

    def __repr__(self) -> str:
        size = len(self.vocab) if self.vocab is not None else "?"
        return f"NGramLM(order={self.order}, smoothing={self.smoothing!r}, vocab={size})"
