"""SQuAD reader (v1.1 / v2.0), answer offsets, split by article; the five-article dev subset."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.data.squad import (
    SquadAnswer, SquadExample, load_squad_json, read_squad, split_by_article, squad_version,
)
from models.metrics import squad_evaluate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SQUAD_SUBSET = DATA / "squad" / "dev-v2.0-5articles.json"

CONTEXT = "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy."


def _v2() -> dict:
    return {"version": "v2.0", "data": [
        {"title": "Normans", "paragraphs": [{"context": CONTEXT, "qas": [
            {"id": "a1", "question": "When?", "is_impossible": False,
             "answers": [{"text": "10th and 11th centuries", "answer_start": 39},
                         {"text": "in the 10th and 11th centuries", "answer_start": 32}]},
            {"id": "a2", "question": "Who gave their name to France?", "is_impossible": True,
             "answers": [], "plausible_answers": [{"text": "Normans", "answer_start": 4}]},
        ]}]},
        {"title": "Physics", "paragraphs": [{"context": "Force is mass times acceleration.", "qas": [
            {"id": "b1", "question": "What is force?", "is_impossible": False,
             "answers": [{"text": "mass times acceleration", "answer_start": 9}]}]}]},
        {"title": "Music", "paragraphs": [{"context": "Bach wrote fugues.", "qas": [
            {"id": "c1", "question": "Who?", "answers": [{"text": "Bach", "answer_start": 0}],
             "is_impossible": False}]}]},
    ]}


def _v1() -> dict:
    data = _v2()
    data["version"] = "1.1"
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            paragraph["qas"] = [{k: v for k, v in qa.items() if k not in ("is_impossible", "plausible_answers")}
                                for qa in paragraph["qas"] if not qa["is_impossible"]]
    return data


def _dump(tmp_path: Path, data: dict, name: str = "squad.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_read_squad_v2_by_hand(tmp_path):
    examples = read_squad(_dump(tmp_path, _v2()))
    assert [e.qid for e in examples] == ["a1", "a2", "b1", "c1"]
    first = examples[0]
    assert first == SquadExample("a1", "Normans", CONTEXT, "When?",
                                 (SquadAnswer("10th and 11th centuries", 39),
                                  SquadAnswer("in the 10th and 11th centuries", 32)))
    # every answer span maps back to its text through the character offsets
    for ex in examples:
        for answer in ex.answers + ex.plausible_answers:
            assert ex.context[answer.start:answer.end] == answer.text
    impossible = examples[1]
    assert impossible.is_impossible and impossible.answers == ()
    assert impossible.plausible_answers == (SquadAnswer("Normans", 4),)
    assert squad_version(_v2()) == "2.0"


def test_read_squad_v1(tmp_path):
    data = _v1()
    examples = read_squad(_dump(tmp_path, data))
    assert [e.qid for e in examples] == ["a1", "b1", "c1"]
    assert not any(e.is_impossible for e in examples)
    del data["version"]
    assert squad_version(data) == "1.1"
    assert read_squad(data) == examples  # a loaded dict works as well as a path


def test_read_squad_errors(tmp_path):
    bad = _v2()
    bad["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 40
    with pytest.raises(ValueError, match=r"question 'a1': answer '10th and 11th centuries' does not start at "
                                         r"character 40"):
        read_squad(bad)
    assert len(read_squad(bad, check_offsets=False)) == 4
    dup = _v2()
    dup["data"][1]["paragraphs"][0]["qas"][0]["id"] = "a1"
    with pytest.raises(ValueError, match="duplicate question id"):
        read_squad(dup)
    contradictory = _v2()
    contradictory["data"][0]["paragraphs"][0]["qas"][1]["answers"] = [{"text": "Normans", "answer_start": 4}]
    with pytest.raises(ValueError, match="is_impossible but has 1 answers"):
        read_squad(contradictory)
    with pytest.raises(FileNotFoundError, match="load_squad_json: no such file"):
        read_squad(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="is not valid JSON"):
        read_squad(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="expected a SQuAD dict with a 'data' list"):
        read_squad({"version": "v2.0", "articles": []})


def test_split_by_article_titles_and_fraction():
    data = _v2()
    train, dev = split_by_article(data, eval_titles=["Physics"])
    assert [a["title"] for a in train["data"]] == ["Normans", "Music"]
    assert [a["title"] for a in dev["data"]] == ["Physics"] and dev["version"] == "v2.0"
    examples = read_squad(data)
    train_ex, dev_ex = split_by_article(examples, eval_titles="Physics")
    assert [e.qid for e in train_ex] == ["a1", "a2", "c1"] and [e.qid for e in dev_ex] == ["b1"]
    # a fraction is drawn with the seed: same seed, same split; articles never straddle
    for seed in range(6):
        a = split_by_article(examples, fraction=0.4, seed=seed)
        assert a == split_by_article(examples, fraction=0.4, seed=seed)
        assert len({e.title for e in a[1]}) == 1  # round(0.4 * 3) = 1 eval article
        assert not {e.title for e in a[0]} & {e.title for e in a[1]}
        assert sorted(e.qid for e in a[0] + a[1]) == sorted(e.qid for e in examples)
    chosen = {split_by_article(examples, fraction=0.4, seed=s)[1][0].title for s in range(12)}
    assert len(chosen) > 1  # the seed matters


def test_split_by_article_errors():
    data = _v2()
    with pytest.raises(ValueError, match="exactly one of eval_titles or fraction"):
        split_by_article(data)
    with pytest.raises(ValueError, match=r"unknown article title\(s\) \['Chemistry'\]"):
        split_by_article(data, eval_titles=["Chemistry"])
    with pytest.raises(ValueError, match="fraction must be in \\(0, 1\\)"):
        split_by_article(data, fraction=1.5)
    with pytest.raises(ValueError, match="both sides need an article"):
        split_by_article(data, eval_titles=["Normans", "Physics", "Music"])


def test_real_squad_subset():
    if not SQUAD_SUBSET.is_file():
        pytest.skip(f"{SQUAD_SUBSET} not present")
    data = load_squad_json(SQUAD_SUBSET)
    examples = read_squad(data)  # also checks every answer offset
    assert squad_version(data) == "2.0"
    assert len(examples) == 1407 and sum(not e.is_impossible for e in examples) == 705
    per_article = {}
    for e in examples:
        per_article[e.title] = per_article.get(e.title, 0) + 1
    assert per_article == {"Normans": 208, "Computational_complexity_theory": 418,
                           "Southern_California": 324, "Sky_(United_Kingdom)": 210,
                           "Victoria_(Australia)": 247}
    train, dev = split_by_article(data, eval_titles=["Normans"])
    assert len(read_squad(train)) == 1407 - 208 and len(read_squad(dev)) == 208
    # gold answers score 100; "no answer" everywhere scores the unanswerable share
    gold = {e.qid: e.answers[0].text if e.answers else "" for e in examples}
    assert squad_evaluate(data, gold)["f1"] == 100.0
    empty = squad_evaluate(examples, {e.qid: "" for e in examples})
    assert empty["exact"] == pytest.approx(100 * 702 / 1407) and empty["HasAns_f1"] == 0.0
