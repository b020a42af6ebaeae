"""Attention layers (book ch. 2–3): Bahdanau (additive) and Luong attention, multi-head attention
(Vaswani et al., 2017) and a key/value cache for decoding.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V                  (Vaswani et al., eq. 1)

The functional forms (``scaled_dot_product_attention``, ``masked_softmax``, ``causal_mask``) and torch's
mask conventions are in ``minigrad/functional/attention.py``; the arithmetic in
``minigrad/kernels/attention.py``.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad import functional as F
from minigrad.functional.attention import (  # noqa: F401  (the functional forms, importable from here too)
    additive_mask,
    causal_mask,
    check_float,
    dropout_keep,
    masked_softmax,
    scaled_dot_product_attention,
)
from minigrad.kernels import attention as kernels
from minigrad.kernels.attention import FusedAttention, HeadLayout, MaskedSoftmax  # noqa: F401  (old home)
from minigrad.nn import init
from minigrad.nn.linear import Linear
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.random import Generator
from minigrad.tensor import Tensor, cat


# ----------------------------------------------------------------------------------------------
# Bahdanau and Luong attention (encoder-decoder attention of ch. 2)
# ----------------------------------------------------------------------------------------------
def _query_keys(fn: str, query: Tensor, keys: Tensor, values, mask, q_size: int, k_size: int):
    """Checks and shapes: query (N, Q) or (N, L, Q) → (N, L, Q); keys (N, S, K); mask (N, S)."""
    check_float(fn, query=query, keys=keys)
    single = query.ndim == 2
    if query.ndim not in (2, 3) or query.shape[-1] != q_size:
        raise ValueError(f"{fn}: query must be (N, {q_size}) or (N, L, {q_size}), got {query.shape}")
    if keys.ndim != 3 or keys.shape[-1] != k_size or keys.shape[0] != query.shape[0]:
        raise ValueError(f"{fn}: keys must be (N={query.shape[0]}, S, {k_size}), got {keys.shape}")
    values = keys if values is None else values
    check_float(fn, query=query, values=values)
    if values.ndim != 3 or values.shape[:2] != keys.shape[:2]:
        raise ValueError(f"{fn}: values must be (N, S, Dv) with (N, S) = {keys.shape[:2]}, got {values.shape}")
    add = None
    if mask is not None:
        m = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if m.dtype != np.bool_ or m.shape != keys.shape[:2]:
            raise ValueError(f"{fn}: mask must be a bool (N, S) = {keys.shape[:2]} array (True = keep), "
                             f"got {m.dtype} {m.shape}")
        add = Tensor._wrap(np.where(m, 0.0, -np.inf).astype(query.dtype)[:, None, :])  # (N, 1, S)
    q = query[:, None, :] if single else query  # (N, L, Q)
    return q, values, add, single


def _context(scores: Tensor, values: Tensor, mask, single: bool):
    """weights = softmax over the source (masked positions exactly 0); context = weights · values."""
    weights = kernels.masked_softmax(scores, mask)  # (N, L, S)
    context = weights @ values  # (N, L, Dv)
    if single:
        return context[:, 0], weights[:, 0]
    return context, weights


class AdditiveAttention(Module):
    """Bahdanau attention (Bahdanau, Cho & Bengio, 2015, "Neural Machine Translation by Jointly
    Learning to Align and Translate"):

        e_j = vᵀ tanh(W q + U k_j),   α = softmax(e),   c = Σ_j α_j v_j

    ``forward(query, keys, values=None, mask=None)``: query (N, Q) — one decoder step — or
    (N, L, Q); keys (N, S, K); values (N, S, Dv), default the keys; mask (N, S) bool, True at
    real (non-padding) source positions. Returns ``(context, weights)``: (N, Dv), (N, S) (or
    with the L axis). Padded positions get weight exactly 0.
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int, dtype=None, generator=None):
        super().__init__()
        self.query_size, self.key_size, self.hidden_size = query_size, key_size, hidden_size
        self.W = Linear(query_size, hidden_size, bias=False, dtype=dtype, generator=generator)
        self.U = Linear(key_size, hidden_size, bias=False, dtype=dtype, generator=generator)
        self.v = Linear(hidden_size, 1, bias=False, dtype=dtype, generator=generator)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor | None = None, mask=None):
        q, values, add, single = _query_keys("AdditiveAttention", query, keys, values, mask,
                                             self.query_size, self.key_size)
        features = (self.W(q)[:, :, None, :] + self.U(keys)[:, None, :, :]).tanh()  # (N, L, S, h)
        scores = self.v(features)[..., 0]  # (N, L, S)
        return _context(scores, values, add, single)

    def extra_repr(self) -> str:
        return f"query_size={self.query_size}, key_size={self.key_size}, hidden_size={self.hidden_size}"


class LuongAttention(Module):
    """Luong attention (Luong, Pham & Manning, 2015, "Effective Approaches to Attention-based
    Neural Machine Translation"), score(h_t, h̄_s):

        dot:     h_tᵀ h̄_s
        general: h_tᵀ W_a h̄_s
        concat:  v_aᵀ tanh(W_a [h_t; h̄_s])

    then α = softmax(score) over the source and c_t = Σ_s α_s h̄_s. (The attentional state
    h̃_t = tanh(W_c [c_t; h_t]) belongs to the decoder.) ``forward`` as ``AdditiveAttention``.
    """

    def __init__(self, hidden_size: int, method: str = "dot", dtype=None, generator=None):
        super().__init__()
        if method not in ("dot", "general", "concat"):
            raise ValueError(f"LuongAttention: method must be 'dot', 'general' or 'concat', got {method!r}")
        self.hidden_size, self.method = hidden_size, method
        if method == "general":
            self.W_a = Linear(hidden_size, hidden_size, bias=False, dtype=dtype, generator=generator)
        elif method == "concat":
            self.W_a = Linear(2 * hidden_size, hidden_size, bias=False, dtype=dtype, generator=generator)
            self.v_a = Linear(hidden_size, 1, bias=False, dtype=dtype, generator=generator)

    def forward(self, query: Tensor, keys: Tensor, values: Tensor | None = None, mask=None):
        h = self.hidden_size
        q, values, add, single = _query_keys("LuongAttention", query, keys, values, mask, h, h)
        if self.method == "dot":
            scores = q @ keys.swapaxes(-1, -2)  # (N, L, S)
        elif self.method == "general":
            scores = q @ self.W_a(keys).swapaxes(-1, -2)  # (N, L, S)
        else:  # W_a [h_t; h̄_s] = W_a[:, :h] h_t + W_a[:, h:] h̄_s, broadcast over (L, S)
            w = self.W_a.weight  # (h, 2h)
            features = ((q @ w[:, :h].T)[:, :, None, :] + (keys @ w[:, h:].T)[:, None, :, :]).tanh()
            scores = self.v_a(features)[..., 0]  # (N, L, S)
        return _context(scores, values, add, single)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, method={self.method!r}"


# ----------------------------------------------------------------------------------------------
# Key/value cache
# ----------------------------------------------------------------------------------------------
class KVCache:
    """The projected keys and values of the positions seen so far, for one attention layer.

    Incremental (autoregressive) decoding feeds one new token per step; self-attention then
    needs the keys and values of all earlier tokens, which this cache keeps instead of
    recomputing them: ``MultiheadAttention(..., cache=kv)`` appends the new ones and attends
    over all. With ``static=True`` (cross-attention) the keys and values of the encoder memory
    are computed on the first call and reused on every later step.
    """

    def __init__(self, static: bool = False):
        self.static = bool(static)
        self.key = self.value = None  # stored layout (…, S, H, d), before bias_k / zero_attn
        self.seq_axis = self.batch_axis = None

    def __len__(self) -> int:
        return 0 if self.key is None else self.key.shape[self.seq_axis]

    def append(self, key: Tensor, value: Tensor, seq_axis: int, batch_axis: int):
        """Add new positions along ``seq_axis``; return all keys and values."""
        if self.key is None:
            self.key, self.value, self.seq_axis, self.batch_axis = key, value, seq_axis, batch_axis
        else:
            self.key = cat([self.key, key], dim=seq_axis)
            self.value = cat([self.value, value], dim=seq_axis)
        return self.key, self.value

    def reorder_(self, index) -> None:
        """Keep batch entries ``index`` (beam search: the surviving hypotheses), in place."""
        if self.key is not None:
            idx = np.asarray(index.data if isinstance(index, Tensor) else index)
            sel = (slice(None),) * self.batch_axis + (idx,)
            self.key, self.value = self.key[sel], self.value[sel]

    def reset(self) -> None:
        self.key = self.value = None


# ----------------------------------------------------------------------------------------------
# Multi-head attention
# ----------------------------------------------------------------------------------------------
class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al., 2017, §3.2.2), torch.nn.MultiheadAttention:

        MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O,
        head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)

    Parameters with torch's names and initialisation: ``in_proj_weight`` (3E, E) — or
    ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim) when kdim
    or vdim differ from E — Xavier-uniform; ``in_proj_bias`` (3E) = 0; ``out_proj`` (Linear, bias
    0); ``bias_k``, ``bias_v`` (1, 1, E) Xavier-normal with ``add_bias_kv``.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False, cache=None)``: inputs (L, N, E) — (N, L, E)
    with ``batch_first`` — or unbatched (L, E). Masks, torch's MHA convention: **True means
    ignore** (the opposite of ``scaled_dot_product_attention``); float masks are added.
    ``key_padding_mask`` (N, S); ``attn_mask`` (L, S) or (N·num_heads, L, S). ``is_causal``
    without ``attn_mask`` builds the causal mask (torch requires the mask itself). Returns
    ``(output, weights)``: weights (N, L, S) averaged over heads, (N, H, L, S) with
    ``average_attn_weights=False``, None unless ``need_weights``; weights are taken before
    dropout (torch returns them after). A query whose keys are all masked gets weights 0.

    ``cache`` (a ``KVCache``): incremental decoding. Self-attention: the new keys/values are
    appended and the query attends over all cached positions; with ``is_causal`` the mask is
    aligned to the end (new query i sees cached keys and new keys ≤ i); an explicit
    ``attn_mask`` / ``key_padding_mask`` must then cover all S = cached + new positions.
    A ``static`` cache (cross-attention) projects ``key``/``value`` once and reuses them.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, dtype=None, generator: Generator | None = None):
        super().__init__()
        for name, n in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n <= 0:
                raise ValueError(f"MultiheadAttention: {name} must be a positive integer, got {n!r}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        self.embed_dim, self.num_heads, self.head_dim = int(embed_dim), int(num_heads), embed_dim // num_heads
        self.kdim = embed_dim if kdim is None else int(kdim)
        self.vdim = embed_dim if vdim is None else int(vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first, self.add_zero_attn = float(dropout), bool(batch_first), bool(add_zero_attn)
        self.generator = generator
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(np.empty((E, E), dtype=dtype))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dtype=dtype))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty((3 * E,), dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype, generator=generator)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), dtype=dtype))
            self.bias_v = Parameter(np.empty((1, 1, E), dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters(generator)

    def _reset_parameters(self, generator=None) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight, generator=generator)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w, generator=generator)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k, generator=generator)
            init.xavier_normal_(self.bias_v, generator=generator)

    # ------------------------------------------------------------------ the four steps
    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False,
                cache: KVCache | None = None):
        fn = "MultiheadAttention"
        static_hit = cache is not None and cache.static and cache.key is not None
        if static_hit:  # cross-attention keys/values of the memory: already in the cache
            key = value = None
        dtype = check_float(fn, query=query, **({} if static_hit else {"key": key, "value": value}))
        if query.ndim not in (2, 3):
            raise ValueError(f"{fn}: query must be (L, N, E), (N, L, E) with batch_first, or unbatched (L, E); "
                             f"got shape {query.shape}")
        batched = query.ndim == 3
        if batched:
            bdim, sdim = (0, 1) if self.batch_first else (1, 0)
        else:  # unbatched: a batch of one (batch first), removed again at the end
            bdim, sdim = 0, 1
            query, key, value, key_padding_mask = _add_batch(query, key, value, key_padding_mask)
        self._check_shapes(query, key, value, bdim, sdim, static_hit)
        N, L = query.shape[bdim], query.shape[sdim]

        # 1. projections, split into heads: Q_i = query W_i^Q, K_i, V_i  — stored (A, B, H, d), A/B = batch/seq
        q, k, v, layout, S, past = self._project_heads(query, key, value, cache, bdim, sdim)
        extra = (self.bias_k is not None) + self.add_zero_attn  # columns appended to the keys
        mask = self._mask(attn_mask, key_padding_mask, is_causal, N, L, S, past, extra, dtype)
        # 2. attention in every head: head_i = softmax(Q_i K_iᵀ / √d + M) V_i    (one call for all heads)
        keep = dropout_keep((N, self.num_heads, L, S + extra), self.dropout if self.training else 0.0,
                            self.generator, dtype)
        heads = kernels.attention(q, k, v, mask, 1.0 / math.sqrt(self.head_dim), keep, layout, need_weights)
        heads, weights = heads if need_weights else (heads, None)  # (A, B, H, d), (N, H, L, S)
        # 3. merge the heads and project: Concat(head_1, …, head_h) W^O
        out = self.out_proj(self._merge_heads(heads))  # (A, B, E)
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)  # (N, L, S)
        if not batched:
            out = out[0]
            weights = None if weights is None else weights[0]
        return out, weights

    def _split_heads(self, x: Tensor, parts: int = 1) -> Tensor:
        """(A, B, parts·E) → (A, B, [parts,] H, d): a free reshape."""
        shape = x.shape[:-1] + ((parts,) if parts > 1 else ()) + (self.num_heads, self.head_dim)
        return x.reshape(shape)

    def _merge_heads(self, heads: Tensor) -> Tensor:
        """(A, B, H, d) → (A, B, E): the heads side by side."""
        return heads.reshape(heads.shape[:-2] + (self.embed_dim,))

    def _weights(self, i: int):
        """(W, b) of projection i (0 = query, 1 = key, 2 = value)."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight[i * E:(i + 1) * E]
        else:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * E:(i + 1) * E]
        return w, b

    def _project_heads(self, query, key, value, cache, bdim, sdim):
        """(q, k, v, layout, S, past): the projected heads, S keys before bias_k / zero_attn,
        ``past`` = positions that were already in a self-attention cache."""
        heads_layout = (bdim, 2, sdim, 3)  # stored (A, B, H, d) → canonical (N, H, L, d)
        if (query is key and key is value and cache is None and self._qkv_same_embed_dim
                and self.bias_k is None and not self.add_zero_attn):
            # self-attention: one GEMM for Q, K and V, taken apart as views inside the attention kernel
            qkv = self._split_heads(F.linear(query, self.in_proj_weight, self.in_proj_bias), 3)  # (A, B, 3, H, d)
            return qkv, None, None, HeadLayout(heads_layout, packed=True), query.shape[sdim], 0
        q = self._split_heads(F.linear(query, *self._weights(0)))  # (A, B, H, d)
        past = 0
        if cache is not None and cache.static and cache.key is not None:
            k, v = cache.key, cache.value
        else:
            k, v = self._project_kv(key, value)  # (A, S, H, d)
            if cache is not None:
                past = 0 if cache.static else len(cache)
                k, v = cache.append(k, v, seq_axis=sdim, batch_axis=bdim)
        S = k.shape[sdim]
        k, v = self._extra_keys(k, v, query.shape[bdim], sdim)
        return q, k, v, HeadLayout(heads_layout), S, past

    def _project_kv(self, key, value):
        """Projected keys and values, (A, S, H, d) each; key is value → one GEMM for both."""
        E = self.embed_dim
        if key is value and self._qkv_same_embed_dim:
            b = None if self.in_proj_bias is None else self.in_proj_bias[E:]
            kv = self._split_heads(F.linear(key, self.in_proj_weight[E:], b), 2)  # (A, S, 2, H, d)
            return kv[:, :, 0], kv[:, :, 1]
        return (self._split_heads(F.linear(key, *self._weights(1))),
                self._split_heads(F.linear(value, *self._weights(2))))  # (A, S, H, d) each

    def _check_shapes(self, query, key, value, bdim, sdim, static_hit):
        fn = "MultiheadAttention"
        if query.shape[-1] != self.embed_dim:
            raise ValueError(f"{fn}: query must end with embed_dim={self.embed_dim}, got shape {query.shape}")
        if static_hit:
            return
        if key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{fn}: query {query.shape}, key {key.shape} and value {value.shape} must all be "
                             "batched (3-D) or all unbatched (2-D)")
        if key.shape[-1] != self.kdim or value.shape[-1] != self.vdim:
            raise ValueError(f"{fn}: key must end with kdim={self.kdim} and value with vdim={self.vdim}, "
                             f"got {key.shape} and {value.shape}")
        if key.shape[:2] != value.shape[:2]:
            raise ValueError(f"{fn}: key {key.shape} and value {value.shape} must have the same batch and length")
        if key.shape[bdim] != query.shape[bdim]:
            raise ValueError(f"{fn}: query {query.shape} and key {key.shape} have different batch sizes")

    def _extra_keys(self, k, v, N, sdim):
        """Append bias_k / bias_v, then a zero key/value (``add_bias_kv``, ``add_zero_attn``)."""
        H, d = self.num_heads, self.head_dim
        shape = [1, 1, H, d]
        shape[1 - sdim] = N  # the batch axis
        if self.bias_k is not None:
            bk = self.bias_k.reshape(1, 1, H, d).expand(*shape)  # (A, 1, H, d)
            bv = self.bias_v.reshape(1, 1, H, d).expand(*shape)
            k, v = cat([k, bk], dim=sdim), cat([v, bv], dim=sdim)
        if self.add_zero_attn:
            zeros = Tensor._wrap(np.zeros(shape, dtype=k.dtype))
            k, v = cat([k, zeros], dim=sdim), cat([v, zeros], dim=sdim)
        return k, v

    def _mask(self, attn_mask, key_padding_mask, is_causal, N, L, S, past, extra, dtype):
        """One additive mask broadcastable to (N, H, L, S + extra), or None.

        attn_mask (L, S) or (N·H, L, S), key_padding_mask (N, S): True (bool) = ignore."""
        fn, H = "MultiheadAttention", self.num_heads
        total = None
        if attn_mask is not None:
            m = additive_mask(fn, attn_mask, dtype, False)
            if m.shape == (L, S):
                m = m.reshape(1, 1, L, S)
            elif m.shape == (N * H, L, S):
                m = m.reshape(N, H, L, S)
            else:
                raise ValueError(f"{fn}: attn_mask must have shape (L, S) = {(L, S)} or (N*num_heads, L, S) = "
                                 f"{(N * H, L, S)}, got {m.shape}")
            total = m
        elif is_causal:
            total = Tensor._wrap(causal_mask(L, S, offset=past, dtype=dtype).reshape(1, 1, L, S))
        if key_padding_mask is not None:
            kpm = additive_mask(fn, key_padding_mask, dtype, False)
            if kpm.shape != (N, S):
                raise ValueError(f"{fn}: key_padding_mask must have shape (N, S) = {(N, S)}, got {kpm.shape}")
            kpm = kpm.reshape(N, 1, 1, S)
            total = kpm if total is None else total + kpm
        if total is not None and extra:
            pad = Tensor._wrap(np.zeros(total.shape[:-1] + (extra,), dtype=dtype))  # extra keys never masked
            total = cat([total, pad], dim=-1)
        return total

    def extra_repr(self) -> str:
        s = (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
             f"batch_first={self.batch_first}")
        if not self._qkv_same_embed_dim:
            s += f", kdim={self.kdim}, vdim={self.vdim}"
        return s


def _add_batch(query, key, value, key_padding_mask):
    """Unbatched (L, E) inputs as a batch of one, (1, L, E); self-attention stays recognisable."""
    same_q, same_kv = query is key, key is value  # keep shared inputs shared (one projection)
    query = query[None]
    key = query if same_q else (None if key is None else key[None])
    value = key if same_kv else value[None]
    if key_padding_mask is not None:
        kpm = key_padding_mask.data if isinstance(key_padding_mask, Tensor) else np.asarray(key_padding_mask)
        key_padding_mask = kpm[None]
    return query, key, value, key_padding_mask
