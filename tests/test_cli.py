"""The CLI and the mlp-demo recipe: listed recipes, determinism under a seed, the loss falls."""
import re

from models.cli import RECIPES, main


def _losses(text):
    return [float(v) for v in re.findall(r"loss (\d+\.\d+)", text)]


def test_list_names_every_recipe(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert name in out


def test_demo_learns_and_is_deterministic(capsys):
    assert main(["mlp-demo", "--steps", "120", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert main(["mlp-demo", "--steps", "120", "--seed", "3"]) == 0
    second = capsys.readouterr().out
    assert first == second
    losses = _losses(first)
    assert losses[-1] < 0.25 * losses[0]
