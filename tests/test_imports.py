"""The package's import structure: no import cycles among minigrad's modules (the Tensor ↔ Function
relation is closed at run time, by registration), ``minigrad.functional`` below ``minigrad.nn``, quant never
importing models, and every module importable on its own, first, in a fresh interpreter."""
import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _modules(package: str) -> dict[str, pathlib.Path]:
    out = {}
    for path in (ROOT / package).rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _import_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports at module level (imports inside functions are not edges)."""
    files = _modules(package)
    graph = {}
    for name, path in files.items():
        deps = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in files)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == package:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in files else node.module)
        graph[name] = deps - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in graph:
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            for nxt in stack[-1]:
                if state.get(nxt) == 1:
                    return path[path.index(nxt):] + [nxt]
                if nxt not in state and nxt in graph:
                    state[nxt] = 1
                    path.append(nxt)
                    stack.append(iter(sorted(graph[nxt])))
                    break
            else:
                state[path.pop()] = 2
                stack.pop()
    return None


def test_minigrad_has_no_import_cycle():
    graph = _import_graph("minigrad")
    assert "minigrad.function" in graph and not graph["minigrad.function"], graph["minigrad.function"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_a_cycle_is_found_when_there_is_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_functional_sits_below_nn_and_quant_below_models():
    graph = _import_graph("minigrad")
    for name, deps in graph.items():
        if name.startswith("minigrad.functional") or name.startswith("minigrad.kernels"):
            assert not any(d.startswith("minigrad.nn") for d in deps), (name, deps)
    for path in _modules("quant").values():
        text = path.read_text(encoding="utf-8")
        assert "import models" not in text and "from models" not in text, path


@pytest.mark.parametrize("module", sorted(m for m in _modules("minigrad") if not m.endswith("__main__")))
def test_every_module_imports_first(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_no_public_name_of_the_old_layout_is_gone():
    """Every public name the modules had before the kernels/ redesign still imports from the same module."""
    import importlib

    missing = []
    for line in (ROOT / "tests" / "minigrad_public_names.txt").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        module, name = line.split(":")
        if not hasattr(importlib.import_module(module), name):
            missing.append(line)
    assert not missing, missing
