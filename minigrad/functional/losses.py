"""Loss functions in functional form, with torch.nn.functional's names and semantics.

The workhorse of every language model in the book is ``cross_entropy`` (ch. 1–5): its argument
checks are here, its arithmetic in ``minigrad/kernels/losses.py``. The other losses are short
compositions of Tensor ops (their cost is negligible).
"""
from __future__ import annotations

import numbers

import numpy as np

from minigrad.kernels import losses as kernel
from minigrad.tensor import Tensor, where

_REDUCTIONS = ("mean", "sum", "none")


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
    t_raw = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t_raw.dtype.kind == "f":  # class probabilities
        idx, probs = None, _rows_by_class(fn, _prob_target(fn, target, x))[0]
    else:
        idx, probs = _index_target(fn, target, x.shape, row_shape, int(ignore_index)), None
    loss = kernel.cross_entropy(rows, idx, probs, w, int(ignore_index), float(label_smoothing), reduction)
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


__all__ = ["binary_cross_entropy_with_logits", "cosine_embedding_loss", "cross_entropy", "kl_div", "l1_loss",
           "mse_loss", "nll_loss", "smooth_l1_loss"]
