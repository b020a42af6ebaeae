"""Classification, correlation and language-model metrics (book ch. 4 GLUE table, ch. 1-3 perplexity).

The GLUE tasks (book § 4.10) are scored with: accuracy (SST-2, MNLI, QNLI, RTE, WNLI), F1 (MRPC,
QQP), Matthews correlation (CoLA), and Pearson/Spearman correlation (STS-B). Every function here
equals its scikit-learn / SciPy namesake, including the degenerate cases (tests compare them):

* ``precision_recall_f1``: a 0/0 precision, recall or F1 is ``zero_division`` (sklearn's default 0);
* ``matthews_corrcoef``: 0.0 when a marginal is constant (e.g. one predicted class), like sklearn;
* ``pearson`` / ``spearman``: NaN for a constant input, like SciPy (the correlation is undefined).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

AVERAGES = ("binary", "macro", "micro")


# ----------------------------------------------------------------------------------- checking input

def _labels_1d(y, name: str, func: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{func}: {name} must be 1-D (one label per example), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{func}: {name} is empty")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{func}: {name} contains NaN or inf")
    if arr.dtype.kind not in "biufUSO":
        raise TypeError(f"{func}: {name} must hold ints or strings, got dtype {arr.dtype}")
    return arr


def _pair(y_true, y_pred, func: str) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels_1d(y_true, "y_true", func), _labels_1d(y_pred, "y_pred", func)
    if t.shape != p.shape:
        raise ValueError(f"{func}: y_true has {t.shape[0]} labels but y_pred has {p.shape[0]}")
    return t, p


def _values_1d(x, name: str, func: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{func}: {name} must be numbers, got {type(x).__name__} ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{func}: {name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{func}: {name} contains NaN or inf")
    return arr


def _numeric_pair(x, y, func: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _values_1d(x, "x", func), _values_1d(y, "y", func)
    if a.shape != b.shape:
        raise ValueError(f"{func}: x has {a.shape[0]} values but y has {b.shape[0]}")
    if a.shape[0] < 2:
        raise ValueError(f"{func}: needs at least 2 values, got {a.shape[0]}")
    return a, b


# ------------------------------------------------------------------------------ label-based metrics

def accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Accuracy = (1/N) sum_i [y_pred_i == y_true_i]."""
    t, p = _pair(y_true, y_pred, "accuracy")
    return float(np.mean(t == p))


def confusion_matrix(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> np.ndarray:
    """C[i, j] = number of examples of true class labels[i] predicted as labels[j].

    ``labels`` defaults to the sorted union of both label sets; examples whose true or predicted
    label is not in ``labels`` are left out (as in sklearn).
    """
    func = "confusion_matrix"
    t, p = _pair(y_true, y_pred, func)
    labels = _label_list(t, p, labels, func)
    index = {label: i for i, label in enumerate(labels.tolist())}
    k = len(labels)
    ti = np.array([index.get(v, -1) for v in t.tolist()], dtype=np.int64)
    pi = np.array([index.get(v, -1) for v in p.tolist()], dtype=np.int64)
    keep = (ti >= 0) & (pi >= 0)
    # flat index true * K + pred, counted in one bincount
    return np.bincount(ti[keep] * k + pi[keep], minlength=k * k).reshape(k, k)  # (K, K)


def _label_list(t: np.ndarray, p: np.ndarray, labels, func: str) -> np.ndarray:
    if labels is None:
        try:
            return np.unique(np.concatenate([t, p]))
        except TypeError as exc:
            raise TypeError(f"{func}: labels of y_true and y_pred cannot be compared ({exc})") from None
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"{func}: labels must be a non-empty 1-D list, got shape {labels.shape}")
    if len(set(labels.tolist())) != labels.size:
        raise ValueError(f"{func}: labels contains duplicates: {labels.tolist()}")
    return labels


def _divide(num: np.ndarray, den: np.ndarray, zero_division: float) -> np.ndarray:
    out = np.full(np.shape(num), float(zero_division))
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return out


def precision_recall_f1(y_true: Sequence, y_pred: Sequence, average: str = "binary",
                        pos_label=1, labels: Sequence | None = None,
                        zero_division: float = 0.0) -> tuple[float, float, float]:
    """Precision, recall and F1 (sklearn's ``precision_recall_fscore_support``).

        P = TP / (TP + FP),   R = TP / (TP + FN),   F1 = 2 TP / (2 TP + FP + FN)

    ``average="binary"``: the scores of ``pos_label`` (at most two classes allowed);
    ``"macro"``: unweighted mean of the per-class scores; ``"micro"``: scores of the summed counts
    (equal to accuracy when every class is included).
    """
    func = "precision_recall_f1"
    if average not in AVERAGES:
        raise ValueError(f"{func}: average must be one of {AVERAGES}, got {average!r}")
    if zero_division not in (0, 1, 0.0, 1.0):
        raise ValueError(f"{func}: zero_division must be 0 or 1, got {zero_division!r}")
    t, p = _pair(y_true, y_pred, func)
    if average == "binary":
        present = np.unique(np.concatenate([t, p])).tolist()
        if len(present) > 2:
            raise ValueError(f"{func}: average='binary' needs at most 2 classes, found "
                             f"{len(present)}: {present[:10]}; use average='macro' or 'micro'")
        if pos_label not in present and len(present) == 2:
            raise ValueError(f"{func}: pos_label={pos_label!r} is not a valid label; "
                             f"labels are {present}")
        labels = [pos_label]
    wanted = _label_list(t, p, labels, func).tolist()
    # count over every label present, so errors involving labels outside `wanted` still count
    everything = wanted + [v for v in np.unique(np.concatenate([t, p])).tolist() if v not in wanted]
    cm = confusion_matrix(t, p, labels=everything)
    k = len(wanted)
    tp = np.diag(cm)[:k].astype(np.float64)  # (K,)
    fp = cm.sum(axis=0)[:k] - tp  # predicted as the class, truly another
    fn = cm.sum(axis=1)[:k] - tp  # truly the class, predicted as another
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    precision = _divide(tp, tp + fp, zero_division)
    recall = _divide(tp, tp + fn, zero_division)
    f1 = _divide(2 * tp, 2 * tp + fp + fn, zero_division)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def f1_score(y_true: Sequence, y_pred: Sequence, average: str = "binary", pos_label=1,
             labels: Sequence | None = None, zero_division: float = 0.0) -> float:
    """F1 = 2 P R / (P + R); see :func:`precision_recall_f1`."""
    return precision_recall_f1(y_true, y_pred, average, pos_label, labels, zero_division)[2]


def matthews_corrcoef(y_true: Sequence, y_pred: Sequence) -> float:
    """Matthews correlation (CoLA's metric), multiclass form of Gorodkin (2004).

        MCC = (c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t))

    with C the confusion matrix, c = trace(C), s = N, t_k = row sums (true counts) and
    p_k = column sums (predicted counts). For two classes this is
    (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)). Returns 0.0 when a factor under the
    square root is 0 (e.g. a classifier that always predicts one class), as sklearn does.
    """
    t, p = _pair(y_true, y_pred, "matthews_corrcoef")
    cm = confusion_matrix(t, p)
    t_sum = cm.sum(axis=1, dtype=np.float64)
    p_sum = cm.sum(axis=0, dtype=np.float64)
    correct = float(np.trace(cm))
    n = float(p_sum.sum())
    cov_tp = correct * n - float(t_sum @ p_sum)
    cov_pp = n * n - float(p_sum @ p_sum)
    cov_tt = n * n - float(t_sum @ t_sum)
    if cov_pp * cov_tt == 0:
        return 0.0
    return cov_tp / math.sqrt(cov_pp * cov_tt)


# --------------------------------------------------------------------------------- correlations

def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r = sum (x-x̄)(y-ȳ) / sqrt(sum (x-x̄)^2 sum (y-ȳ)^2) (STS-B's first metric).

    NaN when x or y is constant (undefined), like ``scipy.stats.pearsonr``.
    """
    a, b = _numeric_pair(x, y, "pearson")
    if np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    a, b = a - a.mean(), b - b.mean()
    # scale by the max first so that squaring cannot overflow (SciPy does the same)
    a, b = a / np.abs(a).max(), b / np.abs(b).max()
    r = float(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b)))
    return max(-1.0, min(1.0, r))  # rounding can step just outside [-1, 1]


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..N, ties sharing the mean of the ranks they span (``scipy.stats.rankdata``)."""
    values = _values_1d(x, "x", "average_ranks")
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    # a group of equal values occupying ranks start+1 .. start+count gets start + (count+1)/2
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return (starts + (counts + 1) / 2.0)[inverse]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho = Pearson's r of the (average-tie) ranks (STS-B's second metric)."""
    a, b = _numeric_pair(x, y, "spearman")
    return pearson(average_ranks(a), average_ranks(b))


# ----------------------------------------------------------------------------------- perplexity

def perplexity(nll_sum: float, num_tokens: int) -> float:
    """Perplexity = exp( (1/N) sum_t -log p(w_t | w_<t) ), from the summed NLL (nats) over N tokens.

    Returns ``inf`` when the mean NLL is too large for exp.
    """
    func = "perplexity"
    if isinstance(num_tokens, bool) or not isinstance(num_tokens, (int, np.integer)):
        raise TypeError(f"{func}: num_tokens must be an int, got {type(num_tokens).__name__}")
    if num_tokens <= 0:
        raise ValueError(f"{func}: num_tokens must be > 0, got {num_tokens}")
    try:
        nll = float(nll_sum)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: nll_sum must be a number, got {type(nll_sum).__name__}") from None
    if not math.isfinite(nll) or nll < 0:
        raise ValueError(f"{func}: nll_sum must be a finite number >= 0 (a sum of -log p), got {nll}")
    try:
        return math.exp(nll / int(num_tokens))
    except OverflowError:
        return math.inf
