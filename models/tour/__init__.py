"""The tour of the book (``python -m models demo``): one short stop per chapter, on embedded data only.

Each stop is a function ``stop(ctx) -> StopResult`` that runs one chapter's model for a few seconds
(seeded with ``ctx.seed``), returns a one-line summary for the terminal, a few lines of Markdown for
``runs/demo/report.md`` and the PNGs it wrote. The stops live beside the chapters they show:
``models.tour.language`` (chapters 1-3) and ``models.tour.pretrained`` (chapters 4-5, the appendix).
A stop that needs an optional package (the MiniLM or SmolLM2 weights) runs a small stand-in without
it and says how to install the real one.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable


@dataclasses.dataclass
class TourContext:
    """What every stop gets: where to write its PNGs, the seed, whether to draw."""

    out: Path
    seed: int = 0
    plots: bool = True

    def figure(self, name: str) -> Path | None:
        """The path of a PNG to write, or None when plots are off."""
        return self.out / name if self.plots else None


@dataclasses.dataclass
class StopResult:
    summary: str  # one line for the terminal
    lines: list[str]  # Markdown for the report
    figures: list[tuple[Path, str]] = dataclasses.field(default_factory=list)  # (PNG, caption)


@dataclasses.dataclass(frozen=True)
class Stop:
    key: str  # what --chapter takes
    section: str  # the book's section
    title: str
    run: Callable[[TourContext], StopResult]


def stops() -> list[Stop]:
    """Every stop, in the book's order."""
    from models.tour import language, pretrained

    return [
        Stop("1", "§ 1", "N-gram language models", language.ngram),
        Stop("1.4", "§ 1.4", "a GRU language model", language.gru_lm),
        Stop("2", "§ 2", "attention: seq2seq on the reversal task", language.seq2seq),
        Stop("3", "§ 3", "the Transformer: a training step, cached = uncached decoding", language.transformer),
        Stop("4", "§ 4.2", "BERT", pretrained.bert),
        Stop("4.3", "§§ 4.3-4.9", "BERT's successors: parameters, long attention", pretrained.successors),
        Stop("5", "§ 5.1-5.2", "meta-learning: a few-shot episode", pretrained.fewshot),
        Stop("5.3", "§ 5.3", "GPT: generation and in-context learning", pretrained.gpt),
        Stop("appendix", "appendix", "int8 quantization", pretrained.quantization),
    ]


def stop_keys() -> list[str]:
    return [s.key for s in stops()]


def run_tour(ctx: TourContext, keys: list[str] | None = None,
             log=print) -> tuple[Path, list[tuple[Stop, StopResult, float]]]:
    """Run the chosen stops (all by default), printing one line each, and write ``report.md``."""
    chosen = [s for s in stops() if keys is None or s.key in keys]
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = []
    start = time.perf_counter()
    for i, stop in enumerate(chosen, 1):
        tic = time.perf_counter()
        result = stop.run(ctx)
        seconds = time.perf_counter() - tic
        results.append((stop, result, seconds))
        log(f"[{i}/{len(chosen)}] {stop.section:<10} {seconds:5.1f} s  {result.summary}")
    total = time.perf_counter() - start
    path = write_report(ctx.out / "report.md", results, total, ctx.seed)
    return path, results


def report_markdown(results, total_seconds: float, seed: int) -> str:
    """The report: one section per stop, its lines and its figures (linked relative to the report)."""
    out = ["# A tour of 『안녕, 트랜스포머』 in minigrad", "",
           f"`python -m models demo --seed {seed}`: {len(results)} stops in {total_seconds:.0f} s, embedded data "
           "only. Each stop names the recipe that runs its chapter in full; the book map in the README lists "
           "the code and the test behind each.", ""]
    for stop, result, seconds in results:
        out += [f"## {stop.section} — {stop.title}", "", f"*{seconds:.1f} s*", "", *result.lines, ""]
        for png, caption in result.figures:
            out += [f"![{caption}]({png.name})", ""]
    return "\n".join(out)


def write_report(path: Path, results, total_seconds: float, seed: int) -> Path:
    from models.text import atomic_write_text

    atomic_write_text(path, report_markdown(results, total_seconds, seed))
    return path
