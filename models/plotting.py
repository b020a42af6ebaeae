"""Figures for the recipes: every PNG is written atomically (never half a file)."""
from __future__ import annotations

import io
from pathlib import Path

from models.text.corpus import atomic_write_bytes


def save_figure(fig, path: str | Path, dpi: int = 110) -> None:
    """Render ``fig`` to PNG, write it to ``path`` via a temp file + rename, and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
