"""Progress bars that draw only on a terminal.

Every recipe's bars come from ``progress_bar``: a tqdm bar on standard error when that is a
terminal, and a silent stand-in otherwise (a log file, CI, ``nohup``), where a bar would write
thousands of carriage-return updates. The recipes print one line per epoch either way, so a log
keeps the numbers. ``--no-progress`` (every recipe) turns the bars off on a terminal too.
"""
from __future__ import annotations

import sys

_enabled = True


def set_progress(enabled: bool) -> None:
    """Allow (True, the default) or forbid (False) progress bars for the rest of the process."""
    global _enabled
    _enabled = bool(enabled)


def progress_allowed() -> bool:
    """False after ``set_progress(False)`` (``--no-progress``)."""
    return _enabled


def progress_enabled(stream=None) -> bool:
    """Whether a bar would draw: bars are allowed and ``stream`` (standard error) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return _enabled and bool(isatty and isatty())


def progress_bar(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)`` on standard error (``leave=False`` unless given), disabled off a terminal:
    a disabled bar still iterates and accepts ``update`` / ``set_postfix`` / ``close``, and draws nothing."""
    from tqdm import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("file", sys.stderr)
    kwargs["disable"] = kwargs.get("disable", False) or not progress_enabled(kwargs["file"])
    return tqdm(iterable, **kwargs)


__all__ = ["progress_allowed", "progress_bar", "progress_enabled", "set_progress"]
