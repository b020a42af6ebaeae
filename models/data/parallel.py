"""Parallel (source, target) sentence data for translation (book ch. 2-3).

A parallel corpus is two files aligned by line: line i of the source file translates into line i of
the target file (Multi30k English-German: ``train.en.gz`` / ``train.de.gz``, 29,000 pairs).
The book's synthetic tasks need no download and are learned in minutes: the sequence-reversal task
of ch. 2 (random lowercase strings of 10-12 letters; the target is the string reversed, so the
decoder must attend to the far end of the source), plus copying and sorting.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, Union

import numpy as np

PathLike = Union[str, Path]

ALPHABET = "abcdefghijklmnopqrstuvwxyz"
# the book's vocabulary for the synthetic tasks: three specials, then the letters
SYNTHETIC_VOCAB: tuple[str, ...] = ("<s>", "</s>", "<pad>", *ALPHABET)


@dataclass(frozen=True)
class SentencePair:
    """One aligned pair: ``source`` translates into ``target``."""

    source: str
    target: str


def read_lines(path: PathLike) -> list[str]:
    """The lines of a UTF-8 text file, plain or gzip (detected by its magic bytes), newline-stripped."""
    func = "read_lines"
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{func}: no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{func}: expected a file, got a directory: {path}")
    with path.open("rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    try:
        raw = gzip.decompress(path.read_bytes()) if gzipped else path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, EOFError) as exc:
        raise ValueError(f"{func}: {path} is not a readable gzip file ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{func}: {path} is not UTF-8 text ({exc})") from None
    lines = text.split("\n")  # not splitlines(): \x85, \u2028 ... may occur inside sentences
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a new one
    return [line.rstrip("\r") for line in lines]


def read_parallel(source_path: PathLike, target_path: PathLike, *, max_len: int | None = None,
                  tokenize: Callable[[str], Sequence[str]] = str.split,
                  skip_empty: bool = True) -> list[SentencePair]:
    """Aligned pairs from two line-aligned files (plain or ``.gz``).

    Different line counts are an error (the files are not aligned). Pairs where either side is
    empty are dropped (``skip_empty``), and, with ``max_len``, pairs where either side has more than
    ``max_len`` tokens (``tokenize``, whitespace by default).
    """
    func = "read_parallel"
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
        raise ValueError(f"{func}: max_len must be None or an int >= 1, got {max_len!r}")
    sources, targets = read_lines(source_path), read_lines(target_path)
    if len(sources) != len(targets):
        raise ValueError(f"{func}: the files are not aligned: {source_path} has {len(sources)} "
                         f"lines but {target_path} has {len(targets)}")
    pairs = []
    for src, tgt in zip(sources, targets):
        src, tgt = src.strip(), tgt.strip()
        if skip_empty and (not src or not tgt):
            continue
        if max_len is not None and (len(tokenize(src)) > max_len or len(tokenize(tgt)) > max_len):
            continue
        pairs.append(SentencePair(src, tgt))
    return pairs


MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")


def read_multi30k(data_dir: PathLike, split: str = "train", source_lang: str = "en",
                  target_lang: str = "de", max_len: int | None = None) -> list[SentencePair]:
    """Multi30k task 1 (``{split}.{lang}.gz``): 29,000 train / 1,014 val / 1,000 test_2016_flickr."""
    func = "read_multi30k"
    if split not in MULTI30K_SPLITS:
        raise ValueError(f"{func}: split must be one of {MULTI30K_SPLITS}, got {split!r}")
    langs = ("en", "de")
    if source_lang not in langs or target_lang not in langs or source_lang == target_lang:
        raise ValueError(f"{func}: languages must be 'en' and 'de' (either order), "
                         f"got {source_lang!r} -> {target_lang!r}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{func}: no such folder: {data_dir}")
    return read_parallel(data_dir / f"{split}.{source_lang}.gz", data_dir / f"{split}.{target_lang}.gz",
                         max_len=max_len)


# ----------------------------------------------------------------------------- synthetic tasks

def _random_strings(rng: np.random.Generator, count: int, min_len: int, max_len: int) -> list[str]:
    lengths = rng.integers(min_len, max_len + 1, size=count)
    letters = np.array(list(ALPHABET))
    return ["".join(letters[rng.integers(0, 26, size=n)]) for n in lengths]


def _synthetic(func: str, transform: Callable[[str], str], num_train: int, num_valid: int,
               min_len: int, max_len: int, seed) -> tuple[list[SentencePair], list[SentencePair]]:
    for name, value, low in (("num_train", num_train, 0), ("num_valid", num_valid, 0),
                             ("min_len", min_len, 1), ("max_len", max_len, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{func}: {name} must be an int >= {low}, got {value!r}")
    if max_len < min_len:
        raise ValueError(f"{func}: max_len ({max_len}) must be >= min_len ({min_len})")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    sources = _random_strings(rng, num_train + num_valid, min_len, max_len)
    pairs = [SentencePair(s, transform(s)) for s in sources]
    return pairs[:num_train], pairs[num_train:]


def reversal_task(num_train: int = 3000, num_valid: int = 300, min_len: int = 10, max_len: int = 12,
                  seed: int | np.random.Generator = 0) -> tuple[list[SentencePair], list[SentencePair]]:
    """The book's sequence-reversal task: "abc..." -> "...cba" (train, valid), one letter a token."""
    return _synthetic("reversal_task", lambda s: s[::-1], num_train, num_valid, min_len, max_len, seed)


def copy_task(num_train: int = 3000, num_valid: int = 300, min_len: int = 10, max_len: int = 12,
              seed: int | np.random.Generator = 0) -> tuple[list[SentencePair], list[SentencePair]]:
    """Copying: the target equals the source (the easiest alignment: the diagonal)."""
    return _synthetic("copy_task", lambda s: s, num_train, num_valid, min_len, max_len, seed)


def sort_task(num_train: int = 3000, num_valid: int = 300, min_len: int = 10, max_len: int = 12,
              seed: int | np.random.Generator = 0) -> tuple[list[SentencePair], list[SentencePair]]:
    """Sorting: the target is the source's letters in alphabetical order (no fixed alignment)."""
    return _synthetic("sort_task", lambda s: "".join(sorted(s)), num_train, num_valid, min_len,
                      max_len, seed)
