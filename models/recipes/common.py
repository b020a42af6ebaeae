"""Pieces shared by the training recipes."""
from __future__ import annotations

from pathlib import Path


def load_resume_state(recipe: str, path: Path, config: dict, model, optimizer) -> dict:
    """``--resume``: check that ``path`` was saved with the same shaping options, restore the
    model and optimizer from it, and return the whole checkpoint (epoch, history, RNG states)."""
    import minigrad

    if not path.is_file():
        raise FileNotFoundError(f"{recipe} recipe: --resume given but there is no checkpoint at {str(path)!r}")
    state = minigrad.load_checkpoint(path)
    saved = state.get("config", {})
    diff = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
    if diff:
        raise ValueError(f"{recipe} recipe: the checkpoint was made with other options (saved, now): {diff}")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return state
