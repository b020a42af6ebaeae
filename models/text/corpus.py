"""Corpora and train/valid/test splits for chapter 1.

* ``load_default_corpus()`` — the embedded default that exists on every machine without a
  download: the English documentation CPython ships in ``pydoc_data.topics`` (≈ 465k chars),
  the topic texts joined in sorted key order.
* ``load_text(path)`` — any UTF-8 text file, with clear errors for a missing, non-UTF-8 or
  empty file.
* ``train_valid_test_split`` — a deterministic split under a seed, item by item (shuffled
  sentences) or by contiguous chunks (keeps neighbouring, often near-duplicate, lines together
  so validation text is not a paraphrase of training text).

Also home of ``atomic_write_text`` / ``atomic_write_bytes`` (temp file + ``os.replace``, via
``minigrad.serialization.atomic_write``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np

from minigrad.serialization import atomic_write

__all__ = [
    "load_default_corpus",
    "load_text",
    "load_corpus",
    "train_valid_test_split",
    "atomic_write_text",
    "atomic_write_bytes",
]

T = TypeVar("T")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, then ``os.replace``.

    A reader never sees a half-written file, even if the writer is interrupted. The writing is
    ``minigrad.serialization.atomic_write``'s, so a killed writer's temp file is recognisable and the
    next successful write of ``path`` removes it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data), fn="atomic_write_bytes")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8 version of ``atomic_write_bytes``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def load_default_corpus() -> str:
    """The embedded default corpus: CPython's ``pydoc_data.topics`` texts in sorted key order.

    Topics are separated by a blank line so no sentence spans two topics.
    """
    from pydoc_data.topics import topics  # shipped with every CPython

    return "\n\n".join(topics[key] for key in sorted(topics))


def load_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file (a leading byte-order mark is dropped).

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for a directory, a file
    that is not valid UTF-8 (with the byte offset) or a file with no non-space text.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_text: corpus file not found: {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"load_text: expected a text file, got a directory: {str(path)!r}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"load_text: {str(path)!r} is not valid UTF-8 (bad byte {data[err.start]:#04x} at "
            f"offset {err.start}); convert it first, e.g. `iconv -f latin1 -t utf-8`"
        ) from None
    if not text.strip():
        raise ValueError(f"load_text: corpus file {str(path)!r} is empty (no non-space text)")
    return text


def load_corpus(path: str | os.PathLike | None = None) -> str:
    """``load_text(path)`` if a path is given, else the embedded default corpus."""
    return load_default_corpus() if path is None else load_text(path)


def _split_sizes(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            "train_valid_test_split: fractions must be 3 non-negative numbers summing to 1, "
            f"got {tuple(fractions)}"
        )
    n_valid = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    return n - n_valid - n_test, n_valid, n_test


def train_valid_test_split(
    items: Sequence[T],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    *,
    seed: int = 0,
    mode: str = "shuffle",
    chunk_size: int | None = None,
) -> tuple[list[T], list[T], list[T]]:
    """Split ``items`` (sentences, lines, tokens, ...) into train/valid/test, deterministically.

    ``mode="shuffle"``: items are permuted with ``numpy.random.default_rng(seed)``, then cut.
    ``mode="contiguous"``: items are grouped into runs of ``chunk_size`` consecutive items; the
    runs are permuted with the seed and cut (with ``chunk_size=None``: no permutation — the
    first part is train, the next valid, the last test, as for WikiText-style corpora).
    Sizes are ``round(fraction * n)`` for valid and test (in items, or in chunks); order inside
    each split follows the original order for ``contiguous`` and the permutation for ``shuffle``.
    """
    if mode not in ("shuffle", "contiguous"):
        raise ValueError(
            f"train_valid_test_split: mode must be 'shuffle' or 'contiguous', got {mode!r}"
        )
    items = list(items)
    if not items:
        raise ValueError("train_valid_test_split: got an empty sequence of items")
    rng = np.random.default_rng(seed)
    if mode == "shuffle":
        order = rng.permutation(len(items))
        n_train, n_valid, _ = _split_sizes(len(items), fractions)
        parts = np.split(order, [n_train, n_train + n_valid])
        return tuple([items[i] for i in part] for part in parts)  # type: ignore[return-value]
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(
            f"train_valid_test_split: chunk_size must be a positive int or None, got {chunk_size!r}"
        )
    if chunk_size is None:
        n_train, n_valid, _ = _split_sizes(len(items), fractions)
        return items[:n_train], items[n_train:n_train + n_valid], items[n_train + n_valid:]
    n_chunks = -(-len(items) // chunk_size)
    chunk_order = rng.permutation(n_chunks)
    n_train, n_valid, _ = _split_sizes(n_chunks, fractions)
    out = []
    for part in np.split(chunk_order, [n_train, n_train + n_valid]):
        out.append([x for c in np.sort(part) for x in items[c * chunk_size:(c + 1) * chunk_size]])
    return tuple(out)  # type: ignore[return-value]
