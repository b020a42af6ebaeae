"""Observers: watch tensors during calibration and pick their scale and zero point.

Book concept (appendix, "static quantization" / calibration): before converting a model, run a
few representative batches through it; an *observer* attached to each tensor records its value
range, and ``calculate_qparams()`` turns that range into ``(scale, zero_point)`` with
:func:`quant.qparams.choose_qparams`.

* :class:`MinMaxObserver` — the running minimum and maximum (``torch.ao`` ``MinMaxObserver``).
* :class:`MovingAverageMinMaxObserver` — exponential moving average of each batch's min/max,
  ``min ← min + c · (batch_min − min)`` (``torch.ao`` ``MovingAverageMinMaxObserver``).
* :class:`HistogramObserver` — a histogram of the values; the clipping range is either a
  percentile pair, or the range minimising the expected quantize→dequantize squared error
  (rounding error inside the grid plus clipping error outside), which can give up rare
  outliers to get a finer grid for the bulk of the values.

Every observer works per tensor (``ch_axis=None``) or per channel (``ch_axis=k``: one range
per index of axis ``k``, e.g. ``ch_axis=0`` for the output rows of a weight matrix). Internally
per-tensor is the 1-channel case. Inputs are float ndarrays or any object with a ``.data``
ndarray (a minigrad Tensor); ``observe(x)`` returns ``x`` unchanged so an observer can sit
inside a forward pass.
"""

from __future__ import annotations

import numpy as np

from .qparams import _choose_qparams_arrays, _qdtype, integer_range

__all__ = ["MinMaxObserver", "MovingAverageMinMaxObserver", "HistogramObserver"]


class _Observer:
    """Shared plumbing: input checks, per-channel reshaping, qparams from the tracked range."""

    def __init__(self, dtype="int8", symmetric: bool = False, narrow_range: bool = False,
                 ch_axis: int | None = None):
        self.dtype = _qdtype(dtype, type(self).__name__)
        self.symmetric = bool(symmetric)
        self.narrow_range = bool(narrow_range)
        if ch_axis is not None and not isinstance(ch_axis, (int, np.integer)):
            raise TypeError(f"{type(self).__name__}: ch_axis must be None or an int, got {ch_axis!r}")
        self.ch_axis = None if ch_axis is None else int(ch_axis)
        self.min_val: np.ndarray | None = None   # float32 (C,) — C = 1 per tensor
        self.max_val: np.ndarray | None = None

    # -- input ---------------------------------------------------------------------------
    def _channels(self, x) -> np.ndarray | None:
        """``x`` as a float ``(C, n)`` array (channel axis first), or None if it is empty."""
        name = type(self).__name__
        arr = x if isinstance(x, np.ndarray) else getattr(x, "data", None)
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{name}.observe: expected an ndarray or an object with a .data ndarray, "
                            f"got {type(x).__name__}")
        if arr.dtype.kind != "f":
            raise TypeError(f"{name}.observe: expected a floating-point array, got dtype {arr.dtype}")
        if self.ch_axis is None:
            y = arr.reshape(1, -1)
        else:
            if arr.ndim == 0 or not -arr.ndim <= self.ch_axis < arr.ndim:
                raise ValueError(f"{name}.observe: ch_axis={self.ch_axis} is out of range for an "
                                 f"array of shape {arr.shape}")
            y = np.moveaxis(arr, self.ch_axis, 0)
            y = y.reshape(y.shape[0], -1)
        if self.min_val is not None and y.shape[0] != self.min_val.shape[0]:
            raise ValueError(f"{name}.observe: expected {self.min_val.shape[0]} channels along axis "
                             f"{self.ch_axis}, got {y.shape[0]} (shape {arr.shape})")
        if y.size == 0:
            return None   # nothing to learn from an empty batch (torch.ao skips it too)
        if not np.isfinite(y).all():
            raise ValueError(f"{name}.observe: input contains NaN or inf; cannot calibrate on it")
        return y

    @staticmethod
    def _batch_range(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # float32, like torch.ao's buffers (rounding is monotone, so min of the cast = cast of min)
        return y.min(axis=1).astype(np.float32), y.max(axis=1).astype(np.float32)

    def observe(self, x):
        """Record the values of ``x``; returns ``x`` unchanged."""
        y = self._channels(x)
        if y is not None:
            self._update(y)
        return x

    __call__ = observe

    def _update(self, y: np.ndarray) -> None:
        raise NotImplementedError

    # -- output --------------------------------------------------------------------------
    def _require_data(self):
        if self.min_val is None:
            raise ValueError(f"{type(self).__name__}.calculate_qparams: no data observed yet; "
                             "call observe(x) on calibration batches first")

    def clipping_range(self) -> tuple[np.ndarray, np.ndarray]:
        """The real range ``(lo, hi)`` per channel that the qparams will cover (before adding 0)."""
        self._require_data()
        return self.min_val, self.max_val

    def calculate_qparams(self):
        """``(scale, zero_point)``: floats per tensor, or float32/int32 ``(C,)`` arrays per channel."""
        lo, hi = self.clipping_range()
        scale, zero_point = _choose_qparams_arrays(np.asarray(lo, np.float32), np.asarray(hi, np.float32),
                                                   self.dtype, self.symmetric, self.narrow_range)
        if self.ch_axis is None:
            return float(scale[0]), int(zero_point[0])
        return scale, zero_point.astype(np.int32)

    def __repr__(self):
        return (f"{type(self).__name__}(dtype='{self.dtype}', symmetric={self.symmetric}, "
                f"narrow_range={self.narrow_range}, ch_axis={self.ch_axis})")


class MinMaxObserver(_Observer):
    """Running range: ``min_val = min(min_val, min(x))``, ``max_val = max(max_val, max(x))``."""

    def _update(self, y):
        lo, hi = self._batch_range(y)
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            self.min_val = np.minimum(self.min_val, lo)
            self.max_val = np.maximum(self.max_val, hi)


class MovingAverageMinMaxObserver(_Observer):
    """Exponential moving average of the batch range (Jacob et al. 2018, section 3.1).

        min_val ← min_val + c · (min(x) − min_val),   max_val likewise;  c = averaging_constant

    The first batch sets the range directly. Smooths out single unusual batches.
    """

    def __init__(self, averaging_constant: float = 0.01, dtype="int8", symmetric: bool = False,
                 narrow_range: bool = False, ch_axis: int | None = None):
        super().__init__(dtype, symmetric, narrow_range, ch_axis)
        if not 0 < averaging_constant <= 1:
            raise ValueError(f"MovingAverageMinMaxObserver: averaging_constant must be in (0, 1], "
                             f"got {averaging_constant!r}")
        self.averaging_constant = float(averaging_constant)

    def _update(self, y):
        lo, hi = self._batch_range(y)
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
        else:
            c = np.float32(self.averaging_constant)   # float32 arithmetic, as torch.ao
            self.min_val = self.min_val + c * (lo - self.min_val)
            self.max_val = self.max_val + c * (hi - self.max_val)


class HistogramObserver(_Observer):
    """Histogram of the observed values; the clipping range is chosen from it.

    ``mode="mse"`` picks the range ``[l, h]`` whose grid (``choose_qparams(l, h)``: step ``s``,
    ends ``g_lo``, ``g_hi``) minimises the expected squared error of quantize→dequantize over
    the histogram — clipping error in the tails plus rounding error inside:

        E(l, h) = Σ_b (n_b / w) ∫_{bin b} (x − Q(x))² dx,   Q(x) = nearest grid point in [g_lo, g_hi]

    taking values as uniform inside each histogram bin (the idea of torch.ao's
    ``HistogramObserver`` and of Banner et al. 2019, "Post-training 4-bit quantization"; the
    integrals are exact, see :meth:`expected_mse`). The clipping ends are searched as fractions
    ``f · min`` / ``f · max`` (geometric grid down to 2^−10, then refined to 2 %); asymmetric
    ranges optimise the two ends in turn. Cost: O(channels · occupied bins · ~60 candidates)
    per end and round. ``mode="percentile"`` clips at the ``100 − percentile`` and
    ``percentile`` percentiles instead.

    The histogram has ``bins`` equal bins over ``[min(x_min, 0), max(x_max, 0)]``; when a later
    batch widens the range, the old counts are redistributed to the new bins assuming values are
    uniform inside each old bin.
    """

    _ROUNDS = 2                                   # alternating passes over (l, h)

    def __init__(self, bins: int = 2048, mode: str = "mse", percentile: float = 99.99,
                 dtype="int8", symmetric: bool = False, narrow_range: bool = False,
                 ch_axis: int | None = None):
        super().__init__(dtype, symmetric, narrow_range, ch_axis)
        if not isinstance(bins, (int, np.integer)) or bins < 8:
            raise ValueError(f"HistogramObserver: bins must be an int >= 8, got {bins!r}")
        if mode not in ("mse", "percentile"):
            raise ValueError(f"HistogramObserver: mode must be 'mse' or 'percentile', got {mode!r}")
        if not 50 < percentile <= 100:
            raise ValueError(f"HistogramObserver: percentile must be in (50, 100], got {percentile!r}")
        self.bins, self.mode, self.percentile = int(bins), mode, float(percentile)
        self.counts: np.ndarray | None = None   # (C, bins) float64 (re-binning makes fractions)
        self.hist_lo: np.ndarray | None = None  # (C,) histogram range, always contains 0
        self.hist_hi: np.ndarray | None = None

    # -- accumulation ----------------------------------------------------------------------
    def _update(self, y):
        lo, hi = self._batch_range(y)
        if self.min_val is None:
            self.min_val, self.max_val = lo, hi
            self.hist_lo = np.minimum(lo, 0).astype(np.float64)
            self.hist_hi = np.maximum(hi, 0).astype(np.float64)
            self.counts = np.zeros((y.shape[0], self.bins))
        else:
            self.min_val, self.max_val = np.minimum(self.min_val, lo), np.maximum(self.max_val, hi)
            new_lo = np.minimum(self.hist_lo, lo.astype(np.float64))
            new_hi = np.maximum(self.hist_hi, hi.astype(np.float64))
            if np.any(new_lo < self.hist_lo) or np.any(new_hi > self.hist_hi):
                self.counts = self._rebin(new_lo, new_hi)
                self.hist_lo, self.hist_hi = new_lo, new_hi
        self.counts += self._histogram(y)

    def _bin_width(self, lo, hi):
        w = (hi - lo) / self.bins
        return np.where(w > 0, w, 1.0)   # all-zero channel: every value falls in bin 0

    def _histogram(self, y):
        """Counts of ``y (C, n)`` in each channel's bins → ``(C, bins)``."""
        C, B = y.shape[0], self.bins
        w = self._bin_width(self.hist_lo, self.hist_hi)
        idx = np.floor((y - self.hist_lo[:, None]) / w[:, None])
        idx = np.clip(idx, 0, B - 1).astype(np.int64)          # the maximum lands in the last bin
        idx += (np.arange(C) * B)[:, None]                       # one bincount for all channels
        return np.bincount(idx.ravel(), minlength=C * B).reshape(C, B).astype(np.float64)

    def _rebin(self, new_lo, new_hi):
        """Redistribute the counts onto ``bins`` bins over the wider ``[new_lo, new_hi]``."""
        B = self.bins
        old_w = (self.hist_hi - self.hist_lo) / B                              # (C,)
        new_edges = new_lo[:, None] + (new_hi - new_lo)[:, None] * np.arange(B + 1) / B   # (C, B+1)
        cdf = np.concatenate([np.zeros((len(old_w), 1)), np.cumsum(self.counts, axis=1)], axis=1)
        # position of each new edge in units of old bins; a zero-width old histogram is a point mass
        safe_w = np.where(old_w > 0, old_w, 1.0)[:, None]
        u = (new_edges - self.hist_lo[:, None]) / safe_w
        u = np.where(old_w[:, None] > 0, u, np.where(new_edges > self.hist_lo[:, None], B, 0))
        u[:, -1] = B                                                            # all mass is inside
        u = np.clip(u, 0, B)
        k = np.minimum(np.floor(u).astype(np.int64), B - 1)
        cdf_new = (np.take_along_axis(cdf, k, axis=1)
                   + (u - k) * np.take_along_axis(self.counts, k, axis=1))     # linear inside a bin
        return np.diff(cdf_new, axis=1)

    # -- choosing the range ------------------------------------------------------------------
    def clipping_range(self):
        self._require_data()
        if self.mode == "percentile":
            lo, hi = self._percentile_range()
        else:
            lo, hi = self._mse_range()
        # never wider than what was seen
        lo = np.clip(lo, self.min_val, self.max_val)
        hi = np.clip(hi, self.min_val, self.max_val)
        return lo.astype(np.float32), hi.astype(np.float32)

    def _quantile(self, q: float) -> np.ndarray:
        """Per-channel ``q``-quantile of the histogram (linear inside the bin) → ``(C,)``."""
        cdf = np.cumsum(self.counts, axis=1)                     # (C, B) mass up to each bin's end
        target = q * cdf[:, -1]
        k = np.minimum((cdf < target[:, None]).sum(axis=1), self.bins - 1)   # first bin reaching it
        below = np.take_along_axis(cdf, k[:, None], axis=1)[:, 0] - np.take_along_axis(
            self.counts, k[:, None], axis=1)[:, 0]
        n_k = np.take_along_axis(self.counts, k[:, None], axis=1)[:, 0]
        frac = np.where(n_k > 0, (target - below) / np.where(n_k > 0, n_k, 1), 0.5)
        w = (self.hist_hi - self.hist_lo) / self.bins
        return self.hist_lo + w * (k + np.clip(frac, 0, 1))

    def _percentile_range(self):
        p = self.percentile / 100
        lo, hi = self._quantile(1 - p), self._quantile(p)
        if self.percentile == 100:
            lo, hi = self.min_val.astype(np.float64), self.max_val.astype(np.float64)
        if self.symmetric:
            t = np.maximum(-np.minimum(lo, 0), np.maximum(hi, 0))
            lo, hi = -t, t
        return lo, hi

    def _nonzero_bins(self, rows):
        """Edges and counts of the occupied bins of channels ``rows`` → three ``(c, 1, K)``.

        Empty bins add no error, so only occupied ones are evaluated (padded with empty ones).
        """
        counts = self.counts[rows]
        order = np.argsort(counts == 0, axis=1, kind="stable")           # occupied bins first
        K = max(int((counts > 0).sum(axis=1).max()), 1)
        idx = order[:, :K]
        w = ((self.hist_hi - self.hist_lo) / self.bins)[rows, None]
        a = self.hist_lo[rows, None] + w * idx
        n = np.take_along_axis(counts, idx, axis=1)
        return a[:, None, :], (a + w)[:, None, :], n[:, None, :]

    def expected_mse(self, lo, hi) -> np.ndarray:
        """Expected total squared quantization error ``E(l, h)`` of candidate ranges ``(C, P)``.

        The values of each histogram bin are taken as uniform inside the bin; quantize→dequantize
        maps ``x`` to ``Q(x)``, the nearest grid point ``g_lo + s·k`` clamped to
        ``[g_lo, g_hi]`` (the grid of ``choose_qparams(l, h)``), and the error is

            E = Σ_b (n_b / w) ∫_{bin b} (x − Q(x))² dx

        with closed-form integrals: ``((e − g)³ − (a − g)³) / 3`` in the clipped tails and
        ``s³ (H(v_e) − H(v_a))`` inside, where ``v = (x − g_lo) / s`` and
        ``H(v) = ∫_{−1/2}^{v} (t − round(t))² dt = m / 12 + ((v − m)³ + 1/8) / 3``, ``m = floor(v + 1/2)``.
        """
        self._require_data()
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        if lo.shape != hi.shape or lo.ndim != 2 or lo.shape[0] != self.counts.shape[0]:
            raise ValueError(f"HistogramObserver.expected_mse: lo and hi must both have shape "
                             f"({self.counts.shape[0]}, P), got {lo.shape} and {hi.shape}")
        # bound the (channels, candidates, bins) temporaries to a few million elements
        step = max(1, 2**22 // (lo.shape[1] * self.bins))
        out = np.empty(lo.shape)
        for c0 in range(0, lo.shape[0], step):
            rows = slice(c0, c0 + step)
            out[rows] = self._expected_mse(lo[rows], hi[rows], *self._nonzero_bins(rows))
        return out

    def _expected_mse(self, lo, hi, a, b, n):
        """:meth:`expected_mse` for candidates ``(c, P)`` over bins ``a, b, n`` ``(c, 1, K)``."""
        q_min, q_max = integer_range(self.dtype, self.narrow_range)
        scale, zp = _choose_qparams_arrays(lo.astype(np.float32), hi.astype(np.float32),
                                           self.dtype, self.symmetric, self.narrow_range)
        s = scale.astype(np.float64)[..., None]                          # (c, P, 1)
        g_lo, g_hi = (q_min - zp[..., None]) * s, (q_max - zp[..., None]) * s
        # the three parts of each bin: below the grid, on it, above it (empty parts: e == a)
        low_end = np.minimum(b, g_lo)
        low = ((low_end - g_lo) ** 3 - (np.minimum(a, low_end) - g_lo) ** 3) / 3
        high_start = np.maximum(a, g_hi)
        high = ((np.maximum(b, high_start) - g_hi) ** 3 - (high_start - g_hi) ** 3) / 3
        v_a = (np.clip(a, g_lo, g_hi) - g_lo) / s
        v_b = (np.clip(b, g_lo, g_hi) - g_lo) / s
        mid = s**3 * (_sawtooth_integral(v_b) - _sawtooth_integral(v_a))
        w = b - a
        per_bin = np.where(w > 0, n * (low + mid + high) / np.where(w > 0, w, 1), 0.0)
        return per_bin.sum(axis=-1)                                       # (c, P)

    def _search(self, make_range, extent):
        """Best fraction f per channel for ranges ``make_range(f · extent)``: coarse, then fine."""
        coarse = 2.0 ** (-np.arange(41) / 4)                               # 1 … 2^-10, 19 % apart
        rows = np.arange(extent.shape[0])
        f = coarse[None, :] * np.ones_like(extent)[:, None]
        best = f[rows, np.argmin(self.expected_mse(*make_range(f * extent[:, None])), axis=1)]
        f = np.minimum(best[:, None] * 2.0 ** (np.arange(-8, 9) / 32)[None, :], 1.0)   # ±19 %, 2 % apart
        best = f[rows, np.argmin(self.expected_mse(*make_range(f * extent[:, None])), axis=1)]
        return best * extent

    def _mse_range(self):
        L = np.minimum(self.min_val, 0).astype(np.float64)                 # (C,)
        H = np.maximum(self.max_val, 0).astype(np.float64)
        if self.symmetric:
            t = self._search(lambda t: (-t, t), np.maximum(-L, H))
            return -t, t
        lo, hi = L, H
        for _ in range(self._ROUNDS):                                      # optimise the ends in turn
            hi = self._search(lambda h: (np.broadcast_to(lo[:, None], h.shape), h), H)
            lo = self._search(lambda l: (l, np.broadcast_to(hi[:, None], l.shape)), L)
        return lo, hi


def _sawtooth_integral(v):
    """``H(v) = ∫_{−1/2}^{v} (t − round(t))² dt``: each whole grid cell contributes 1/12."""
    m = np.floor(v + 0.5)
    r = v - m
    return m / 12 + (r**3 + 0.125) / 3
