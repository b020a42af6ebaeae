"""Attention kernels (book ch. 2–3): the masked softmax and scaled dot-product attention.

    Attention(Q, K, V) = softmax(Q Kᵀ · s + M) V                 (Vaswani et al., 2017, eq. 1; s = 1/√d)

Masks here are *additive* float arrays (0 = take part, −inf = masked); the functional layer
(``minigrad.functional.attention``) turns torch's bool conventions into them. A row whose keys are
all masked gets weights 0 and output 0.

The references are those lines in Tensor ops. The attention kernel is one ``Function`` that keeps a
single (…, L, S) buffer (scores → probabilities in place) and has the standard backward,

    dP = dO Vᵀ,   dS = P ⊙ (dP − rowsum(dO ⊙ O)),   dQ = s·dS K,   dK = s·dSᵀ Q,   dV = Pᵀ dO

(rowsum(dP ⊙ P) = rowsum(dO ⊙ O) because O = P V — the FlashAttention identity — so dS is made in
the dP buffer). It can also read multi-head inputs in their stored layout (``HeadLayout``), so
multi-head attention needs no transpose or copy around it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minigrad.function import Function, is_grad_enabled
from minigrad.kernels import using_reference
from minigrad.ops import xp


# ----------------------------------------------------------------------------------------------
# Masked softmax
# ----------------------------------------------------------------------------------------------
def masked_softmax_reference(scores, mask=None):
    """softmax(scores + M) over the last axis in Tensor ops; a row with every key masked gives 0."""
    s = scores if mask is None else scores + mask
    m = s.data.max(axis=-1, keepdims=True)  # a constant shift (softmax does not depend on it)
    m = np.where(np.isneginf(m), 0.0, m).astype(s.dtype)  # all-masked row: exp(−inf − 0) = 0, not nan
    e = (s - m).exp()
    z = e.sum(axis=-1, keepdims=True)
    return e / z.where(z.data != 0, 1.0)


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


class MaskedSoftmax(Function):
    """y = softmax(x + M) over the last axis (all-masked rows give 0);  dx = y ⊙ (g − rowsum(g ⊙ y)),  dM = dx."""

    def forward(self, x, *mask):
        s = x + mask[0] if mask else x.copy()
        return self.save_output(_safe_softmax_(s, bool(mask)))

    def backward(self, g):
        y = self.output()
        dx = y * (g - (g * y).sum(axis=-1, keepdims=True))
        return (dx, dx) if len(self.needs_input_grad) == 2 else dx


def masked_softmax(scores, mask=None):
    """softmax(scores + mask) over the last axis, ``mask`` an additive Tensor or None: kernel or reference."""
    if using_reference():
        return masked_softmax_reference(scores, mask)
    return MaskedSoftmax.apply(scores) if mask is None else MaskedSoftmax.apply(scores, mask)


# ----------------------------------------------------------------------------------------------
# Scaled dot-product attention
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadLayout:
    """How multi-head inputs are stored. ``axes`` permutes a stored (A, B, H, d) array into the canonical
    (N, H, L, d) (None: the inputs are canonical already). ``packed``: the query argument is the
    self-attention in-projection (A, B, 3, H, d) holding q, k and v, and key/value are None."""

    axes: tuple | None = None
    packed: bool = False

    def split(self, q, k=None, v=None):
        """(q, k, v) as stored, taking the packed projection apart (free views)."""
        if self.packed:
            return q[:, :, 0], q[:, :, 1], q[:, :, 2]
        return q, k, v

    def inputs(self, arrays) -> tuple:
        """(q, k, v) from a node's inputs (q, k, v[, M]) or (qkv[, M])."""
        return self.split(arrays[0]) if self.packed else tuple(arrays[:3])

    def inverse(self):
        return None if self.axes is None else tuple(int(i) for i in np.argsort(self.axes))


CANONICAL = HeadLayout()


def attention_reference(q, k, v, mask, scale: float, keep=None, layout: HeadLayout = CANONICAL,
                        need_weights: bool = False):
    """O = (softmax(Q Kᵀ·s + M) ⊙ keep) V in Tensor ops; returns O in the stored layout (and P if asked)."""
    q, k, v = layout.split(q, k, v)
    if layout.axes is not None:
        q, k, v = (t.permute(*layout.axes) for t in (q, k, v))  # canonical (N, H, L|S, d)
    P = masked_softmax_reference((q * scale) @ k.swapaxes(-1, -2), mask)  # (…, L, S)
    out = (P if keep is None else P * keep) @ v  # (…, L, dv)
    if layout.axes is not None:
        out = out.permute(*layout.inverse())
    return (out, P) if need_weights else out


def _matmul_to_layout(P: np.ndarray, v: np.ndarray, layout: HeadLayout) -> np.ndarray:
    """P @ v, written straight into the stored layout (a strided ``out`` view costs no copy)."""
    if layout.axes is None:
        return np.matmul(P, v)
    shape = P.shape[:-1] + v.shape[-1:]  # canonical (N, H, L, dv)
    out = np.empty(tuple(shape[i] for i in layout.inverse()), dtype=np.result_type(P, v))  # stored
    np.matmul(P, v, out=out.transpose(layout.axes))
    return out


class FusedAttention(Function):
    """O = (softmax(Q Kᵀ·s + M) ⊙ keep) V in one node;  dQ = s·dS K, dK = s·dSᵀ Q, dV = Pᵀ dO (module docstring).

    Inputs ``(q, k, v[, M])``, or ``(qkv[, M])`` for a packed layout; ``keep`` is None or the inverted-dropout
    factors m/(1 − p) of the weights. The output is written in the inputs' stored layout."""

    def forward(self, *arrays, scale, layout, has_mask, keep):
        self.scale, self.layout, self.has_mask, self.keep = scale, layout, has_mask, keep
        mask = arrays[-1] if has_mask else None
        q, k, v = layout.inputs(arrays)
        if layout.axes is not None:
            q, k, v = (a.transpose(layout.axes) for a in (q, k, v))  # canonical (N, H, L|S, d), free views
        s = np.matmul(q * q.dtype.type(scale), k.swapaxes(-1, -2))  # (…, L, S), scaled on the smaller q side
        if mask is not None:
            if np.broadcast_shapes(s.shape, mask.shape) == s.shape:
                s += mask
            else:  # the mask carries batch dims the inputs do not have
                s = s + mask
        self.P = _safe_softmax_(s, mask is not None)
        Pd = self.P if keep is None else self.P * keep
        return self.save_output(_matmul_to_layout(Pd, v, layout))

    def backward(self, g):
        math, layout, scale, keep = xp(), self.layout, self.scale, self.keep
        args = self.args()
        mask = args[-1] if self.has_mask else None
        q, k, v = layout.inputs(args)
        out = self.output()
        if layout.axes is not None:
            q, k, v, g, out = (math.permute(t, layout.axes) for t in (q, k, v, g, out))  # canonical (N, H, ·, d)
        if is_grad_enabled():  # create_graph: P as a differentiable function of q and k
            P = MaskedSoftmax.apply((q * scale) @ k.swapaxes(-1, -2), *(() if mask is None else (mask,)))
        else:
            P = self.P
        Pd = P if keep is None else P * keep
        dv = Pd.swapaxes(-1, -2) @ g  # dV = Pᵀ dO            (N, H, S, dv)
        dS = g @ v.swapaxes(-1, -2)  # dP = dO Vᵀ             (N, H, L, S)
        # in-place operators: they update the arrays of a plain backward and rebind Tensors under create_graph
        if keep is None:
            D = (g * out).sum(axis=-1, keepdims=True)  # rowsum(dO ⊙ O)
        else:
            dS *= keep
            D = (dS * P).sum(axis=-1, keepdims=True)  # rowsum(dP ⊙ P)
        dS -= D
        dS *= P  # dS = P ⊙ (dP − D)
        dq = dS @ k  # (N, H, L, d)
        dq *= scale
        dk = dS.swapaxes(-1, -2) @ q  # (N, H, S, d)
        dk *= scale
        if layout.axes is not None:
            back = layout.inverse()
            dq, dk, dv = (math.permute(t, back) for t in (dq, dk, dv))
        grads = [math.stack([dq, dk, dv], 2)] if layout.packed else [dq, dk, dv]  # packed: (A, B, 3, H, d)
        if self.has_mask:
            grads.append(dS)
        return tuple(g_ if need else None for g_, need in zip(grads, self.needs_input_grad))


def attention(q, k, v, mask, scale: float, keep=None, layout: HeadLayout = CANONICAL, need_weights: bool = False):
    """O = (softmax(Q Kᵀ·s + M) ⊙ keep) V (arguments checked by the caller; ``mask`` additive or None;
    ``keep`` the dropout factors or None): the kernel or its reference. With ``need_weights`` returns
    (O, P), P the weights before dropout, as two differentiable nodes (softmax, then the product)."""
    if using_reference():
        return attention_reference(q, k, v, mask, scale, keep, layout, need_weights)
    if need_weights:
        qs, ks, vs = layout.split(q, k, v)
        if layout.axes is not None:
            qs, ks, vs = (t.permute(*layout.axes) for t in (qs, ks, vs))
        P = masked_softmax((qs * scale) @ ks.swapaxes(-1, -2), mask)  # (…, L, S)
        out = (P if keep is None else P * keep) @ vs
        return (out if layout.axes is None else out.permute(*layout.inverse())), P
    inputs = (q,) if layout.packed else (q, k, v)
    extra = () if mask is None else (mask,)
    return FusedAttention.apply(*inputs, *extra, scale=scale, layout=layout, has_mask=mask is not None, keep=keep)


__all__ = ["CANONICAL", "FusedAttention", "HeadLayout", "MaskedSoftmax", "attention", "attention_reference",
           "masked_softmax", "masked_softmax_reference"]
