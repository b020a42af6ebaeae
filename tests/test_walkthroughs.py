"""The walkthroughs (notebooks/*.py): one per chapter, each a `# %%`-cell file with prose, the chapter's
equation, code cells and a figure. With MINIGRAD_WALKTHROUGHS=1 (set by .ci/run for one dedicated run, so
the full suite does not run them twice) each is run as a plain script and must finish and write its PNG."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CHAPTERS = ("ch1_language_models.py", "ch2_attention.py", "ch3_transformer.py", "ch4_bert.py",
            "ch4_successors.py", "ch5_fewshot_and_gpt.py", "appendix_quantization.py")


def _cells(text: str) -> list[tuple[str, str]]:
    """(kind, body) of each `# %%` cell: kind "markdown" or "code"."""
    cells = []
    for chunk in text.split("# %%")[1:]:
        header, _, body = chunk.partition("\n")
        cells.append(("markdown" if "[markdown]" in header else "code", body))
    return cells


def test_one_walkthrough_per_chapter_and_nothing_else():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.py")) == sorted(CHAPTERS)


@pytest.mark.parametrize("name", CHAPTERS)
def test_walkthrough_is_a_notebook_of_prose_equation_code_and_figure(name):
    text = (NOTEBOOKS / name).read_text(encoding="utf-8")
    assert text.startswith("# %% [markdown]\n# # "), f"{name}: starts with a markdown title cell"
    cells = _cells(text)
    kinds = [k for k, _ in cells]
    assert kinds.count("markdown") >= 3 and kinds.count("code") >= 3, f"{name}: prose and code in turns"
    assert all(line.startswith("#") or not line.strip() for k, body in cells if k == "markdown"
               for line in body.splitlines()), f"{name}: markdown cells are comments only"
    assert "$$" in text, f"{name}: the chapter's equation"
    assert "save_figure(" in text or "plot_" in text, f"{name}: a figure"
    assert 'os.environ.get("WALKTHROUGH_OUT"' in text
    ast.parse(text, name)


@pytest.mark.skipif(not os.environ.get("MINIGRAD_WALKTHROUGHS"),
                    reason="set MINIGRAD_WALKTHROUGHS=1 to run the walkthroughs (.ci/run does, once)")
@pytest.mark.parametrize("name", CHAPTERS)
def test_walkthrough_runs_as_a_script(name, tmp_path):
    env = {**os.environ, "WALKTHROUGH_OUT": str(tmp_path), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(NOTEBOOKS / name)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert list(tmp_path.glob("*.png")), f"{name} wrote no figure"
