"""Recipe ``python -m models nplm``: the Word2Vec-based feed-forward neural LM (Bengio et al. 2003).

Book § 1.3. First Word2Vec vectors are trained on the training split (or loaded with
``--word2vec DIR``, the output folder of the ``word2vec`` recipe); they initialise the
embedding table of an order-n neural LM (n−1 previous words → tanh hidden layer → softmax),
which is then trained with Adam. The validation perplexity is printed next to the N-gram
table (Laplace and Kneser–Ney, n = 1..order) on the same split, tokens and vocabulary.

Writes into ``--out``: ``checkpoint.safetensors`` (every epoch; ``--resume`` continues from
it), ``vocab.json``, ``metrics.json`` and ``training_curves.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from models.progress import progress_bar

CHECKPOINT = "checkpoint.safetensors"
_SHAPING = ("corpus", "seed", "order", "embed_dim", "hidden", "dropout", "direct", "batch_size", "lr", "clip",
            "min_count", "init", "word2vec", "w2v_epochs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", type=Path, default=None,
                        help="UTF-8 text file (default: the embedded CPython pydoc topics text)")
    parser.add_argument("--out", type=Path, default=Path("runs/nplm"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation, shuffling")
    parser.add_argument("--epochs", type=int, default=8, help="total number of epochs")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors")
    parser.add_argument("--order", type=int, default=4, help="n: the model reads the previous n-1 words")
    parser.add_argument("--embed-dim", type=int, default=64, help="word vector size (= the Word2Vec size)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden layer size")
    parser.add_argument("--dropout", type=float, default=0.3, help="dropout on the hidden layer")
    parser.add_argument("--direct", action="store_true", help="add Bengio's direct input→output connections")
    parser.add_argument("--batch-size", type=int, default=256, help="examples per Adam step")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping threshold (0: off)")
    parser.add_argument("--min-count", type=int, default=2, help="words seen fewer times become <unk>")
    parser.add_argument("--init", choices=("word2vec", "random"), default="word2vec",
                        help="initial word vectors")
    parser.add_argument("--word2vec", type=Path, default=None,
                        help="folder of a saved Word2Vec (python -m models word2vec); default: train one here")
    parser.add_argument("--w2v-epochs", type=int, default=5, help="epochs of the in-recipe Word2Vec")
    parser.add_argument("--samples", type=int, default=3, help="sentences to generate")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")


def _check_args(args: argparse.Namespace) -> None:
    for name in ("epochs", "embed_dim", "hidden", "batch_size", "min_count", "w2v_epochs"):
        if getattr(args, name) < 1:
            raise ValueError(f"nplm recipe: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.order < 2:
        raise ValueError(f"nplm recipe: --order must be >= 2, got {args.order}")
    if not 0.0 <= args.dropout < 1.0 or args.lr <= 0:
        raise ValueError(f"nplm recipe: need 0 <= --dropout < 1 and --lr > 0, got {args.dropout} and {args.lr}")


def _config(args: argparse.Namespace) -> dict:
    return {k: (str(getattr(args, k)) if k in ("corpus", "word2vec") else getattr(args, k)) for k in _SHAPING}


def _ngram_table(train, valid, order: int, min_count: int) -> dict[str, dict[int, float]]:
    from models.ngram import NGramLM

    return {s: {n: NGramLM(n, s, min_count=min_count).fit(train).perplexity(valid) for n in range(1, order + 1)}
            for s in ("laplace", "kneser_ney")}


def _word2vec(args, train):
    """A trained Word2Vec: loaded from ``--word2vec`` or trained on the training split now."""
    from models.word2vec import Word2Vec

    if args.word2vec is not None:
        w2v = Word2Vec.load(args.word2vec)
        print(f"loaded Word2Vec from {args.word2vec} ({len(w2v.vocab):,} words, dim {w2v.config['dim']})")
        return w2v
    w2v = Word2Vec.build(train, args.embed_dim, min_count=3)
    t0 = time.perf_counter()
    stats = w2v.fit(train, args.w2v_epochs, lr=0.01, seed=args.seed)
    print(f"trained Word2Vec (skip-gram, dim {args.embed_dim}) for {args.w2v_epochs} epochs in "
          f"{time.perf_counter() - t0:.1f} s: loss {stats[0]['loss']:.3f} → {stats[-1]['loss']:.3f}")
    return w2v


def _resume(path: Path, config: dict, model, optimizer, rng) -> tuple[int, dict]:
    import minigrad
    from models.recipes.common import load_resume_state

    state = load_resume_state("nplm", path, config, model, optimizer)
    minigrad.default_generator.set_state(state["rng"]["minigrad"])
    rng.bit_generator.state = state["rng"]["numpy"]
    return int(state["epoch"]), state["history"]


def _plot(path: Path, history: dict, table: dict, order: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = history["step_losses"]
    per_epoch = len(steps) / max(len(history["valid_loss"]), 1)
    ax.plot(range(1, len(steps) + 1), steps, lw=0.6, alpha=0.7, label="train (per batch)")
    ax.plot([per_epoch * (e + 1) for e in range(len(history["valid_loss"]))], history["valid_loss"], "o-",
            label="validation")
    ax.set(xlabel="update", ylabel="cross-entropy (nats/token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    epochs = range(1, len(history["valid_ppl"]) + 1)
    ax2.plot(epochs, history["valid_ppl"], "o-", label=f"neural LM, n={order}")
    ax2.axhline(table["laplace"][1], ls="--", color="gray", label=f"unigram: {table['laplace'][1]:,.1f}")
    ax2.axhline(table["kneser_ney"][order], ls=":", color="black",
                label=f"Kneser-Ney {order}-gram: {table['kneser_ney'][order]:,.1f}")
    ax2.set(xlabel="epoch", ylabel="validation perplexity (log scale)", yscale="log", xticks=list(epochs))
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    from models.plotting import save_figure

    save_figure(fig, path, dpi=110)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import minigrad
    from models.nplm import NeuralLM, evaluate, generate, init_from_word2vec, ngram_examples, train_epoch
    from models.text import Vocab, atomic_write_text, load_corpus, tokenize_sentences, train_valid_test_split

    start = time.perf_counter()
    corpus_name = str(args.corpus) if args.corpus else "pydoc_data.topics (embedded)"
    try:
        _check_args(args)
        sentences = tokenize_sentences(load_corpus(args.corpus))
        train, valid, test = train_valid_test_split(sentences, seed=args.seed, mode="contiguous", chunk_size=20)
        if not valid:
            raise ValueError(f"nplm recipe: the corpus is too small for a validation split ({len(sentences)} "
                             "sentences; need about 100 or more)")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    vocab = Vocab.build(train, min_freq=args.min_count)
    data = {name: ngram_examples([vocab.encode(s) for s in part], args.order, vocab.bos_id, vocab.eos_id)
            for name, part in (("train", train), ("valid", valid), ("test", test)) if part}
    print(f"corpus: {corpus_name} — {len(data['train'][1]):,} training / {len(data['valid'][1]):,} validation "
          f"predictions (words + </s>); vocabulary {len(vocab):,} (min count {args.min_count})")
    table = _ngram_table(train, valid, args.order, args.min_count)

    minigrad.manual_seed(args.seed)
    model = NeuralLM(len(vocab), args.order, args.embed_dim, args.hidden, dropout=args.dropout, direct=args.direct)
    rng = np.random.default_rng(args.seed)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=args.lr)
    config = _config(args)
    ckpt = args.out / CHECKPOINT
    history = {"train_loss": [], "valid_loss": [], "valid_ppl": [], "step_losses": [], "tokens_per_second": []}
    first = 0
    try:
        if args.resume:
            first, history = _resume(ckpt, config, model, optimizer, rng)
            print(f"resumed from {ckpt} after epoch {first}")
        elif args.init == "word2vec":
            copied = init_from_word2vec(model.embedding, vocab, _word2vec(args, train))
            print(f"initialised {copied:,} of {len(vocab):,} word vectors from Word2Vec")
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    vocab.save(args.out / "vocab.json")

    x_train, y_train = data["train"]
    for epoch in range(first, args.epochs):
        bar = progress_bar(total=-(-len(y_train) // args.batch_size), desc=f"epoch {epoch + 1}/{args.epochs}",
                   unit="batch", leave=False)
        running = []

        def on_batch(loss: float) -> None:
            running.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(running[-50:]):.3f}")

        stats = train_epoch(model, x_train, y_train, optimizer, rng, batch_size=args.batch_size,
                            clip=args.clip or None, on_batch=on_batch)
        bar.close()
        valid_loss = evaluate(model, *data["valid"])
        for key, value in (("train_loss", stats["loss"]), ("valid_loss", valid_loss),
                           ("valid_ppl", math.exp(valid_loss)), ("tokens_per_second", stats["tokens_per_second"])):
            history[key].append(value)
        history["step_losses"].extend(stats["step_losses"])
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {stats['loss']:.3f}, valid ppl {math.exp(valid_loss):,.1f}"
              f" ({stats['seconds']:.1f} s, {stats['tokens_per_second']:,.0f} tokens/s)")
        minigrad.save_checkpoint(ckpt, model, optimizer, epoch=epoch + 1, history=history, config=config,
                                 rng={"minigrad": minigrad.default_generator.get_state(),
                                      "numpy": rng.bit_generator.state})
    if not history["valid_ppl"]:
        print("error: nothing trained (--epochs 0?)", file=sys.stderr)
        return 2

    valid_ppl = history["valid_ppl"][-1]
    test_ppl = math.exp(evaluate(model, *data["test"])) if "test" in data else None
    orders = range(1, args.order + 1)
    print(f"\nValidation perplexity on the same split and vocabulary (|V| = {len(vocab) - 2:,} predictable):")
    print("| model                    | " + " | ".join(f"n={n:<6d}" for n in orders) + " |")
    print("|" + "-" * 26 + "|" + "|".join("-" * 10 for _ in orders) + "|")
    for name, label in (("laplace", "N-gram, Laplace"), ("kneser_ney", "N-gram, Kneser-Ney")):
        print(f"| {label:<24s} | " + " | ".join(f"{table[name][n]:>8,.1f}" for n in orders) + " |")
    cells = [f"{valid_ppl:>8,.1f}" if n == args.order else f"{'':>8s}" for n in orders]
    print(f"| {'neural LM (' + args.init + ')':<24s} | " + " | ".join(cells) + " |")
    if test_ppl is not None:
        print(f"neural LM test perplexity: {test_ppl:,.1f}")
    samples = [" ".join(generate(model, vocab, 30, temperature=0.8, rng=args.seed + i)) for i in range(args.samples)]
    print("\nsampled sentences (temperature 0.8):")
    for text in samples:
        print("  " + text)

    plot_path = args.out / "training_curves.png"
    if not args.no_plot:
        _plot(plot_path, history, table, args.order, f"neural LM (n={args.order}) on {Path(corpus_name).name}")
    metrics = {"corpus": corpus_name, "config": config, "vocab_size": len(vocab),
               "ngram_valid_ppl": {s: {str(n): v for n, v in row.items()} for s, row in table.items()},
               "valid_ppl": valid_ppl, "test_ppl": test_ppl, "history": history, "samples": samples,
               "seconds": round(time.perf_counter() - start, 2)}
    atomic_write_text(args.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"\nwrote {args.out / 'metrics.json'}, {ckpt}" + ("" if args.no_plot else f", {plot_path}")
          + f" ({metrics['seconds']:.1f} s)")
    return 0
