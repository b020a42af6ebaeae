"""Recipe ``python -m models bert-pretrain``: pre-train a small BERT with MLM + NSP on CPU (book § 4.2.6).

1. Documents (default: CPython's pydoc help topics, one topic per document; ``--corpus`` a text
   file with documents separated by blank lines) are split 90 / 10 into train / validation.
2. A WordPiece vocabulary is learnt from the training documents (``train_wordpiece``).
3. NSP pairs and MLM masks are built as Google's ``create_pretraining_data.py`` does.
4. A small BERT (H=128, 2 layers, 2 heads by default) is trained with AdamW and linear warm-up /
   decay; the vocabulary logits are computed only at the masked positions.

Writes into ``--out``: ``checkpoint.safetensors`` (for ``--resume``), ``model/`` and ``tokenizer/``
(HF format: ``transformers.BertForPreTraining.from_pretrained`` opens it), ``metrics.json`` and
``curves.png`` (loss, MLM accuracy and NSP accuracy per step, and the validation scores).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from models.recipes.common import (TrainingFlags, add_common_arguments, corpus_name, print_line, report_error,
                                   write_metrics)

CHECKPOINT = "checkpoint.safetensors"
TRAINING = TrainingFlags(epochs=8, checkpoint=CHECKPOINT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/bert_pretrain", seed="the split, the data, the masks and the init",
                         corpus="UTF-8 text, documents separated by blank lines (default: pydoc topics)",
                         training=TRAINING)
    parser.add_argument("--vocab-size", type=int, default=8000, help="WordPiece vocabulary learnt from the corpus")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size H")
    parser.add_argument("--layers", type=int, default=2, help="encoder layers L")
    parser.add_argument("--heads", type=int, default=2, help="attention heads A")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--masking", choices=("dynamic", "static"), default="dynamic")


def split_documents(documents: list, seed: int, valid_fraction: float = 0.1) -> tuple[list, list]:
    """Shuffle documents with ``seed``; ``valid_fraction`` of them (at least 2) for validation."""
    import numpy as np

    if len(documents) < 4:
        raise ValueError(f"bert-pretrain: the corpus has {len(documents)} documents; need at least 4 "
                         "(documents are separated by blank lines)")
    order = np.random.default_rng(seed).permutation(len(documents))
    n_valid = max(2, int(round(valid_fraction * len(documents))))
    return [documents[i] for i in order[n_valid:]], [documents[i] for i in order[:n_valid]]


def build_tokenizer(out: Path, train_docs: list, vocab_size: int, resume: bool):
    """Train the WordPiece vocabulary (or reload it when resuming) and save it to ``out/tokenizer``."""
    from models.text.wordpiece import BertTokenizer
    from models.text.wordpiece_train import train_wordpiece

    folder = out / "tokenizer"
    if resume and (folder / "vocab.txt").is_file():
        return BertTokenizer.from_pretrained(folder)
    tokenizer = BertTokenizer(train_wordpiece([s for doc in train_docs for s in doc], vocab_size))
    tokenizer.save_pretrained(folder)
    return tokenizer


def plot_curves(path: Path, history: dict, valid: dict) -> None:
    import numpy as np

    from models.plotting import save_figure, subplots

    def smooth(y, k=10):
        y = np.asarray(y, dtype=float)
        return np.convolve(y, np.ones(k) / k, mode="valid") if len(y) > k else y

    steps = np.asarray(history["step"])
    fig, axes = subplots(1, 3, figsize=(14, 4))
    for key, label in (("loss", "MLM + NSP"), ("mlm_loss", "MLM"), ("nsp_loss", "NSP")):
        axes[0].plot(steps[:len(smooth(history[key]))], smooth(history[key]), label=label)
    axes[0].set(xlabel="step", ylabel="loss (moving average)", title="training loss")
    for ax, key, name in ((axes[1], "mlm_accuracy", "MLM accuracy (masked tokens)"),
                          (axes[2], "nsp_accuracy", "NSP accuracy")):
        ax.plot(steps, history[key], alpha=0.3, color="tab:blue")
        ax.plot(steps[:len(smooth(history[key]))], smooth(history[key]), color="tab:blue", label="train")
        ax.axhline(valid[key], color="tab:red", linestyle="--", label=f"validation {valid[key]:.3f}")
        ax.set(xlabel="step", ylabel="accuracy", title=name, ylim=(0, 1))
    axes[2].axhline(0.5, color="gray", linestyle=":", label="chance")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def fill_mask_examples(model, tokenizer, documents: list, k: int = 3, seed: int = 0) -> list[dict]:
    """Mask one word-piece in ``k`` validation sentences and list the model's top-5 guesses."""
    import numpy as np

    from models.training import evaluating

    rng = np.random.default_rng(seed)
    sentences = [s for doc in documents for s in doc if 6 <= len(s.split()) <= 20]
    examples = []
    for s in [sentences[i] for i in rng.choice(len(sentences), size=min(k, len(sentences)), replace=False)]:
        enc = tokenizer(s, truncation=True, max_length=64, return_tensors="np")
        ids = enc["input_ids"].copy()
        position = int(rng.integers(1, ids.shape[1] - 1))
        answer = tokenizer.convert_ids_to_tokens([int(ids[0, position])])[0]
        ids[0, position] = tokenizer.mask_token_id
        with evaluating(model):
            logits = model(ids, enc["attention_mask"], enc["token_type_ids"]).prediction_logits.data[0, position]
        top = tokenizer.convert_ids_to_tokens(np.argsort(-logits)[:5].tolist())
        masked = tokenizer.convert_ids_to_tokens(ids[0, 1:-1].tolist())
        examples.append({"masked": " ".join(masked), "answer": answer, "top5": top})
    return examples


def run(args: argparse.Namespace) -> int:
    import minigrad
    from models.bert import BertConfig, BertForPreTraining
    from models.bert_pretraining import (PretrainConfig, apply_static_masking, create_pretraining_data,
                                         default_documents, documents_from_text, evaluate, pretrain,
                                         tokenize_documents)
    from models.text import load_text

    start = time.perf_counter()
    out: Path = args.out
    try:
        if args.hidden % args.heads:
            raise ValueError(f"bert-pretrain: --hidden {args.hidden} must be a multiple of --heads {args.heads}")
        documents = documents_from_text(load_text(args.corpus)) if args.corpus else default_documents()
        train_docs, valid_docs = split_documents(documents, args.seed)
        if args.resume and not (out / CHECKPOINT).is_file():
            raise FileNotFoundError(f"bert-pretrain: --resume but no checkpoint in {str(out)!r}")
        out.mkdir(parents=True, exist_ok=True)
        tokenizer = build_tokenizer(out, train_docs, args.vocab_size, args.resume)
        train_data = create_pretraining_data(tokenize_documents(train_docs, tokenizer), tokenizer,
                                             args.max_seq_length, seed=args.seed)
        valid_data = create_pretraining_data(tokenize_documents(valid_docs, tokenizer), tokenizer,
                                             args.max_seq_length, seed=args.seed + 1)
        train_config = PretrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                                      grad_accum_steps=args.grad_accum, masking=args.masking, seed=args.seed)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    if args.masking == "static":
        apply_static_masking(train_data, seed=args.seed)
    config = BertConfig(vocab_size=len(tokenizer.vocab), hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                        max_position_embeddings=max(args.max_seq_length, 128), pad_token_id=tokenizer.pad_token_id)
    model = BertForPreTraining(config, generator=minigrad.Generator(args.seed))
    corpus = corpus_name(args)
    print(f"corpus: {corpus} — {len(train_docs)} train / {len(valid_docs)} validation documents; "
          f"WordPiece vocabulary {len(tokenizer.vocab):,}; {len(train_data):,} train / {len(valid_data):,} "
          f"validation pairs (NotNext {train_data.next_sentence_label.mean():.1%})")
    print(f"model: H={args.hidden} L={args.layers} A={args.heads}, {model.num_parameters():,} parameters")
    history = pretrain(model, train_data, train_config, checkpoint_path=out / CHECKPOINT, resume=args.resume,
                       max_steps=args.max_steps, time_budget=args.time_budget, progress=True, log=print_line)
    valid = evaluate(model, valid_data, seed=args.seed)
    examples = fill_mask_examples(model, tokenizer, valid_docs, seed=args.seed)
    model.save_pretrained(out / "model")
    print(f"validation: MLM accuracy {valid['mlm_accuracy']:.3f} (perplexity {valid['mlm_perplexity']:.1f}), "
          f"NSP accuracy {valid['nsp_accuracy']:.3f}")
    for ex in examples:
        print(f"  {ex['masked']}\n    answer {ex['answer']!r}, top-5 {ex['top5']}")
    metrics = {"corpus": corpus, "config": config.to_dict(), "train": asdict(train_config),
               "validation": valid, "history": history.to_dict(), "fill_mask": examples,
               "seconds": round(time.perf_counter() - start, 1)}
    write_metrics(out, metrics)
    if not args.no_plot and history.step:
        plot_curves(out / "curves.png", history.to_dict(), valid)
    plot = "" if args.no_plot else f", {out / 'curves.png'}"
    print(f"wrote {out / 'metrics.json'}{plot}, {out / 'model'} in {metrics['seconds']} s")
    return 0
