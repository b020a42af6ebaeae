"""What the recipes share: their common command-line flags, defined once here with one help
text and one validation each, and the way a recipe reports a bad input.

    add_common_arguments(parser, out="runs/nplm", seed="the split, initialisation and shuffling",
                         corpus=TEXT_CORPUS, training=TrainingFlags(epochs=8))

gives ``--corpus --out --seed --no-plot`` and, for a recipe that trains, ``--epochs --resume
--time-budget --max-steps`` (``--no-progress`` comes from ``models.cli`` for every recipe).
``train_config(args, ...)`` turns the training flags into a ``models.training.TrainConfig``.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

TEXT_CORPUS = "UTF-8 text file (default: the embedded CPython pydoc topics text)"
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class TrainingFlags:
    """Defaults of a training recipe's flags."""

    epochs: int | None  # default of --epochs; None: the recipe picks one per setting (say which in epochs_help)
    epochs_help: str = ""
    checkpoint: str = "checkpoint.safetensors"  # the file in --out that --resume reads
    time_budget: float | None = None  # default of --time-budget, in seconds (None: no limit)
    time_unit: str = "s"  # the unit of a bare --time-budget number ("s" or "min")
    whole_epochs: bool = False  # the budget stops between epochs (none is started that cannot finish)


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1)  # argparse type: an int >= 1
non_negative_int = _int_at_least(0)  # argparse type: an int >= 0


def duration(default_unit: str):
    """argparse type: a time such as ``840``, ``90s``, ``14m``, ``1.5h`` → seconds (``0``: None, no
    limit). A bare number is in ``default_unit``."""

    def parse(text: str) -> float | None:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*", text)
        if not match:
            raise argparse.ArgumentTypeError(f"expected a time such as 840, 90s, 14m or 1.5h, got {text!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or default_unit]
        return seconds or None

    return parse


def add_common_arguments(parser: argparse.ArgumentParser, *, out: str | None, seed: str | None,
                         corpus: str | None = None, out_help: str | None = None,
                         training: TrainingFlags | None = None, plot: bool = True, data: str | None = None) -> None:
    """Add the flags every recipe shares. ``out``: the default output folder; ``seed``: what the
    seed decides (None: the recipe draws nothing at random); ``corpus``: help of ``--corpus``
    (None: no such flag); ``data``: help of ``--data``, a data folder whose absence means the
    recipe's embedded data (None: no such flag); ``training``: the training flags and their defaults."""
    if corpus is not None:
        parser.add_argument("--corpus", type=Path, default=None, help=corpus)
    if data is not None:
        parser.add_argument("--data", type=Path, default=None, help=data)
    parser.add_argument("--out", type=Path, default=None if out is None else Path(out),
                        help=out_help or f"output folder (default: {out})")
    if seed is not None:
        parser.add_argument("--seed", type=non_negative_int, default=0,
                            help=f"random seed, the same seed gives the same numbers ({seed})")
    if training is not None:
        _add_training_arguments(parser, training)
    if plot:
        parser.add_argument("--no-plot", action="store_true", help="skip the PNGs")


def _add_training_arguments(parser: argparse.ArgumentParser, t: TrainingFlags) -> None:
    default = f"default: {t.epochs}" if t.epochs is not None else "default: per setting"
    parser.add_argument("--epochs", type=positive_int, default=t.epochs,
                        help=f"epochs in all, those of a resumed run included ({t.epochs_help or default})")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue from OUT/{t.checkpoint}: the result equals an uninterrupted run")
    unit = "minutes" if t.time_unit == "min" else "seconds"
    when = ("no epoch is started that would end after it" if t.whole_epochs
            else "training stops at the first optimizer step past it, evaluated and checkpointed")
    shown = "no limit" if t.time_budget is None else f"{t.time_budget:g} s"
    parser.add_argument("--time-budget", type=duration(t.time_unit), default=t.time_budget,
                        help=f"training time allowed, all resumed sessions together: {when}. A bare number is "
                             f"{unit}; 90s, 14m, 1.5h also work; 0: no limit (default: {shown})")
    parser.add_argument("--max-steps", type=positive_int, default=None,
                        help="stop after this many optimizer steps, checkpointed (--resume continues exactly)")


def train_config(args: argparse.Namespace, training: TrainingFlags | None = None, **settings):
    """``TrainConfig`` from the training flags (``--epochs --time-budget --max-steps``) and the
    recipe's own ``settings``."""
    from models.training import TrainConfig

    whole_epochs = bool(training and training.whole_epochs)
    return TrainConfig(epochs=args.epochs, time_budget=args.time_budget, max_steps=args.max_steps,
                       whole_epochs=whole_epochs, **settings)


def corpus_name(args: argparse.Namespace) -> str:
    """How the recipes name their text in prints and metrics.json."""
    return str(args.corpus) if args.corpus else "pydoc_data.topics (embedded)"


def split_corpus(recipe: str, args: argparse.Namespace, level: str = "word") -> tuple[list, list, list]:
    """``--corpus`` as token lists, cut into contiguous chunks of 20 sentences dealt to train /
    valid / test with ``--seed``: chapter 1's one split, so that the N-gram models, Word2Vec and the
    neural LMs are trained and scored on the same text."""
    from models.text import load_corpus, tokenize_sentences, train_valid_test_split

    sentences = tokenize_sentences(load_corpus(args.corpus), level=level)
    if len(sentences) < 10:
        raise ValueError(f"{recipe} recipe: the corpus has only {len(sentences)} sentences; need at least 10")
    return train_valid_test_split(sentences, seed=args.seed, mode="contiguous", chunk_size=20)


def resume_if_asked(trainer, args: argparse.Namespace) -> bool:
    """``--resume``: load the checkpoint into ``trainer`` (a ``models.training.Trainer``). False, the
    reason printed, when it cannot be (no checkpoint, or one made with other options)."""
    if args.resume:
        try:
            trainer.resume()
        except (FileNotFoundError, ValueError) as err:
            report_error(err)
            return False
    return True


def write_metrics(out: Path, metrics: dict) -> Path:
    """``OUT/metrics.json``, written atomically; returns its path."""
    import json

    from models.text import atomic_write_text

    path = Path(out) / "metrics.json"
    atomic_write_text(path, json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return path


def report_error(err: Exception) -> int:
    """A bad option, file or corpus: one line on standard error, no traceback; exit status 2."""
    print(f"error: {err}", file=sys.stderr)
    return 2


def print_line(line: str) -> None:
    """The recipes' log: standard output, flushed at once (a log file under nohup keeps up)."""
    print(line, flush=True)
