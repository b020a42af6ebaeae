"""LSH attention and local (chunked) attention (book § 4.9, Reformer; Kitaev et al. 2020, "Reformer: The
Efficient Transformer", §§ 2–3), as in Hugging Face's ``LSHSelfAttention`` and ``LocalSelfAttention``.

**Angular LSH** (Andoni et al. 2015; Reformer eq. 2). A random matrix R (d × b/2) per head and hashing
round maps a vector x to the bucket

    h(x) = argmax([x R ; −x R])                                    (b buckets; Reformer § 2)

— nearby directions land in the same bucket with high probability. With ``num_buckets`` a list
[b₁, b₂, …] the hash is factorised: h = h₁ + b₁·h₂ + …, each hᵢ from its own b_i/2 columns of R, so b₁·b₂
buckets cost b₁/2 + b₂/2 columns. Padding tokens get a bucket of their own after the others.

**Chunked attention.** The sequence is sorted by (round, bucket, position); the sorted sequence of
n_hashes · T entries is cut into chunks of ``chunk_length`` c, and each chunk attends to itself and
``num_chunks_before`` / ``num_chunks_after`` neighbouring chunks (circularly, as HF):

    P̃_i = { j : ⌊s_i / c⌋ − before ≤ ⌊s_j / c⌋ ≤ ⌊s_i / c⌋ + after }        (Reformer eq. 5, s = sorted index)

Queries and keys are *shared* (one projection, Reformer § 2 "shared-QK"), keys length-normalised:
k = x / ‖x‖_rms / √d. A query is kept from attending to itself (its score becomes −1e5) unless nothing
else is left; padding and, in a causal model, future keys score −1e9 (HF's constants: such scores are
*replaced*, so no gradient flows through them). Each row gives its output and its log-sum-exp
L = log Σ_j exp(s_ij); the sort is undone and the rounds are combined with the weights of their L,

    y_t = Σ_r softmax_r(L_r(t)) · o_r(t)                                   (Reformer § 2 "multi-round LSH")

**Local attention** is the same chunked attention on the unsorted sequence (one round, no self-mask,
keys scaled by 1/√d), as HF's ``LocalSelfAttention``.

The kernel (``ChunkedAttention``) does all of it in one node. Its backward, for one round, with
P = exp(s − L), O = P V (dropout factors m on P):

    dP = (dO Vᵀ) ⊙ m,   dS = P ⊙ (dP − rowsum(dP ⊙ P) + dL) ⊙ [s not replaced],
    dQ = s·dS K,   dK = s·dSᵀ Q,   dV = (P ⊙ m)ᵀ dO,

and the round combination gives dO_r = w_r g and dL_r = w_r (g·o_r − g·y). The gathered gradients go back
through the neighbouring-chunk view (rolls) and the sort (each round is a permutation: an assignment).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from minigrad.function import Function, enable_grad, is_grad_enabled
from minigrad.kernels import using_reference

MASKED_SCORE = -1e9  # HF's mask_value_float32: padding and future keys
SELF_SCORE = -1e5  # HF's self_mask_value_float32: a query and itself
KEY_NORM_EPS = 1e-6  # HF's _len_norm epsilon


# ----------------------------------------------------------------------------------------------
# Hashing and sorting (integers: no gradient)
# ----------------------------------------------------------------------------------------------
def bucket_factors(num_buckets) -> list[int]:
    """``num_buckets`` as a list of even factors (an int is one factor)."""
    factors = [num_buckets] if isinstance(num_buckets, (int, np.integer)) else list(num_buckets)
    if not factors or any(isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 2 or f % 2
                          for f in factors):
        raise ValueError(f"num_buckets must be an even int >= 2 or a list of them (the hash takes argmax over "
                         f"[xR; −xR], so each factor is twice R's columns), got {num_buckets!r}")
    return [int(f) for f in factors]


def rotation_size(num_buckets) -> int:
    """Columns of R per head and round: Σ b_i / 2."""
    return sum(f // 2 for f in bucket_factors(num_buckets))


def hash_buckets(vectors: np.ndarray, rotations: np.ndarray, num_buckets, key_mask=None) -> np.ndarray:
    """Angular LSH buckets (B, A, n_hashes, T) of ``vectors`` (B, A, T, d) with ``rotations`` (A, d, n_hashes,
    Σ b_i/2): h = Σ_i (Π_{j<i} b_j) · argmax([x R_i ; −x R_i]). Padding tokens (``key_mask`` False) get the
    extra bucket Π b_i."""
    factors = bucket_factors(num_buckets)
    B, A, T, d = vectors.shape
    if rotations.ndim != 4 or rotations.shape[0] != A or rotations.shape[1] != d or \
            rotations.shape[3] != rotation_size(factors):
        raise ValueError(f"hash_buckets: rotations must have shape (heads={A}, head_dim={d}, n_hashes, "
                         f"{rotation_size(factors)}), got {rotations.shape}")
    n_hashes, half = rotations.shape[2], rotations.shape[3]
    rotated = np.matmul(vectors, rotations.reshape(A, d, n_hashes * half))  # x R: (B, A, T, n_hashes·Σ b_i/2)
    rotated = rotated.reshape(B, A, T, n_hashes, half).transpose(0, 1, 3, 2, 4)  # (B, A, n_hashes, T, Σ b_i/2)
    buckets = np.zeros(rotated.shape[:-1], dtype=np.int64)
    start, product = 0, 1
    for f in factors:
        part = rotated[..., start:start + f // 2]
        # argmax([xR; −xR]) without the concatenation: the first maximum, the +xR half winning ties
        positive = part.max(axis=-1) >= -part.min(axis=-1)
        buckets += product * np.where(positive, part.argmax(axis=-1), f // 2 + part.argmin(axis=-1))
        start, product = start + f // 2, product * f
    if key_mask is not None and not np.all(key_mask):
        buckets = np.where(np.asarray(key_mask, dtype=bool)[:, None, None, :], buckets, product)
    return buckets


def sort_by_bucket(buckets: np.ndarray) -> np.ndarray:
    """The sort of LSH attention: (B, A, n_hashes · T) indices r·T + t ordered by (round r, bucket, position t)."""
    B, A, n_hashes, T = buckets.shape
    keys = buckets + np.arange(n_hashes)[:, None] * (int(buckets.max(initial=0)) + 1)  # rounds never mix
    return np.argsort(keys.reshape(B, A, n_hashes * T), axis=-1, kind="stable")


# ----------------------------------------------------------------------------------------------
# Shared pieces
# ----------------------------------------------------------------------------------------------
def _extended(order: np.ndarray, chunk: int, before: int, after: int) -> np.ndarray:
    """The sorted sequence with ``before`` chunks wrapped around in front and ``after`` behind, (B, A, N + (W − 1)·c):
    window j of W = 1 + before + after chunks — chunk j and its neighbours, circularly — is rows [j·c, (j + W)·c)."""
    N = order.shape[-1]
    return order[..., np.arange(-before * chunk, N + after * chunk) % N]


def _windows(x_ext: np.ndarray, chunk: int, W: int) -> np.ndarray:
    """(B, A, N + (W − 1)·c, …) → (B, A, nc, W·c, …): the overlapping windows as a read-only strided view (no copy)."""
    B, A, L = x_ext.shape[:3]
    st = x_ext.strides
    return as_strided(x_ext, (B, A, L // chunk - W + 1, W * chunk) + x_ext.shape[3:],
                      (st[0], st[1], chunk * st[2]) + st[2:], writeable=False)


def _windows_back(d_windows: np.ndarray, chunk: int, before: int) -> np.ndarray:
    """The adjoint of ``_windows`` of ``_extended``: (B, A, nc, W·c, d) → (B, A, N, d) in sorted order."""
    B, A, nc, Wc, d = d_windows.shape
    W, N = Wc // chunk, nc * chunk
    ext = np.zeros((B, A, N + (W - 1) * chunk, d), dtype=d_windows.dtype)
    for slot in range(W):  # slot s of window j is extended rows (j + s)·c …, added in place (views, no copies)
        home = ext[:, :, slot * chunk:slot * chunk + N].reshape(B, A, nc, chunk, d)
        home += d_windows[:, :, :, slot * chunk:(slot + 1) * chunk]
    lead = before * chunk
    out = ext[:, :, lead:lead + N].copy()
    every = (slice(None), slice(None))
    np.add.at(out, every + (np.arange(-lead, 0) % N,), ext[:, :, :lead])  # wrapped rows back home
    np.add.at(out, every + (np.arange(N, ext.shape[2] - lead) % N,), ext[:, :, lead + N:])
    return out


def _score_masks(order: np.ndarray, T: int, chunk: int, before: int, after: int, causal: bool, key_mask,
                 self_mask: bool):
    """(masked, is_self) bool arrays broadcastable to the scores (B, A, nc, c, W·c), or None for none."""
    B, A, N = order.shape
    W, nc = 1 + before + after, N // chunk
    pos_q = (order % T).reshape(B, A, nc, chunk)  # (B, A, nc, c)
    pos_ext = _extended(order, chunk, before, after) % T
    masked = None
    if key_mask is not None and not key_mask.all():
        masked = ~_windows(key_mask[np.arange(B)[:, None, None], pos_ext], chunk, W)[..., None, :]  # (B, A, nc, 1, W·c)
    pos_k = _windows(pos_ext, chunk, W)  # (B, A, nc, W·c)
    if causal:
        future = pos_q[..., :, None] < pos_k[..., None, :]
        masked = future if masked is None else masked | future
    is_self = None
    if self_mask and N == T and nc >= W:  # one round, windows of distinct chunks: a query meets itself once
        is_self = np.zeros((chunk, W * chunk), dtype=bool)
        is_self[np.arange(chunk), before * chunk + np.arange(chunk)] = True
    elif self_mask:
        is_self = pos_q[..., :, None] == pos_k[..., None, :]
    return masked, is_self


# ----------------------------------------------------------------------------------------------
# Reference: the same computation in Tensor ops
# ----------------------------------------------------------------------------------------------
def _roll_chunks(x, o: int):
    """Tensor: chunk j ← chunk j + o along axis 2 (circular)."""
    from minigrad.tensor import cat

    return x if o == 0 else cat([x[:, :, o:], x[:, :, :o]], dim=2)


def chunked_attention_reference(q, k, v, order, chunk, before, after, causal, key_mask, self_mask, scale, keep=None):
    """Sort by ``order``, attend within chunks and their neighbours, undo the sort, combine the rounds."""
    from minigrad.tensor import cat, where

    B, A, T, d = q.shape
    N = order.shape[-1]
    n_hashes, nc = N // T, N // chunk
    pos = order % T
    bi, hi = np.arange(B)[:, None, None], np.arange(A)[None, :, None]
    qs, ks, vs = (x[bi, hi, pos].reshape(B, A, nc, chunk, d) for x in (q, k, v))  # sorted, chunked
    k_adj = cat([_roll_chunks(ks, o) for o in range(-before, after + 1)], dim=3)  # (B, A, nc, W·c, d)
    v_adj = cat([_roll_chunks(vs, o) for o in range(-before, after + 1)], dim=3)
    s = (qs * scale) @ k_adj.swapaxes(-1, -2)  # (B, A, nc, c, W·c)
    masked, is_self = _score_masks(order, T, chunk, before, after, causal, key_mask, self_mask)
    if masked is not None:
        s = where(masked, MASKED_SCORE, s)
    if is_self is not None:
        s = where(is_self, SELF_SCORE, s)
    lse = s.logsumexp(axis=-1, keepdims=True)  # L = log Σ_j exp(s_ij)
    P = (s - lse).exp()
    out = (P if keep is None else P * keep) @ v_adj  # (B, A, nc, c, d)
    undo = np.argsort(order, axis=-1)  # sorted index of each (round, position)
    out = out.reshape(B, A, N, d)[bi, hi, undo].reshape(B, A, n_hashes, T, d)
    if n_hashes == 1:
        return out.reshape(B, A, T, d)
    lse = lse.reshape(B, A, N)[bi, hi, undo].reshape(B, A, n_hashes, T, 1)
    weights = (lse - lse.logsumexp(axis=2, keepdims=True)).exp()  # softmax over the rounds
    return (weights * out).sum(axis=2)  # (B, A, T, d)


# ----------------------------------------------------------------------------------------------
# Kernel
# ----------------------------------------------------------------------------------------------
class ChunkedAttention(Function):
    """Sorted, chunked attention with round combination in one node (module docstring)."""

    def forward(self, q, k, v, *, order, chunk, before, after, causal, key_mask, self_mask, scale, keep):
        self.opts = dict(order=order, chunk=chunk, before=before, after=after, causal=causal, key_mask=key_mask,
                         self_mask=self_mask, scale=scale, keep=keep)
        B, A, T, d = q.shape
        N = order.shape[-1]
        n_hashes, nc = N // T, N // chunk
        W = 1 + before + after
        bi, hi = np.arange(B)[:, None, None], np.arange(A)[None, :, None]
        qs = q[bi, hi, order % T].reshape(B, A, nc, chunk, d)  # sorted, chunked
        pos_ext = _extended(order, chunk, before, after) % T
        k_adj = _windows(k[bi, hi, pos_ext], chunk, W)  # (B, A, nc, W·c, d): chunk j and its neighbours
        v_adj = _windows(v[bi, hi, pos_ext], chunk, W)
        s = np.matmul(qs * q.dtype.type(scale), k_adj.swapaxes(-1, -2))  # (B, A, nc, c, W·c)
        masked, is_self = _score_masks(order, T, chunk, before, after, causal, key_mask, self_mask)
        replaced = None
        for where, value in ((masked, MASKED_SCORE), (is_self, SELF_SCORE)):
            if where is not None:
                np.copyto(s, s.dtype.type(value), where=where)
                replaced = where if replaced is None else replaced | where
        self.replaced = replaced
        m = s.max(axis=-1, keepdims=True)
        s -= m
        np.exp(s, out=s)
        z = s.sum(axis=-1, keepdims=True)
        s /= z
        self.P = s  # (B, A, nc, c, W·c)
        lse = m + np.log(z)  # (B, A, nc, c, 1)
        self.out_sorted = np.matmul(s if keep is None else s * keep, v_adj)  # (B, A, nc, c, d)
        out = np.empty((B, A, N, d), dtype=self.out_sorted.dtype)
        out[bi, hi, order] = self.out_sorted.reshape(B, A, N, d)  # undo the sort: a permutation
        if n_hashes == 1:
            self.weights = None
            return self.save_output(out)
        L = np.empty((B, A, N), dtype=lse.dtype)
        L[bi, hi, order] = lse.reshape(B, A, N)
        L = L.reshape(B, A, n_hashes, T, 1)
        top = L.max(axis=2, keepdims=True)
        # softmax_r L_r(t) as exp(L − logsumexp_r L), HF's formula to the rounding: with the −1e5 self score in
        # float32 these weights may sum to 0.998 for a query that meets only itself, in HF as here
        w = np.exp(L - (top + np.log(np.exp(L - top).sum(axis=2, keepdims=True))))
        self.weights, self.out_rounds = w, out.reshape(B, A, n_hashes, T, d)
        return self.save_output((w * self.out_rounds).sum(axis=2))

    def backward(self, g):
        if is_grad_enabled():  # create_graph: differentiate the reference
            return _reference_backward(self, g)
        o = self.opts
        q, k, v = self.args()
        order, chunk, before, after, scale, keep = (o[n] for n in ("order", "chunk", "before", "after", "scale",
                                                                   "keep"))
        B, A, T, d = q.shape
        N = order.shape[-1]
        n_hashes, nc, W = N // T, N // chunk, 1 + before + after
        bi, hi = np.arange(B)[:, None, None], np.arange(A)[None, :, None]

        def to_sorted(flat):  # (B, A, N, …) in (round, position) order → sorted chunks
            return flat[bi, hi, order].reshape((B, A, nc, chunk) + flat.shape[3:])

        d_lse = None
        if n_hashes == 1:
            d_out = to_sorted(g)
        else:
            w, rounds = self.weights, self.out_rounds  # (B, A, R, T, 1), (B, A, R, T, d)
            gr = g[:, :, None]
            d_out = to_sorted((w * gr).reshape(B, A, N, d))  # dO_r = w_r g
            d_L = w[..., 0] * ((gr * rounds).sum(-1) - (g * self.output()).sum(-1)[:, :, None])  # w_r (g·o_r − g·y)
            d_lse = to_sorted(d_L.reshape(B, A, N))[..., None]  # (B, A, nc, c, 1)
        qs = q[bi, hi, order % T].reshape(B, A, nc, chunk, d)
        pos_ext = _extended(order, chunk, before, after) % T
        k_adj, v_adj = _windows(k[bi, hi, pos_ext], chunk, W), _windows(v[bi, hi, pos_ext], chunk, W)
        P = self.P
        dS = np.matmul(d_out, v_adj.swapaxes(-1, -2))  # dP = dO Vᵀ
        if keep is None:
            dS -= (d_out * self.out_sorted).sum(axis=-1, keepdims=True)  # rowsum(dP ⊙ P) = rowsum(dO ⊙ O)
        else:
            dS *= keep
            dS -= (dS * P).sum(axis=-1, keepdims=True)
        if d_lse is not None:
            dS += d_lse  # ∂L/∂s = P
        dS *= P
        if self.replaced is not None:
            np.copyto(dS, 0.0, where=self.replaced)  # replaced scores are constants
        sc = q.dtype.type(scale)
        dq_s = np.matmul(dS, k_adj) * sc  # (B, A, nc, c, d)
        dk_s = _windows_back(np.matmul(dS.swapaxes(-1, -2), qs) * sc, chunk, before)  # (B, A, N, d), sorted
        dv_s = _windows_back(np.matmul((P if keep is None else P * keep).swapaxes(-1, -2), d_out), chunk, before)

        def unsort(x):  # sorted chunks → (B, A, T, d), the rounds added up
            flat = np.empty((B, A, N, d), dtype=x.dtype)
            flat[bi, hi, order] = x.reshape(B, A, N, d)
            return flat.reshape(B, A, n_hashes, T, d).sum(axis=2)

        return tuple(unsort(x) if need else None for x, need in zip((dq_s, dk_s, dv_s), self.needs_input_grad))


def _reference_backward(node: Function, g):
    """Gradients by differentiating the reference on the node's Tensor inputs (for ``create_graph``)."""
    from minigrad.autograd import grad

    with enable_grad():
        q, k, v = (t.clone() for t in node.args())  # own nodes: partial derivatives (shared QK: k depends on q)
        out = chunked_attention_reference(q, k, v, **node.opts)
        wanted = [t for t, need in zip((q, k, v), node.needs_input_grad) if need]
        grads = iter(grad((out * g).sum(), wanted, create_graph=True, allow_unused=True))
    return tuple(next(grads) if need else None for need in node.needs_input_grad)


def chunked_attention(q, k, v, order, chunk, before, after, causal, key_mask, self_mask, scale, keep=None):
    """The kernel or its reference (arguments checked by ``lsh_attention`` / ``local_attention``)."""
    opts = dict(order=order, chunk=chunk, before=before, after=after, causal=causal, key_mask=key_mask,
                self_mask=self_mask, scale=scale, keep=keep)
    if using_reference():
        return chunked_attention_reference(q, k, v, **opts)
    return ChunkedAttention.apply(q, k, v, **opts)


# ----------------------------------------------------------------------------------------------
# The functions layers call
# ----------------------------------------------------------------------------------------------
def _check(fn, tensors: dict, chunk_length, num_chunks_before, num_chunks_after, key_mask, dropout_p):
    from minigrad.functional.attention import check_float

    check_float(fn, **tensors)
    shapes = {name: t.shape for name, t in tensors.items()}
    first = next(iter(tensors.values()))
    if first.ndim != 4 or len(set(shapes.values())) != 1:
        raise ValueError(f"{fn}: inputs must share the shape (batch, heads, seq_len, head_dim), got {shapes}")
    B, A, T, d = first.shape
    for name, value, low in (("chunk_length", chunk_length, 1), ("num_chunks_before", num_chunks_before, 0),
                             ("num_chunks_after", num_chunks_after, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{fn}: {name} must be an int >= {low}, got {value!r}")
    if T > chunk_length and T % chunk_length:
        raise ValueError(f"{fn}: seq_len {T} is not a multiple of chunk_length {chunk_length}; pad the input to "
                         f"{-(-T // chunk_length) * chunk_length} tokens (ReformerModel pads in evaluation)")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{fn}: dropout_p must be in [0, 1), got {dropout_p}")
    if key_mask is not None:
        key_mask = np.asarray(key_mask)
        if key_mask.dtype != np.bool_ or key_mask.shape != (B, T):
            raise ValueError(f"{fn}: key_mask must be bool of shape (batch, seq_len)={(B, T)}, got "
                             f"{key_mask.dtype} {key_mask.shape}")
    return (B, A, T, d), key_mask


def length_normalized_keys(query_key):
    """Shared-QK keys: k = x / √(mean(x²) + 1e-6) / √d  (unit length; HF's ``_len_and_dim_norm``)."""
    d = query_key.shape[-1]
    return query_key * ((query_key * query_key).mean(axis=-1, keepdims=True) + KEY_NORM_EPS).rsqrt() * (
        1.0 / math.sqrt(d))


def _attend(fn, q, k, v, order, chunk, before, after, causal, key_mask, self_mask, scale, dropout_p, generator):
    from minigrad.functional.attention import dropout_keep

    B, A, T, d = q.shape
    nc = order.shape[-1] // chunk
    keep = dropout_keep((B, A, nc, chunk, (1 + before + after) * chunk), float(dropout_p), generator, q.dtype)
    return chunked_attention(q, k, v, order, chunk, before, after, causal, key_mask, self_mask, scale, keep)


def lsh_attention(query_key, value, buckets, chunk_length: int, num_chunks_before: int = 1,
                  num_chunks_after: int = 0, causal: bool = False, key_mask=None, dropout_p: float = 0.0,
                  generator=None):
    """Reformer's shared-QK LSH attention (module docstring) → (B, A, T, d).

    ``query_key``, ``value`` (B, A, T, d): the one query/key projection and the values. ``buckets``
    (B, A, n_hashes, T) integers from ``hash_buckets``, or None for a sequence no longer than one chunk
    (T ≤ chunk_length: every token attends to all T, as HF). ``key_mask`` (B, T) bool, True for real tokens.
    ``dropout_p`` drops attention weights (pass 0 at evaluation)."""
    fn = "lsh_attention"
    (B, A, T, d), key_mask = _check(fn, {"query_key": query_key, "value": value}, chunk_length, num_chunks_before,
                                    num_chunks_after, key_mask, dropout_p)
    keys = length_normalized_keys(query_key)
    if buckets is None:
        if T > chunk_length:
            raise ValueError(f"{fn}: buckets are needed for seq_len {T} > chunk_length {chunk_length}")
        order = np.broadcast_to(np.arange(T), (B, A, T))
        return _attend(fn, query_key, keys, value, order, T, 0, 0, causal, key_mask, True, 1.0, dropout_p, generator)
    buckets = np.asarray(buckets)
    if buckets.ndim != 4 or buckets.shape[:2] != (B, A) or buckets.shape[3] != T or buckets.dtype.kind not in "iu":
        raise ValueError(f"{fn}: buckets must be integers of shape (batch={B}, heads={A}, n_hashes, seq_len={T}), "
                         f"got {buckets.dtype} {buckets.shape}")
    chunk = min(chunk_length, T)
    return _attend(fn, query_key, keys, value, sort_by_bucket(buckets), chunk, num_chunks_before, num_chunks_after,
                   causal, key_mask, True, 1.0, dropout_p, generator)


def local_attention(query, key, value, chunk_length: int, num_chunks_before: int = 1, num_chunks_after: int = 0,
                    causal: bool = False, key_mask=None, dropout_p: float = 0.0, generator=None):
    """Local attention: each chunk of ``chunk_length`` queries attends to its own chunk and its neighbours
    (circularly, HF's ``LocalSelfAttention``), scores q·k/√d; a sequence no longer than one chunk attends
    to all of itself. Inputs (B, A, T, d) → (B, A, T, d)."""
    fn = "local_attention"
    (B, A, T, d), key_mask = _check(fn, {"query": query, "key": key, "value": value}, chunk_length,
                                    num_chunks_before, num_chunks_after, key_mask, dropout_p)
    order = np.broadcast_to(np.arange(T), (B, A, T))
    if T <= chunk_length:
        return _attend(fn, query, key, value, order, T, 0, 0, causal, key_mask, False, 1 / math.sqrt(d), dropout_p,
                       generator)
    return _attend(fn, query, key, value, order, chunk_length, num_chunks_before, num_chunks_after, causal, key_mask,
                   False, 1 / math.sqrt(d), dropout_p, generator)


__all__ = ["ChunkedAttention", "MASKED_SCORE", "SELF_SCORE", "bucket_factors", "chunked_attention",
           "chunked_attention_reference", "hash_buckets", "length_normalized_keys", "local_attention",
           "lsh_attention", "rotation_size", "sort_by_bucket"]
