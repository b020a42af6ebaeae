"""Recipe ``python -m models albert-pretrain``: pre-train a small ALBERT on CPU (book § 4.5).

1. The parameter table of the book: albert-base-v2 against bert-base, part by part, from the configs
   alone (``models.albert.parameter_breakdown``) — 11,683,584 against 109,482,240 — and the model trained here.
2. Sentence-order prediction pairs (two consecutive segments, swapped half of the time) with 15 % MLM
   masks, new every epoch (``models.pretraining_data``).
3. ALBERT with factorized embeddings (``--embedding-size`` E < H) and ``--groups`` groups of shared
   weights (1: every layer is the same layer), trained on MLM + SOP; MLM and SOP accuracy per step.
4. The sharing demo (Lan et al. Figure 1): the trained shared layer applied ``--applications`` (24)
   times, the L2 distance and cosine similarity between each application's input and output, beside
   the same model at initialisation.

The vocabulary is WordPiece learnt from the corpus, as ``bert-pretrain``'s (ALBERT's own SentencePiece
tokenizer is ``models.text.albert_tokenizer``: ``--spm-model spiece.model`` uses one you have; this project
has no SentencePiece trainer). Writes ``checkpoint.safetensors`` (``--resume``), ``model/``, ``tokenizer/``,
``metrics.json``, ``curves.png`` and ``transitions.png`` into ``--out``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.recipes.common import corpus_name, print_line, write_metrics
from models.recipes.pretraining_common import (CHECKPOINT, add_encoder_arguments, check_encoder_arguments,
                                               corpus_documents, end_points, plot_curves, train,
                                               wordpiece_tokenizer)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_encoder_arguments(parser, out="runs/albert_pretrain", epochs=8, masking=False)
    parser.add_argument("--embedding-size", type=int, default=64, help="E, the width of the embedding tables")
    parser.add_argument("--groups", type=int, default=1, help="groups of layers with their own weights")
    parser.add_argument("--applications", type=int, default=24, help="applications of the shared layer in the demo")
    parser.add_argument("--spm-model", type=Path, default=None,
                        help="a SentencePiece .model (with [CLS] [SEP] [MASK] <pad> <unk>) instead of WordPiece")


def parameter_tables() -> dict:
    """The book's comparison, from the configs alone: albert-base-v2 and bert-base, part by part."""
    from models.albert import AlbertConfig, parameter_breakdown
    from models.bert import BertConfig

    return {"albert-base-v2": parameter_breakdown(AlbertConfig()), "bert-base": parameter_breakdown(BertConfig())}


def print_parameter_table(tables: dict) -> None:
    names = list(tables)
    parts = list(next(iter(tables.values())))
    print("| part | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for part in parts:
        print(f"| {part} | " + " | ".join(f"{tables[n][part]:,}" for n in names) + " |")


def plot_transitions(path: Path, trained: dict, initial: dict) -> None:
    from models.plotting import save_figure, subplots

    fig, axes = subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "l2", "L2 distance ‖h_l − h_(l−1)‖"), (axes[1], "cosine", "cosine(h_l, h_(l−1))")):
        for curve, name in ((trained, "trained"), (initial, "at initialisation")):
            ax.plot(range(1, len(curve[key]) + 1), curve[key], marker="o", ms=3, label=name)
        ax.set(xlabel="application of the shared layer", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("ALBERT: one shared layer applied again and again (Lan et al. Figure 1)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def build_tokenizer(out: Path, args, train_docs: list):
    if args.spm_model is None:
        return wordpiece_tokenizer(out, train_docs, args.vocab_size, args.resume)
    from models.text.albert_tokenizer import AlbertTokenizer

    tokenizer = AlbertTokenizer(args.spm_model)
    tokenizer.save_pretrained(out / "tokenizer")
    return tokenizer


def run(args: argparse.Namespace) -> int:
    import minigrad
    from models.albert import (AlbertConfig, AlbertForPreTraining, count_parameters, layer_transitions,
                               parameter_breakdown)
    from models.bert_pretraining import tokenize_documents
    from models.pretraining_data import create_sop_data, evaluate_objective, mlm_batches, mlm_sop_objective

    start = time.perf_counter()
    out: Path = args.out
    check_encoder_arguments(args, "albert-pretrain")
    for name in ("embedding_size", "groups", "applications"):
        if getattr(args, name) < 1:
            raise ValueError(f"albert-pretrain: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    tables = parameter_tables()
    print("parameters (from the configs alone):")
    print_parameter_table(tables)
    train_docs, valid_docs = corpus_documents(args)
    if args.resume and not (out / CHECKPOINT).is_file():
        raise FileNotFoundError(f"albert-pretrain: --resume but no checkpoint in {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, args, train_docs)
    train_data = create_sop_data(tokenize_documents(train_docs, tokenizer), tokenizer, args.max_seq_length,
                                 seed=args.seed)
    valid_data = create_sop_data(tokenize_documents(valid_docs, tokenizer), tokenizer, args.max_seq_length,
                                 seed=args.seed + 1)
    config = AlbertConfig(vocab_size=len(tokenizer.vocab), embedding_size=args.embedding_size,
                          hidden_size=args.hidden, num_hidden_layers=args.layers, num_hidden_groups=args.groups,
                          num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                          max_position_embeddings=max(args.max_seq_length, 128), pad_token_id=tokenizer.pad_token_id)
    model = AlbertForPreTraining(config, generator=minigrad.Generator(args.seed))
    tables["trained here"] = parameter_breakdown(config)
    print(f"corpus: {corpus_name(args)} — {len(train_docs)} train / {len(valid_docs)} validation documents; "
          f"vocabulary {len(tokenizer.vocab):,}; {len(train_data):,} train / {len(valid_data):,} validation SOP pairs "
          f"(swapped {train_data.next_sentence_label.mean():.1%})")
    print(f"model: E={args.embedding_size} H={args.hidden} L={args.layers} (groups {args.groups}) A={args.heads}, "
          f"{count_parameters(config):,} parameters in the encoder, {model.num_parameters():,} with the heads")

    def batches(epoch: int):
        return mlm_batches(train_data, args.batch_size, epoch, args.seed, "dynamic")

    trainer = train(model, mlm_sop_objective, batches, len(train_data), args, out / CHECKPOINT, print_line,
                    run_config={"embedding_size": args.embedding_size, "groups": args.groups})
    valid = evaluate_objective(model, mlm_batches(valid_data, 64, 0, args.seed + 1, "dynamic"), mlm_sop_objective)
    model.save_pretrained(out / "model")
    demo_batch = next(mlm_batches(valid_data, 16, 0, args.seed + 2, "dynamic"))
    ids, mask = demo_batch["original_ids"], demo_batch["attention_mask"]
    trained = layer_transitions(model.albert, ids, mask, args.applications)
    initial = layer_transitions(AlbertForPreTraining(config, generator=minigrad.Generator(args.seed)).albert, ids,
                                mask, args.applications)
    steps = trainer.history["steps"]
    ends = end_points(steps, ("loss", "mlm_loss", "sop_loss", "mlm_accuracy", "sop_accuracy"))
    print(f"validation: MLM accuracy {valid['mlm_accuracy']:.3f}, SOP accuracy {valid['sop_accuracy']:.3f}; "
          f"last 20 steps: MLM {ends.get('mlm_accuracy', float('nan')):.3f}, SOP {ends.get('sop_accuracy', float('nan')):.3f}")
    print(f"shared layer applied {args.applications}×: L2 distance first {trained['l2'][0]:.3f} → last "
          f"{trained['l2'][-1]:.3f} (at initialisation {initial['l2'][0]:.3f} → {initial['l2'][-1]:.3f})")
    metrics = {"corpus": corpus_name(args), "config": config.to_dict(), "parameters": tables, "validation": valid,
               "end_points": ends, "transitions": {"trained": trained, "initial": initial},
               "history": trainer.history, "seconds": round(time.perf_counter() - start, 1)}
    write_metrics(out, metrics)
    if not args.no_plot and steps.get("step"):
        plot_curves(out / "curves.png", steps, [("loss", ["loss", "mlm_loss", "sop_loss"], "loss"),
                                                ("MLM accuracy (masked tokens)", ["mlm_accuracy"], "accuracy"),
                                                ("sentence-order accuracy", ["sop_accuracy"], "accuracy")],
                    valid, f"ALBERT: E={args.embedding_size}, {args.layers} layers sharing {args.groups} group(s)")
        plot_transitions(out / "transitions.png", trained, initial)
    print(f"wrote {out / 'metrics.json'} and the plots, {out / 'model'} in {metrics['seconds']} s")
    return 0
