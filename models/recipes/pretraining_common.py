"""What the pre-training recipes of BERT's successors share (``roberta-pretrain``, ``albert-pretrain``,
``electra-pretrain`` and ``pretrain-compare``): their flags, the corpus split and tokenizer, the training
run on ``models.training`` (checkpoints, exact ``--resume``, time budget), the curves and their end points.

The corpus is split and tokenized as in ``bert-pretrain`` (``models.recipes.bert_pretrain``): documents
separated by blank lines (default: CPython's pydoc topics), 90 / 10 into train / validation documents, a
WordPiece vocabulary learnt from the training documents.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.recipes.common import TrainingFlags, add_common_arguments

CHECKPOINT = "checkpoint.safetensors"
CORPUS_HELP = "UTF-8 text, documents separated by blank lines (default: pydoc topics)"


def add_encoder_arguments(parser: argparse.ArgumentParser, *, out: str, epochs: int | None,
                          masking: bool = True) -> None:
    """The flags every pre-training recipe here takes (the shared recipe flags included). ``epochs`` None: the
    recipe counts optimizer steps instead (``pretrain-compare``), and takes only ``--resume`` of the training flags."""
    training = TrainingFlags(epochs=epochs, checkpoint=CHECKPOINT) if epochs is not None else None
    add_common_arguments(parser, out=out, seed="the split, the data, the masks and the init", corpus=CORPUS_HELP,
                         training=training)
    if training is None:
        parser.add_argument("--resume", action="store_true", help="continue the runs checkpointed in OUT")
    parser.add_argument("--vocab-size", type=int, default=8000, help="vocabulary learnt from the corpus")
    parser.add_argument("--hidden", type=int, default=128, help="hidden size H")
    parser.add_argument("--layers", type=int, default=2, help="encoder layers L")
    parser.add_argument("--heads", type=int, default=2, help="attention heads A")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=1,
                        help="micro-batches per optimizer step (a batch of batch-size × grad-accum)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    if masking:
        parser.add_argument("--masking", choices=("dynamic", "static"), default="dynamic",
                            help="a new mask every epoch (RoBERTa), or --copies fixed masks in turn (BERT)")
        parser.add_argument("--copies", type=int, default=10,
                            help="static masking: the data copied this many times with different masks")


def check_encoder_arguments(args: argparse.Namespace, recipe: str) -> None:
    """Clear errors for sizes that cannot make a model."""
    for name in ("vocab_size", "hidden", "layers", "heads", "max_seq_length", "batch_size", "grad_accum"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"{recipe}: --{name.replace('_', '-')} must be >= 1, got {value}")
    if args.hidden % args.heads:
        raise ValueError(f"{recipe}: --hidden {args.hidden} must be a multiple of --heads {args.heads}")
    if args.max_seq_length < 8:
        raise ValueError(f"{recipe}: --max-seq-length must be >= 8, got {args.max_seq_length}")
    if getattr(args, "copies", 1) < 1:
        raise ValueError(f"{recipe}: --copies must be >= 1, got {args.copies}")


def corpus_documents(args: argparse.Namespace) -> tuple[list, list]:
    """(train documents, validation documents) as lists of sentences (``bert-pretrain``'s split)."""
    from models.bert_pretraining import default_documents, documents_from_text
    from models.recipes.bert_pretrain import split_documents
    from models.text import load_text

    documents = documents_from_text(load_text(args.corpus)) if args.corpus else default_documents()
    return split_documents(documents, args.seed)


def wordpiece_tokenizer(out: Path, train_docs: list, vocab_size: int, resume: bool):
    """The WordPiece vocabulary of ``bert-pretrain`` (saved in ``out/tokenizer``; reloaded on resume)."""
    from models.recipes.bert_pretrain import build_tokenizer

    return build_tokenizer(out, train_docs, vocab_size, resume)


def pretrain_config(args: argparse.Namespace):
    """``bert_pretraining.PretrainConfig`` from the flags."""
    from models.bert_pretraining import PretrainConfig

    return PretrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                          grad_accum_steps=args.grad_accum, masking=getattr(args, "masking", "dynamic"),
                          seed=args.seed)


def train(model, objective, batches, num_examples: int, args: argparse.Namespace, checkpoint: Path | None,
          log, rngs: dict | None = None, run_config: dict | None = None, progress: bool = True):
    """One pre-training run on ``models.training`` (``bert_pretraining.pretraining_trainer``): resumed from
    ``checkpoint`` with ``--resume``, stopped by ``--max-steps`` / ``--time-budget``. Returns the Trainer."""
    from models.bert_pretraining import pretraining_trainer

    trainer = pretraining_trainer(model, num_examples, pretrain_config(args), objective, checkpoint,
                                  args.max_steps, progress, log, args.time_budget, rngs=rngs, run_config=run_config)
    if args.resume:
        trainer.resume()
    trainer.fit(batches)
    model.eval()
    return trainer


def end_points(steps: dict, keys, window: int = 20) -> dict:
    """The mean of each curve over its last ``window`` optimizer steps (what the curves end at)."""
    out = {}
    for key in keys:
        values = [v for v in steps.get(key, []) if v is not None and np.isfinite(v)]
        if values:
            out[key] = float(np.mean(values[-window:]))
    return out


def plot_curves(path: Path, steps: dict, panels: list[tuple[str, list[str], str]], valid: dict,
                title: str) -> None:
    """One panel per (title, curve keys, y label): each curve per step (faint) and its moving average,
    and the validation value of the first key as a dashed line."""
    from models.plotting import save_figure, subplots

    def smooth(y, k=10):
        y = np.asarray(y, dtype=float)
        return np.convolve(y, np.ones(k) / k, mode="valid") if len(y) > k else y

    x = np.asarray(steps.get("step", []))
    fig, axes = subplots(1, len(panels), figsize=(4.6 * len(panels), 3.8), squeeze=False)
    for ax, (name, keys, ylabel) in zip(axes[0], panels):
        for key in keys:
            y = steps.get(key)
            if not y:
                continue
            line, = ax.plot(x, y, alpha=0.25, lw=0.7)
            ax.plot(x[:len(smooth(y))] + (len(y) - len(smooth(y))) // 2, smooth(y), color=line.get_color(),
                    label=key.replace("_", " "))
        if keys and keys[0] in valid:
            ax.axhline(valid[keys[0]], color="tab:red", ls="--", label=f"validation {valid[keys[0]]:.3f}")
        ax.set(xlabel="optimizer step", ylabel=ylabel, title=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


__all__ = ["add_encoder_arguments", "check_encoder_arguments", "corpus_documents", "wordpiece_tokenizer",
           "pretrain_config", "train", "end_points", "plot_curves", "CHECKPOINT"]
