"""Greedy and beam-search decoding for any autoregressive decoder (book ch. 2-3).

A decoder is seen only through one function, ``step(tokens, state) -> (log_probs, state)``:
``tokens`` is the (K, t) int array of the K live hypotheses so far (all starting with ``<s>``),
``log_probs`` the (K, V) log-probabilities of the next token, ``state`` whatever the decoder
carries between steps (a GRU hidden state, a key/value cache ...).

* **Greedy**: at every step take ``argmax_v log p(v | y_<t, x)`` — one hypothesis, fast, but a
  locally best word can lead to a globally worse sentence.
* **Beam search** keeps the K best partial sentences by total log-probability
  ``log p(y | x) = Σ_t log p(y_t | y_<t, x)``; a hypothesis that emits ``</s>`` is finished.
  Because ``Σ log p`` only falls as a sentence grows, plain beam search favours short outputs;
  GNMT's length penalty (Wu et al., 2016, "Google's Neural Machine Translation System")
  compares finished hypotheses by

      score(Y) = Σ_t log p(y_t | y_<t, x) / lp(Y),     lp(Y) = ((5 + |Y|) / 6) ** α

  (α = ``length_penalty``; α = 0 gives lp = 1, no normalisation; |Y| counts the generated
  tokens including ``</s>``).

Candidate selection follows fairseq: the 2K best extensions are ranked; those ending in
``</s>`` within the first K ranks are finished, and the first K others stay live. The search
stops when K hypotheses are finished and the best live one, scored at its current length, can
no longer beat the worst of them (exact for α = 0, where scores only fall; with α ≠ 0 this is
Hugging Face's ``early_stopping=False`` rule), or after ``max_len`` tokens. With K = 1 it is
exactly greedy decoding.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

__all__ = ["beam_search", "greedy_search", "length_penalty_factor", "reorder_state"]

StepFn = Callable[[np.ndarray, Any], tuple[Any, Any]]


def length_penalty_factor(length: int, alpha: float) -> float:
    """GNMT's lp(|Y|) = ((5 + |Y|) / 6) ** α."""
    return ((5.0 + length) / 6.0) ** alpha


def reorder_state(state, indices: np.ndarray):
    """Default ``reorder``: index every array (NumPy or anything with ``shape`` and indexing,
    e.g. a minigrad Tensor) along axis 0 with ``indices``, through nested tuples, lists and
    dicts; other leaves (None, numbers, strings) are kept as they are."""
    if isinstance(state, dict):
        return {k: reorder_state(v, indices) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(reorder_state(v, indices) for v in state)
    if hasattr(state, "shape") and hasattr(state, "__getitem__") and len(getattr(state, "shape")) > 0:
        return state[indices]
    return state


def _check_int(func: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{func}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def _log_probs(func: str, out, k: int) -> tuple[np.ndarray, Any]:
    """Validate ``step``'s answer: a pair (log_probs (k, V), state)."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"{func}: step must return a pair (log_probs, state), got {type(out).__name__}")
    lp, state = out
    lp = lp.data if hasattr(lp, "grad_fn") and hasattr(lp, "data") else lp  # a minigrad Tensor
    lp = np.asarray(lp)
    if lp.ndim != 2 or lp.shape[0] != k or lp.shape[1] < 1:
        raise ValueError(f"{func}: step must return log_probs of shape (K={k}, V), got {lp.shape}")
    if lp.dtype.kind != "f":
        raise TypeError(f"{func}: step must return float log_probs, got dtype {lp.dtype}")
    if np.isnan(lp).any():
        raise ValueError(f"{func}: step returned NaN log-probabilities")
    return lp.astype(np.float64, copy=False), state


def _check_ids(func: str, bos_id, eos_id, max_len) -> tuple[int, int, int]:
    return (_check_int(func, "bos_id", bos_id, 0), _check_int(func, "eos_id", eos_id, 0),
            _check_int(func, "max_len", max_len, 1))


def greedy_search(step: StepFn, state, *, bos_id: int, eos_id: int, max_len: int = 50) -> tuple[list[int], float]:
    """Greedy decoding: ``y_t = argmax_v log p(v | y_<t, x)`` (ties: the lowest id) until ``</s>``
    or ``max_len`` tokens. Returns (tokens without ``<s>``, ending with ``</s>`` if it was
    produced; total log-probability Σ_t log p(y_t | y_<t, x))."""
    func = "greedy_search"
    bos_id, eos_id, max_len = _check_ids(func, bos_id, eos_id, max_len)
    tokens = np.array([[bos_id]], dtype=np.int64)  # (1, t)
    score = 0.0
    for _ in range(max_len):
        lp, state = _log_probs(func, step(tokens, state), 1)
        best = int(np.argmax(lp[0]))
        if np.isneginf(lp[0, best]):
            raise ValueError(f"{func}: every next token has probability 0 (all log_probs are -inf)")
        score += float(lp[0, best])
        tokens = np.concatenate([tokens, [[best]]], axis=1)
        if best == eos_id:
            break
    return tokens[0, 1:].tolist(), score


def beam_search(step: StepFn, state, *, bos_id: int, eos_id: int, beam_size: int = 4, max_len: int = 50,
                length_penalty: float = 0.0, reorder=None) -> list[tuple[list[int], float]]:
    """Beam search for one source sentence (see the module docstring for the algorithm).

    ``step(tokens, state) -> (log_probs, state)``: tokens (K, t) int64 of the K live hypotheses
    (starting with ``[[bos_id]]``), log_probs (K, V). ``reorder(state, indices) -> state`` keeps
    and repeats the hypotheses ``indices`` (default ``reorder_state``: index every array of a
    nested tuple/list/dict along axis 0 — keep the hypothesis axis first). Returns up to
    ``beam_size`` pairs (tokens without ``<s>``, score) sorted best first; finished hypotheses
    end with ``eos_id``; if fewer than ``beam_size`` finish within ``max_len`` tokens the best
    unfinished ones fill the list. score = Σ log p / lp(len) with GNMT's
    lp = ((5 + len) / 6) ** length_penalty.
    """
    func = "beam_search"
    bos_id, eos_id, max_len = _check_ids(func, bos_id, eos_id, max_len)
    beam_size = _check_int(func, "beam_size", beam_size, 1)
    if not isinstance(length_penalty, numbers.Real) or not np.isfinite(length_penalty):
        raise ValueError(f"{func}: length_penalty must be a finite number, got {length_penalty!r}")
    reorder = reorder_state if reorder is None else reorder
    alpha = float(length_penalty)

    tokens = np.array([[bos_id]], dtype=np.int64)  # (K, t) live hypotheses
    scores = np.zeros(1)  # (K,) their total log-probabilities
    finished: list[tuple[float, int, list[int], float]] = []  # (normalised, order, tokens, raw)
    for t in range(1, max_len + 1):
        lp, state = _log_probs(func, step(tokens, state), tokens.shape[0])
        vocab = lp.shape[1]
        if eos_id >= vocab:
            raise ValueError(f"{func}: eos_id={eos_id} is outside the vocabulary of size {vocab}")
        cand = (scores[:, None] + lp).ravel()  # (K·V,) scores of every one-token extension
        # the 2K best (stable: ties go to the lower hypothesis, then the lower token id)
        order = np.argsort(-cand, kind="stable")[:2 * beam_size]
        order = order[np.isfinite(cand[order])]
        keep_parent, keep_token = [], []
        for rank, flat in enumerate(order):
            parent, token = divmod(int(flat), vocab)
            if token == eos_id:
                if rank < beam_size:  # an end within the top K: a finished sentence
                    raw = float(cand[flat])
                    finished.append((raw / length_penalty_factor(t, alpha), len(finished),
                                     tokens[parent, 1:].tolist() + [eos_id], raw))
            elif len(keep_parent) < beam_size:
                keep_parent.append(parent)
                keep_token.append(token)
        if not keep_parent:
            break
        parents = np.array(keep_parent, dtype=np.int64)
        tokens = np.concatenate([tokens[parents], np.array(keep_token, dtype=np.int64)[:, None]], axis=1)
        scores = cand[parents * vocab + np.array(keep_token)]
        if _done(finished, scores, t, alpha, beam_size):
            break
        if t < max_len:
            state = reorder(state, parents)
    else:  # max_len reached: the live hypotheses compete unfinished
        for k in range(tokens.shape[0]):
            finished.append((scores[k] / length_penalty_factor(max_len, alpha), len(finished),
                             tokens[k, 1:].tolist(), float(scores[k])))
    if not finished:
        raise ValueError(f"{func}: every next token has probability 0 (all log_probs are -inf)")
    finished.sort(key=lambda f: (-f[0], f[1]))
    return [(toks, float(norm)) for norm, _, toks, _ in finished[:beam_size]]


def _done(finished: list, live_scores: np.ndarray, t: int, alpha: float, beam_size: int) -> bool:
    """K hypotheses are finished and the best live one, at its current length t, is no better
    than the worst of the K best finished ones."""
    if len(finished) < beam_size:
        return False
    worst_kept = sorted(f[0] for f in finished)[-beam_size]
    best_live = float(live_scores.max()) / length_penalty_factor(t, alpha)
    return best_live <= worst_kept
