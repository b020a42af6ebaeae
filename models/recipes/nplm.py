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
import math
import time
from pathlib import Path

from models.recipes.common import (TEXT_CORPUS, TrainingFlags, add_common_arguments, corpus_name, print_line,
                                   report_error, resume_if_asked, split_corpus, train_config, write_metrics)

CHECKPOINT = "checkpoint.safetensors"
# options that change the model or the data: a checkpoint only resumes under the same values
_SHAPING = ("corpus", "seed", "order", "embed_dim", "hidden", "dropout", "direct", "batch_size", "lr", "clip",
            "min_count", "init", "word2vec", "w2v_epochs")
TRAINING = TrainingFlags(epochs=8, checkpoint=CHECKPOINT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/nplm", seed="the split, initialisation, shuffling", corpus=TEXT_CORPUS,
                         training=TRAINING)
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


def _check_args(args: argparse.Namespace) -> None:
    for name in ("embed_dim", "hidden", "batch_size", "min_count", "w2v_epochs"):
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


def _plot(path: Path, history: dict, table: dict, order: int, title: str) -> None:
    from models.plotting import plot_losses, save_figure, subplots

    fig, (ax, ax2) = subplots(1, 2, figsize=(11, 4.2))
    plot_losses(ax, history, title=title, ylabel="cross-entropy (nats/token)")
    ppl = [e["valid_ppl"] for e in history["epochs"]]
    epochs = range(1, len(ppl) + 1)
    ax2.plot(epochs, ppl, "o-", label=f"neural LM, n={order}")
    ax2.axhline(table["laplace"][1], ls="--", color="gray", label=f"unigram: {table['laplace'][1]:,.1f}")
    ax2.axhline(table["kneser_ney"][order], ls=":", color="black",
                label=f"Kneser-Ney {order}-gram: {table['kneser_ney'][order]:,.1f}")
    ax2.set(xlabel="epoch", ylabel="validation perplexity (log scale)", yscale="log", xticks=list(epochs))
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import minigrad
    from models.nplm import NeuralLM, batch_loss, evaluate, generate, init_from_word2vec, ngram_examples, \
        shuffled_batches
    from models.text import Vocab
    from models.training import Trainer, epoch_columns

    start = time.perf_counter()
    corpus = corpus_name(args)
    try:
        _check_args(args)
        train, valid, test = split_corpus("nplm", args)
        if not valid:
            raise ValueError(f"nplm recipe: the corpus is too small for a validation split "
                             f"({len(train) + len(test)} sentences; need about 100 or more)")
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    vocab = Vocab.build(train, min_freq=args.min_count)
    data = {name: ngram_examples([vocab.encode(s) for s in part], args.order, vocab.bos_id, vocab.eos_id)
            for name, part in (("train", train), ("valid", valid), ("test", test)) if part}
    print(f"corpus: {corpus} — {len(data['train'][1]):,} training / {len(data['valid'][1]):,} validation "
          f"predictions (words + </s>); vocabulary {len(vocab):,} (min count {args.min_count})")
    table = _ngram_table(train, valid, args.order, args.min_count)

    minigrad.manual_seed(args.seed)
    model = NeuralLM(len(vocab), args.order, args.embed_dim, args.hidden, dropout=args.dropout, direct=args.direct)
    rng = np.random.default_rng(args.seed)  # the batch order
    optimizer = minigrad.optim.Adam(model.parameters(), lr=args.lr)
    config = _config(args)

    def validation(m) -> dict:
        loss = evaluate(m, *data["valid"])
        return {"valid_loss": loss, "valid_ppl": math.exp(loss)}

    trainer = Trainer(model, optimizer, batch_loss, train_config(args, TRAINING, max_grad_norm=args.clip or None),
                      evaluate=validation, checkpoint_path=args.out / CHECKPOINT,
                      rngs={"minigrad": minigrad.default_generator}, epoch_rngs={"numpy": rng}, run_config=config,
                      name="nplm recipe", log=print_line, size_unit="tokens")
    if not resume_if_asked(trainer, args):
        return 2
    if not args.resume and args.init == "word2vec":
        try:
            copied = init_from_word2vec(model.embedding, vocab, _word2vec(args, train))
        except (FileNotFoundError, ValueError) as err:
            return report_error(err)
        print(f"initialised {copied:,} of {len(vocab):,} word vectors from Word2Vec")
    args.out.mkdir(parents=True, exist_ok=True)
    vocab.save(args.out / "vocab.json")

    x_train, y_train = data["train"]
    trainer.fit(lambda epoch: shuffled_batches(x_train, y_train, args.batch_size, rng))
    history = {"step_losses": trainer.history["steps"].get("loss", []),
               **epoch_columns(trainer.history, "train_loss", "valid_loss", "valid_ppl", "tokens_per_second")}

    valid_ppl = math.exp(evaluate(model, *data["valid"]))
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
        _plot(plot_path, trainer.history, table, args.order, f"neural LM (n={args.order}) on {Path(corpus).name}")
    metrics = {"corpus": corpus, "config": config, "vocab_size": len(vocab),
               "ngram_valid_ppl": {s: {str(n): v for n, v in row.items()} for s, row in table.items()},
               "valid_ppl": valid_ppl, "test_ppl": test_ppl, "history": history, "stopped": trainer.stopped,
               "samples": samples, "seconds": round(time.perf_counter() - start, 2)}
    print(f"\nwrote {write_metrics(args.out, metrics)}, {args.out / CHECKPOINT}"
          + ("" if args.no_plot else f", {plot_path}") + f" ({metrics['seconds']:.1f} s)")
    return 0
