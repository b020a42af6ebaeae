"""Recipe ``python -m models word2vec``: skip-gram or CBOW word vectors with negative sampling.

Book § 1.3. Trains Word2Vec on the training split of the corpus (the ``ngram`` recipe's split,
so the ``nplm`` recipe can start from these vectors without seeing validation text), reports
the loss and the training speed in words per second, then shows what the vectors learnt:
nearest neighbours by cosine similarity, a few analogies (a : b :: c : ?) and a 2-D PCA
projection of some word groups.

Writes into ``--out``: ``word2vec.safetensors`` + ``vocab.json`` (``Word2Vec.load(out)``),
``checkpoint.safetensors`` (every epoch; ``--resume`` continues from it and gives the same
curve as an uninterrupted run), ``metrics.json``, ``loss.png`` and ``word_groups.png``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.recipes.common import (TEXT_CORPUS, TrainingFlags, add_common_arguments, corpus_name, print_line,
                                   report_error, resume_if_asked, split_corpus, train_config, write_metrics)

CHECKPOINT = "checkpoint.safetensors"
_SHAPING = ("corpus", "seed", "mode", "dim", "window", "negatives", "min_count", "subsample", "batch_size", "lr")

# probes for the default (Python documentation) corpus; words missing from a corpus are skipped
PROBES = ("int", "list", "true", "exception", "file", "class", "method", "king", "love", "night")
ANALOGIES = (("list", "lists", "tuple"), ("if", "else", "try"), ("true", "false", "yes"),
             ("int", "integer", "float"), ("king", "queen", "man"), ("he", "his", "she"))
GROUPS = {
    "types": ("int", "float", "str", "list", "tuple", "dict", "set", "bytes", "bool"),
    "statements": ("if", "else", "while", "for", "try", "except", "finally", "return", "import"),
    "exceptions": ("typeerror", "valueerror", "keyerror", "attributeerror", "indexerror", "stopiteration"),
    "special methods": ("__init__", "__add__", "__len__", "__getitem__", "__eq__", "__iter__", "__call__"),
}


TRAINING = TrainingFlags(epochs=10, checkpoint=CHECKPOINT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/word2vec", seed="the split, initialisation and sampling",
                         corpus=TEXT_CORPUS, training=TRAINING)
    parser.add_argument("--mode", choices=("skipgram", "cbow"), default="skipgram", help="architecture")
    parser.add_argument("--dim", type=int, default=64, help="vector size")
    parser.add_argument("--window", type=int, default=5, help="largest context window (each side)")
    parser.add_argument("--negatives", type=int, default=5, help="noise words per example (K)")
    parser.add_argument("--min-count", type=int, default=3, help="drop words seen fewer times")
    parser.add_argument("--subsample", type=float, default=1e-3,
                        help="subsampling threshold t (0: off; the paper's 1e-5 suits billion-word corpora)")
    parser.add_argument("--batch-size", type=int, default=1024, help="examples per Adam step")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    parser.add_argument("--probes", default=None, help="comma-separated words to show neighbours of")


def _check_args(args: argparse.Namespace) -> None:
    for name in ("dim", "window", "negatives", "min_count", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"word2vec recipe: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.lr <= 0 or args.subsample < 0:
        raise ValueError(f"word2vec recipe: need --lr > 0 and --subsample >= 0, got {args.lr} and {args.subsample}")


def _config(args: argparse.Namespace) -> dict:
    return {k: (str(getattr(args, k)) if k == "corpus" else getattr(args, k)) for k in _SHAPING}


def _plot_loss(path: Path, history: dict, title: str) -> None:
    from models.plotting import plot_losses, save_figure, subplots

    fig, ax = subplots(figsize=(6.5, 4))
    plot_losses(ax, history, valid="train_loss", valid_label="epoch mean", title=title,
                ylabel="negative-sampling loss")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _probe_words(model, args) -> list[str]:
    first = len(model.vocab.specials)
    wanted = [w.strip() for w in (args.probes.split(",") if args.probes else PROBES)]
    words = [w for w in wanted if model.vocab.stoi.get(w, -1) >= first]
    if len(words) < 3:  # an unfamiliar corpus: take some frequent words past the function words
        words += [w for w in model.vocab.itos[first + 30:first + 60] if w.isalpha()][:6]
    return words


def _show(model, args) -> dict:
    """Print nearest neighbours and analogies; return them for metrics.json."""
    neighbours = {w: model.most_similar(w, 6) for w in _probe_words(model, args)}
    print("\nnearest neighbours (cosine):")
    for w, near in neighbours.items():
        print(f"  {w:>12s}: " + ", ".join(f"{n} {c:.2f}" for n, c in near))
    analogies = {}
    for a, b, c in ANALOGIES:
        if all(model.vocab.stoi.get(x, -1) >= len(model.vocab.specials) for x in (a, b, c)):
            analogies[f"{a} : {b} :: {c} : ?"] = model.analogy(a, b, c, k=3)
    if analogies:
        print("\nanalogies (3CosAdd, top 3):")
        for q, answers in analogies.items():
            print(f"  {q:<32s} " + ", ".join(f"{n} {c:.2f}" for n, c in answers))
    return {"neighbours": neighbours, "analogies": analogies}


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import minigrad
    from models.training import Trainer
    from models.word2vec import Word2Vec, plot_word_groups

    start = time.perf_counter()
    corpus_label = corpus_name(args)
    try:
        _check_args(args)
        train, _, _ = split_corpus("word2vec", args)
        minigrad.manual_seed(args.seed)
        model = Word2Vec.build(train, args.dim, min_count=args.min_count, mode=args.mode, window=args.window,
                               negatives=args.negatives, subsample_t=args.subsample)
        corpus = model.encode_corpus(train)
        if corpus[0].shape[0] < 2 * args.window:
            raise ValueError(f"word2vec recipe: only {corpus[0].shape[0]} training words occur >= "
                             f"{args.min_count} times; use a larger corpus or a smaller --min-count")
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    print(f"corpus: {corpus_label} — {corpus[0].shape[0]:,} training words in the vocabulary of "
          f"{len(model.vocab) - len(model.vocab.specials):,} words (min count {args.min_count})")
    rng = np.random.default_rng(args.seed)  # subsampling, windows, order, negatives: it makes the batches
    optimizer = minigrad.optim.Adam(model.parameters(), lr=args.lr)
    config = _config(args)
    trainer = Trainer(model, optimizer, Word2Vec.batch_loss, train_config(args, TRAINING),
                      checkpoint_path=args.out / CHECKPOINT, rngs={"minigrad": minigrad.default_generator},
                      epoch_rngs={"numpy": rng}, run_config=config, name="word2vec recipe", log=print_line,
                      size_unit="examples")
    if not resume_if_asked(trainer, args):
        return 2
    args.out.mkdir(parents=True, exist_ok=True)

    trainer.fit(lambda epoch: model.batches(corpus, args.batch_size, rng))
    stats = [Word2Vec.epoch_stats(record, corpus) for record in trainer.history["epochs"]]
    history = {"loss": [s["loss"] for s in stats], "step_losses": trainer.history["steps"].get("loss", []),
               **{key: [s[key] for s in stats] for key in ("words_per_second", "examples", "seconds")}}

    model.save(args.out)
    shown = _show(model, args)
    wps = float(np.median(history["words_per_second"])) if history["words_per_second"] else None
    if wps:
        print(f"\ntraining speed: {wps:,.0f} words/s (median over epochs)")
    if not args.no_plot and trainer.history["epochs"]:
        _plot_loss(args.out / "loss.png", trainer.history, f"Word2Vec ({args.mode}) on {Path(corpus_label).name}")
        try:
            drawn = plot_word_groups(model, GROUPS, args.out / "word_groups.png",
                                     f"Word2Vec {args.mode}: PCA of word groups")
            print(f"PCA plot of {len(drawn)} words: {args.out / 'word_groups.png'}")
        except ValueError as err:  # a corpus without these words
            print(f"(no word-group plot: {err})")
    metrics = {"corpus": corpus_label, "config": config, "vocab_size": len(model.vocab),
               "training_words": int(corpus[0].shape[0]), "history": history, "words_per_second": wps,
               "stopped": trainer.stopped, **shown, "seconds": round(time.perf_counter() - start, 2)}
    write_metrics(args.out, metrics)
    print(f"\nwrote {args.out}/word2vec.safetensors, vocab.json, metrics.json ({metrics['seconds']:.1f} s)")
    return 0
