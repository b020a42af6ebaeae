"""``python -m models quantize --task cola``: the book appendix's quantization table (§ A.4) on a
fine-tuned MiniLM classifier, every scheme side by side with the book's figures (see
``models.recipes.quantize`` for the options; this module is its ``--task`` mode).

The book quantizes a fine-tuned bert-base CoLA classifier with ``torch.quantization.quantize_dynamic``
(torch's default: int8 weights per tensor, every Linear) and reports, on CoLA's out-of-domain dev set
(516 sentences): accuracy 0.816 → 0.814, file 418 MB → 174 MB, latency 0.0054 → 0.0025 s per sentence.
Here every row is a model of ours, saved with ``quant.save_quantized`` (int8 arrays and their scales,
no pickle), read back with ``quant.load_quantized`` and checked to give the very same logits; the
torch rows quantize HF's ``BertForSequenceClassification`` holding the same float weights (QNNPACK,
whose uint8 activations are ours) as the reference.
"""
from __future__ import annotations

import functools
import json
import os
import re
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from models.recipes.common import print_line, report_error, write_metrics

EVAL_SPLIT = {"cola": "dev_out_of_domain"}  # the book's 516 out-of-domain sentences; dev for the other tasks
# Book appendix § A.4 (bert-base fine-tuned on CoLA, out-of-domain dev, GPU-less latency per sentence)
BOOK = {"float32": {"accuracy": 0.816, "mb": 418.0, "latency": 0.0054},
        "dynamic int8, per tensor": {"accuracy": 0.814, "mb": 174.0, "latency": 0.0025}}


def _slug(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")  # "student (3 layers), float32" → student_3_layers_float32


def _logits(model, data, pad: int) -> np.ndarray:
    from models.finetune import predict_logits
    from models.training import evaluating

    with evaluating(model):
        return predict_logits(model, data, 32, pad)


def _calibration_batches(train, tokenizer, n_batches: int, max_seq_length: int, seed: int) -> list:
    """``n_batches`` batches of 32 training sentences drawn with ``seed``, for the static observers."""
    from models.finetune import collate, encode_examples

    pick = np.random.default_rng(seed).permutation(len(train))[:32 * n_batches]
    data = encode_examples([train[i] for i in pick], tokenizer, max_seq_length)
    return [collate(data, np.arange(i, min(i + 32, len(data))), tokenizer.pad_token_id)
            for i in range(0, len(data), 32)]


def _static(model, batches, observer, per_channel: bool = True):
    import minigrad
    from quant import convert, prepare

    prepared = prepare(model, observer=observer)
    with minigrad.no_grad():
        for b in batches:
            prepared(b["input_ids"], attention_mask=b["attention_mask"], token_type_ids=b["token_type_ids"])
    return convert(prepared, per_channel=per_channel)


def _save_and_reload(name: str, model, skeleton, folder: Path) -> tuple[Path, object]:
    """Write ``model`` to ``folder/<name>.safetensors`` (quantized: ``save_quantized``; float: its
    state dict) and read it back into ``skeleton()``."""
    import minigrad
    from quant.serialization import load_quantized, quantized_layers, save_quantized

    path = folder / f"{_slug(name)}.safetensors"
    if quantized_layers(model):
        save_quantized(model, path, metadata={"architecture": type(model).__name__,
                                              "config": json.dumps(model.config.to_dict(), sort_keys=True)})
        return path, load_quantized(path, skeleton())
    minigrad.save(model.state_dict(), path)
    reloaded = skeleton()
    reloaded.load_state_dict(minigrad.load(path))
    return path, reloaded.eval()


def _score(spec, labels, preds) -> dict:
    from models.data.glue import compute_metrics
    from models.metrics import accuracy

    out = {"accuracy": float(accuracy(labels, preds))}
    out.update({k: float(v) for k, v in compute_metrics(spec, labels, preds).items()})
    return out


def _plot_errors(path: Path, name: str, errors: np.ndarray) -> None:
    from models.plotting import save_figure, subplots

    fig, ax = subplots(figsize=(6, 3.6))
    ax.hist(errors.reshape(-1), bins=80, color="tab:blue", alpha=0.8)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set(xlabel="logit − float32 logit", ylabel="count (sentences × classes)",
           title=f"{name}\nmax |err| {np.abs(errors).max():.3g}, mean |err| {np.abs(errors).mean():.3g}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def _torch_rows(float_model, data, pad: int, spec, labels, ours: dict, folder: Path, repeats: int, log) -> list:
    """HF's BertForSequenceClassification with the same float weights, as is and after
    ``torch.ao.quantization.quantize_dynamic`` (per channel and per tensor, QNNPACK engine)."""
    try:
        import torch
        import transformers
        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:
        log("torch / transformers not installed: the torch.ao reference rows are left out")
        return []
    from models.finetune import collate, length_bucketed_batches

    transformers.utils.logging.disable_progress_bar()  # its "Loading weights" bar would break the log
    hf_dir = folder / "hf-float32"
    float_model.save_pretrained(hf_dir)
    hf = transformers.BertForSequenceClassification.from_pretrained(hf_dir, local_files_only=True).eval()
    batches = [(idx, collate(data, idx, pad)) for idx in length_bucketed_batches(data.lengths, 32)]
    engine, threads = torch.backends.quantized.engine, torch.get_num_threads()
    if "qnnpack" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "qnnpack"
    torch.set_num_threads(1)
    rows = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notices
            per_channel = quantize_dynamic(hf, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
            per_tensor = quantize_dynamic(hf, {torch.nn.Linear: default_dynamic_qconfig}, dtype=torch.qint8)
        variants = {"torch (HF) float32": (hf, "float32"),
                    "torch.ao dynamic int8, per channel": (per_channel, "dynamic int8, per channel"),
                    "torch.ao dynamic int8, per tensor": (per_tensor, "dynamic int8, per tensor")}

        def one_pass(model):
            out = np.zeros((len(data), spec.num_labels))
            with torch.no_grad():
                for idx, b in batches:
                    out[idx] = model(**{k: torch.from_numpy(b[k]) for k in ("input_ids", "attention_mask",
                                                                           "token_type_ids")}).logits.numpy()
            return out

        for name, (model, mine) in variants.items():
            logits = one_pass(model)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                one_pass(model)
                times.append(time.perf_counter() - t0)
            preds = logits.argmax(1)
            row = {"scheme": name, **_score(spec, labels, preds), "latency": statistics.median(times) / len(data),
                   "agree_float": float(np.mean(preds == ours["float32"]["preds"])), "reference_for": mine,
                   "agree_ours": float(np.mean(preds == ours[mine]["preds"])),
                   "max_logit_diff_ours": float(np.abs(logits - ours[mine]["logits"]).max()),
                   "engine": torch.backends.quantized.engine}
            rows.append(row)
            log(f"{name}: accuracy {row['accuracy']:.4f}, agreement with ours ({mine}) {row['agree_ours']:.2%}, "
                f"max |logit − ours| {row['max_logit_diff_ours']:.3g}")
    finally:
        torch.backends.quantized.engine = engine
        torch.set_num_threads(threads)
    return rows


def run_classifier(args) -> int:
    from models.data.glue import get_task, load_shared_task
    from models.distilbert import DistilBertForSequenceClassification
    from models.distillation import DistillationConfig, latency_per_sentence
    from models.finetune import encode_examples
    from models.recipes.distill import (base_model_dir, fine_tune_teacher, format_table, load_classifier,
                                        train_student)
    from models.recipes.finetune import TASK_DEFAULTS
    from models.text.wordpiece import BertTokenizer
    from quant import HistogramObserver, MinMaxObserver, quantize_dynamic
    from quant.block_modules import quantize_weights_blocks

    start = time.perf_counter()
    try:
        for name in ("calibration_batches", "repeats"):
            if getattr(args, name) <= 0:
                raise ValueError(f"quantize recipe: --{name.replace('_', '-')} must be positive, "
                                 f"got {getattr(args, name)}")
        if args.checkpoint is not None:
            raise ValueError("quantize recipe: --checkpoint is the MLP demo's; with --task use --classifier")
        base_dir = base_model_dir(args.model, "quantize")
        splits = load_shared_task(args.task, args.data)
        split = args.eval_split or EVAL_SPLIT.get(args.task, "dev")
        if split not in splits or split == "train":
            choices = sorted(k for k in splits if k != "train")
            raise ValueError(f"quantize recipe: --eval-split must be one of {choices}, "
                             f"got {split!r}")
        spec = get_task(args.task)
        classifier = None if args.classifier is None else load_classifier(args.classifier, base_dir, spec.num_labels,
                                                                          "quantize")
        student = None
        if args.student is not None and not args.no_student:
            student = DistilBertForSequenceClassification.from_pretrained(args.student)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    args.out.mkdir(parents=True, exist_ok=True)
    log = print_line
    tokenizer = BertTokenizer.from_pretrained(base_dir)
    pad = tokenizer.pad_token_id
    settings = {k: v for k, v in TASK_DEFAULTS[args.task].items() if k not in ("max_train", "max_eval")}
    settings["max_seq_length"] = args.max_seq_length
    common = dict(seed=args.seed, time_budget=args.time_budget, resume=True, log=log, progress=not args.no_progress)
    if classifier is None:  # cached in OUT/classifier: a second run reuses it
        classifier, _ = fine_tune_teacher(base_dir, tokenizer, splits["train"], splits["dev"], args.task, settings,
                                          args.out / "classifier", **common)
    if student is None and not args.no_student:
        student, _ = train_student(args.out / "student", classifier, None, DistillationConfig(), tokenizer,
                                   splits["train"], splits["dev"], args.task, settings, **common)
    data = encode_examples(splits[split], tokenizer, args.max_seq_length)
    labels = data.labels
    log(f"\nquantize {args.task}: {type(classifier).__name__} from {args.classifier or args.out / 'classifier'}, "
        f"evaluated on {split} ({len(data)} sentences); static calibration on {32 * args.calibration_batches} "
        f"training sentences; latency: batch 32, 1 BLAS thread, median of {args.repeats}")
    calibration = _calibration_batches(splits["train"], tokenizer, args.calibration_batches, args.max_seq_length,
                                       args.seed)
    histogram = functools.partial(HistogramObserver, bins=512)
    config, cls = classifier.config, type(classifier)
    variants = {
        "float32": classifier,
        "dynamic int8, per channel": quantize_dynamic(classifier),
        "dynamic int8, per tensor": quantize_dynamic(classifier, per_channel=False),
        "static int8, min-max": _static(classifier, calibration, MinMaxObserver),
        "static int8, histogram": _static(classifier, calibration, histogram),
        "static int8, histogram, per tensor": _static(classifier, calibration, histogram, per_channel=False),
        "Q8_0 blocks (weights only)": quantize_weights_blocks(classifier, "Q8_0"),
        "Q4_1 blocks (weights only)": quantize_weights_blocks(classifier, "Q4_1"),
    }
    skeletons = {name: (lambda: cls(config, initialize=False)) for name in variants}
    if student is not None:
        variants["student (3 layers), float32"] = student
        variants["student + dynamic int8"] = quantize_dynamic(student)
        for name in ("student (3 layers), float32", "student + dynamic int8"):
            skeletons[name] = lambda: DistilBertForSequenceClassification(student.config, initialize=False)
    folder = args.out / "models"
    folder.mkdir(parents=True, exist_ok=True)
    ours = {}
    for name, model in variants.items():
        logits = _logits(model, data, pad)
        path, reloaded = _save_and_reload(name, model, skeletons[name], folder)
        identical = bool(np.array_equal(_logits(reloaded, data, pad), logits))
        if not identical:
            raise RuntimeError(f"quantize recipe: {name}: the model read back from {path} gives other logits")
        preds = logits.argmax(1)
        ours[name] = {"scheme": name, **_score(spec, labels, preds), "logits": logits, "preds": preds,
                      "file_mb": os.path.getsize(path) / 1e6, "file": str(path), "reload_identical": identical,
                      "latency": latency_per_sentence(model, data, 32, args.repeats, pad)}
        r = ours[name]
        r["agree_float"] = float(np.mean(preds == ours["float32"]["preds"]))
        r["max_logit_err"] = float(np.abs(logits - ours["float32"]["logits"]).max())
        log(f"{name}: accuracy {r['accuracy']:.4f}, {spec.metrics[0]} {r[spec.metrics[0]]:.4f}, agreement "
            f"{r['agree_float']:.2%}, {r['file_mb']:.1f} MB, {1e3 * r['latency']:.2f} ms/sentence")
        if name != "float32" and not args.no_plot:
            _plot_errors(args.out / f"error_histogram_{_slug(name)}.png", name, logits - ours["float32"]["logits"])
    reference = _torch_rows(classifier, data, pad, spec, labels, ours, folder, args.repeats, log)

    f32 = ours["float32"]
    metric = spec.metrics[0]
    shown = []
    for r in [*ours.values(), *reference]:
        book = BOOK.get(r["scheme"], {}) if args.task == "cola" else {}
        row = {"scheme": r["scheme"], "acc": f"{r['accuracy']:.4f}", "metric": f"{r[metric]:.4f}",
               "agree": f"{r['agree_float']:.2%}", "latency": f"{r['latency']:.5f}",
               "time": f"{r['latency'] / f32['latency']:.2f}",
               "book_acc": f"{book['accuracy']:.3f}" if book else "", "book_mb": f"{book['mb']:.0f}" if book else "",
               "book_latency": f"{book['latency']:.4f}" if book else ""}
        if "file_mb" in r:
            row.update(mb=f"{r['file_mb']:.1f}", size=f"{r['file_mb'] / f32['file_mb']:.3f}",
                       reload="yes" if r["reload_identical"] else "NO")
        else:
            row.update(agree_ours=f"{r['agree_ours']:.2%} ({r['reference_for']})")
        shown.append(row)
    columns = [("scheme", "scheme"), ("acc", "accuracy"), ("metric", metric.upper() if metric == "mcc" else metric),
               ("agree", "= float32 preds"), ("mb", "file MB"), ("size", "size ×"), ("latency", "s/sentence"),
               ("time", "time ×"), ("reload", "reloaded = logits"), ("agree_ours", "torch = ours preds"),
               ("book_acc", "book acc."), ("book_mb", "book MB"), ("book_latency", "book s/sentence")]
    table = format_table(shown, columns)
    log(f"\n{spec.title}, {split} ({len(data)} sentences)\n{table}")
    if args.task == "cola":
        log("book: bert-base (110 M parameters) with torch.quantization.quantize_dynamic (int8 per tensor); ours: "
            "MiniLM (22.7 M), whose 11.7 M-entry word-embedding table stays float32 in every scheme")
    seconds = round(time.perf_counter() - start, 1)
    keep = ("logits", "preds")
    write_metrics(args.out, {"task": args.task, "split": split, "sentences": len(data), "seed": args.seed,
                             "classifier": str(args.classifier or args.out / "classifier"),
                             "student": None if student is None else str(args.student or args.out / "student"),
                             "calibration_sentences": 32 * args.calibration_batches, "repeats": args.repeats,
                             "rows": [{k: v for k, v in r.items() if k not in keep} for r in ours.values()],
                             "torch_reference": reference, "book": BOOK, "table": table, "seconds": seconds})
    log(f"wrote {args.out}/metrics.json, models/*.safetensors"
        f"{'' if args.no_plot else ', error_histogram_*.png'} ({seconds:.0f} s)")
    return 0
