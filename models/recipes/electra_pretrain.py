"""Recipe ``python -m models electra-pretrain``: pre-train a small ELECTRA on CPU (book § 4.6).

1. FULL-SENTENCES rows of the corpus (``models.pretraining_data``) with 15 % of the tokens masked anew
   every epoch; a WordPiece vocabulary learnt from the training documents (ELECTRA uses BERT's).
2. A generator ``--generator-size`` (¼) of the discriminator's width, sharing its embeddings
   (``models.electra.ElectraPretrainer``): its MLM predictions at the masked positions are *sampled* and
   put back; the discriminator labels every token original / replaced.
3. Loss = L_MLM + λ·L_RTD (``--rtd-weight``, 50); per step: the generator's MLM accuracy, the
   discriminator's RTD accuracy and AUC, and how many tokens were replaced.

Writes into ``--out``: ``checkpoint.safetensors`` (``--resume``), ``generator/`` and ``discriminator/`` (HF
format: ``transformers.ElectraForPreTraining.from_pretrained(out / "discriminator")`` opens the one to
fine-tune), ``tokenizer/``, ``metrics.json`` and ``curves.png``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.recipes.common import corpus_name, print_line, write_metrics
from models.recipes.pretraining_common import (CHECKPOINT, add_encoder_arguments, check_encoder_arguments,
                                               corpus_documents, end_points, plot_curves, train,
                                               wordpiece_tokenizer)

CURVES = ("loss", "mlm_loss", "rtd_loss", "mlm_accuracy", "rtd_accuracy", "rtd_auc", "replaced")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_encoder_arguments(parser, out="runs/electra_pretrain", epochs=8)
    parser.add_argument("--embedding-size", type=int, default=128, help="E, the width of the shared embeddings")
    parser.add_argument("--generator-size", type=float, default=0.25, help="generator width / discriminator width")
    parser.add_argument("--rtd-weight", type=float, default=50.0, help="λ of L_MLM + λ·L_RTD")


def electra_configs(args, tokenizer):
    """(generator config, discriminator config) of the flags."""
    from models.electra import ElectraConfig, generator_config

    disc = ElectraConfig(vocab_size=len(tokenizer.vocab), embedding_size=args.embedding_size, hidden_size=args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=args.heads,
                         intermediate_size=4 * args.hidden, max_position_embeddings=max(args.max_seq_length, 128),
                         pad_token_id=tokenizer.pad_token_id)
    return generator_config(disc, args.generator_size), disc


def run(args: argparse.Namespace) -> int:
    import numpy as np

    import minigrad
    from models.bert_pretraining import tokenize_documents
    from models.electra import ElectraPretrainer
    from models.pretraining_data import evaluate_objective, mlm_batches, pack_full_sentences, rtd_objective

    start = time.perf_counter()
    out: Path = args.out
    check_encoder_arguments(args, "electra-pretrain")
    if args.embedding_size < 1 or not 0 < args.generator_size <= 1 or args.rtd_weight < 0:
        raise ValueError(f"electra-pretrain: need --embedding-size >= 1, --generator-size in (0, 1] and "
                         f"--rtd-weight >= 0; got {args.embedding_size}, {args.generator_size}, {args.rtd_weight}")
    train_docs, valid_docs = corpus_documents(args)
    if args.resume and not (out / CHECKPOINT).is_file():
        raise FileNotFoundError(f"electra-pretrain: --resume but no checkpoint in {str(out)!r}")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = wordpiece_tokenizer(out, train_docs, args.vocab_size, args.resume)
    train_data = pack_full_sentences(tokenize_documents(train_docs, tokenizer), tokenizer, args.max_seq_length)
    valid_data = pack_full_sentences(tokenize_documents(valid_docs, tokenizer), tokenizer, args.max_seq_length)
    gen_config, disc_config = electra_configs(args, tokenizer)
    pair = ElectraPretrainer(gen_config, disc_config, args.rtd_weight, generator=minigrad.Generator(args.seed))
    print(f"corpus: {corpus_name(args)} — {len(train_docs)} train / {len(valid_docs)} validation documents; "
          f"vocabulary {len(tokenizer.vocab):,}; FULL-SENTENCES: {len(train_data):,} train / {len(valid_data):,} "
          f"validation rows of {args.max_seq_length}")
    print(f"discriminator: E={args.embedding_size} H={args.hidden} L={args.layers} A={args.heads}, "
          f"{pair.discriminator.num_parameters():,} parameters; generator H={gen_config.hidden_size} "
          f"A={gen_config.num_attention_heads}, {pair.generator.num_parameters():,} (embeddings shared); "
          f"λ = {args.rtd_weight:g}")
    sampling = np.random.default_rng([args.seed, 0x5A4D])  # the generator's samples: a step stream

    def batches(epoch: int):
        return mlm_batches(train_data, args.batch_size, epoch, args.seed, args.masking, args.copies)

    trainer = train(pair, rtd_objective(sampling), batches, len(train_data), args, out / CHECKPOINT, print_line,
                    rngs={"sampling": sampling},
                    run_config={"copies": args.copies, "embedding_size": args.embedding_size,
                                "generator_size": args.generator_size, "rtd_weight": args.rtd_weight})
    valid = evaluate_objective(pair, mlm_batches(valid_data, 64, 0, args.seed + 1, "dynamic"),
                               rtd_objective(np.random.default_rng([args.seed, 0xE7A1])))
    pair.save_pretrained(out)
    steps = trainer.history["steps"]
    ends = end_points(steps, CURVES)
    print(f"validation: generator MLM accuracy {valid['mlm_accuracy']:.3f}, discriminator RTD accuracy "
          f"{valid['rtd_accuracy']:.3f}, AUC {valid['rtd_auc']:.3f} ({valid['replaced']:.1%} of the tokens replaced)")
    metrics = {"corpus": corpus_name(args), "generator": gen_config.to_dict(), "discriminator": disc_config.to_dict(),
               "rtd_weight": args.rtd_weight, "masking": args.masking, "validation": valid, "end_points": ends,
               "history": trainer.history, "seconds": round(time.perf_counter() - start, 1)}
    write_metrics(out, metrics)
    if not args.no_plot and steps.get("step"):
        plot_curves(out / "curves.png", steps, [("loss", ["loss", "mlm_loss", "rtd_loss"], "loss"),
                                                ("generator MLM accuracy", ["mlm_accuracy"], "accuracy"),
                                                ("discriminator", ["rtd_accuracy", "rtd_auc", "replaced"],
                                                 "accuracy / AUC / share replaced")],
                    valid, f"ELECTRA: generator ×{args.generator_size:g}, λ = {args.rtd_weight:g}")
    print(f"wrote {out / 'metrics.json'}{'' if args.no_plot else ', ' + str(out / 'curves.png')}, "
          f"{out / 'discriminator'} in {metrics['seconds']} s")
    return 0
