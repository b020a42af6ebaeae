"""Recipe ``python -m models seq2seq``: the GRU encoder-decoder with attention of chapter 2.

Default: the book's sequence-reversal task ("abcdef" -> "fedcba", 3,000 training / 300 validation
strings of 10-12 letters) with the book's ``AttnDecoderRNN``. Reversal is hard without attention
(the first output letter is the LAST input letter, furthest back in the encoder's memory) and easy
with it (output t looks at source position S - t: an anti-diagonal heatmap).

Each epoch prints the training loss and the validation loss, perplexity and exact-match accuracy
(greedy decoding). At the end: exact match with beam search, attention heatmaps (PNG), loss and
perplexity plots, ``metrics.json`` and a checkpoint (``--resume`` continues from it).
``--compare`` trains every attention type and the no-attention baseline with the same budget and
prints the exact-match table. ``--data DIR`` trains on Multi30k (English -> German) instead.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from models.progress import progress_bar
from models.recipes.common import (TrainingFlags, add_common_arguments, print_line, report_error, train_config,
                                   write_metrics)

TASKS = ("reversal", "copy", "sort")
# --compare: (label, attention, luong method)
VARIANTS = (("book (AttnDecoderRNN)", "book", "dot"), ("Bahdanau (additive)", "bahdanau", "dot"),
            ("Luong dot", "luong", "dot"), ("Luong general", "luong", "general"),
            ("no attention", "none", "dot"))
# options that fix the model and data: a checkpoint only resumes a run with the same ones
ARCHITECTURE_KEYS = ("task", "data", "attention", "luong_method", "hidden_size", "num_train", "num_valid",
                     "max_len", "max_train", "seed", "max_length")
CHECKPOINT = "checkpoint.safetensors"
TRAINING = TrainingFlags(epochs=8, checkpoint=CHECKPOINT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/seq2seq", seed="the data, weights, batch order and dropout",
                         training=TRAINING)
    parser.add_argument("--task", choices=TASKS, default="reversal", help="synthetic task (default: reversal)")
    parser.add_argument("--attention", choices=("book", "bahdanau", "luong", "none"), default="book",
                        help="decoder: the book's AttnDecoderRNN, Bahdanau, Luong, or no attention")
    parser.add_argument("--luong-method", choices=("dot", "general", "concat"), default="dot",
                        help="Luong score function")
    parser.add_argument("--data", type=Path, default=None,
                        help="Multi30k folder ({train,val}.{en,de}.gz), e.g. ../shared/data/multi30k")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden-size", type=int, default=128, help="GRU state and embedding size")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--teacher-forcing", type=float, default=0.5,
                        help="probability that a batch is trained with teacher forcing (book: 0.5)")
    parser.add_argument("--dropout", type=float, default=0.1, help="decoder embedding dropout")
    parser.add_argument("--beam-size", type=int, default=4, help="beam size of the final evaluation (1 = greedy)")
    parser.add_argument("--length-penalty", type=float, default=0.0, help="GNMT length penalty alpha of the beam")
    parser.add_argument("--num-train", type=int, default=3000, help="synthetic training pairs")
    parser.add_argument("--num-valid", type=int, default=300, help="synthetic validation pairs")
    parser.add_argument("--max-len", type=int, default=20, help="Multi30k: drop pairs with more tokens")
    parser.add_argument("--max-train", type=int, default=None, help="Multi30k: use only the first N pairs")
    parser.add_argument("--heatmaps", type=int, default=3, help="attention heatmaps of validation examples")
    parser.add_argument("--compare", action="store_true",
                        help="train every attention type and the no-attention baseline, print the table")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads while the recipe runs (0 = leave as is). The matrices here are "
                             "tiny: 1 is fastest, and several threads on a busy machine can be 30x slower")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (the same as --no-progress)")


def _check_args(args: argparse.Namespace) -> None:
    def positive(name: str) -> None:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"seq2seq recipe: --{name.replace('_', '-')} must be >= 1, got {value}")

    for name in ("batch_size", "hidden_size", "beam_size", "num_train", "num_valid", "max_len", "max_train"):
        positive(name)
    if not 0.0 <= args.teacher_forcing <= 1.0:
        raise ValueError(f"seq2seq recipe: --teacher-forcing must be in [0, 1], got {args.teacher_forcing}")
    if not 0.0 <= args.dropout < 1.0:
        raise ValueError(f"seq2seq recipe: --dropout must be in [0, 1), got {args.dropout}")
    if not args.lr > 0:
        raise ValueError(f"seq2seq recipe: --lr must be > 0, got {args.lr}")
    if args.heatmaps < 0:
        raise ValueError(f"seq2seq recipe: --heatmaps must be >= 0, got {args.heatmaps}")


# ---------------------------------------------------------------------------------------------- data
def _load_data(args: argparse.Namespace):
    """(train, valid ParallelDataset, description, joiner for printing)."""
    from models.data.parallel import copy_task, read_multi30k, reversal_task, sort_task
    from models.data.parallel_batching import ParallelDataset

    if args.data is not None:
        train_pairs = read_multi30k(args.data, "train", max_len=args.max_len)
        valid_pairs = read_multi30k(args.data, "val", max_len=args.max_len)
        if args.max_train:
            train_pairs = train_pairs[:args.max_train]
        train = ParallelDataset.build(train_pairs, min_freq=2)
        return train, train.encode(valid_pairs), f"Multi30k en->de ({args.data})", " "
    make = {"reversal": reversal_task, "copy": copy_task, "sort": sort_task}[args.task]
    train_pairs, valid_pairs = make(args.num_train, args.num_valid, seed=args.seed)
    train = ParallelDataset.synthetic(train_pairs)
    return train, train.encode(valid_pairs), f"{args.task} task (synthetic)", ""


def _config(args: argparse.Namespace, max_length: int) -> dict:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
              if k in ARCHITECTURE_KEYS}
    config["max_length"] = max_length
    return config


# ---------------------------------------------------------------------------------------------- plots
def _plot_curves(path: Path, history: dict, title: str) -> None:
    from models.plotting import save_figure, subplots

    fig, (ax, ax2) = subplots(1, 2, figsize=(10, 3.8))
    steps, epochs = history["steps"], history["epochs"]
    per_epoch = max(1, steps["epoch"].count(1))  # steps in an epoch: the x axis counts epochs
    ax.plot([s / per_epoch for s in steps["step"]], steps["loss"], lw=0.6, alpha=0.6, label="train (batch)")
    numbers = [e["epoch"] for e in epochs]
    ax.plot(numbers, [e["valid_loss"] for e in epochs], marker="o", label="valid")
    ax.set(xlabel="epoch", ylabel="NLL per token (log scale)", yscale="log", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax2.plot(numbers, [e["valid_perplexity"] for e in epochs], marker="o", color="tab:orange",
             label="valid perplexity")
    ax2.set(xlabel="epoch", ylabel="validation perplexity (log scale)", yscale="log")
    ax3 = ax2.twinx()
    ax3.plot(numbers, [100 * e["exact_match"] for e in epochs], marker="s", color="tab:green",
             label="exact match %")
    ax3.set(ylabel="exact match % (greedy)", ylim=(-2, 102))
    ax2.grid(alpha=0.3)
    handles = ax2.get_legend_handles_labels()[0] + ax3.get_legend_handles_labels()[0]
    ax2.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


# ---------------------------------------------------------------------------------------------- one run
def _train_run(args: argparse.Namespace, out: Path, label: str) -> dict:
    """Train one model (resuming if asked) and evaluate it; returns the metrics."""
    import numpy as np

    import minigrad
    from models.metrics import corpus_bleu
    from models.seq2seq import Seq2SeqTraining, build_seq2seq, evaluate, plot_attention
    from models.training import Trainer

    start = time.perf_counter()
    train, valid, description, joiner = _load_data(args)
    max_length = int(max(train.src_lengths.max(), valid.src_lengths.max()))
    config = _config(args, max_length)
    tv = train.tgt_vocab
    model = build_seq2seq(args.attention, len(train.src_vocab), len(tv), hidden_size=args.hidden_size,
                          max_length=max_length, luong_method=args.luong_method, dropout=args.dropout,
                          bos_id=tv.bos_id, eos_id=tv.eos_id, pad_id=tv.pad_id,
                          src_pad_id=train.src_vocab.pad_id, seed=args.seed)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=args.lr)
    out.mkdir(parents=True, exist_ok=True)
    task = Seq2SeqTraining(model, train, seed=args.seed, batch_size=args.batch_size,
                           teacher_forcing_ratio=args.teacher_forcing)

    def validation(m) -> dict:
        result = evaluate(m, valid)
        return {"valid_loss": result["loss"], "valid_perplexity": result["perplexity"],
                "exact_match": result["exact_match"], "token_accuracy": result["token_accuracy"]}

    trainer = Trainer(model, optimizer, task.loss, train_config(args, TRAINING, max_grad_norm=5.0),
                      evaluate=validation, checkpoint_path=out / CHECKPOINT, rngs=task.rngs, run_config=config,
                      name="seq2seq recipe", log=print_line, progress=not args.quiet)
    n_params = sum(p.data.size for p in model.parameters())
    print(f"{label}: {description}; {len(train):,} train / {len(valid):,} valid pairs; vocab "
          f"{len(train.src_vocab)}/{len(tv)}; {n_params:,} parameters")
    if args.resume:
        trainer.resume()
    trainer.fit(task.batches)
    history = trainer.history
    if not history["steps"]:
        raise ValueError(f"seq2seq recipe: nothing to do: --epochs {args.epochs} and no epoch was trained")

    # ---- final evaluation: greedy (already in the history) and beam search
    final = evaluate(model, valid)
    refs = [valid.targets[i][1:-1].tolist() for i in range(len(valid))]
    beam_exact, beam_outputs = None, None
    if args.beam_size > 1:
        beam_outputs = []
        for i in progress_bar(range(len(valid)), desc=f"beam {args.beam_size}", disable=args.quiet):
            best = model.beam_decode(valid.sources[i], beam_size=args.beam_size, max_len=len(refs[i]) + 10,
                                     length_penalty=args.length_penalty)[0][0]
            beam_outputs.append(best[:-1] if best and best[-1] == tv.eos_id else best)
        beam_exact = float(np.mean([o == r for o, r in zip(beam_outputs, refs)]))

    def text(ids):
        return joiner.join(tv.decode(np.asarray(ids, dtype=np.int64), skip_specials=True))

    examples = [{"source": valid.pairs[i].source, "reference": valid.pairs[i].target,
                 "greedy": text(final["outputs"][i]),
                 **({"beam": text(beam_outputs[i])} if beam_outputs else {})} for i in range(min(5, len(valid)))]
    bleu = None
    if args.data is not None:  # real translation: BLEU of the greedy outputs (sacrebleu's 13a)
        bleu = corpus_bleu([text(o) for o in final["outputs"]], [[p.target.lower()] for p in valid.pairs]).score

    if not args.no_plot:
        _plot_curves(out / "loss.png", history, f"{label}: {description}")
        for i in range(min(args.heatmaps, len(valid))):
            src_tokens = train.src_vocab.decode(valid.sources[i])
            out_ids = final["outputs"][i] + [tv.eos_id]
            weights = model.attention_for(valid.sources[i], out_ids)
            if weights is not None:
                plot_attention(out / f"attention_{i}.png", weights, src_tokens, tv.decode(np.asarray(out_ids)),
                               title=f"{label}: {valid.pairs[i].source} -> {text(final['outputs'][i])}")
    metrics = {
        "label": label, "description": description, "config": config, "parameters": int(n_params),
        "epochs": trainer.epoch, "first_batch_loss": history["steps"]["loss"][0],
        "final_train_loss": history["epochs"][-1]["train_loss"] if history["epochs"] else None,
        "valid_loss": final["loss"],
        "valid_perplexity": final["perplexity"], "exact_match_greedy": final["exact_match"],
        "exact_match_beam": beam_exact, "beam_size": args.beam_size, "token_accuracy": final["token_accuracy"],
        "bleu_greedy": bleu, "examples": examples, "history": history["epochs"], "stopped": trainer.stopped,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_metrics(out, metrics)
    return metrics


def _print_summary(m: dict, out: Path) -> None:
    ex = m["examples"][0]
    last = "" if m["final_train_loss"] is None else f" -> {m['final_train_loss']:.4f} (last epoch)"
    print(f"\nloss {m['first_batch_loss']:.3f} (first batch){last}; valid perplexity {m['valid_perplexity']:.4f}")
    line = f"exact match on {m['config'].get('num_valid')} validation pairs: greedy {100 * m['exact_match_greedy']:.1f}%"
    if m["exact_match_beam"] is not None:
        line += f", beam {m['beam_size']} {100 * m['exact_match_beam']:.1f}%"
    if m["config"].get("data"):
        line = f"validation: greedy exact match {100 * m['exact_match_greedy']:.1f}%, BLEU {m['bleu_greedy']:.2f}"
    print(line)
    print(f"example: {ex['source']!r} -> {ex['greedy']!r} (reference {ex['reference']!r})")
    print(f"wrote {out / 'metrics.json'}, {out / 'checkpoint.safetensors'} ({m['seconds']:.1f} s)")


def _compare(args: argparse.Namespace) -> int:
    from models.text import atomic_write_text

    rows = []
    for label, attention, method in VARIANTS:
        run_args = argparse.Namespace(**{**vars(args), "attention": attention, "luong_method": method,
                                         "heatmaps": min(args.heatmaps, 1)})
        m = _train_run(run_args, args.out / f"{attention}-{method}" if attention == "luong" else
                       args.out / attention, label)
        rows.append(m)
        print()
    beam = args.beam_size > 1
    head = ("| decoder | exact match (greedy) | " + (f"exact match (beam {args.beam_size}) | " if beam else "")
            + "token accuracy | valid loss | parameters | time |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for m in rows:
        cells = [m["label"], f"{100 * m['exact_match_greedy']:.1f}%"]
        if beam:
            cells.append(f"{100 * m['exact_match_beam']:.1f}%")
        cells += [f"{100 * m['token_accuracy']:.1f}%", f"{m['valid_loss']:.4f}", f"{m['parameters']:,}",
                  f"{m['seconds']:.0f} s"]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(f"{rows[0]['description']}, {args.epochs} epochs each, seed {args.seed}:\n{table}")
    atomic_write_text(args.out / "compare.md", table + "\n")
    atomic_write_text(args.out / "compare.json", json.dumps(
        [{k: v for k, v in m.items() if k not in ("history", "examples")} for m in rows], indent=2) + "\n")
    print(f"wrote {args.out / 'compare.md'}")
    return 0


def _blas_threads(n: int):
    """Limit the BLAS thread pool to n threads while the recipe runs. Before NumPy is loaded the
    environment variables do it; afterwards (e.g. called from tests) threadpoolctl, if installed."""
    import contextlib
    import os

    if n <= 0:
        return contextlib.nullcontext()
    if "numpy" not in sys.modules:  # OpenBLAS sizes its pool from these when NumPy loads it
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(n)
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def run(args: argparse.Namespace) -> int:
    with _blas_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        _check_args(args)
        if args.compare:
            return _compare(args)
        label = {"book": "book (AttnDecoderRNN)", "bahdanau": "Bahdanau (additive)",
                 "luong": f"Luong {args.luong_method}", "none": "no attention"}[args.attention]
        metrics = _train_run(args, args.out, label)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    _print_summary(metrics, args.out)
    return 0
