"""Choosing the next token from a language model's logits (book, chapter 1: sentence generation).

Shared by every generating model (N-gram, GRU LM, GPT). For logits ``z`` over a vocabulary:

* greedy:        ``argmax_i z_i``
* temperature:   ``p_i = softmax(z / tau)_i`` — ``tau < 1`` sharpens, ``tau > 1`` flattens,
                 ``tau -> 0`` is greedy;
* top-k:         keep the ``k`` largest logits, renormalise (Fan et al., 2018);
* top-p/nucleus: keep the smallest set of most-probable tokens whose mass is ``>= p``,
                 renormalise (Holtzman et al., 2020, "The Curious Case of Neural Text
                 Degeneration").

Everything works on a ``(V,)`` logits vector or a ``(B, V)`` batch.
"""
from __future__ import annotations

import numpy as np

__all__ = ["greedy", "sample", "filter_logits", "probabilities"]


def _check_logits(where: str, logits: object) -> np.ndarray:
    z = np.asarray(logits)
    if z.ndim not in (1, 2) or z.shape[-1] == 0 or (z.ndim == 2 and z.shape[0] == 0):
        raise ValueError(f"{where}: logits must have shape (V,) or (B, V) with V, B >= 1, got {z.shape}")
    if not np.issubdtype(z.dtype, np.floating):
        if np.issubdtype(z.dtype, np.integer) or z.dtype == bool:
            z = z.astype(np.float64)
        else:
            raise TypeError(f"{where}: logits must be a float array, got dtype {z.dtype}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError(f"{where}: logits contain NaN or +inf")
    if np.isneginf(z).all(axis=-1).any():
        raise ValueError(f"{where}: a row of logits is all -inf (no token can be chosen)")
    return z


def greedy(logits: np.ndarray) -> int | np.ndarray:
    """Most likely token: ``argmax`` over the last axis (an int for ``(V,)``, ``(B,)`` ints for ``(B, V)``).

    Ties go to the lowest id.
    """
    z = _check_logits("greedy", logits)
    ids = np.argmax(z, axis=-1)
    return int(ids) if z.ndim == 1 else ids.astype(np.int64)


def filter_logits(logits: np.ndarray, top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """Set the logits of removed tokens to ``-inf`` (top-k first, then nucleus top-p).

    Nucleus: with tokens sorted by probability (ties by id), keep token ``j`` if the mass of the
    tokens before it is ``< p`` — the smallest prefix with mass ``>= p`` (up to 1e-9 of rounding).
    At least one token always survives.
    """
    z = _check_logits("filter_logits", logits)
    vocab = z.shape[-1]
    out = np.array(z, dtype=np.float64 if z.dtype != np.float32 else np.float32)
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k <= vocab:
            raise ValueError(f"filter_logits: top_k must be an int in [1, V={vocab}], got {top_k!r}")
        # k-th largest value per row; ties at the threshold are broken by id (lowest ids kept)
        order = np.argsort(-out, axis=-1, kind="stable")
        drop = order[..., top_k:]
        np.put_along_axis(out, drop, -np.inf, axis=-1)
    if top_p is not None:
        if not isinstance(top_p, (float, int, np.floating)) or not 0.0 < float(top_p) <= 1.0:
            raise ValueError(f"filter_logits: top_p must be in (0, 1], got {top_p!r}")
        order = np.argsort(-out, axis=-1, kind="stable")                    # (..., V)
        probs = np.take_along_axis(_softmax(out), order, axis=-1)
        mass_before = np.cumsum(probs, axis=-1) - probs
        # a tiny tolerance so that p = 0.5 over probs (0.5, ...) keeps one token despite rounding
        drop_sorted = mass_before >= float(top_p) - 1e-9
        drop_sorted[..., 0] = False
        drop = np.empty_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)  # back to vocabulary order
        out[drop] = -np.inf
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def probabilities(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    """The distribution ``sample`` draws from: ``softmax(filter(z) / tau)`` (float64).

    ``temperature == 0`` gives the one-hot greedy distribution. The nucleus is chosen on the
    temperature-scaled distribution (as in Hugging Face ``generate``).
    """
    z = _check_logits("probabilities", logits).astype(np.float64)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating)) \
            or not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"probabilities: temperature must be a finite number >= 0, got {temperature!r}")
    if temperature == 0:
        one_hot = np.zeros_like(z)
        np.put_along_axis(one_hot, np.argmax(z, axis=-1)[..., None], 1.0, axis=-1)
        return one_hot
    return _softmax(filter_logits(z / float(temperature), top_k=top_k, top_p=top_p))


def sample(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | int | None = None,
) -> int | np.ndarray:
    """Draw one token id per row from ``probabilities(logits, temperature, top_k, top_p)``.

    ``rng`` is a ``numpy.random.Generator`` or an int seed (``None``: a fresh, unseeded
    generator). Returns an int for ``(V,)`` logits, ``(B,)`` int64 ids for ``(B, V)``.
    """
    if rng is None or isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(rng)
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f"sample: rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")
    p = np.atleast_2d(probabilities(logits, temperature, top_k, top_p))  # (B, V)
    # inverse CDF: the first id whose cumulative mass exceeds u * total (never a zero-mass id)
    cdf = np.cumsum(p, axis=-1)
    u = rng.random(p.shape[0])[:, None] * cdf[:, -1:]
    last_positive = p.shape[-1] - 1 - np.argmax(p[:, ::-1] > 0, axis=-1)  # guards float round-up
    ids = np.minimum((cdf <= u).sum(axis=-1), last_positive).astype(np.int64)
    return int(ids[0]) if np.ndim(logits) == 1 else ids
