"""The book map (models/book_map.py): the README holds exactly the generated table, every file, recipe and
test it names exists, and each reference package it claims is imported by one of the row's tests."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from models.book_map import BEGIN, BOOK_MAP, END, REFERENCES, book_map_markdown, readme_section, with_book_map
from models.cli import RECIPES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_holds_the_generated_book_map():
    section = readme_section(README)
    assert section is not None, f"README.md lacks the book map markers {BEGIN!r} ... {END!r}"
    assert section.strip() == book_map_markdown(), \
        "README's book map drifted: python -m models.book_map --readme README.md"
    assert with_book_map(README) == README  # regenerating changes nothing


def test_book_map_comes_right_after_the_set_up_commands():
    setup = README.index("python -m models demo")
    closing = README.index("```", setup)
    assert README[closing + 3:].lstrip().startswith(BEGIN)


def test_every_named_file_recipe_and_test_exists():
    for row in BOOK_MAP:
        for path in (*row.code, *row.tests):
            assert (ROOT / path).exists(), f"book map § {row.section}: {path} does not exist"
        assert row.recipe is None or row.recipe in RECIPES, f"book map § {row.section}: no recipe {row.recipe!r}"
        assert all(t.startswith("tests/test_") and t.endswith(".py") for t in row.tests)


def test_each_claimed_reference_is_imported_by_a_test_of_its_row():
    for row in BOOK_MAP:
        texts = [(ROOT / t).read_text(encoding="utf-8") for t in row.tests]
        for ref in row.references:
            module = REFERENCES.get(ref)
            if module is None:
                continue  # a book number or exact math, not a package
            pattern = re.compile(rf"""importorskip\(["']{re.escape(module)}[."']""")
            assert any(pattern.search(t) for t in texts), \
                f"book map § {row.section}: none of {row.tests} imports {module!r} for {ref}"


def test_sections_follow_the_book_order():
    def key(section: str):
        if section == "appendix":
            return (99,)
        return tuple(int(p) for p in section.split("-")[0].split("."))

    order = [key(r.section) for r in BOOK_MAP]
    chapters = [k[0] for k in order]
    assert chapters == sorted(chapters)
    assert {1, 2, 3, 4, 5, 99} <= set(chapters)


def test_with_book_map_refuses_a_readme_without_markers():
    with pytest.raises(ValueError, match="with_book_map: the README has no"):
        with_book_map("# a README\n")
