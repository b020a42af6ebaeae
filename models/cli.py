"""Command-line entry point: ``python -m models <recipe> [options]``.

Each recipe is a module with ``add_arguments(parser)`` and ``run(args) -> int``. Recipes are
listed here by name and imported only when chosen, so ``python -m models list`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from models.progress import progress_allowed, set_progress

# recipe name -> (module path, one-line description)
RECIPES: dict[str, tuple[str, str]] = {
    "demo": ("models.demo", "train a small MLP on a synthetic task and print the loss falling"),
    "ngram": ("models.recipes.ngram", "N-gram language models with every smoothing: perplexity by order"),
    "word2vec": ("models.recipes.word2vec", "Word2Vec skip-gram/CBOW with negative sampling: neighbours, analogies, PCA plot"),
    "nplm": ("models.recipes.nplm", "Word2Vec-based feed-forward neural LM (Bengio 2003) vs the N-gram table"),
    "gru-lm": ("models.recipes.gru_lm", "GRU/RNN language model (word or char): perplexity vs unigram, generated text"),
    "seq2seq": ("models.recipes.seq2seq", "GRU encoder-decoder with attention (book, Bahdanau, Luong) on sequence reversal"),
    "transformer": ("models.recipes.transformer", "Transformer translation: synthetic reversal task, or Multi30k en-de (--data)"),
    "quantize": ("models.recipes.quantize", "int8 quantization (book appendix): dynamic vs static, size/error/time table, grid PNG"),
    "embed": ("models.recipes.embed", "sentence embeddings with pretrained MiniLM (BERT): cosine similarity matrix + heatmap"),
    "bert-pretrain": ("models.recipes.bert_pretrain", "pre-train a small BERT (MLM + NSP) on CPU: MLM and NSP accuracy curves"),
    "finetune": ("models.recipes.finetune", "fine-tune MiniLM (BERT) on SST-2/CoLA/MRPC/SICK/SQuAD, or --from-scratch"),
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
    parser = argparse.ArgumentParser(prog=f"python -m models {name}", description=help_text)
    module.add_arguments(parser)
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they draw only on a terminal anyway; logs get one line per epoch)")
    args = parser.parse_args(argv[1:])
    was_enabled = progress_allowed()
    set_progress(not args.no_progress)
    try:
        return int(module.run(args) or 0)
    finally:
        set_progress(was_enabled)
