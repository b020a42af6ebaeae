"""Recipe ``python -m models transformer``: train the Transformer (book ch. 3) to translate.

By default a synthetic task that needs no download (the book's sequence reversal: random strings
of 10-12 letters, reversed; ``--task copy|sort`` for the others), which a small model learns in a
couple of minutes — the report is the exact-match rate on 300 validation strings. With
``--data ../shared/data/multi30k`` it trains English→German on Multi30k (29,000 pairs) and
reports perplexity and BLEU (sacrebleu's, case-insensitive, 13a) on val and test_2016_flickr.

Each epoch: label-smoothed training loss, validation loss/perplexity, exact match or BLEU (greedy),
and a checkpoint ``checkpoint.safetensors`` (model, Adam, Noam schedule, dropout stream, history)
so ``--resume`` continues exactly where it stopped; ``best.safetensors`` keeps the weights of the
epoch with the best validation score (early stopping), which the final evaluation uses. At the end:
greedy and beam-search scores,
a check that cached decoding equals full recomputation, ``metrics.json``, ``curves.png``
(loss and perplexity) and ``cross_attention.png`` (where each output token looks in the source).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from models.progress import progress_bar
from models.recipes.common import (TrainingFlags, add_common_arguments, print_line, report_error, resume_if_asked,
                                   train_config, write_metrics)

TASKS = ("reversal", "copy", "sort")
# per-setting defaults (an explicit option wins)
SYNTHETIC_DEFAULTS = dict(d_model=64, layers=2, heads=4, ff=256, dropout=0.1, batch_size=64, epochs=16,
                          warmup=300, lr_factor=0.3, beam_size=4, min_freq=1)
MULTI30K_DEFAULTS = dict(d_model=256, layers=3, heads=4, ff=512, dropout=0.1, batch_size=64, epochs=20,
                         warmup=400, lr_factor=0.4, beam_size=4, min_freq=2)
CHECKPOINT = "checkpoint.safetensors"
BEST = "best.safetensors"  # weights of the epoch with the best validation score
# --time-budget: a bare number is minutes here (long runs); no epoch is started that would end past it
TRAINING = TrainingFlags(epochs=None, epochs_help="default: synthetic 16, Multi30k 20", checkpoint=CHECKPOINT,
                         time_unit="min", whole_epochs=True)
# options that shape the run besides the model's config: a checkpoint only resumes under the same values
_SHAPING = ("task", "data", "seed", "batch_size", "warmup", "lr_factor", "max_len", "min_freq", "shared_vocab")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None,
                        help="Multi30k folder ({train,val,test_2016_flickr}.{en,de}.gz); default: a synthetic task")
    parser.add_argument("--task", choices=TASKS, default="reversal", help="synthetic task (without --data)")
    add_common_arguments(parser, out="runs/transformer", seed="data, initialisation, dropout and batches",
                         training=TRAINING)
    parser.add_argument("--batch-size", type=int, default=None, help="sentence pairs per batch (64)")
    parser.add_argument("--d-model", type=int, default=None, help="model width (64 / 256)")
    parser.add_argument("--layers", type=int, default=None, help="encoder and decoder layers each (2 / 3)")
    parser.add_argument("--heads", type=int, default=None, help="attention heads (4)")
    parser.add_argument("--ff", type=int, default=None, help="feed-forward width (256 / 512)")
    parser.add_argument("--dropout", type=float, default=None, help="dropout (0.1)")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing ε (0.1)")
    parser.add_argument("--warmup", type=int, default=None, help="Noam warm-up steps (300 / 400)")
    parser.add_argument("--lr-factor", type=float, default=None, help="Noam factor (0.3 / 0.4)")
    parser.add_argument("--norm-first", action="store_true", help="Pre-LN blocks instead of the paper's Post-LN")
    parser.add_argument("--no-tie", action="store_true", help="separate output projection (default: tied)")
    parser.add_argument("--shared-vocab", action="store_true",
                        help="one vocabulary and embedding for both languages (always on for synthetic tasks)")
    parser.add_argument("--min-freq", type=int, default=None, help="rarer words become <unk> (Multi30k: 2)")
    parser.add_argument("--max-len", type=int, default=50, help="drop training pairs with more tokens (Multi30k)")
    parser.add_argument("--beam-size", type=int, default=None, help="beam width of the final evaluation (4)")
    parser.add_argument("--length-penalty", type=float, default=0.6, help="GNMT length penalty α (0.6)")
    parser.add_argument("--threads", type=int, default=0,
                        help="BLAS threads (0 = leave as is; needs threadpoolctl, else set OPENBLAS_NUM_THREADS)")


# ---------------------------------------------------------------------- setup
def _fill_defaults(args: argparse.Namespace) -> None:
    defaults = MULTI30K_DEFAULTS if args.data is not None else SYNTHETIC_DEFAULTS
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key in ("batch_size", "d_model", "layers", "heads", "ff", "warmup", "beam_size", "min_freq"):
        if getattr(args, key) < 1:
            raise ValueError(f"transformer recipe: --{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if args.d_model % args.heads:
        raise ValueError(f"transformer recipe: --d-model {args.d_model} must be divisible by --heads {args.heads}")


def _set_threads(n: int) -> None:
    if n <= 0:
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("note: --threads needs threadpoolctl; set OPENBLAS_NUM_THREADS instead", file=sys.stderr)
        return
    threadpool_limits(n)


def _load_data(args: argparse.Namespace):
    """(train, valid, test or None) ParallelDatasets and the text of the references."""
    from models.data.parallel import copy_task, read_multi30k, reversal_task, sort_task
    from models.data.parallel_batching import ParallelDataset

    if args.data is None:
        make = {"reversal": reversal_task, "copy": copy_task, "sort": sort_task}[args.task]
        train_pairs, valid_pairs = make(seed=args.seed)
        train = ParallelDataset.synthetic(train_pairs)
        return train, train.encode(valid_pairs), None
    train_pairs = read_multi30k(args.data, "train", max_len=args.max_len)
    train = ParallelDataset.build(train_pairs, shared_vocab=args.shared_vocab, min_freq=args.min_freq)
    return train, train.encode(read_multi30k(args.data, "val")), train.encode(read_multi30k(args.data,
                                                                                               "test_2016_flickr"))


def _build_model(args: argparse.Namespace, train):
    from models.transformer import TransformerConfig, TransformerTranslator

    sv, tv = train.src_vocab, train.tgt_vocab
    config = TransformerConfig(
        len(sv), len(tv), d_model=args.d_model, nhead=args.heads, num_encoder_layers=args.layers,
        num_decoder_layers=args.layers, dim_feedforward=args.ff, dropout=args.dropout,
        label_smoothing=args.label_smoothing, pad_id=tv.pad_id, bos_id=tv.bos_id, eos_id=tv.eos_id,
        share_embeddings=sv is tv, tie_output=not args.no_tie, norm_first=args.norm_first)
    if sv.pad_id != tv.pad_id:
        raise ValueError("transformer recipe: source and target vocabularies must share the <pad> id")
    return TransformerTranslator(config, seed=args.seed)


# ---------------------------------------------------------------------- train and evaluate
def _make_trainer(args: argparse.Namespace, model, opt, sched, evaluate=None, log=print_line):
    """This recipe's training loop: Adam with the Noam schedule stepped every batch, the model's
    dropout stream in the checkpoint, and the best epoch chosen by exact match (or BLEU), ties
    going to the lower validation loss; its weights are kept in OUT/best.safetensors."""
    from models.training import Trainer
    from models.transformer import batch_loss

    key = "exact_match" if args.data is None else "bleu"
    config = train_config(args, TRAINING, best_metric=(key, "valid_loss"), best_mode=("max", "min"))
    run_config = {**model.config.to_dict(),
                  **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k in _SHAPING}}
    return Trainer(model, opt, batch_loss, config, scheduler=sched, evaluate=evaluate,
                   checkpoint_path=args.out / CHECKPOINT, best_path=args.out / BEST,
                   rngs={"dropout": model.generator}, run_config=run_config, name="transformer recipe", log=log,
                   size_unit="tokens")


def epoch_batches(args: argparse.Namespace, train, epoch: int):
    """The shuffled, length-bucketed batches of the loop's epoch ``epoch`` (seeded by seed and epoch)."""
    return train.batches(args.batch_size, seed=args.seed * 100_003 + epoch + 1)


def _detok(args, vocab, ids) -> str:
    return ("" if args.data is None else " ").join(vocab.decode(ids, skip_specials=True))


def _score(model, ds, args, beam_size: int = 1) -> dict:
    """Exact match (synthetic) or BLEU (real data) of decoded outputs, plus a few samples."""
    from models.transformer import bleu, translate_corpus

    progress = (lambda it: progress_bar(it, desc=f"decode (beam {beam_size})", unit="batch"))
    hyps = translate_corpus(model, ds.sources, batch_size=64 if beam_size == 1 else 1, beam_size=beam_size,
                            length_penalty=args.length_penalty, progress=progress)
    texts = [_detok(args, ds.tgt_vocab, h) for h in hyps]
    refs = [p.target for p in ds.pairs]
    out = {"samples": [{"source": p.source, "reference": p.target, "output": t}
                       for p, t in list(zip(ds.pairs, texts))[:5]]}
    if args.data is None:
        out["exact_match"] = sum(t == r for t, r in zip(texts, refs)) / len(refs)
    else:
        out["bleu"] = bleu(texts, refs, lowercase=True)
    return out


def _evaluate_epoch(model, valid, args) -> dict:
    """Validation loss and perplexity (no smoothing) and greedy exact match or BLEU."""
    from models.transformer import evaluate_loss

    res = evaluate_loss(model, [(b.src, b.tgt) for b in valid.batches(128, shuffle=False)])
    scores = {k: v for k, v in _score(model, valid, args).items() if k != "samples"}
    return {"valid_loss": res["loss"], "valid_perplexity": res["perplexity"], **scores}


# ---------------------------------------------------------------------- plots
def _plot_curves(path: Path, history: list) -> None:
    from models.plotting import save_figure, subplots

    ep = [h["epoch"] for h in history]
    fig, (a, b) = subplots(1, 2, figsize=(10, 3.8))
    a.plot(ep, [h["train_loss"] for h in history], marker="o", label="train (label-smoothed)")
    a.plot(ep, [h["valid_loss"] for h in history], marker="o", label="valid (NLL)")
    a.set(xlabel="epoch", ylabel="loss per token (nats)", title="loss")
    b.plot(ep, [h["valid_perplexity"] for h in history], marker="o", color="tab:green")
    b.set(xlabel="epoch", ylabel="perplexity", yscale="log", title="validation perplexity")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    a.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _plot_attention(path: Path, model, ds, args, index: int = 0) -> None:
    """Cross-attention of the last decoder layer for one validation sentence (output × source)."""
    import numpy as np

    from models.plotting import save_figure, subplots

    src = ds.sources[index][None]  # (1, S)
    out = model.translate(src)[0]
    tgt_in = np.array([[model.config.bos_id] + out], dtype=np.int64)  # predicts out + </s>
    w = model.cross_attention_weights(src, tgt_in)[0]  # (T, S)
    src_tok = ds.src_vocab.decode(src[0])
    out_tok = ds.tgt_vocab.decode(np.array(out + [model.config.eos_id], dtype=np.int64))
    fig, ax = subplots(figsize=(max(4, 0.45 * len(src_tok) + 2), max(3, 0.4 * len(out_tok) + 1.5)))
    ax.imshow(w, cmap="viridis", aspect="auto", vmin=0.0)
    ax.set_xticks(range(len(src_tok)), src_tok, rotation=60, ha="right")
    ax.set_yticks(range(len(out_tok)), out_tok)
    ax.set(xlabel="source", ylabel="output", title="cross-attention (last decoder layer, mean of heads)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


# ---------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> int:
    import numpy as np

    from models.transformer import check_cached_decoding, evaluate_loss, make_optimizer

    start = time.perf_counter()
    try:
        _fill_defaults(args)
        train, valid, test = _load_data(args)
        model = _build_model(args, train)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    _set_threads(args.threads)
    name = f"Multi30k en→de ({args.data})" if args.data is not None else f"synthetic {args.task} task"
    n_params = sum(p.data.size for p in model.parameters())
    print(f"{name}: {len(train):,} train / {len(valid):,} valid pairs; vocab {len(train.src_vocab):,} → "
          f"{len(train.tgt_vocab):,}; model d={args.d_model}, {args.layers}+{args.layers} layers, "
          f"{args.heads} heads, ff {args.ff}: {n_params:,} parameters")

    args.out.mkdir(parents=True, exist_ok=True)
    opt, sched = make_optimizer(model, warmup_steps=args.warmup, factor=args.lr_factor)
    trainer = _make_trainer(args, model, opt, sched, evaluate=lambda m: _evaluate_epoch(m, valid, args))
    if not resume_if_asked(trainer, args):
        return 2
    train.src_vocab.save(args.out / "src_vocab.json")
    train.tgt_vocab.save(args.out / "tgt_vocab.json")

    trainer.fit(lambda epoch: epoch_batches(args, train, epoch))
    history = trainer.history["epochs"]
    train_minutes = trainer.elapsed / 60
    best = trainer.best
    if trainer.load_best():
        print(f"final evaluation with the best epoch on validation: {best['epoch']}")

    final = {}
    for split, ds in (("valid", valid), ("test", test)):
        if ds is None:
            continue
        res = evaluate_loss(model, [(b.src, b.tgt) for b in ds.batches(128, shuffle=False)])
        greedy = _score(model, ds, args, beam_size=1)
        final[split] = {"loss": res["loss"], "perplexity": res["perplexity"], "greedy": greedy}
        if args.beam_size > 1 and (args.data is None or split == "test"):
            final[split]["beam"] = _score(model, ds, args, beam_size=args.beam_size)
    probe = valid.batch(np.arange(min(8, len(valid))))
    cached_ok = (check_cached_decoding(model, probe.src) and
                 check_cached_decoding(model, probe.src[:1], beam_size=min(args.beam_size, 3)))

    key = "exact_match" if args.data is None else "bleu"
    print(f"\nresults after {len(history)} epochs ({train_minutes:.1f} min of training; best epoch "
          f"{best and best['epoch']}):")
    for split, res in final.items():
        line = f"  {split:5s}  ppl {res['perplexity']:.2f}   greedy {key} {_fmt(key, res['greedy'][key])}"
        if "beam" in res:
            line += f"   beam {args.beam_size} {key} {_fmt(key, res['beam'][key])}"
        print(line)
    print(f"  cached decoding = uncached: {cached_ok}")
    for s in final["valid"]["greedy"]["samples"][:3]:
        print(f"  {s['source']!r} → {s['output']!r} (reference {s['reference']!r})")

    if not args.no_plot and history:
        _plot_curves(args.out / "curves.png", history)
        _plot_attention(args.out / "cross_attention.png", model, valid, args)
    metrics = {"task": name, "config": model.config.to_dict(), "parameters": n_params, "seed": args.seed,
               "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k not in ("func",)},
               "history": history, "best_epoch": best and best["epoch"], "stopped": trainer.stopped, "final": final,
               "cached_equals_uncached": cached_ok, "train_minutes": train_minutes,
               "seconds": round(time.perf_counter() - start, 1)}
    print(f"wrote {write_metrics(args.out, metrics)}" + ("" if args.no_plot else ", curves.png, cross_attention.png")
          + f" ({metrics['seconds']:.0f} s)")
    return 0


def _fmt(key: str, value: float) -> str:
    return f"{100 * value:.1f}%" if key == "exact_match" else f"{value:.2f}"
