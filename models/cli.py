"""Command-line entry point: ``python -m models <recipe> [options]``.

Each recipe is a module with ``add_arguments(parser)`` and ``run(args) -> int``. Recipes are
listed here by name and imported only when chosen, so ``python -m models list`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib

# recipe name -> (module path, one-line description)
RECIPES: dict[str, tuple[str, str]] = {
    "demo": ("models.demo", "train a small MLP on a synthetic task and print the loss falling"),
    "ngram": ("models.recipes.ngram", "N-gram language models with every smoothing: perplexity by order"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="recipe", metavar="<recipe>")
    sub.add_parser("list", help="list the recipes")
    for name, (module_path, help_text) in RECIPES.items():
        recipe_parser = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module_path).add_arguments(recipe_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.recipe in (None, "list"):
        width = max(len(name) for name in RECIPES)
        for name, (_, help_text) in RECIPES.items():
            print(f"{name:<{width}}  {help_text}")
        return 0
    module_path, _ = RECIPES[args.recipe]
    return int(importlib.import_module(module_path).run(args) or 0)
