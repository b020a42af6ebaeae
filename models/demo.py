"""Recipe ``python -m models demo``: a tour of the book, one stop per chapter, in under three minutes.

    python -m models demo                    # every stop; writes runs/demo/report.md and its PNGs
    python -m models demo --chapter 2        # one stop (1, 1.4, 2, 3, 4, 4.3, 5, 5.3, appendix)

Embedded data only (CPython's documentation text, the synthetic reversal task, the synthetic few-shot
reviews). § 4.2 and the appendix use the real all-MiniLM-L6-v2 and § 5.3 the real SmolLM2-135M when
their packages are installed, and print the install line otherwise. Each stop prints one line; the
report (Markdown, PNGs linked) says more and names the recipe that runs the chapter in full. The stops
are in ``models.tour``; the two-spirals MLP that used to be the demo is ``python -m models mlp-demo``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.recipes.common import add_common_arguments, print_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from models.tour import stop_keys

    parser.add_argument("--chapter", choices=stop_keys(), default=None,
                        help="run only this stop (default: all of them)")
    add_common_arguments(parser, out="runs/demo", seed="every stop's data, initialisation and sampling")


def run(args: argparse.Namespace) -> int:
    from models.tour import TourContext, run_tour

    start = time.perf_counter()
    ctx = TourContext(Path(args.out), seed=args.seed, plots=not args.no_plot)
    print_line(f"A tour of 『안녕, 트랜스포머』 (Hello, Transformer), seed {args.seed}: one line per stop")
    path, _ = run_tour(ctx, None if args.chapter is None else [args.chapter], log=print_line)
    print_line(f"wrote {path} ({time.perf_counter() - start:.0f} s)")
    return 0
