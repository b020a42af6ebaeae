"""Recipe ``python -m models roberta-pretrain``: pre-train a small RoBERTa on CPU (book § 4.4).

What RoBERTa changed in BERT's pre-training, each a flag here:

1. **FULL-SENTENCES inputs, no NSP**: rows packed with whole contiguous sentences up to
   ``--max-seq-length`` tokens, across document boundaries (``models.pretraining_data.pack_full_sentences``);
   the loss is the masked LM alone.
2. **Dynamic masking** (``--masking dynamic``, the default): a new 15 % mask every epoch; ``--masking static``
   is BERT's "copy the data ``--copies`` times with different masks" (each mask comes back every
   ``--copies`` epochs).
3. **Large batches** by gradient accumulation: ``--batch-size 32 --grad-accum 8`` steps on 256 sequences.
4. **Byte-level BPE** (``--tokenizer bpe``, the default): a RoBERTa vocabulary learnt from the training
   documents (``models.text.roberta_tokenizer``); ``--tokenizer wordpiece`` uses BERT's instead.

Writes into ``--out``: ``checkpoint.safetensors`` (``--resume``), ``model/`` and ``tokenizer/`` (HF format:
``transformers.RobertaForMaskedLM.from_pretrained`` opens it), ``metrics.json`` (every step, validation,
end points) and ``curves.png``.
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
    add_encoder_arguments(parser, out="runs/roberta_pretrain", epochs=8)
    parser.add_argument("--tokenizer", choices=("bpe", "wordpiece"), default="bpe",
                        help="byte-level BPE (RoBERTa's) or WordPiece (BERT's), learnt from the corpus")


def build_tokenizer(out: Path, kind: str, train_docs: list, vocab_size: int, resume: bool):
    """RoBERTa's byte-level BPE learnt from the training documents (or BERT's WordPiece), in ``out/tokenizer``."""
    if kind == "wordpiece":
        return wordpiece_tokenizer(out, train_docs, vocab_size, resume)
    from models.text.roberta_tokenizer import RobertaTokenizer, train_roberta_bpe

    folder = out / "tokenizer"
    if resume and (folder / "vocab.json").is_file():
        return RobertaTokenizer.from_pretrained(folder)
    vocab, merges = train_roberta_bpe([" ".join(doc) for doc in train_docs], vocab_size)
    tokenizer = RobertaTokenizer(vocab, merges)
    tokenizer.save_pretrained(folder)
    return tokenizer


def roberta_config(args, tokenizer):
    """A small RoBERTa: positions for ``--max-seq-length`` tokens after padding_idx + 1, one token type."""
    from models.roberta import RobertaConfig

    pad = tokenizer.pad_token_id
    return RobertaConfig(vocab_size=len(tokenizer.vocab), hidden_size=args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=args.heads, intermediate_size=4 * args.hidden, pad_token_id=pad,
                         max_position_embeddings=args.max_seq_length + pad + 1, layer_norm_eps=1e-5)


def run(args: argparse.Namespace) -> int:
    import minigrad
    from models.bert_pretraining import tokenize_documents
    from models.pretraining_data import (evaluate_objective, mlm_batches, mlm_objective, pack_full_sentences)
    from models.roberta import RobertaForMaskedLM

    start = time.perf_counter()
    out: Path = args.out
    check_encoder_arguments(args, "roberta-pretrain")
    train_docs, valid_docs = corpus_documents(args)
    if args.resume and not (out / CHECKPOINT).is_file():
        raise FileNotFoundError(f"roberta-pretrain: --resume but no checkpoint in {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, args.tokenizer, train_docs, args.vocab_size, args.resume)
    train_data = pack_full_sentences(tokenize_documents(train_docs, tokenizer), tokenizer, args.max_seq_length)
    valid_data = pack_full_sentences(tokenize_documents(valid_docs, tokenizer), tokenizer, args.max_seq_length)
    config = roberta_config(args, tokenizer)
    model = RobertaForMaskedLM(config, generator=minigrad.Generator(args.seed))
    fill = train_data.attention_mask.mean()
    print(f"corpus: {corpus_name(args)} — {len(train_docs)} train / {len(valid_docs)} validation documents; "
          f"{args.tokenizer} vocabulary {len(tokenizer.vocab):,}; FULL-SENTENCES: {len(train_data):,} train / "
          f"{len(valid_data):,} validation rows of {args.max_seq_length} ({fill:.1%} real tokens)")
    print(f"model: H={args.hidden} L={args.layers} A={args.heads}, {model.num_parameters():,} parameters; "
          f"{args.masking} masking, batch {args.batch_size} × {args.grad_accum} accumulated")

    def batches(epoch: int):
        return mlm_batches(train_data, args.batch_size, epoch, args.seed, args.masking, args.copies)

    trainer = train(model, mlm_objective, batches, len(train_data), args, out / CHECKPOINT, print_line,
                    run_config={"copies": args.copies, "tokenizer": args.tokenizer})
    valid = evaluate_objective(model, mlm_batches(valid_data, 64, 0, args.seed + 1, "dynamic"), mlm_objective)
    model.save_pretrained(out / "model")
    steps = trainer.history["steps"]
    ends = end_points(steps, ("loss", "mlm_accuracy"))
    print(f"validation: MLM loss {valid['loss']:.3f}, accuracy {valid['mlm_accuracy']:.3f}; last 20 steps: "
          f"train loss {ends.get('loss', float('nan')):.3f}, MLM accuracy {ends.get('mlm_accuracy', float('nan')):.3f}")
    metrics = {"corpus": corpus_name(args), "config": config.to_dict(), "masking": args.masking,
               "copies": args.copies, "batch": args.batch_size * args.grad_accum, "tokenizer": args.tokenizer,
               "validation": valid, "end_points": ends, "history": trainer.history,
               "seconds": round(time.perf_counter() - start, 1)}
    write_metrics(out, metrics)
    if not args.no_plot and steps.get("step"):
        plot_curves(out / "curves.png", steps, [("masked-LM loss", ["loss"], "loss"),
                                                ("MLM accuracy (masked tokens)", ["mlm_accuracy"], "accuracy")],
                    {"loss": valid["loss"], "mlm_accuracy": valid["mlm_accuracy"]},
                    f"RoBERTa, {args.masking} masking, FULL-SENTENCES")
    print(f"wrote {out / 'metrics.json'}{'' if args.no_plot else ', ' + str(out / 'curves.png')}, "
          f"{out / 'model'} in {metrics['seconds']} s")
    return 0
