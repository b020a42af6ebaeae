"""Attention in functional form: torch's mask conventions, argument checks, then the kernels
(``minigrad/kernels/attention.py``).

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V                  (Vaswani et al., 2017, eq. 1)

Mask conventions differ between torch APIs, and these functions follow torch exactly:
``scaled_dot_product_attention``: a *boolean* mask is True where a position **takes part**;
``MultiheadAttention`` (``attn_mask`` and ``key_padding_mask``): True where a position is
**ignored**. Float masks are always *added* to the scores. A row whose keys are all masked gets
weights 0 and output 0 (torch's SDPA does the same; torch's MHA gives NaN there when
``need_weights=True``).
"""
from __future__ import annotations

import math

import numpy as np

from minigrad.kernels import attention as kernel
from minigrad.random import Generator, _rng
from minigrad.tensor import Tensor


def _causal_keep(L: int, S: int, offset: int = 0) -> np.ndarray:
    """(L, S) bool, True where key j may be seen from query i: j ≤ i + offset.

    offset 0 is torch's top-left aligned ``is_causal``; offset S − L aligns the last query with
    the last key (decoding with a cache of S − L earlier positions)."""
    return np.arange(S)[None, :] <= np.arange(L)[:, None] + offset


def causal_mask(L: int, S: int | None = None, offset: int = 0, dtype=np.float32) -> np.ndarray:
    """Additive causal mask (L, S): 0 where j ≤ i + offset, −inf above."""
    S = L if S is None else S
    return np.where(_causal_keep(L, S, offset), 0.0, -np.inf).astype(dtype)


def additive_mask(fn: str, mask, dtype, true_means_keep: bool) -> Tensor:
    """A bool/float mask as an additive float mask: a constant Tensor, or the mask Tensor
    itself when it is float and requires grad (a learned bias such as ALiBi)."""
    if isinstance(mask, Tensor) and mask.requires_grad:
        if mask.dtype != dtype:
            raise TypeError(f"{fn}: float mask has dtype {mask.dtype}, the inputs have {dtype}")
        return mask
    arr = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if arr.dtype == np.bool_:
        keep = arr if true_means_keep else ~arr
        return Tensor._wrap(np.where(keep, 0.0, -np.inf).astype(dtype))
    if arr.dtype.kind != "f":
        raise TypeError(f"{fn}: mask must be bool or floating-point, got dtype {arr.dtype}")
    return Tensor._wrap(arr.astype(dtype, copy=False))


def check_float(fn: str, **tensors) -> np.dtype:
    """All ``tensors`` are floating-point Tensors of one dtype; returns it."""
    dtype = None
    for name, t in tensors.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}: {name} must be a Tensor, got {type(t).__name__}")
        if t.dtype.kind != "f":
            raise TypeError(f"{fn}: {name} must be floating-point, got dtype {t.dtype}")
        if dtype is not None and t.dtype != dtype:
            raise TypeError(f"{fn}: {name} has dtype {t.dtype}, expected {dtype} like the query")
        dtype = t.dtype
    return dtype


def dropout_keep(shape: tuple, p: float, generator: Generator | None, dtype) -> np.ndarray | None:
    """Inverted-dropout factors m / (1 − p), m ~ Bernoulli(1 − p), for attention weights of ``shape``."""
    if p <= 0.0:
        return None
    return (_rng(generator).random(shape) >= p).astype(dtype) / np.dtype(dtype).type(1.0 - p)


def masked_softmax(scores: Tensor, mask=None) -> Tensor:
    """softmax(scores + mask) over the last axis, where a bool ``mask`` is True at positions
    that take part (others get weight exactly 0) and a float mask is added. Rows with no
    position left give all-zero weights (not NaN)."""
    if mask is None:
        return kernel.masked_softmax(scores)
    return kernel.masked_softmax(scores, additive_mask("masked_softmax", mask, scores.dtype, True))


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 return_weights: bool = False, generator: Generator | None = None):
    """Attention(Q, K, V) = softmax(Q Kᵀ · scale + M) V  (Vaswani et al., 2017, eq. 1).

    ``query`` (…, L, E), ``key`` (…, S, E), ``value`` (…, S, Ev) → (…, L, Ev); batch dims
    broadcast. ``scale`` defaults to 1/√E. ``attn_mask`` broadcastable to (…, L, S): bool, True
    where a key **takes part** (torch's SDPA convention), or float, added to the scores (no
    gradient unless it is a Tensor that requires grad). ``is_causal``: query i sees keys j ≤ i
    (top-left aligned, as torch; not together with ``attn_mask``). A fully masked row gives
    output 0. ``dropout_p`` drops attention weights (always applied, as torch's functional
    form — pass 0.0 at evaluation). With ``return_weights=True`` returns ``(output, P)``, P the
    (…, L, S) weights before dropout (differentiable when the inputs require grad).
    """
    fn = "scaled_dot_product_attention"
    dtype = check_float(fn, query=query, key=key, value=value)
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.ndim < 2:
            raise ValueError(f"{fn}: {name} needs at least 2 dimensions (…, seq, features), got shape {t.shape}")
    L, E, S = query.shape[-2], query.shape[-1], key.shape[-2]
    if key.shape[-1] != E:
        raise ValueError(f"{fn}: query {query.shape} and key {key.shape} must have the same last dimension")
    if value.shape[-2] != S:
        raise ValueError(f"{fn}: key {key.shape} and value {value.shape} must have the same sequence length")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{fn}: dropout_p must be in [0, 1), got {dropout_p}")
    if is_causal and attn_mask is not None:
        raise ValueError(f"{fn}: pass either attn_mask or is_causal=True, not both (as torch)")
    batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    mask = None
    if attn_mask is not None:
        mask = additive_mask(fn, attn_mask, dtype, True)
        try:
            np.broadcast_shapes(mask.shape, batch + (L, S))
        except ValueError:
            raise ValueError(f"{fn}: attn_mask of shape {mask.shape} does not broadcast to the scores "
                             f"(…, L={L}, S={S}) of query {query.shape} and key {key.shape}") from None
        batch = np.broadcast_shapes(batch, mask.shape[:-2])
    elif is_causal:
        mask = Tensor._wrap(causal_mask(L, S, dtype=dtype))
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    keep = dropout_keep(batch + (L, S), float(dropout_p), generator, dtype)
    return kernel.attention(query, key, value, mask, scale, keep, need_weights=return_weights)


__all__ = ["additive_mask", "causal_mask", "check_float", "dropout_keep", "masked_softmax",
           "scaled_dot_product_attention"]
