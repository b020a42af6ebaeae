"""Recipe ``python -m models pretrain-compare``: BERT vs RoBERTa-style vs ELECTRA at one small compute budget
(book §§ 4.2, 4.4, 4.6), each pre-trained from scratch on the same text, then fine-tuned on SST-2.

The budget is the same for all: ``--steps`` optimizer steps of ``--batch-size`` rows of at most
``--max-seq-length`` tokens, the same encoder (``--hidden`` / ``--layers`` / ``--heads``), the same WordPiece
vocabulary, the same AdamW schedule. Only the pre-training idea differs:

* **BERT**: NSP sentence pairs (50 % random second segment) + MLM, *static* masks (the data copied
  ``--copies`` times with different masks), ``BertForPreTraining``;
* **RoBERTa-style**: FULL-SENTENCES rows, no NSP, *dynamic* masks, ``RobertaForMaskedLM``;
* **ELECTRA**: the same rows and masks, a generator ¼ as wide whose samples the discriminator
  detects (``ElectraPretrainer``, λ = 50). The generator is extra compute on top of the shared step
  budget: its share is reported as measured seconds;
* **no pre-training**: the same classifier from random weights, the floor.

Each encoder is then fine-tuned on SST-2 (``../shared/data/sst2``, 6,920 sentences) with one recipe
(``models.finetune``: AdamW, warm-up, ``--finetune-epochs``, the best dev epoch kept), and the table gives the
dev accuracy (872 sentences) and the test accuracy (1,821) of that epoch. ELECTRA's paper claims that
replaced-token detection learns most per unit of compute, and wins most at small compute; the table says
what this budget measures. Writes ``metrics.json``, ``curves.png`` and one folder per model into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

from models.recipes.common import corpus_name, print_line, write_metrics
from models.text.corpus import atomic_write_text
from models.recipes.pretraining_common import (add_encoder_arguments, check_encoder_arguments, corpus_documents,
                                               end_points, wordpiece_tokenizer)

MODELS = ("bert", "roberta", "electra", "scratch")
LABELS = {"bert": "BERT (MLM + NSP, static masks)", "roberta": "RoBERTa-style (MLM, FULL-SENTENCES, dynamic)",
          "electra": "ELECTRA (generator ¼ + RTD)", "scratch": "no pre-training"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_encoder_arguments(parser, out="runs/pretrain_compare", epochs=None, masking=False)
    parser.add_argument("--steps", type=int, default=600, help="pre-training optimizer steps of every model")
    parser.add_argument("--copies", type=int, default=10, help="BERT's static masking: masked copies of the data")
    parser.add_argument("--models", default=",".join(MODELS), help=f"which of {','.join(MODELS)} to run")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="data root holding sst2/")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--finetune-lr", type=float, default=2e-4)
    parser.add_argument("--finetune-batch-size", type=int, default=32)
    parser.add_argument("--max-train", type=int, default=0, help="subsample SST-2's training set (0: all of it)")


def _epochs_for(steps: int, rows: int, batch_size: int) -> int:
    return max(1, math.ceil(steps / max(1, math.ceil(rows / batch_size))))


def pretrain_one(name: str, args, tokenizer, train_docs: list, out: Path, log):
    """Pre-train model ``name`` for ``args.steps`` steps; returns (its checkpoint folder, history, seconds)."""
    import numpy as np

    import minigrad
    from models.bert import BertConfig, BertForPreTraining
    from models.bert_pretraining import create_pretraining_data, tokenize_documents
    from models.electra import ElectraPretrainer
    from models.pretraining_data import (mlm_batches, mlm_nsp_objective, mlm_objective, pack_full_sentences,
                                         rtd_objective)
    from models.bert_pretraining import pretraining_trainer
    from models.recipes.electra_pretrain import electra_configs
    from models.recipes.pretraining_common import pretrain_config
    from models.recipes.roberta_pretrain import roberta_config
    from models.roberta import RobertaForMaskedLM

    docs = tokenize_documents(train_docs, tokenizer)
    rngs, seed = None, args.seed
    if name == "bert":
        data = create_pretraining_data(docs, tokenizer, args.max_seq_length, seed=seed)
        config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=args.hidden, num_hidden_layers=args.layers,
                            num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                            max_position_embeddings=max(args.max_seq_length, 128), pad_token_id=tokenizer.pad_token_id)
        model, objective, masking = BertForPreTraining(config, generator=minigrad.Generator(seed)), mlm_nsp_objective, \
            "static"
    else:
        data = pack_full_sentences(docs, tokenizer, args.max_seq_length)
        masking = "dynamic"
        if name == "roberta":
            model, objective = RobertaForMaskedLM(roberta_config(args, tokenizer),
                                                  generator=minigrad.Generator(seed)), mlm_objective
        else:
            # E = H (no projection): the discriminator is the budget's encoder exactly
            gen, disc = electra_configs(argparse.Namespace(**vars(args), embedding_size=args.hidden,
                                                           generator_size=0.25), tokenizer)
            model = ElectraPretrainer(gen, disc, generator=minigrad.Generator(seed))
            sampling = np.random.default_rng([seed, 0x5A4D])
            objective, rngs = rtd_objective(sampling), {"sampling": sampling}
    run = argparse.Namespace(**{**vars(args), "epochs": _epochs_for(args.steps, len(data), args.batch_size),
                                "masking": masking})
    log(f"{LABELS[name]}: {len(data):,} rows, {model.num_parameters():,} parameters, {run.epochs} epochs")

    def batches(epoch: int):
        return mlm_batches(data, args.batch_size, epoch, seed, masking, args.copies)

    start = time.perf_counter()
    checkpoint = out / name / "checkpoint.safetensors"
    timing = out / name / "pretraining_seconds.json"  # a resumed run adds its seconds to the earlier ones
    earlier = json.loads(timing.read_text())["seconds"] if args.resume and timing.is_file() else 0.0
    trainer = pretraining_trainer(model, len(data), pretrain_config(run), objective, checkpoint, args.steps, False, log,
                                  None, rngs=rngs, run_config={"copies": args.copies, "model": name},
                                  total_steps=args.steps)  # the schedule spans the step budget exactly
    if args.resume and checkpoint.is_file():
        trainer.resume()
    trainer.fit(batches)
    seconds = earlier + time.perf_counter() - start
    timing.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(timing, json.dumps({"seconds": seconds, "steps": trainer.global_step}) + "\n")
    folder = out / name / "pretrained"
    model.save_pretrained(folder)
    return (folder / "discriminator" if name == "electra" else folder), trainer.history, seconds


def classifier_of(name: str, folder: Path | None, args, tokenizer):
    """The family's sequence classifier: from the pre-trained folder (head newly initialised), or from scratch."""
    import minigrad
    from models.bert import BertConfig, BertForSequenceClassification
    from models.electra import ElectraForSequenceClassification
    from models.roberta import RobertaForSequenceClassification

    if name == "scratch":
        config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=args.hidden, num_hidden_layers=args.layers,
                            num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                            max_position_embeddings=max(args.max_seq_length, 128), pad_token_id=tokenizer.pad_token_id)
        return BertForSequenceClassification(config, generator=minigrad.Generator(args.seed))
    cls = {"bert": BertForSequenceClassification, "roberta": RobertaForSequenceClassification,
           "electra": ElectraForSequenceClassification}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "classifier newly initialised": that is the point
        return cls.from_pretrained(folder, num_labels=2)


def fine_tune(name: str, model, tokenizer, sst2: dict, args, out: Path, log) -> dict:
    from models.finetune import TrainingConfig, evaluate_classifier, fine_tune_classifier

    config = TrainingConfig(epochs=args.finetune_epochs, lr=args.finetune_lr, batch_size=args.finetune_batch_size,
                            patience=None, seed=args.seed)
    start = time.perf_counter()
    trainer, _, _ = fine_tune_classifier(model, tokenizer, sst2["train"], sst2["dev"], "sst2", config,
                                         max_seq_length=64, out_dir=out / name / "sst2", log=log, progress=False)
    test, _ = evaluate_classifier(model, tokenizer, sst2["test"], "sst2", 64)
    return {"dev_accuracy": trainer.best_score, "test_accuracy": test["accuracy"], "best_epoch": trainer.best_epoch,
            "seconds": round(time.perf_counter() - start, 1)}


def plot_pretraining(path: Path, histories: dict) -> None:
    import numpy as np

    from models.plotting import save_figure, subplots

    fig, axes = subplots(1, 2, figsize=(10, 3.8))
    for name, history in histories.items():
        steps = history["steps"]
        for ax, key in ((axes[0], "loss"), (axes[1], "mlm_accuracy")):
            y = np.asarray(steps.get(key, []), dtype=float)
            if len(y) > 10:
                y = np.convolve(y, np.ones(10) / 10, mode="valid")
            ax.plot(np.arange(len(y)) + 1, y, label=LABELS[name])
    axes[0].set(xlabel="optimizer step", ylabel="training loss (moving average)", yscale="log")
    axes[1].set(xlabel="optimizer step", ylabel="MLM accuracy (ELECTRA: its generator)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def run(args: argparse.Namespace) -> int:
    from models.data.glue import load_shared_task

    start = time.perf_counter()
    out: Path = args.out
    check_encoder_arguments(args, "pretrain-compare")
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODELS))
    if unknown or not chosen:
        raise ValueError(f"pretrain-compare: --models takes names among {MODELS}, got {args.models!r}")
    for name in ("steps", "finetune_epochs", "finetune_batch_size", "copies"):
        if getattr(args, name) < 1:
            raise ValueError(f"pretrain-compare: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    sst2 = load_shared_task("sst2", args.data)
    if args.max_train:
        import numpy as np

        keep = np.random.default_rng(args.seed).permutation(len(sst2["train"]))[:args.max_train]
        sst2["train"] = [sst2["train"][i] for i in sorted(keep)]
    train_docs, _ = corpus_documents(args)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = wordpiece_tokenizer(out, train_docs, args.vocab_size, args.resume)
    print(f"budget: {args.steps} steps × {args.batch_size} rows × ≤ {args.max_seq_length} tokens, H={args.hidden} "
          f"L={args.layers} A={args.heads}, WordPiece {len(tokenizer.vocab):,} from {corpus_name(args)}; SST-2: "
          f"{len(sst2['train']):,} train / {len(sst2['dev'])} dev / {len(sst2['test']):,} test, "
          f"{args.finetune_epochs} epochs at lr {args.finetune_lr:g}")
    results, histories = {}, {}
    for name in chosen:
        folder, seconds = None, 0.0
        if name != "scratch":
            folder, histories[name], seconds = pretrain_one(name, args, tokenizer, train_docs, out, print_line)
        model = classifier_of(name, folder, args, tokenizer)
        scores = fine_tune(name, model, tokenizer, sst2, args, out, print_line)
        ends = end_points(histories[name]["steps"], ("loss", "mlm_accuracy", "nsp_accuracy", "rtd_accuracy",
                                                      "rtd_auc")) if name in histories else {}
        results[name] = {"label": LABELS[name], "pretraining_seconds": round(seconds, 1), "end_points": ends,
                         **scores}
        print_line(f"{LABELS[name]}: SST-2 dev {scores['dev_accuracy']:.3f}, test {scores['test_accuracy']:.3f} "
                   f"(pre-training {seconds:.0f} s, fine-tuning {scores['seconds']:.0f} s)")
        write_metrics(out, {"corpus": corpus_name(args), "budget": {"steps": args.steps, "batch_size": args.batch_size,
                                                                    "max_seq_length": args.max_seq_length,
                                                                    "hidden": args.hidden, "layers": args.layers,
                                                                    "heads": args.heads},
                            "results": results, "seconds": round(time.perf_counter() - start, 1)})
    print("\n| pre-training | SST-2 dev acc. | SST-2 test acc. | pre-training time | end of pre-training |")
    print("|---|---:|---:|---:|---|")
    for name, r in results.items():
        ends = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in r["end_points"].items()) or "—"
        print(f"| {r['label']} | {r['dev_accuracy']:.3f} | {r['test_accuracy']:.3f} | "
              f"{r['pretraining_seconds']:.0f} s | {ends} |")
    if not args.no_plot and histories:
        plot_pretraining(out / "curves.png", histories)
    print(f"wrote {out / 'metrics.json'} in {time.perf_counter() - start:.0f} s")
    return 0
