"""A picture of the quantization grid over a weight histogram.

Book concept: ``scale`` is the spacing of the grid of representable values
``x̂_q = scale · (q − zero_point)``, ``q ∈ [q_min, q_max]``, and everything outside
``[scale · (q_min − zero_point), scale · (q_max − zero_point)]`` is clipped. Seeing the grid on
top of the weight distribution makes both visible at once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .qparams import _check_scale, _check_zero_point, _qdtype, integer_range

__all__ = ["quantization_range", "plot_quantization_grid"]


def quantization_range(scale: float, zero_point: int, dtype="int8",
                       narrow_range: bool = False) -> tuple[float, float]:
    """The real clipping range ``[scale · (q_min − zero_point), scale · (q_max − zero_point)]``."""
    q_min, q_max = integer_range(dtype, narrow_range)
    s = float(_check_scale(scale, "quantization_range"))
    z = int(_check_zero_point(zero_point, q_min, q_max, "quantization_range"))
    return s * (q_min - z), s * (q_max - z)


def _atomic_savefig(fig, path: Path, dpi: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def plot_quantization_grid(weights, scale: float, zero_point: int, dtype="int8", path="quant_grid.png",
                           *, bins: int = 200, zoom_steps: int = 12, title: str | None = None,
                           figsize=(8.0, 6.0), dpi: int = 100) -> Path:
    """Save a PNG: histogram of ``weights`` with the quantization grid and the clipping range.

    Top panel: the whole distribution, the clipping range shaded outside its ends, and the
    zero point (real 0.0). Bottom panel: a zoom on ``±zoom_steps`` grid steps around 0.0
    where each representable value ``scale · (q − zero_point)`` is drawn as a vertical line,
    so the rounding step is visible. Rendered with the Agg backend (no display needed) and
    written atomically. Returns the path.
    """
    fn = "plot_quantization_grid"
    w = weights if isinstance(weights, np.ndarray) else getattr(weights, "data", weights)
    w = np.asarray(w)
    if w.dtype.kind != "f" or w.size == 0:
        raise TypeError(f"{fn}: weights must be a non-empty float array, got dtype {w.dtype}, size {w.size}")
    if not np.isfinite(w).all():
        raise ValueError(f"{fn}: weights contain NaN or inf")
    dt = _qdtype(dtype, fn)
    lo, hi = quantization_range(scale, zero_point, dt)
    s = float(scale)
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{fn}: path must end in .png, got {str(path)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{fn}: output folder {str(path.parent)!r} does not exist")

    # Figure + Agg canvas directly: no pyplot global state, no display backend needed
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w = w.ravel().astype(np.float64)
    n_clipped = int(np.count_nonzero((w < lo - s / 2) | (w > hi + s / 2)))
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1)

    span_lo, span_hi = min(w.min(), lo), max(w.max(), hi)
    top.hist(w, bins=bins, range=(span_lo, span_hi), color="tab:blue", alpha=0.8)
    top.axvspan(span_lo, lo, color="tab:red", alpha=0.15, label="clipped")
    top.axvspan(hi, span_hi, color="tab:red", alpha=0.15)
    for edge in (lo, hi):
        top.axvline(edge, color="tab:red", lw=1)
    top.axvline(0.0, color="k", lw=1, ls="--", label=f"0.0 ↔ q = {int(zero_point)}")
    top.set_title(title or f"{dt} grid: scale = {s:.4g}, zero_point = {int(zero_point)}, "
                           f"range [{lo:.4g}, {hi:.4g}], {n_clipped} clipped")
    top.set_ylabel("count")
    top.legend(loc="upper right", fontsize=8)

    # zoom: ±zoom_steps grid steps around 0.0, one line per representable value
    z_lo, z_hi = max(lo, -zoom_steps * s), min(hi, zoom_steps * s)
    inside = w[(w >= z_lo - s / 2) & (w <= z_hi + s / 2)]
    if inside.size:
        bottom.hist(inside, bins=min(bins, 4 * (2 * zoom_steps + 1)), range=(z_lo - s / 2, z_hi + s / 2),
                    color="tab:blue", alpha=0.8)
    for v in np.arange(np.ceil(z_lo / s), np.floor(z_hi / s) + 1) * s:
        bottom.axvline(v, color="tab:orange", lw=0.8)
    bottom.set_xlim(z_lo - s / 2, z_hi + s / 2)
    bottom.set_xlabel("weight value (orange: representable values scale·(q − zero_point))")
    bottom.set_ylabel("count")
    fig.tight_layout()
    _atomic_savefig(fig, path, dpi)
    return path
