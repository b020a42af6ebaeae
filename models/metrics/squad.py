"""Extractive-QA scores of the official SQuAD v1.1 / v2.0 evaluation scripts (book § 4.2.11).

Answers are compared after the official normalisation:

    normalize(s) = collapse_whitespace(remove_articles(remove_punctuation(lower(s))))

    EM(pred, gold) = [normalize(pred) == normalize(gold)]
    F1(pred, gold) = 2 P R / (P + R),  P = |common| / |pred tokens|,  R = |common| / |gold tokens|

where tokens are the whitespace-split normalised strings and |common| counts shared tokens with
multiplicity. A question scores the max over its gold answers; the dataset scores are the means
(in percent). SQuAD 2.0 (Rajpurkar et al. 2018) adds unanswerable questions: their only gold answer
is the empty string, so the empty prediction ("no answer") scores EM = F1 = 1 and any other
prediction 0; an empty prediction on an answerable question scores 0.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any, Iterable, Mapping

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    """Lower-case, drop ASCII punctuation, drop the articles a/an/the, collapse whitespace."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_answer: expected a str, got {type(text).__name__}")
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> int:
    """1 if the normalised strings are equal, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str, version: str = "2.0") -> float:
    """Bag-of-tokens F1 between normalised answers.

    Version 2.0: if either side has no tokens, 1.0 when both are empty, else 0.0 (no-answer).
    Version 1.1 has no such rule: an empty side simply shares no tokens and scores 0.
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if version == "2.0" and (not pred_tokens or not gold_tokens):
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _questions(dataset: Any) -> Iterable[tuple[str, list[str], bool]]:
    """(id, gold answer texts, has_answer) for a SQuAD JSON dict, its ``data`` list, or examples
    with ``qid``, ``answers`` (objects with ``.text``) and ``is_impossible`` attributes."""
    if isinstance(dataset, Mapping):
        if "data" not in dataset:
            raise ValueError("squad_evaluate: a SQuAD JSON dict needs a 'data' key, got keys "
                             f"{sorted(dataset)[:10]}")
        dataset = dataset["data"]
    for item in dataset:
        if hasattr(item, "qid"):
            texts = [a.text for a in item.answers]
            yield item.qid, texts, not item.is_impossible and bool(texts)
            continue
        if not isinstance(item, Mapping) or "paragraphs" not in item:
            raise TypeError("squad_evaluate: dataset must be a SQuAD JSON dict, its 'data' list of "
                            f"articles, or SquadExample objects; got an item of type {type(item).__name__}")
        for paragraph in item["paragraphs"]:
            for qa in paragraph["qas"]:
                texts = [a["text"] for a in qa.get("answers", [])]
                yield qa["id"], texts, not qa.get("is_impossible", False) and bool(texts)


def _detect_version(dataset: Any) -> str:
    if isinstance(dataset, Mapping) and str(dataset.get("version", "")).startswith("1."):
        return "1.1"
    return "2.0"


def squad_evaluate(dataset: Any, predictions: Mapping[str, str], version: str | None = None,
                   allow_missing: bool = False) -> dict[str, float]:
    """The official SQuAD evaluation: EM and F1 in percent, plus the HasAns / NoAns splits.

    ``dataset``: a SQuAD JSON dict (``{"version", "data"}``), its ``data`` list, or a list of
    ``SquadExample`` (``models.data.squad``). ``predictions``: question id -> answer text, ``""``
    meaning "no answer". ``version`` defaults to the dict's ``version`` (else "2.0"); 1.1 scores each
    question against all its gold texts with the v1.1 rules, 2.0 drops gold texts that normalise to
    "" and gives an unanswerable question the single gold answer "".

    A missing prediction is an error unless ``allow_missing=True`` (then it scores 0, as in v1.1).
    Returns ``exact``, ``f1``, ``total`` and, when present, ``HasAns_*`` and ``NoAns_*``.
    """
    func = "squad_evaluate"
    if version is None:
        version = _detect_version(dataset)
    if version not in ("1.1", "2.0"):
        raise ValueError(f"{func}: version must be '1.1' or '2.0', got {version!r}")
    if not isinstance(predictions, Mapping):
        raise TypeError(f"{func}: predictions must be a dict id -> answer text, "
                        f"got {type(predictions).__name__}")
    rows = []  # (has_answer, exact, f1) in dataset order, summed in that order as the script does
    missing = []
    for qid, texts, has_answer in _questions(dataset):
        if version == "2.0":
            texts = [t for t in texts if normalize_answer(t)] if has_answer else []
            texts = texts or [""]
        elif not texts:
            raise ValueError(f"{func}: question {qid!r} has no gold answer (not valid SQuAD v1.1)")
        if qid not in predictions:
            missing.append(qid)
            rows.append((has_answer, 0.0, 0.0))
            continue
        pred = predictions[qid]
        if not isinstance(pred, str):
            raise TypeError(f"{func}: prediction for {qid!r} must be a str, got {type(pred).__name__}")
        rows.append((has_answer, max(exact_match(pred, gold) for gold in texts),
                     max(token_f1(pred, gold, version) for gold in texts)))
    if missing and not allow_missing:
        raise ValueError(f"{func}: {len(missing)} question(s) have no prediction, e.g. "
                         f"{missing[:3]}; pass allow_missing=True to score them 0")
    if not rows:
        raise ValueError(f"{func}: the dataset has no questions")
    result = _percentages(rows, "")
    for name, flag in (("HasAns_", True), ("NoAns_", False)):
        subset = [row for row in rows if row[0] == flag]
        if subset:
            result.update(_percentages(subset, name))
    return result


def _percentages(rows: list[tuple[bool, float, float]], prefix: str) -> dict[str, float]:
    return {f"{prefix}exact": 100.0 * sum(r[1] for r in rows) / len(rows),
            f"{prefix}f1": 100.0 * sum(r[2] for r in rows) / len(rows),
            f"{prefix}total": len(rows)}
