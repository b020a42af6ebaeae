"""Recipe ``python -m models ngram``: N-gram LMs with every smoothing, perplexity by order.

The book's "limits of N-gram models" made visible: for n = 1..N and each smoothing, fit on the
training split and print the validation perplexity. Longer contexts help at first, then the
share of validation n-grams never seen in training (printed below the table) grows so fast that
unsmoothed and add-k models get *worse* with n; only the interpolating / backing-off smoothings
(Kneser–Ney best) keep improving, and they too flatten out.

Writes ``metrics.json`` and ``perplexity_by_order.png`` into ``--out`` and prints a few sentences
sampled from the best model.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from models.progress import progress_bar
from models.recipes.common import (TEXT_CORPUS, add_common_arguments, corpus_name, report_error, split_corpus,
                                   write_metrics)

SMOOTHING_LABELS = {
    "mle": "MLE (no smoothing)",
    "laplace": "Laplace (add-1)",
    "add_k": "add-k",
    "interpolated": "Jelinek-Mercer interp.",
    "backoff": "abs. discount backoff",
    "kneser_ney": "Kneser-Ney (interp.)",
    "kneser_ney_modified": "modified Kneser-Ney",
    "stupid_backoff": "stupid backoff *",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/ngram", seed="the train/valid/test split and sampling",
                         corpus=TEXT_CORPUS)
    parser.add_argument("--max-order", type=int, default=5, help="largest n (table covers n = 1..max)")
    parser.add_argument("--min-count", type=int, default=2, help="words seen fewer times become <unk>")
    parser.add_argument("--k", type=float, default=0.1, help="pseudo-count of add-k smoothing")
    parser.add_argument("--smoothings", default=",".join(SMOOTHING_LABELS),
                        help="comma-separated subset of: " + ", ".join(SMOOTHING_LABELS))
    parser.add_argument("--level", choices=("word", "char"), default="word", help="token level")
    parser.add_argument("--samples", type=int, default=3, help="sentences to generate")


def _check_args(args: argparse.Namespace) -> list[str]:
    if not 1 <= args.max_order <= 10:
        raise ValueError(f"ngram recipe: --max-order must be in [1, 10], got {args.max_order}")
    smoothings = [s.strip() for s in args.smoothings.split(",") if s.strip()]
    unknown = [s for s in smoothings if s not in SMOOTHING_LABELS]
    if unknown or not smoothings:
        raise ValueError(f"ngram recipe: unknown smoothing(s) {unknown}; choose from {list(SMOOTHING_LABELS)}")
    return smoothings


def _fit(order: int, smoothing: str, train: list, args: argparse.Namespace, seed: int):
    """Fit one model; Jelinek–Mercer weights are tuned by EM on 10 % of the training sentences
    (then the counts are refit on all of them)."""
    from models.ngram import NGramLM
    from models.text import train_valid_test_split

    kwargs = dict(k=args.k, min_count=args.min_count)
    if smoothing == "kneser_ney_modified":  # three discounts D1, D2, D3+ (Chen & Goodman)
        smoothing, kwargs["modified"] = "kneser_ney", True
    if smoothing == "interpolated" and order > 1:
        fit_part, held, _ = train_valid_test_split(train, (0.9, 0.1, 0.0), seed=seed)
        tuned = NGramLM(order, smoothing, **kwargs).fit(fit_part, held_out=held)
        kwargs["lambdas"] = tuned.lambdas[1:]
    return NGramLM(order, smoothing, **kwargs).fit(train)


def _table(ppl: dict, unseen: dict, smoothings: list[str], orders: list[int]) -> str:
    def fmt(x: float) -> str:
        return "inf" if math.isinf(x) else f"{x:,.1f}"

    head = "| smoothing              | " + " | ".join(f"n={n:<6d}" for n in orders) + " |"
    lines = [head, "|" + "-" * 24 + "|" + "|".join("-" * 10 for _ in orders) + "|"]
    for s in smoothings:
        lines.append(f"| {SMOOTHING_LABELS[s]:<22s} | " + " | ".join(f"{fmt(ppl[s][n]):>8s}" for n in orders) + " |")
    lines.append(f"| {'unseen n-grams (valid)':<22s} | " + " | ".join(f"{100 * unseen[n]:7.1f}%" for n in orders) + " |")
    return "\n".join(lines)


def _plot(path: Path, ppl: dict, unseen: dict, smoothings: list[str], orders: list[int], title: str) -> None:
    from models.plotting import save_figure, subplots

    fig, (ax, ax2) = subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    for s in smoothings:
        ys = [ppl[s][n] if math.isfinite(ppl[s][n]) else float("nan") for n in orders]
        label = SMOOTHING_LABELS[s] + ("" if all(map(math.isfinite, ys)) else " (inf where missing)")
        ax.plot(orders, ys, marker="o", label=label)
    ax.set(xlabel="n (order)", ylabel="validation perplexity (log scale)", yscale="log", xticks=orders, title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax2.bar(orders, [100 * unseen[n] for n in orders], color="tab:gray")
    ax2.set(xlabel="n (order)", ylabel="% of validation n-grams unseen in training", xticks=orders,
            title="sparsity grows with n")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(args: argparse.Namespace) -> int:

    start = time.perf_counter()
    corpus = corpus_name(args)
    try:  # bad options or a bad corpus file: one clear line, no traceback
        smoothings = _check_args(args)
        train, valid, test = split_corpus("ngram", args, level=args.level)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    orders = list(range(1, args.max_order + 1))
    print(f"corpus: {corpus} — {len(train) + len(valid) + len(test):,} sentences; train {sum(map(len, train)):,} / "
          f"valid {sum(map(len, valid)):,} / test {sum(map(len, test)):,} {args.level} tokens")

    ppl: dict[str, dict[int, float]] = {s: {} for s in smoothings}
    models, unseen = {}, {}
    jobs = [(s, n) for s in smoothings for n in orders]
    for s, n in progress_bar(jobs, desc="fitting", unit="model"):
        lm = _fit(n, s, train, args, args.seed)
        ppl[s][n] = lm.perplexity(valid)
        models[s, n] = lm
        if n == args.max_order and not unseen:
            unseen = lm.unseen_ngram_rate(valid)
    vocab_size = models[jobs[0]].num_predictable

    print(f"\nValidation perplexity by order (|V| = {vocab_size:,} incl. </s> and <unk>; "
          f"words seen < {args.min_count}x are <unk>)")
    print(_table(ppl, unseen, smoothings, orders))
    if "stupid_backoff" in smoothings:
        print("* stupid backoff scores are not probabilities (they sum to more than 1), so its "
              "'perplexity' is not comparable.")

    proper = [(ppl[s][n], s, n) for s in smoothings for n in orders
              if s != "stupid_backoff" and math.isfinite(ppl[s][n])]
    best_ppl, best_s, best_n = min(proper) if proper else (math.inf, smoothings[0], 1)
    best = models[best_s, best_n]
    test_ppl = best.perplexity(test)
    print(f"\nbest: {SMOOTHING_LABELS[best_s]}, n={best_n}: valid {best_ppl:,.1f}, test {test_ppl:,.1f}")

    joiner = "" if args.level == "char" else " "
    samples = [joiner.join(best.generate(40, seed=args.seed + i, skip_unk=True)) for i in range(args.samples)]
    print("\nsampled sentences:")
    for text in samples:
        print("  " + text)

    args.out.mkdir(parents=True, exist_ok=True)
    plot_path = args.out / "perplexity_by_order.png"
    if not args.no_plot:
        _plot(plot_path, ppl, unseen, smoothings, orders, f"N-gram LMs on {Path(corpus).name}")
    metrics = {
        "corpus": corpus, "level": args.level, "seed": args.seed, "min_count": args.min_count,
        "vocab_size": vocab_size, "orders": orders,
        "tokens": {"train": sum(map(len, train)), "valid": sum(map(len, valid)), "test": sum(map(len, test))},
        # JSON has no infinity: an infinite perplexity (MLE on unseen n-grams) is written as null
        "valid_perplexity": {s: {str(n): (v if math.isfinite(v) else None) for n, v in row.items()}
                             for s, row in ppl.items()},
        "unseen_ngram_rate_valid": {str(n): r for n, r in unseen.items()},
        "best": {"smoothing": best_s, "order": best_n, "valid_perplexity": best_ppl,
                 "test_perplexity": test_ppl},
        "samples": samples,
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(f"\nwrote {write_metrics(args.out, metrics)}" + ("" if args.no_plot else f" and {plot_path}")
          + f" ({metrics['seconds']:.1f} s)")
    return 0
