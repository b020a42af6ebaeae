"""Recipe ``python -m models gru-lm``: a GRU (or Elman RNN) language model, word- or character-level.

Book § 1.4. Trains Embedding → GRU → Linear with truncated BPTT and Adam on the training split
(the same contiguous-chunk split as the ``ngram`` recipe), prints the validation perplexity
after each epoch next to the unigram and Kneser–Ney trigram models fitted on the same tokens
and vocabulary, and generates a few sentences with greedy, temperature, top-k and nucleus
decoding.

Writes into ``--out``: ``checkpoint.safetensors`` (every epoch: model, Adam state, RNG states,
curves), ``vocab.json``, ``metrics.json`` and ``training_curves.png``. ``--resume`` continues
from the checkpoint; with the same seed the curves equal those of an uninterrupted run.
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
_SHAPING = ("corpus", "level", "seed", "min_count", "cell", "embed_dim", "hidden", "layers", "dropout",
            "tie_weights", "bptt", "batch_size", "lr", "clip")


TRAINING = TrainingFlags(epochs=5, checkpoint=CHECKPOINT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/gru-lm", seed="the split, initialisation, dropout, sampling",
                         corpus=TEXT_CORPUS, training=TRAINING)
    parser.add_argument("--level", choices=("word", "char"), default="word", help="token level")
    parser.add_argument("--cell", choices=("gru", "rnn"), default="gru", help="recurrent cell")
    parser.add_argument("--embed-dim", type=int, default=128, help="embedding size")
    parser.add_argument("--hidden", type=int, default=256, help="hidden state size")
    parser.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout on embeddings and outputs")
    parser.add_argument("--tie-weights", action="store_true", help="share the embedding and output matrix "
                        "(needs --embed-dim == --hidden)")
    parser.add_argument("--bptt", type=int, default=35, help="truncated-BPTT window length T")
    parser.add_argument("--batch-size", type=int, default=32, help="parallel rows B of the token stream")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping threshold (0: off)")
    parser.add_argument("--min-count", type=int, default=None,
                        help="tokens seen fewer times become <unk> (default: 2 for words, 1 for characters)")
    parser.add_argument("--samples", type=int, default=2, help="sentences per decoding method")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="longest generated text (default: 40 words or 200 characters)")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature")
    parser.add_argument("--top-k", type=int, default=40, help="k of top-k sampling")
    parser.add_argument("--top-p", type=float, default=0.9, help="p of nucleus sampling")


def _check_args(args: argparse.Namespace) -> None:
    for name in ("embed_dim", "hidden", "layers", "bptt", "batch_size", "samples"):
        value = getattr(args, name)
        if value < (0 if name == "samples" else 1):
            raise ValueError(f"gru-lm recipe: --{name.replace('_', '-')} must be positive, got {value}")
    if not 0.0 <= args.dropout < 1.0:
        raise ValueError(f"gru-lm recipe: --dropout must be in [0, 1), got {args.dropout}")
    if args.lr <= 0:
        raise ValueError(f"gru-lm recipe: --lr must be positive, got {args.lr}")
    if args.temperature <= 0 or args.top_k < 1 or not 0 < args.top_p <= 1:
        raise ValueError(f"gru-lm recipe: need --temperature > 0, --top-k >= 1 and 0 < --top-p <= 1, got "
                         f"{args.temperature}, {args.top_k}, {args.top_p}")
    if args.tie_weights and args.embed_dim != args.hidden:
        raise ValueError(f"gru-lm recipe: --tie-weights needs --embed-dim == --hidden, got {args.embed_dim} "
                         f"and {args.hidden}")
    if args.min_count is None:
        args.min_count = 2 if args.level == "word" else 1
    if args.max_tokens is None:
        args.max_tokens = 40 if args.level == "word" else 200


def _config(args: argparse.Namespace) -> dict:
    return {k: (str(getattr(args, k)) if k == "corpus" else getattr(args, k)) for k in _SHAPING}


def _load_data(args: argparse.Namespace):
    """Sentences → the ngram recipe's split → vocabulary of the training split → id streams."""
    from models.text import Vocab

    train, valid, test = split_corpus("gru-lm", args, level=args.level)
    vocab = Vocab.build(train, min_freq=args.min_count)
    return train, valid, test, vocab


def _baselines(train, valid, min_count: int) -> dict[str, float]:
    """Validation perplexity of N-gram models on the same tokens and vocabulary: the bar to beat."""
    from models.ngram import NGramLM

    return {"unigram (Laplace)": NGramLM(1, "laplace", min_count=min_count).fit(train).perplexity(valid),
            "Kneser-Ney trigram": NGramLM(3, "kneser_ney", min_count=min_count).fit(train).perplexity(valid)}


def _plot(path: Path, history: dict, baselines: dict, title: str) -> None:
    from models.plotting import plot_losses, save_figure, subplots

    fig, (ax, ax2) = subplots(1, 2, figsize=(11, 4.2))
    plot_losses(ax, history, title=title, ylabel="cross-entropy (nats/token)", train_label="train (per window)")
    ppl = [e["valid_ppl"] for e in history["epochs"]]
    epochs = range(1, len(ppl) + 1)
    ax2.plot(epochs, ppl, "o-", label="GRU LM (validation)")
    for (name, value), style in zip(baselines.items(), ("--", ":")):
        ax2.axhline(value, ls=style, color="gray", label=f"{name}: {value:,.1f}")
    ax2.set(xlabel="epoch", ylabel="perplexity (log scale)", yscale="log", title="validation perplexity",
            xticks=list(epochs))
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _samples(model, vocab, args) -> dict[str, list[str]]:
    from models.rnn_lm import generate

    joiner = "" if args.level == "char" else " "
    methods = {"greedy": dict(temperature=0),
               f"temperature {args.temperature}": dict(temperature=args.temperature),
               f"top-k {args.top_k}": dict(top_k=min(args.top_k, len(vocab))),
               f"nucleus top-p {args.top_p}": dict(top_p=args.top_p)}
    out = {}
    for m, (name, kwargs) in enumerate(methods.items()):
        count = 1 if name == "greedy" else args.samples
        out[name] = [joiner.join(generate(model, vocab, max_tokens=args.max_tokens, rng=args.seed + 100 * m + i,
                                          **kwargs)) for i in range(count)]
    return out


def run(args: argparse.Namespace) -> int:
    import minigrad
    from models.rnn_lm import RNNLM, TruncatedBPTT, bptt_windows, evaluate, token_stream
    from models.text import batchify, num_windows
    from models.training import Trainer, epoch_columns

    start = time.perf_counter()
    corpus = corpus_name(args)
    try:  # bad options or a bad corpus file: one clear line, no traceback
        _check_args(args)
        train, valid, test, vocab = _load_data(args)
        if not valid:
            raise ValueError(f"gru-lm recipe: the corpus is too small for a validation split "
                             f"({len(train) + len(test)} sentences; need about 100 or more)")
        streams = {name: token_stream(part, vocab) for name, part in (("train", train), ("valid", valid),
                                                                      ("test", test)) if part}
        data = batchify(streams["train"], args.batch_size)  # (B, L)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    print(f"corpus: {corpus} — train {len(streams['train']):,} / valid {len(streams['valid']):,} "
          f"{args.level} tokens incl. </s>; vocabulary {len(vocab):,} (min count {args.min_count})")
    baselines = _baselines(train, valid, args.min_count)
    print("N-gram baselines (validation perplexity): "
          + ", ".join(f"{name} {value:,.1f}" for name, value in baselines.items()))

    minigrad.manual_seed(args.seed)
    model = RNNLM(len(vocab), args.embed_dim, args.hidden, args.layers, cell=args.cell, dropout=args.dropout,
                  tie_weights=args.tie_weights)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=args.lr)
    config = _config(args)
    ckpt = args.out / CHECKPOINT

    def validation(m) -> dict:
        loss = evaluate(m, streams["valid"], vocab.pad_id)
        return {"valid_loss": loss, "valid_ppl": math.exp(loss)}

    loss = TruncatedBPTT()  # carries the hidden state from window to window
    trainer = Trainer(model, optimizer, loss, train_config(args, TRAINING, max_grad_norm=args.clip or None),
                      evaluate=validation, checkpoint_path=ckpt, rngs={"minigrad": minigrad.default_generator},
                      state={"hidden": loss}, run_config=config, name="gru-lm recipe", log=print_line,
                      size_unit="tokens")
    if not resume_if_asked(trainer, args):
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    vocab.save(args.out / "vocab.json")
    params = sum(p.data.size for p in model.parameters())
    print(f"model: {args.cell.upper()} LM, {params:,} parameters; B={args.batch_size}, T={args.bptt}, "
          f"{num_windows(data, args.bptt)} windows per epoch")

    trainer.fit(lambda epoch: bptt_windows(data, args.bptt))
    history = {"step_losses": trainer.history["steps"].get("loss", []),
               **epoch_columns(trainer.history, "train_loss", "valid_loss", "valid_ppl", "seconds",
                               "tokens_per_second")}
    valid_ppl = math.exp(evaluate(model, streams["valid"], vocab.pad_id))
    test_ppl = math.exp(evaluate(model, streams["test"], vocab.pad_id)) if "test" in streams else None
    unigram = baselines["unigram (Laplace)"]
    print(f"\nvalidation perplexity: {args.cell.upper()} LM {valid_ppl:,.1f} vs "
          + ", ".join(f"{n} {v:,.1f}" for n, v in baselines.items())
          + (f"  — {'beats' if valid_ppl < unigram else 'does NOT beat'} the unigram model")
          + (f"; test {test_ppl:,.1f}" if test_ppl is not None else ""))
    samples = _samples(model, vocab, args)
    print("\ngenerated text:")
    for name, texts in samples.items():
        for text in texts:
            print(f"  [{name}] {text}")

    plot_path = args.out / "training_curves.png"
    if not args.no_plot:
        _plot(plot_path, trainer.history, baselines, f"{args.cell.upper()} LM on {Path(corpus).name}")
    metrics = {"corpus": corpus, "config": config, "vocab_size": len(vocab), "parameters": params,
               "tokens": {k: int(len(v)) for k, v in streams.items()}, "baselines_valid_ppl": baselines,
               "valid_ppl": valid_ppl, "test_ppl": test_ppl, "history": history, "stopped": trainer.stopped,
               "samples": samples, "seconds": round(time.perf_counter() - start, 2)}
    print(f"\nwrote {write_metrics(args.out, metrics)}, {ckpt}" + ("" if args.no_plot else f", {plot_path}")
          + f" ({metrics['seconds']:.1f} s)")
    return 0
