"""BLEU (book ch. 3 "judging a translation"): modified n-gram precision, brevity penalty, smoothing.

Papineni et al. (2002), "BLEU: a Method for Automatic Evaluation of Machine Translation":

    p_n  = sum_sentences sum_{g in n-grams(hyp)} min(count_hyp(g), max_ref count_ref(g))
           / sum_sentences #n-grams(hyp)                        (modified, "clipped" precision)
    BP   = 1 if c > r else exp(1 - r / c)                        (c = hyp length, r = closest ref length)
    BLEU = BP * exp( sum_n w_n log p_n )                         (w_n = 1/N by default, N = 4)

Corpus BLEU sums numerators and denominators over all sentences *before* dividing (a micro average);
sentence BLEU is the same formula on a corpus of one sentence.

Smoothing (Chen & Cherry 2014, "A Systematic Comparison of Smoothing Techniques for Sentence-Level
BLEU") only matters when some p_n has zero matches:

    none   (NLTK method0)  p_n = 0 (BLEU = 0; NLTK uses the smallest float instead, see ``convention``)
    floor  (NLTK method1)  p_n = eps / total_n          for zero-match orders        (add-eps, eps=0.1)
    add-k  (NLTK method2)  p_n = (m_n + k)/(total_n + k) for every n >= 2            (Lin & Och 2004, k=1)
    exp    (NLTK method3)  p_n = 1 / (2^j * total_n)    j = 1, 2, ... per zero order (NIST mteval-v13a)
    method4                p_n = ln(c) / (2^j * K * total_n)  shorter hyps get less  (K = 5)

Two conventions make this module agree with both reference implementations:

* ``convention="sacrebleu"`` (default): equal to ``sacrebleu.corpus_bleu`` / ``sentence_bleu``
  (orders with no hypothesis n-grams end the product; ``effective_order`` drops them);
* ``convention="nltk"``: equal to ``nltk.translate.bleu_score.corpus_bleu`` / ``sentence_bleu``
  (each sentence's n-gram total is at least 1, a zero precision without smoothing becomes
  ``sys.float_info.min``, and BLEU is 0 when no unigram matches).

Strings are tokenised with sacrebleu's ``13a`` tokeniser (the WMT standard, mteval-v13a.pl) or
``none`` (whitespace split); lists of tokens are used as they are.
"""
from __future__ import annotations

import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence, Union

Segment = Union[str, Sequence[str]]

SMOOTHING_METHODS = ("none", "floor", "add-epsilon", "add-k", "exp", "method0", "method1", "method2",
                     "method3", "method4")
_ALIASES = {"method0": "none", "add-epsilon": "floor", "method1": "floor", "method2": "add-k",
            "method3": "exp"}
_DEFAULT_SMOOTH_VALUE = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None, "method4": 5.0}
CONVENTIONS = ("sacrebleu", "nltk")


# ----------------------------------------------------------------------------------- tokenisers

# mteval-v13a.pl: split off every ASCII symbol, then periods/commas not next to a digit, and a dash
# after a digit. Written from the rules in mteval-v13a.pl (the same rules sacrebleu's 13a follows).
_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # symbols: {|}~ [\]^_` !"#$%& ()*+ :;<=>?@ /
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # "word." -> "word ."   (keeps 3.14 and 1,000)
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ".word" -> ". word"
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # "1990-" -> "1990 -"
)


@lru_cache(maxsize=2**16)
def tokenize_13a(line: str) -> str:
    """sacrebleu's default ``13a`` tokenisation (mteval-v13a.pl), returning space-joined tokens."""
    if not isinstance(line, str):
        raise TypeError(f"tokenize_13a: expected a str, got {type(line).__name__}")
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:  # undo the four XML escapes mteval knows
        line = (line.replace("&quot;", '"').replace("&amp;", "&")
                .replace("&lt;", "<").replace("&gt;", ">"))
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


def _tokenize_none(line: str) -> str:
    return line


_TOKENIZERS: dict[str, Callable[[str], str]] = {"13a": tokenize_13a, "none": _tokenize_none}


def _to_tokens(segment: Segment, tokenize, lowercase: bool, func: str, what: str) -> list[str]:
    """A string is lower-cased (optionally), tokenised and split; a token list is kept as is."""
    if isinstance(segment, str):
        if lowercase:
            segment = segment.lower()
        if callable(tokenize):
            tokens = tokenize(segment.rstrip())
            return tokens.split() if isinstance(tokens, str) else list(tokens)
        return _TOKENIZERS[tokenize](segment.rstrip()).split()
    if isinstance(segment, Sequence) and all(isinstance(t, str) for t in segment):
        return [t.lower() for t in segment] if lowercase else list(segment)
    raise TypeError(f"{func}: {what} must be a str or a sequence of str tokens, "
                    f"got {type(segment).__name__}")


# ------------------------------------------------------------------------- sufficient statistics

@dataclass(frozen=True)
class BLEUStats:
    """BLEU's sufficient statistics: clipped matches and totals per order, lengths c and r."""

    matches: tuple[int, ...]
    totals: tuple[int, ...]
    hyp_len: int
    ref_len: int

    def __add__(self, other: "BLEUStats") -> "BLEUStats":
        return BLEUStats(tuple(a + b for a, b in zip(self.matches, other.matches)),
                         tuple(a + b for a, b in zip(self.totals, other.totals)),
                         self.hyp_len + other.hyp_len, self.ref_len + other.ref_len)


@dataclass(frozen=True)
class BLEUScore:
    """A BLEU result. ``bleu`` is in [0, 1] (NLTK's scale); ``score`` is 100 * bleu (sacrebleu's)."""

    bleu: float
    precisions: tuple[float, ...]  # the (smoothed) p_n, in [0, 1]
    brevity_penalty: float
    stats: BLEUStats

    @property
    def score(self) -> float:
        return 100.0 * self.bleu

    def __str__(self) -> str:
        p = "/".join(f"{100 * x:.1f}" for x in self.precisions)
        s = self.stats
        return (f"BLEU = {self.score:.2f} {p} (BP = {self.brevity_penalty:.3f} "
                f"ratio = {s.hyp_len / max(s.ref_len, 1):.3f} hyp_len = {s.hyp_len} ref_len = {s.ref_len})")


def ngram_counts(tokens: Sequence[str], max_order: int) -> Counter:
    """Counts of every n-gram (as a tuple) of order 1..max_order."""
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1)
                   for i in range(len(tokens) - n + 1))


def closest_ref_length(ref_lens: Sequence[int], hyp_len: int) -> int:
    """r for one sentence: the reference length closest to c; the shorter one on a tie."""
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def brevity_penalty(ref_len: int, hyp_len: int) -> float:
    """BP = 1 if c > r else exp(1 - r / c); 0 for an empty hypothesis."""
    if hyp_len > ref_len:
        return 1.0
    if hyp_len == 0:
        return 0.0
    return math.exp(1.0 - ref_len / hyp_len)


def sentence_stats(hyp: Sequence[str], refs: Sequence[Sequence[str]], max_order: int = 4,
                   convention: str = "sacrebleu") -> BLEUStats:
    """Clipped n-gram matches of one tokenised hypothesis against its tokenised references.

    A hypothesis n-gram counts at most as often as it occurs in the one reference that has it most.
    Under ``convention="nltk"`` each order's total is at least 1 (NLTK's ``max(1, ...)``).
    """
    hyp_counts = ngram_counts(hyp, max_order)
    max_ref: Counter = Counter()
    for ref in refs:
        for gram, count in ngram_counts(ref, max_order).items():
            if count > max_ref[gram]:
                max_ref[gram] = count
    matches, totals = [0] * max_order, [0] * max_order
    for gram, count in hyp_counts.items():
        totals[len(gram) - 1] += count
        matches[len(gram) - 1] += min(count, max_ref[gram])
    if convention == "nltk":
        totals = [max(1, t) for t in totals]
    ref_len = closest_ref_length([len(r) for r in refs], len(hyp))
    return BLEUStats(tuple(matches), tuple(totals), len(hyp), ref_len)


# ------------------------------------------------------------------------------- the BLEU formula

def _check_options(func: str, max_order, weights, smoothing, smooth_value, convention,
                   tokenize, effective_order) -> tuple[int, tuple[float, ...], str, float | None]:
    if convention not in CONVENTIONS:
        raise ValueError(f"{func}: convention must be one of {CONVENTIONS}, got {convention!r}")
    if smoothing not in SMOOTHING_METHODS:
        raise ValueError(f"{func}: smoothing must be one of {SMOOTHING_METHODS}, got {smoothing!r}")
    method = _ALIASES.get(smoothing, smoothing)
    if not (callable(tokenize) or tokenize in _TOKENIZERS):
        raise ValueError(f"{func}: tokenize must be one of {tuple(_TOKENIZERS)} or a callable, "
                         f"got {tokenize!r}")
    if weights is not None:
        weights = tuple(float(w) for w in weights)
        if not weights or any(not math.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"{func}: weights must be a non-empty sequence of finite values >= 0, "
                             f"got {weights}")
        if max_order is not None and max_order != len(weights):
            raise ValueError(f"{func}: max_order={max_order} but {len(weights)} weights were given")
        max_order = len(weights)
    if max_order is None:
        max_order = 4
    if not isinstance(max_order, int) or isinstance(max_order, bool) or max_order < 1:
        raise ValueError(f"{func}: max_order must be an int >= 1, got {max_order!r}")
    if weights is None:
        weights = (1.0 / max_order,) * max_order
    if smooth_value is None:
        smooth_value = _DEFAULT_SMOOTH_VALUE[method]
    elif method in ("none", "exp"):
        raise ValueError(f"{func}: smoothing={smoothing!r} takes no smooth_value, got {smooth_value}")
    elif not (isinstance(smooth_value, (int, float)) and math.isfinite(smooth_value)
              and smooth_value >= 0):
        raise ValueError(f"{func}: smooth_value must be a finite number >= 0, got {smooth_value!r}")
    if effective_order and convention == "nltk":
        raise ValueError(f"{func}: effective_order is sacrebleu's option; "
                         "use convention='sacrebleu' with it")
    return max_order, weights, method, smooth_value


def _smoothed_precisions(stats: BLEUStats, method: str, value,
                         convention: str) -> tuple[list[float], int]:
    """p_n per order after smoothing, and the number of orders before the first one without any
    hypothesis n-gram (sacrebleu stops there; NLTK's totals are never 0)."""
    precisions = []
    used = len(stats.matches)
    zeros_seen = 0  # j in 1/2^j of the exp and method4 smoothings
    for n, (m, t) in enumerate(zip(stats.matches, stats.totals), start=1):
        if method == "add-k" and n > 1:
            m, t = m + value, t + value
        if t == 0:  # no hypothesis n-grams of this order (short sentences)
            used = min(used, n - 1)
            precisions.append(0.0)
            continue
        if m > 0:
            precisions.append(m / t)
        elif method == "floor":
            precisions.append(value / t)
        elif method == "exp":
            zeros_seen += 1
            precisions.append(1.0 / (2 ** zeros_seen * t))
        elif method == "method4" and stats.hyp_len > 1:
            zeros_seen += 1
            precisions.append(1.0 / (2 ** zeros_seen * value / math.log(stats.hyp_len)) / t)
        elif method == "none" and convention == "nltk":
            precisions.append(sys.float_info.min)  # NLTK's stand-in for log(0)
        else:
            precisions.append(0.0)
    return precisions, used


def bleu_from_stats(stats: BLEUStats, *, weights: Sequence[float] | None = None,
                    smoothing: str = "exp", smooth_value: float | None = None,
                    effective_order: bool = False, convention: str = "sacrebleu") -> BLEUScore:
    """BLEU = BP * exp(sum_n w_n log p_n) from summed :class:`BLEUStats` (see the module doc)."""
    func = "bleu_from_stats"
    if not isinstance(stats, BLEUStats):
        raise TypeError(f"{func}: stats must be BLEUStats, got {type(stats).__name__}")
    max_order = len(stats.matches)
    _, weights, method, value = _check_options(func, max_order, weights, smoothing, smooth_value,
                                               convention, "none", effective_order)
    bp = brevity_penalty(stats.ref_len, stats.hyp_len)
    zero = BLEUScore(0.0, (0.0,) * max_order, bp, stats)
    # both libraries: no unigram match at all -> BLEU 0 whatever the smoothing
    if stats.matches[0] == 0:
        return zero
    precisions, used = _smoothed_precisions(stats, method, value, convention)
    if convention == "nltk":
        # NLTK skips a zero precision (only method4 on a 1-token corpus can leave one)
        terms = [w * math.log(p) for w, p in zip(weights, precisions) if p > 0]
        return BLEUScore(bp * math.exp(math.fsum(terms)), tuple(precisions), bp, stats)
    # sacrebleu: the first order without hypothesis n-grams ends the product; effective_order
    # averages over the orders before it instead of scoring 0
    if effective_order:
        kept = sum(weights[:used])
        if kept == 0:  # every order that exists has weight 0: nothing to average
            return BLEUScore(0.0, tuple(precisions), bp, stats)
        weights = tuple(w / kept for w in weights[:used])
    elif used < max_order:
        return BLEUScore(0.0, tuple(precisions), bp, stats)
    if any(p == 0.0 for w, p in zip(weights, precisions) if w > 0):
        return BLEUScore(0.0, tuple(precisions), bp, stats)
    log_sum = math.fsum(w * math.log(p) for w, p in zip(weights, precisions) if w > 0)
    return BLEUScore(bp * math.exp(log_sum), tuple(precisions), bp, stats)


# ------------------------------------------------------------------------------------ public API

def _normalise_references(func: str, hypotheses, references) -> list[list]:
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise TypeError(f"{func}: hypotheses must be a list of sentences (str or token lists), "
                        f"got {type(hypotheses).__name__}")
    if isinstance(references, str) or not isinstance(references, Sequence):
        raise TypeError(f"{func}: references must be a list (one entry per hypothesis) of "
                        f"reference lists, got {type(references).__name__}")
    if len(hypotheses) == 0:
        raise ValueError(f"{func}: got an empty list of hypotheses")
    if len(hypotheses) != len(references):
        raise ValueError(f"{func}: got {len(hypotheses)} hypotheses but {len(references)} "
                         "reference lists (references[i] lists the references of hypotheses[i]; "
                         "use references_from_streams() for sacrebleu-style streams)")
    out = []
    for i, refs in enumerate(references):
        refs = [refs] if isinstance(refs, str) else [r for r in refs if r is not None]
        if not refs:
            raise ValueError(f"{func}: hypothesis {i} has no reference")
        out.append(refs)
    return out


def references_from_streams(*streams: Sequence[str | None]) -> list[list[str]]:
    """sacrebleu's layout (one stream per reference set) -> ours (one list per hypothesis).

    ``None`` entries (a sentence with fewer references) are dropped, as in sacrebleu.
    """
    lengths = {len(s) for s in streams}
    if len(lengths) != 1:
        raise ValueError(f"references_from_streams: streams have different lengths {sorted(lengths)}")
    return [[r for r in refs if r is not None] for refs in zip(*streams)]


def corpus_stats(hypotheses: Sequence[Segment], references: Sequence[Sequence[Segment] | str], *,
                 max_order: int = 4, tokenize="13a", lowercase: bool = False,
                 convention: str = "sacrebleu", _func: str = "corpus_stats") -> BLEUStats:
    """Summed :class:`BLEUStats` of a corpus (``references[i]`` = the references of hypothesis i)."""
    refs_per_hyp = _normalise_references(_func, hypotheses, references)
    total = BLEUStats((0,) * max_order, (0,) * max_order, 0, 0)
    for i, (hyp, refs) in enumerate(zip(hypotheses, refs_per_hyp)):
        hyp_tokens = _to_tokens(hyp, tokenize, lowercase, _func, f"hypothesis {i}")
        ref_tokens = [_to_tokens(r, tokenize, lowercase, _func, f"reference of hypothesis {i}")
                      for r in refs]
        total = total + sentence_stats(hyp_tokens, ref_tokens, max_order, convention)
    return total


def corpus_bleu(hypotheses: Sequence[Segment], references: Sequence[Sequence[Segment] | str], *,
                max_order: int | None = None, weights: Sequence[float] | None = None,
                smoothing: str = "exp", smooth_value: float | None = None, tokenize="13a",
                lowercase: bool = False, effective_order: bool = False,
                convention: str = "sacrebleu") -> BLEUScore:
    """Corpus BLEU (micro-averaged n-gram precisions, one brevity penalty for the whole corpus).

    ``references[i]`` is the list of references of ``hypotheses[i]`` (a lone str is one reference).
    Defaults equal ``sacrebleu.corpus_bleu(hyps, [refs])`` (13a, ``exp`` smoothing). For NLTK's
    ``corpus_bleu`` pass token lists (or ``tokenize="none"``), ``convention="nltk"`` and the same
    smoothing (``"method0"`` for NLTK's default).
    """
    func = "corpus_bleu"
    max_order, weights, _, _ = _check_options(func, max_order, weights, smoothing, smooth_value,
                                              convention, tokenize, effective_order)
    stats = corpus_stats(hypotheses, references, max_order=max_order, tokenize=tokenize,
                         lowercase=lowercase, convention=convention, _func=func)
    return bleu_from_stats(stats, weights=weights, smoothing=smoothing, smooth_value=smooth_value,
                           effective_order=effective_order, convention=convention)


def sentence_bleu(hypothesis: Segment, references: Sequence[Segment] | str, *,
                  max_order: int | None = None, weights: Sequence[float] | None = None,
                  smoothing: str = "exp", smooth_value: float | None = None, tokenize="13a",
                  lowercase: bool = False, effective_order: bool | None = None,
                  convention: str = "sacrebleu") -> BLEUScore:
    """BLEU of one hypothesis against its references (corpus BLEU of a one-sentence corpus).

    Defaults equal ``sacrebleu.sentence_bleu`` (``exp`` smoothing, effective order). For
    ``nltk.translate.bleu_score.sentence_bleu`` pass token lists, ``convention="nltk"`` and the
    same smoothing (``"method0"`` = NLTK's default, ``"method1"``, ...).
    """
    func = "sentence_bleu"
    if effective_order is None:
        effective_order = convention == "sacrebleu"
    if not isinstance(hypothesis, (str, Sequence)):
        raise TypeError(f"{func}: hypothesis must be a str or a token list, "
                        f"got {type(hypothesis).__name__}")
    max_order, weights, _, _ = _check_options(func, max_order, weights, smoothing, smooth_value,
                                              convention, tokenize, effective_order)
    stats = corpus_stats([hypothesis], [references], max_order=max_order, tokenize=tokenize,
                         lowercase=lowercase, convention=convention, _func=func)
    return bleu_from_stats(stats, weights=weights, smoothing=smoothing, smooth_value=smooth_value,
                           effective_order=effective_order, convention=convention)
