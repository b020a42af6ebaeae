"""Command-line entry point: ``python -m models <recipe> [options]``.

Each recipe is a module with ``add_arguments(parser)`` and ``run(args) -> int``. Recipes are
listed here by name and imported only when chosen, so ``python -m models list`` stays fast.

A bad option or file, for every recipe, is one ``error:`` line on standard error and exit status 2:
a malformed or out-of-range flag is argparse's message on one line (without the usage block, which
``--help`` prints), ``--out`` naming an existing file is refused before the recipe starts, and a
``ValueError`` or ``OSError`` the recipe raises (a negative ``--steps``, a missing ``--checkpoint``) is
printed without its traceback. ``MINIGRAD_TRACEBACK=1`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from models.progress import progress_allowed, set_progress

# recipe name -> (module path, one-line description)
RECIPES: dict[str, tuple[str, str]] = {
    "demo": ("models.demo", "a tour of the book, one stop per chapter on embedded data (< 3 min): runs/demo/report.md"),
    "mlp-demo": ("models.recipes.mlp_demo", "train a small MLP on two spirals and print the loss falling"),
    "ngram": ("models.recipes.ngram", "N-gram language models with every smoothing: perplexity by order"),
    "word2vec": ("models.recipes.word2vec", "Word2Vec skip-gram/CBOW with negative sampling: neighbours, analogies, PCA plot"),
    "nplm": ("models.recipes.nplm", "Word2Vec-based feed-forward neural LM (Bengio 2003) vs the N-gram table"),
    "gru-lm": ("models.recipes.gru_lm", "GRU/RNN language model (word or char): perplexity vs unigram, generated text"),
    "seq2seq": ("models.recipes.seq2seq", "GRU encoder-decoder with attention (book, Bahdanau, Luong) on sequence reversal"),
    "transformer": ("models.recipes.transformer", "Transformer translation: synthetic reversal task, or Multi30k en-de (--data)"),
    "quantize": ("models.recipes.quantize", "int8 quantization (book appendix): dynamic vs static, size/error/time table, grid PNG"),
    "embed": ("models.recipes.embed", "sentence embeddings with pretrained MiniLM (BERT): cosine similarity matrix + heatmap"),
    "bert-pretrain": ("models.recipes.bert_pretrain", "pre-train a small BERT (MLM + NSP) on CPU: MLM and NSP accuracy curves"),
    "roberta-pretrain": ("models.recipes.roberta_pretrain", "pre-train a small RoBERTa (book 4.4): FULL-SENTENCES, no NSP, dynamic vs static masking, byte-level BPE"),
    "albert-pretrain": ("models.recipes.albert_pretrain", "pre-train a small ALBERT (book 4.5): MLM + sentence order, parameter table, shared-layer transitions"),
    "electra-pretrain": ("models.recipes.electra_pretrain", "pre-train a small ELECTRA (book 4.6): generator + discriminator, RTD accuracy and AUC per step"),
    "pretrain-compare": ("models.recipes.pretrain_compare", "BERT vs RoBERTa-style vs ELECTRA pre-trained on the same text and budget, then fine-tuned on SST-2"),
    "finetune": ("models.recipes.finetune", "fine-tune MiniLM (BERT) on SST-2/CoLA/MRPC/SICK/SQuAD, or --from-scratch"),
    "distill": ("models.recipes.distill", "knowledge distillation (book 4.7): 3-layer DistilBERT student of a fine-tuned MiniLM, distilled vs hard labels"),
    "gpt-pretrain": ("models.recipes.gpt_pretrain", "pre-train a small GPT-2 (causal LM, BPE) on CPU: perplexity curve, samples of every decoding, attention heatmap"),
    "why-transformer": ("models.recipes.why_transformer", "why Transformer (book 3.3): Kneser-Ney n-gram vs GRU LM vs GPT, bits per character, same time budget"),
    "fewshot-reviews": ("models.recipes.fewshot_reviews", "few-shot review sentiment (ARSC): Induction Network, Prototypical Networks, MAML, MiniLM prototypes"),
    "long-attention": ("models.recipes.long_attention", "long sequences (book 4.8-4.9): dense vs BigBird block-sparse vs Reformer LSH, time/memory curves, reversible layers"),
    "generate": ("models.recipes.generate", "continue a prompt with pretrained SmolLM2-135M (Llama, NumPy, from its GGUF file), tokens streamed"),
    "chat": ("models.recipes.chat", "chat with SmolLM2-135M-Instruct in its ChatML format (stdin; /reset, /quit)"),
    "fewshot": ("models.recipes.fewshot", "the book's few-shot experiment (5.3.5) measured: past tenses and capitals from 0-16 examples in the prompt"),
}


def _print_recipes() -> None:
    width = max(len(name) for name in RECIPES)
    for name, (_, help_text) in RECIPES.items():
        print(f"{name:<{width}}  {help_text}")


def main(argv: list[str] | None = None) -> int:
    """Run one recipe. Only the chosen recipe's module is imported, so a slow or broken
    recipe never affects the others (or ``list``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("list", "-h", "--help"):
        print("usage: python -m models <recipe> [options]   (python -m models <recipe> --help)\n")
        _print_recipes()
        return 0
    name = argv[0]
    if name not in RECIPES:
        print(f"python -m models: unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}", file=sys.stderr)
        return 2
    module_path, help_text = RECIPES[name]
    module = importlib.import_module(module_path)
    parser = _OneLineErrors(prog=f"python -m models {name}", description=help_text)
    module.add_arguments(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they draw only on a terminal anyway; logs get one line per epoch)")
    try:
        args = parser.parse_args(argv[1:])
    except _FlagError as err:
        return _report(str(err))
    problem = _out_problem(name, getattr(args, "out", None))
    if problem:
        return _report(problem)
    was_enabled = progress_allowed()
    set_progress(not args.no_progress)
    try:
        return int(module.run(args) or 0)
    except (ValueError, OSError) as err:  # a bad option or file found while running: no traceback
        if os.environ.get("MINIGRAD_TRACEBACK"):
            raise
        return _report(_input_error_text(name, err))
    finally:
        set_progress(was_enabled)


class _FlagError(Exception):
    """A flag argparse refused (unknown, malformed, out of range), as one line."""


class _OneLineErrors(argparse.ArgumentParser):
    """argparse's error message without its usage block: one ``error:`` line like every other bad input."""

    def error(self, message):
        raise _FlagError(f"{self.prog}: {message} (the flags: {self.prog} --help)")


def _out_problem(name: str, out) -> str | None:
    """Why ``--out`` cannot be the results folder (it, or the nearest existing folder above it, is a file), or None;
    checked before the recipe runs, not when it writes its first file after minutes of training."""
    if out is None:
        return None
    existing = next((p for p in (Path(out), *Path(out).parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is" if existing == Path(out) else f"is inside {str(existing)!r}, which is"
        return (f"{name} recipe: --out {str(out)!r} {where} an existing file; --out names the folder the results "
                "are written to")
    return None


def _input_error_text(name: str, err: Exception) -> str:
    """The message of an error, on one line; an OS error as raised by the system names the recipe, the
    reason and the file ("gru-lm recipe: File exists: 'runs/x'")."""
    if isinstance(err, OSError) and err.strerror and err.filename is not None:
        return f"{name} recipe: {err.strerror}: {str(err.filename)!r}"
    return " ".join(str(err).split()) or f"{name} recipe: {type(err).__name__}"


def _report(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
