"""Loss functions, functional and module forms, with torch.nn's names and semantics.

The workhorse of every language model in the book is ``cross_entropy`` (ch. 1–5): the negative
log-likelihood of the next token under softmax(logits). It is one fused ``Function`` (log-softmax
and the loss together) so that a 30k-word vocabulary costs one (N, V) buffer, not five.
The other losses are short compositions of Tensor ops (their cost is negligible).
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from minigrad import ops
from minigrad.nn.module import Module
from minigrad.tensor import Function, Tensor, is_grad_enabled, where

_REDUCTIONS = ("mean", "sum", "none")
_ROW_CHUNK_ELEMENTS = 1 << 18  # chunked in-place updates: temporaries of at most 256k elements


# ----------------------------------------------------------------------------------------------
# argument checks shared by all losses
# ----------------------------------------------------------------------------------------------
def _check_reduction(fn: str, reduction: str, allowed=_REDUCTIONS) -> str:
    if reduction not in allowed:
        raise ValueError(f"{fn}: reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}")
    return reduction


def _as_float_tensor(fn: str, name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: {name} must be a Tensor, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: {name} must be floating-point, got dtype {x.dtype}")
    return x


def _like(fn: str, name: str, value, ref: Tensor) -> Tensor:
    """A second float operand: Tensors must share ``ref``'s dtype; arrays/scalars take it."""
    if isinstance(value, Tensor):
        if value.dtype.kind != "f":
            raise TypeError(f"{fn}: {name} must be floating-point, got dtype {value.dtype}")
        if value.dtype != ref.dtype:
            raise TypeError(f"{fn}: {name} has dtype {value.dtype}, input has {ref.dtype}; cast one of them")
        return value
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{fn}: {name} must be numeric, got dtype {arr.dtype}")
    return Tensor._wrap(arr.astype(ref.dtype))


def _same_shape(fn: str, a: Tensor, b: Tensor, names=("input", "target")) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{fn}: {names[0]} has shape {a.shape} but {names[1]} has shape {b.shape}; "
                         "they must be equal")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _class_weight(fn: str, weight, num_classes: int, dtype) -> np.ndarray | None:
    """The per-class rescaling weight as a constant (C,) array of the input's dtype."""
    if weight is None:
        return None
    if isinstance(weight, Tensor):
        if weight.dtype.kind == "f" and weight.dtype != dtype:
            raise TypeError(f"{fn}: weight has dtype {weight.dtype}, input has {dtype}; cast one of them")
        weight = weight.data
    w = np.asarray(weight)
    if w.dtype.kind not in "fiu":
        raise TypeError(f"{fn}: weight must be a float array of shape ({num_classes},), got dtype {w.dtype}")
    if w.shape != (num_classes,):
        raise ValueError(f"{fn}: weight must have shape ({num_classes},) (one per class), got {w.shape}")
    return w.astype(dtype, copy=False)


def _rows_by_class(fn: str, x: Tensor) -> tuple[Tensor, tuple]:
    """(N, C, d1, …) → (N·d1·…, C) with classes last; (C,) → (1, C). Returns it and the
    shape of one loss per row ('none' reduction)."""
    if x.ndim == 0:
        raise ValueError(f"{fn}: input must have a class dimension, got a 0-d tensor")
    if x.ndim == 1:
        return x.reshape(1, x.shape[0]), ()
    if x.ndim == 2:
        return x, (x.shape[0],)
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)  # move classes (dim 1) last
    return x.permute(*perm).reshape(-1, x.shape[1]), (x.shape[0],) + x.shape[2:]


def _index_target(fn: str, target, input_shape: tuple, row_shape: tuple, ignore_index: int) -> np.ndarray:
    """Validated class indices, flattened to (M,)."""
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu" or t.dtype == np.bool_:
        raise TypeError(f"{fn}: class-index target must be an integer tensor, got dtype {t.dtype} "
                        "(floating-point targets are class probabilities of the input's shape)")
    if t.shape != row_shape:
        raise ValueError(f"{fn}: input of shape {input_shape} needs a class-index target of shape {row_shape}, "
                         f"got {t.shape}")
    t = t.reshape(-1).astype(np.int64, copy=False)
    num = input_shape[0] if len(input_shape) == 1 else input_shape[1]
    bad = (t != ignore_index) & ((t < 0) | (t >= num))
    if bad.any():
        raise IndexError(f"{fn}: target {int(t[bad][0])} is out of bounds for {num} classes "
                         f"(valid: 0..{num - 1}, or ignore_index={ignore_index})")
    return t


def _prob_target(fn: str, target, x: Tensor) -> Tensor:
    t = _like(fn, "target", target, x)
    _same_shape(fn, x, t, ("input", "probability target"))
    return t


# ----------------------------------------------------------------------------------------------
# cross-entropy: log-softmax and NLL fused in one Function
# ----------------------------------------------------------------------------------------------
class CrossEntropyFunction(Function):
    """Cross-entropy of logits x (M, C) against class indices y, or class probabilities t.

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
        if isinstance(x, Tensor):
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


def cross_entropy(input: Tensor, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between softmax(input) and the target (torch.nn.functional.cross_entropy).

        ℓ = −Σ_c w_c · t_c · log softmax(x)_c

    ``input``: logits (C,), (N, C) or (N, C, d1, …) — classes on dim 1. ``target``: class
    indices (), (N,) or (N, d1, …) (integers; ``ignore_index`` rows contribute nothing), or class
    probabilities of the input's shape (floats). ``label_smoothing`` ε mixes the target with
    the uniform distribution: t' = (1−ε)·t + ε/C. 'mean' divides by Σ w_{y_i} over the
    non-ignored targets (by N·d1·… for probability targets), as torch does.
    """
    fn = "cross_entropy"
    x = _as_float_tensor(fn, "input", input)
    _check_reduction(fn, reduction)
    if not isinstance(label_smoothing, numbers.Real) or not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    rows, row_shape = _rows_by_class(fn, x)  # (M, C)
    w = _class_weight(fn, weight, rows.shape[1], x.dtype)
    options = dict(weight=w, ignore_index=int(ignore_index), smoothing=float(label_smoothing),
                   reduction=reduction)
    t_raw = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t_raw.dtype.kind == "f":  # class probabilities
        t = _prob_target(fn, target, x)
        t_rows, _ = _rows_by_class(fn, t)
        keep = is_grad_enabled() and (x.requires_grad or t.requires_grad)
        loss = CrossEntropyFunction.apply(rows, t_rows, target=None, keep=keep, **options)
    else:
        idx = _index_target(fn, target, x.shape, row_shape, int(ignore_index))
        keep = is_grad_enabled() and x.requires_grad
        loss = CrossEntropyFunction.apply(rows, target=idx, keep=keep, **options)
    return loss.reshape(row_shape) if reduction == "none" else loss


def nll_loss(input: Tensor, target, weight=None, *, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (torch.nn.functional.nll_loss).

        ℓ_i = −w_{y_i} · input[i, y_i];   'mean' = Σ ℓ_i / Σ w_{y_i} over non-ignored targets
    """
    fn = "nll_loss"
    x = _as_float_tensor(fn, "input", input)
    _check_reduction(fn, reduction)
    rows, row_shape = _rows_by_class(fn, x)  # (M, C)
    idx = _index_target(fn, target, x.shape, row_shape, int(ignore_index))
    w = _class_weight(fn, weight, rows.shape[1], x.dtype)
    valid = idx != ignore_index
    safe = np.where(valid, idx, 0)
    cw = w[safe] if w is not None else np.ones(len(safe), x.dtype)
    cw = np.where(valid, cw, 0).astype(x.dtype)  # (M,)
    loss = -(rows[np.arange(len(safe)), safe] * cw)  # (M,)
    if reduction == "none":
        return loss.reshape(row_shape)
    if reduction == "sum":
        return loss.sum()
    denom = cw.sum()
    if denom == 0:  # all targets ignored: nan loss, zero gradient (as torch)
        return loss.sum() * 0.0 + float("nan")
    return loss.sum() * x.dtype.type(1.0 / denom)


# ----------------------------------------------------------------------------------------------
# regression and pairwise losses (compositions of Tensor ops)
# ----------------------------------------------------------------------------------------------
def _pair(fn: str, input, target, reduction: str) -> tuple[Tensor, Tensor]:
    x = _as_float_tensor(fn, "input", input)
    _check_reduction(fn, reduction)
    y = _like(fn, "target", target, x)
    _same_shape(fn, x, y)
    return x, y


def mse_loss(input: Tensor, target, *, reduction: str = "mean") -> Tensor:
    """Mean squared error ℓ = (x − y)² (torch.nn.functional.mse_loss)."""
    x, y = _pair("mse_loss", input, target, reduction)
    d = x - y
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target, *, reduction: str = "mean") -> Tensor:
    """Mean absolute error ℓ = |x − y| (torch.nn.functional.l1_loss)."""
    x, y = _pair("l1_loss", input, target, reduction)
    return _reduce((x - y).abs(), reduction)


def smooth_l1_loss(input: Tensor, target, *, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Huber-like loss (torch.nn.functional.smooth_l1_loss):

        ℓ = 0.5·d²/β  if |d| < β,  else |d| − 0.5·β,     d = x − y   (β = 0: plain L1)
    """
    x, y = _pair("smooth_l1_loss", input, target, reduction)
    if not isinstance(beta, numbers.Real) or beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta!r}")
    d = x - y
    if beta == 0:
        return _reduce(d.abs(), reduction)
    small = np.abs(d.data) < beta
    return _reduce(where(small, d * d * (0.5 / beta), d.abs() - 0.5 * beta), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, *, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable formula
    (torch.nn.functional.binary_cross_entropy_with_logits):

        ℓ = −w·[p_w·y·log σ(x) + (1 − y)·log(1 − σ(x))]
          =  w·[(1 − y)·x + (1 + (p_w − 1)·y)·softplus(−x)]

    ``pos_weight`` p_w broadcasts over the last (class) dimension; ``weight`` w over the batch.
    """
    fn = "binary_cross_entropy_with_logits"
    x, y = _pair(fn, input, target, reduction)
    # log(1 + e^(−x)) as logaddexp(0, −x): exact at every x (threshold=inf: never linearised)
    sp = (-x).softplus(beta=1.0, threshold=float("inf"))
    if pos_weight is not None:
        pw = _like(fn, "pos_weight", pos_weight, x)
        _broadcastable(fn, "pos_weight", pw, x)
        loss = (1.0 - y) * x + (1.0 + (pw - 1.0) * y) * sp
    else:
        loss = (1.0 - y) * x + sp
    if weight is not None:
        w = _like(fn, "weight", weight, x)
        _broadcastable(fn, "weight", w, x)
        loss = loss * w
    return _reduce(loss, reduction)


def _broadcastable(fn: str, name: str, a: Tensor, x: Tensor) -> None:
    try:
        shape = np.broadcast_shapes(a.shape, x.shape)
    except ValueError:
        shape = None
    if shape != x.shape:
        raise ValueError(f"{fn}: {name} of shape {a.shape} does not broadcast to the input shape {x.shape}")


def kl_div(input: Tensor, target, *, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Kullback–Leibler divergence KL(target ‖ exp(input)) pointwise (torch.nn.functional.kl_div):

        ℓ = t·(log t − x)          (input x = log-probabilities; t log t = 0 where t = 0)
        ℓ = exp(t)·(t − x)         (log_target=True: the target is given as log-probabilities)

    'batchmean' = Σ ℓ / N (the true KL per example); 'mean' averages over every element.
    """
    fn = "kl_div"
    _check_reduction(fn, reduction, _REDUCTIONS + ("batchmean",))
    x = _as_float_tensor(fn, "input", input)
    t = _like(fn, "target", target, x)
    _same_shape(fn, x, t)
    if log_target:
        loss = t.exp() * (t - x)
    else:
        positive = t.data > 0
        safe_t = where(positive, t, 1.0)  # log(1) = 0 where t = 0: the term vanishes, no nan
        loss = where(positive, t * safe_t.log(), 0.0) - t * x
    if reduction == "batchmean":
        return loss.sum() * (1.0 / x.shape[0]) if x.ndim else loss.sum()
    return _reduce(loss, reduction)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target, *, margin: float = 0.0,
                          reduction: str = "mean") -> Tensor:
    """Pull pairs together (y = 1) or push them below a cosine margin (y = −1)
    (torch.nn.functional.cosine_embedding_loss):

        ℓ = 1 − cos(x1, x2)              if y = 1
        ℓ = max(0, cos(x1, x2) − margin)  if y = −1,    cos = x1·x2 / √((|x1|² + ε)(|x2|² + ε)), ε = 1e-12
    """
    fn = "cosine_embedding_loss"
    a = _as_float_tensor(fn, "input1", input1)
    b = _like(fn, "input2", input2, a)
    _check_reduction(fn, reduction)
    _same_shape(fn, a, b, ("input1", "input2"))
    if a.ndim not in (1, 2):
        raise ValueError(f"{fn}: inputs must be 1-D (D,) or 2-D (N, D), got shape {a.shape}")
    y = target.data if isinstance(target, Tensor) else np.asarray(target)
    if y.shape != a.shape[:-1]:
        raise ValueError(f"{fn}: target must have shape {a.shape[:-1]} for inputs of shape {a.shape}, got {y.shape}")
    if not np.isin(y, (1, -1)).all():
        raise ValueError(f"{fn}: target values must be 1 or -1, got {np.unique(y).tolist()}")
    dim = a.ndim - 1
    eps = 1e-12
    dot = (a * b).sum(axis=dim)  # (N,)
    denom = (((a * a).sum(axis=dim) + eps) * ((b * b).sum(axis=dim) + eps)).sqrt()
    cos = dot / denom
    loss = where(y == 1, 1.0 - cos, 0.0) + where(y == -1, (cos - float(margin)).clamp(min=0.0), 0.0)
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------------------------
# module forms (torch.nn's constructor arguments, including the deprecated size_average/reduce)
# ----------------------------------------------------------------------------------------------
def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    """torch's mapping of the deprecated ``size_average``/``reduce`` flags onto ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    warnings.warn("size_average and reduce are deprecated; use reduction='mean'|'sum'|'none'",
                  DeprecationWarning, stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return "mean" if (size_average and reduce) else "sum" if reduce else "none"


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(type(self).__name__, _legacy_reduction(size_average, reduce, reduction),
                                          self._reductions)

    _reductions = _REDUCTIONS


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight if weight is None or isinstance(weight, Tensor) else np.asarray(weight))


class CrossEntropyLoss(_WeightedLoss):
    """``CrossEntropyLoss(weight=None, ignore_index=-100, reduction='mean', label_smoothing=0.0)``;
    see ``cross_entropy``."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Tensor, target) -> Tensor:
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """``NLLLoss(weight=None, ignore_index=-100, reduction='mean')``; see ``nll_loss``."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = int(ignore_index)

    def forward(self, input: Tensor, target) -> Tensor:
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class MSELoss(_Loss):
    """``MSELoss(reduction='mean')``; see ``mse_loss``."""

    def forward(self, input: Tensor, target) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """``L1Loss(reduction='mean')``; see ``l1_loss``."""

    def forward(self, input: Tensor, target) -> Tensor:
        return l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """``SmoothL1Loss(reduction='mean', beta=1.0)``; see ``smooth_l1_loss``."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = float(beta)

    def forward(self, input: Tensor, target) -> Tensor:
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class BCEWithLogitsLoss(_Loss):
    """``BCEWithLogitsLoss(weight=None, reduction='mean', pos_weight=None)``;
    see ``binary_cross_entropy_with_logits``."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None) -> None:
        super().__init__(size_average, reduce, reduction)
        for name, value in (("weight", weight), ("pos_weight", pos_weight)):
            self.register_buffer(name, value if value is None or isinstance(value, Tensor) else np.asarray(value))

    def forward(self, input: Tensor, target) -> Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight, reduction=self.reduction,
                                                pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """``KLDivLoss(reduction='mean', log_target=False)``; see ``kl_div``."""

    _reductions = _REDUCTIONS + ("batchmean",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = bool(log_target)

    def forward(self, input: Tensor, target) -> Tensor:
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class CosineEmbeddingLoss(_Loss):
    """``CosineEmbeddingLoss(margin=0.0, reduction='mean')``; see ``cosine_embedding_loss``."""

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.margin = float(margin)

    def forward(self, input1: Tensor, input2: Tensor, target) -> Tensor:
        return cosine_embedding_loss(input1, input2, target, margin=self.margin, reduction=self.reduction)
