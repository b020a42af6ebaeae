"""Cross-entropy, the loss of every language model in the book (ch. 1–5): the negative log-likelihood of
the target under softmax(logits), with class weights w, ignored targets and label smoothing ε:

    ℓ_i = −Σ_c w_c t'_ic log softmax(x_i)_c,     t' = (1 − ε)·t + ε/C     (t one-hot, or class probabilities)

The reference is that line in Tensor ops (log_softmax, a product, a sum). The kernel fuses log-softmax
and the loss so that a 30k-word vocabulary costs one (M, C) buffer, not five (see its docstring).
"""
from __future__ import annotations

import numpy as np

from minigrad import ops
from minigrad.function import Function, is_grad_enabled
from minigrad.kernels import using_reference

_ROW_CHUNK_ELEMENTS = 1 << 18  # chunked in-place updates: temporaries of at most 256k elements


def cross_entropy_reference(x, target, prob_target, weight, ignore_index: int, smoothing: float, reduction: str):
    """The loss of logits ``x`` (M, C) in plain Tensor ops; ``target`` (M,) class indices, or ``prob_target``
    (M, C) a Tensor of class probabilities; ``weight`` None or a (C,) array."""
    M, C = x.shape
    w = np.ones(C, x.dtype) if weight is None else weight
    logp = x.log_softmax(-1)  # (M, C)
    if prob_target is not None:
        t = prob_target * (1.0 - smoothing) + smoothing / C  # t'
        loss = -(t * w * logp).sum(axis=1)  # (M,)
        denom = float(M)
    else:
        valid = target != ignore_index  # (M,)
        one_hot = np.zeros((M, C), x.dtype)
        one_hot[np.arange(M), np.where(valid, target, 0)] = valid  # (M, C), a row of 0 where ignored
        t = one_hot * (1.0 - smoothing) + valid[:, None].astype(x.dtype) * (smoothing / C)  # t'
        loss = -(logp * (t * w)).sum(axis=1)  # (M,)
        denom = float((one_hot * w).sum())  # Σ w_{y_i} over the kept targets
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if denom == 0:  # mean over no targets: 0/0 = nan, gradient 0 (as torch)
        return loss.sum() * 0.0 + float("nan")
    return loss.sum() * (1.0 / denom)


class CrossEntropyFunction(Function):
    """Cross-entropy of logits x (M, C) against class indices y or class probabilities t;  d/dx_ic = r_i·(a_i·p_ic − w·t'_ic) (below).

    Forward, one row i (lse = log Σ_c exp x_ic, p = softmax(x) = exp(x − lse)):

        indices:  ℓ_i = (1−ε)·w_{y_i}·(lse_i − x_{i,y_i}) + (ε/C)·Σ_c w_c (lse_i − x_ic)
        probs:    ℓ_i = Σ_c w_c t'_ic (lse_i − x_ic),      t' = (1−ε)·t + ε/C

    (w: class weights, 1 if none; ε: label smoothing; ignored rows have ℓ_i = 0). The loss is
    Σ r_i ℓ_i with r_i = 1 ('sum'), 1/denominator ('mean') or the upstream g_i ('none').

    Backward, using ∂lse_i/∂x_ic = p_ic:

        indices:  ∂/∂x_ic = r_i·(a_i·p_ic − (1−ε)·w_{y_i}·[c = y_i] − (ε/C)·w_c),
                  a_i = (1−ε)·w_{y_i} + (ε/C)·Σ_c w_c
        probs:    ∂/∂x_ic = r_i·(S_i·p_ic − w_c t'_ic),   S_i = Σ_c w_c t'_ic
                  ∂/∂t_ic = r_i·(1−ε)·w_c·(lse_i − x_ic)

    (M, C) arrays, array mode: the forward allocates ONE — exp(x − max) normalised in place to
    p, kept for the backward. The backward turns that same buffer into ∂/∂x in place (scale the
    rows, subtract at the targets; weighted smoothing in row chunks of ≤ 256k elements), so it
    allocates none; ∂/∂t (probabilities only, when needed) is the one extra array it must
    return. Torch's log_softmax + nll_loss keep log p and build two more for the gradient.
    """

    def forward(self, x, *prob, target, weight, ignore_index, smoothing, reduction, keep):
        m, c = x.shape
        self.weight, self.smoothing, self.reduction, self.classes = weight, smoothing, reduction, c
        mx = x.max(axis=1, keepdims=True)  # (M, 1)
        self.mx = mx
        buf = np.subtract(x, mx)  # (M, C): the one (M, C) temporary
        np.exp(buf, out=buf)
        total = buf.sum(axis=1, keepdims=True)  # (M, 1)
        lse = mx + np.log(total)  # (M, 1)
        self.lse = lse
        if keep:  # a backward will follow: normalise in place to the softmax p
            buf *= 1.0 / total
            self.prob = buf
        del buf
        w_sum = weight.sum() if weight is not None else x.dtype.type(c)  # Σ_c w_c
        xw = None  # Σ_c w_c x_ic, (M,): one more pass over x, needed only for label smoothing
        if smoothing > 0:
            xw = x @ weight if weight is not None else x.sum(axis=1)
        if prob:
            loss, denom = self._forward_probs(x, prob[0], lse[:, 0], w_sum, xw)
        else:
            loss, denom = self._forward_indices(x, target, ignore_index, lse[:, 0], w_sum, xw)
        if reduction == "none":
            self.rc = x.dtype.type(1.0)
            return loss
        if reduction == "sum":
            self.rc = x.dtype.type(1.0)
            return np.asarray(loss.sum(), dtype=x.dtype)
        # 'mean'. All targets ignored: the loss is 0/0 = nan and the gradient 0, as in torch
        self.rc = x.dtype.type(1.0 / denom if denom != 0 else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(loss.sum() / denom, dtype=x.dtype)

    def _forward_indices(self, x, target, ignore_index, lse, w_sum, xw):
        eps, c = self.smoothing, self.classes
        valid = target != ignore_index  # (M,)
        safe = np.where(valid, target, 0)  # ignored rows point at class 0 with coefficient 0
        cw = self.weight[safe] if self.weight is not None else np.ones(len(safe), x.dtype)
        cw = np.where(valid, cw, 0).astype(x.dtype)  # w_{y_i}, 0 where ignored, (M,)
        self.index = (np.arange(len(safe)), safe)
        self.cw, self.valid = cw, valid.astype(x.dtype)
        loss = cw * (lse - x[self.index])  # NLL part, (M,)
        if eps > 0:
            loss = (1 - eps) * loss + (eps / c) * self.valid * (lse * w_sum - xw)
        self.a = (1 - eps) * cw + (eps / c) * w_sum * self.valid  # a_i, (M,)
        return loss.astype(x.dtype, copy=False), cw.sum()

    def _forward_probs(self, x, t, lse, w_sum, xw):
        eps, c, w = self.smoothing, self.classes, self.weight
        tw_x = np.einsum("ic,ic,c->i", t, x, w) if w is not None else np.einsum("ic,ic->i", t, x)
        tw = t @ w if w is not None else t.sum(axis=1)  # Σ_c w_c t_ic, (M,)
        s = (1 - eps) * tw + (eps / c) * w_sum  # S_i
        loss = lse * s - ((1 - eps) * tw_x + ((eps / c) * xw if eps > 0 else 0.0))
        return loss.astype(x.dtype, copy=False), x.dtype.type(x.shape[0])

    def backward(self, g):
        x, *prob = self.args()
        r = (g * self.rc).reshape(-1, 1)  # r_i, (M, 1) or (1, 1)
        if is_grad_enabled():
            return self._backward_graph(x, prob, r)
        p = self.__dict__.pop("prob", None)  # take the forward's buffer: it becomes ∂/∂x
        if p is None:  # a second backward (retain_graph=True), or forward had keep=False
            p = np.exp(x - self.lse)
        eps, c, w = self.smoothing, self.classes, self.weight
        gt = None
        if prob:
            t = prob[0]
            if self.needs_input_grad[1]:
                gt = np.subtract(self.lse, x)  # (M, C), returned to the caller
                gt *= r * (1 - eps)
                if w is not None:
                    gt *= w
            if not self.needs_input_grad[0]:
                return None, gt
            s = (1 - eps) * (t @ w if w is not None else t.sum(axis=1)) + (eps / c) * (
                w.sum() if w is not None else c)
            p *= r * s[:, None]
            _sub_scaled_target_(p, r, t, 1 - eps, eps / c, w)
            return p, gt
        p *= r * self.a[:, None]
        p[self.index] -= (r * ((1 - eps) * self.cw)[:, None])[:, 0]
        if eps > 0:
            _sub_scaled_target_(p, r * self.valid[:, None], None, 0.0, eps / c, w)
        return (p,)

    def _backward_graph(self, x, prob, r):
        """The same rule in Tensor ops (create_graph=True): differentiable again."""
        math = ops.xp()
        eps, c, w = self.smoothing, self.classes, self.weight
        lse = self.mx + math.log(math.exp(x - self.mx).sum(axis=1, keepdims=True))  # (M, 1)
        p = math.exp(x - lse)  # (M, C)
        if prob:
            t = prob[0]
            tp = t * (1 - eps) + eps / c  # t'
            wtp = tp * w if w is not None else tp
            gx = p * (r * wtp.sum(axis=1, keepdims=True)) - r * wtp
            gt = None
            if self.needs_input_grad[1]:
                gt = (lse - x) * (r * (1 - eps))
                gt = gt * w if w is not None else gt
            return gx, gt
        gx = p * (r * self.a[:, None])
        coef = (r * ((1 - eps) * self.cw)[:, None]).reshape(-1)  # (M,)
        gx = gx - math.index_add(coef, x.shape, self.index)
        if eps > 0:
            smooth = (eps / c) * (w if w is not None else np.ones(c, x.dtype))
            gx = gx - (r * self.valid[:, None]) * smooth
        return (gx,)


def _sub_scaled_target_(p, r, t, t_scale, const, w) -> None:
    """In place: p −= r · (t_scale·t + const) · w, row chunk by row chunk, so the temporary is
    at most ``_ROW_CHUNK_ELEMENTS`` elements instead of (M, C). ``t`` or ``w`` may be None."""
    m, c = p.shape
    if t is None and w is None:
        p -= r * const  # (M, 1) broadcast: no temporary
        return
    step = max(1, _ROW_CHUNK_ELEMENTS // max(c, 1))
    for s in range(0, m, step):
        rows = slice(s, s + step)
        r_rows = r[rows] if r.shape[0] > 1 else r
        tmp = t[rows] * t_scale if t is not None else np.zeros((min(step, m - s), c), p.dtype)
        tmp += const
        if w is not None:
            tmp *= w
        tmp *= r_rows
        p[rows] -= tmp
        del tmp  # free this chunk before the next one is allocated


def cross_entropy(x, target, prob_target, weight, ignore_index: int, smoothing: float, reduction: str):
    """Cross-entropy of logits ``x`` (M, C), arguments checked by the caller: the kernel or its reference."""
    if using_reference():
        return cross_entropy_reference(x, target, prob_target, weight, ignore_index, smoothing, reduction)
    options = dict(weight=weight, ignore_index=ignore_index, smoothing=smoothing, reduction=reduction)
    if prob_target is not None:
        keep = is_grad_enabled() and (x.requires_grad or prob_target.requires_grad)  # a backward will follow
        return CrossEntropyFunction.apply(x, prob_target, target=None, keep=keep, **options)
    keep = is_grad_enabled() and x.requires_grad
    return CrossEntropyFunction.apply(x, target=target, keep=keep, **options)


__all__ = ["CrossEntropyFunction", "cross_entropy", "cross_entropy_reference"]
