"""Figures for the recipes, defined in one place.

Every figure comes from ``subplots`` and is written by ``save_figure``. The figures are plain
``matplotlib.figure.Figure`` objects, made without pyplot: they are not registered with any GUI
backend, need no display (``matplotlib.use("Agg")`` is never called), leave nothing to close,
and a PNG is rendered by Matplotlib's Agg renderer whatever the machine's backend is. Every PNG
is written atomically (never half a file).
"""
from __future__ import annotations

import io
from pathlib import Path

from models.text.corpus import atomic_write_bytes

__all__ = ["subplots", "save_figure", "plot_losses"]


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, **kwargs):
    """``(figure, axes)`` as ``matplotlib.pyplot.subplots`` returns them, without pyplot."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Render ``fig`` to PNG and write it to ``path`` via a temp file + rename."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(path, buf.getvalue())


def plot_losses(ax, history: dict, *, valid: str | None = "valid_loss", valid_label: str = "validation",
                title: str = "", ylabel: str = "loss", train_label: str = "train (per step)") -> None:
    """The training loss of every optimizer step and, at each epoch's end, ``valid`` (a key of the
    epoch records) from a ``models.training.Trainer`` history."""
    steps = history["steps"]
    ax.plot(steps.get("step", []), steps.get("loss", []), lw=0.6, alpha=0.7, label=train_label)
    epochs = [e for e in history["epochs"] if valid is not None and valid in e]
    if epochs:
        ax.plot([e["step"] for e in epochs], [e[valid] for e in epochs], "o-", label=valid_label)
    ax.set(xlabel="optimizer step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
