"""Attention (book ch. 2–3): scaled dot-product attention, Bahdanau (additive) and Luong
attention, multi-head attention (Vaswani et al., 2017) and a key/value cache for decoding.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V                  (Vaswani et al., eq. 1)

``scaled_dot_product_attention`` is one fused ``Function``: the forward keeps a single
(…, L, S) buffer (scores → probabilities in place); the backward is the standard rule,

    dP = dO Vᵀ,   dS = P ⊙ (dP − rowsum(dO ⊙ O)),   dQ = s·dS K,   dK = s·dSᵀ Q,   dV = Pᵀ dO

(rowsum(dP ⊙ P) = rowsum(dO ⊙ O) because O = P V — the FlashAttention identity — so dS is made
in the dP buffer). Written in the dual-mode convention, it is differentiable twice.

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

from minigrad import ops
from minigrad.nn import init
from minigrad.nn.linear import Linear
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.random import Generator, _rng
from minigrad.tensor import Function, Tensor, cat, is_grad_enabled, stack


# ----------------------------------------------------------------------------------------------
# NumPy kernels
# ----------------------------------------------------------------------------------------------
def _safe_softmax_(s: np.ndarray, has_mask: bool) -> np.ndarray:
    """softmax over the last axis, in place. A row of all −inf (every key masked) becomes 0."""
    m = s.max(axis=-1, keepdims=True)  # (…, L, 1)
    if has_mask:
        m[np.isneginf(m)] = 0.0  # all-masked row: exp(−inf − 0) = 0 instead of nan
    s -= m
    np.exp(s, out=s)
    z = s.sum(axis=-1, keepdims=True)  # (…, L, 1)
    if has_mask:
        z[z == 0] = 1.0
    s /= z
    return s


def _attention_probs_array(q, k, mask, scale):
    """P = softmax(q kᵀ·scale + mask): one (…, L, S) buffer, scaled on the smaller q side."""
    s = np.matmul(q * q.dtype.type(scale), k.swapaxes(-1, -2))  # (…, L, S)
    if mask is not None:
        if np.broadcast_shapes(s.shape, mask.shape) == s.shape:
            s += mask
        else:  # the mask carries batch dims the inputs do not have
            s = s + mask
    return _safe_softmax_(s, mask is not None)


def _causal_keep(L: int, S: int, offset: int = 0) -> np.ndarray:
    """(L, S) bool, True where key j may be seen from query i: j ≤ i + offset.

    offset 0 is torch's top-left aligned ``is_causal``; offset S − L aligns the last query with
    the last key (decoding with a cache of S − L earlier positions)."""
    return np.arange(S)[None, :] <= np.arange(L)[:, None] + offset


def causal_mask(L: int, S: int | None = None, offset: int = 0, dtype=np.float32) -> np.ndarray:
    """Additive causal mask (L, S): 0 where j ≤ i + offset, −inf above."""
    S = L if S is None else S
    return np.where(_causal_keep(L, S, offset), 0.0, -np.inf).astype(dtype)


# ----------------------------------------------------------------------------------------------
# Fused Functions
# ----------------------------------------------------------------------------------------------
class MaskedSoftmax(Function):
    """y = softmax(x + M) over the last axis; all-masked rows give 0.

    dx = y ⊙ (g − rowsum(g ⊙ y)),  dM = dx.  Inputs (x[, M])."""

    def forward(self, x, *mask):
        s = x + mask[0] if mask else x.copy()
        return self.save_output(_safe_softmax_(s, bool(mask)))

    def backward(self, g):
        y = self.output()
        dx = y * (g - (g * y).sum(axis=-1, keepdims=True))
        return (dx, dx) if len(self.needs_input_grad) == 2 else dx


def masked_softmax(scores: Tensor, mask=None) -> Tensor:
    """softmax(scores + mask) over the last axis, where a bool ``mask`` is True at positions
    that take part (others get weight exactly 0) and a float mask is added. Rows with no
    position left give all-zero weights (not NaN)."""
    if mask is None:
        return MaskedSoftmax.apply(scores)
    return MaskedSoftmax.apply(scores, _additive_mask("masked_softmax", mask, scores.dtype, True))


def _attention_probs(q: Tensor, k: Tensor, mask: Tensor | None, scale: float) -> Tensor:
    """P = softmax(q kᵀ·scale + mask) as differentiable Tensor ops (q, k: (…, L, E), (…, S, E))."""
    scores = (q * scale) @ k.swapaxes(-1, -2)  # (…, L, S)
    return MaskedSoftmax.apply(scores) if mask is None else MaskedSoftmax.apply(scores, mask)


def _inverse(axes):
    return None if axes is None else tuple(int(i) for i in np.argsort(axes))


def _permute(x, axes):
    """x viewed in the canonical (…, L, E) order (arrays: a free view; Tensors: a Permute op)."""
    if axes is None:
        return x
    return x.transpose(axes) if isinstance(x, np.ndarray) else x.permute(*axes)


class FusedAttention(Function):
    """O = dropout(softmax(Q Kᵀ·s + M)) V in one node (see the module docstring for the rule).

    Inputs ``(q, k, v[, M])``, or ``(qkv[, M])`` with ``packed=True`` where ``qkv`` has shape
    (A, B, 3, H, d) — the in-projection of self-attention, split here as free views. ``axes``
    (None or a permutation) views each stored (A, B, H, d) array as canonical (N, H, L, d)
    without copying; the output is written in the same stored layout, so multi-head attention
    needs no transpose or copy around this node. ``probs_sink`` (a list) receives P.
    """

    def forward(self, *arrays, scale, axes, packed, has_mask, dropout_p, rng, probs_sink):
        self.scale, self.axes, self.packed, self.has_mask = scale, axes, packed, has_mask
        mask = arrays[-1] if has_mask else None
        q, k, v = _split_qkv(arrays, packed)
        qc, kc, vc = _permute(q, axes), _permute(k, axes), _permute(v, axes)  # (N, H, L|S, d)
        P = _attention_probs_array(qc, kc, mask, scale)  # (N, H, L, S)
        if probs_sink is not None:
            probs_sink.append(P)
        self.keep = None
        Pd = P
        if dropout_p > 0.0:  # inverted dropout on the weights; keep = m / (1 − p)
            self.keep = (rng.random(P.shape) >= dropout_p).astype(P.dtype) / P.dtype.type(1.0 - dropout_p)
            Pd = P * self.keep
        self.P = P
        return self.save_output(_matmul_to_layout(Pd, vc, axes))  # stored layout

    def backward(self, g):
        args = self.args()
        graph = isinstance(g, Tensor)
        mask = args[-1] if self.has_mask else None
        axes, scale = self.axes, self.scale
        q, k, v = _split_qkv(args, self.packed)
        qc, kc, vc, gc = (_permute(t, axes) for t in (q, k, v, g))  # canonical (N, H, ·, d)
        # P: the saved array, or (graph mode) recomputed as a differentiable function of q, k
        P = _attention_probs(qc, kc, mask, scale) if graph else self.P
        keep = self.keep
        Pd = P if keep is None else P * keep
        dv = Pd.swapaxes(-1, -2) @ gc  # dV = Pᵀ dO            (N, H, S, dv)
        dS = gc @ vc.swapaxes(-1, -2)  # dP = dO Vᵀ            (N, H, L, S)
        if keep is None:
            D = (gc * _permute(self.output(), axes)).sum(axis=-1, keepdims=True)  # rowsum(dO ⊙ O)
        else:
            dS *= keep
            D = (dS * P).sum(axis=-1, keepdims=True)  # rowsum(dP ⊙ P)
        dS -= D
        dS *= P  # dS = P ⊙ (dP − D)
        dq = dS @ kc  # (N, H, L, d)
        dq *= scale
        dk = dS.swapaxes(-1, -2) @ qc  # (N, H, S, d)
        dk *= scale
        back = _inverse(axes)
        dq, dk, dv = _permute(dq, back), _permute(dk, back), _permute(dv, back)
        grads = [_stack3(dq, dk, dv)] if self.packed else [dq, dk, dv]
        if self.has_mask:
            grads.append(dS)
        return tuple(g_ if need else None for g_, need in zip(grads, self.needs_input_grad))


def _split_qkv(arrays, packed):
    if packed:
        qkv = arrays[0]  # (A, B, 3, H, d)
        return qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    return arrays[0], arrays[1], arrays[2]


def _stack3(dq, dk, dv):
    """Gradient of the packed (A, B, 3, H, d) input."""
    if isinstance(dq, Tensor):
        return stack([dq, dk, dv], dim=2)
    return np.stack([dq, dk, dv], axis=2)


def _matmul_to_layout(P, v, axes):
    """P @ v, written straight into the stored layout (a strided ``out`` view costs no copy)."""
    if axes is None:
        return np.matmul(P, v)
    shape = P.shape[:-1] + v.shape[-1:]  # canonical (N, H, L, dv)
    back = _inverse(axes)
    out = np.empty(tuple(shape[i] for i in back), dtype=np.result_type(P, v))  # stored
    np.matmul(P, v, out=out.transpose(axes))
    return out


# ----------------------------------------------------------------------------------------------
# Mask helpers
# ----------------------------------------------------------------------------------------------
def _additive_mask(fn: str, mask, dtype, true_means_keep: bool):
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


def _check_float(fn: str, **tensors) -> np.dtype:
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


def _needs_graph(*tensors) -> bool:
    return is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# ----------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ----------------------------------------------------------------------------------------------
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
    dtype = _check_float(fn, query=query, key=key, value=value)
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
    mask = None
    if attn_mask is not None:
        mask = _additive_mask(fn, attn_mask, dtype, True)
        try:
            np.broadcast_shapes(mask.shape, query.shape[:-2] + (L, S))
        except ValueError:
            raise ValueError(f"{fn}: attn_mask of shape {mask.shape} does not broadcast to the scores "
                             f"(…, L={L}, S={S}) of query {query.shape} and key {key.shape}") from None
    elif is_causal:
        mask = Tensor._wrap(causal_mask(L, S, dtype=dtype))
    scale = 1.0 / math.sqrt(E) if scale is None else float(scale)
    return _attend(query, key, value, mask, scale, None, False, float(dropout_p), generator, return_weights)


def _attend(q, k, v, mask, scale, axes, packed, dropout_p, generator, return_weights):
    """Fused attention; with differentiable weights requested, the two-node composition
    P = MaskedSoftmax(q kᵀ·s + M), O = dropout(P) V (both in canonical layout)."""
    rng = _rng(generator) if dropout_p > 0.0 else None
    inputs = (q,) if packed else (q, k, v)
    if return_weights and _needs_graph(*inputs, mask):
        if packed:
            q, k, v = _split_qkv(inputs, True)
        qc, kc, vc = (_permute(t, axes) for t in (q, k, v))
        P = _attention_probs(qc, kc, mask, scale)  # (…, L, S)
        Pd = P
        if dropout_p > 0.0:
            keep = (rng.random(P.shape) >= dropout_p).astype(P.dtype) / P.dtype.type(1.0 - dropout_p)
            Pd = P * Tensor._wrap(keep)
        return _permute(Pd @ vc, _inverse(axes)), P
    sink = [] if return_weights else None
    extra = (mask,) if mask is not None else ()
    out = FusedAttention.apply(*inputs, *extra, scale=scale, axes=axes, packed=packed,
                               has_mask=mask is not None, dropout_p=dropout_p, rng=rng, probs_sink=sink)
    return (out, Tensor._wrap(sink[0])) if return_weights else out


# ----------------------------------------------------------------------------------------------
# Bahdanau and Luong attention (encoder-decoder attention of ch. 2)
# ----------------------------------------------------------------------------------------------
def _query_keys(fn: str, query: Tensor, keys: Tensor, values, mask, q_size: int, k_size: int):
    """Checks and shapes: query (N, Q) or (N, L, Q) → (N, L, Q); keys (N, S, K); mask (N, S)."""
    _check_float(fn, query=query, keys=keys)
    single = query.ndim == 2
    if query.ndim not in (2, 3) or query.shape[-1] != q_size:
        raise ValueError(f"{fn}: query must be (N, {q_size}) or (N, L, {q_size}), got {query.shape}")
    if keys.ndim != 3 or keys.shape[-1] != k_size or keys.shape[0] != query.shape[0]:
        raise ValueError(f"{fn}: keys must be (N={query.shape[0]}, S, {k_size}), got {keys.shape}")
    values = keys if values is None else values
    _check_float(fn, query=query, values=values)
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
    weights = MaskedSoftmax.apply(scores) if mask is None else MaskedSoftmax.apply(scores, mask)  # (N, L, S)
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
def _linear(x: Tensor, weight: Tensor, bias: Tensor | None, out_shape: tuple | None = None) -> Tensor:
    """x Wᵀ + b (the fused ``ops.Linear``: one 2-D GEMM each way over the flattened tokens),
    reshaped once to ``out_shape`` when given (e.g. split into heads)."""
    y = ops.Linear.apply(x, weight) if bias is None else ops.Linear.apply(x, weight, bias)  # (…, out)
    return y if out_shape is None or y.shape == out_shape else y.reshape(out_shape)


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

    # ------------------------------------------------------------------ projections
    def _weights(self, i: int):
        """(W, b) of projection i (0 = query, 1 = key, 2 = value)."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight[i * E:(i + 1) * E]
        else:
            w = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        b = None if self.in_proj_bias is None else self.in_proj_bias[i * E:(i + 1) * E]
        return w, b

    def _heads_shape(self, x: Tensor, parts: tuple = ()) -> tuple:
        return x.shape[:-1] + parts + (self.num_heads, self.head_dim)  # (A, B, [parts,] H, d)

    def _project_kv(self, key, value):
        """Projected keys and values, (A, S, H, d) each; key is value → one GEMM for both."""
        E = self.embed_dim
        if key is value and self._qkv_same_embed_dim:
            b = None if self.in_proj_bias is None else self.in_proj_bias[E:]
            kv = _linear(key, self.in_proj_weight[E:], b, self._heads_shape(key, (2,)))  # (A, S, 2, H, d)
            return kv[:, :, 0], kv[:, :, 1]
        return (_linear(key, *self._weights(1), self._heads_shape(key)),
                _linear(value, *self._weights(2), self._heads_shape(value)))  # (A, S, H, d) each

    # ------------------------------------------------------------------ forward
    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False,
                cache: KVCache | None = None):
        fn = "MultiheadAttention"
        static_hit = cache is not None and cache.static and cache.key is not None
        if static_hit:  # cross-attention keys/values of the memory: already in the cache
            key = value = None
        dtype = _check_float(fn, query=query, **({} if static_hit else {"key": key, "value": value}))
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

        q, k, v, packed, S, past = self._project(query, key, value, cache, bdim, sdim)
        extra = (self.bias_k is not None) + self.add_zero_attn  # columns appended to the keys
        mask = self._mask(attn_mask, key_padding_mask, is_causal, N, L, S, past, extra, dtype)
        p = self.dropout if self.training else 0.0
        axes = (bdim, 2, sdim, 3)  # stored (A, B, H, d) → canonical (N, H, L, d)
        result = _attend(q, k, v, mask, 1.0 / math.sqrt(self.head_dim), axes, packed, p, self.generator,
                         need_weights)
        o, weights = result if need_weights else (result, None)  # o: (A, B, H, d)
        out = _linear(o.reshape(-1, self.embed_dim), self.out_proj.weight, self.out_proj.bias,
                      o.shape[:-2] + (self.embed_dim,))  # (A, B, E)
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)  # (N, L, S)
        if not batched:
            out = out[0]
            weights = None if weights is None else weights[0]
        return out, weights

    def _project(self, query, key, value, cache, bdim, sdim):
        """(q, k, v, packed, S, past): the projected heads, S keys before bias_k / zero_attn,
        ``past`` = positions that were already in a self-attention cache."""
        if (query is key and key is value and cache is None and self._qkv_same_embed_dim
                and self.bias_k is None and not self.add_zero_attn):
            # self-attention: one GEMM for Q, K and V, split as views inside the fused node
            qkv = _linear(query, self.in_proj_weight, self.in_proj_bias, self._heads_shape(query, (3,)))
            return qkv, None, None, True, query.shape[sdim], 0  # qkv: (A, B, 3, H, d)
        q = _linear(query, *self._weights(0), self._heads_shape(query))  # (A, B, H, d)
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
        return q, k, v, False, S, past

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
            m = _additive_mask(fn, attn_mask, dtype, False)
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
            kpm = _additive_mask(fn, key_padding_mask, dtype, False)
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
