"""SQuAD v1.1 / v2.0 reader for extractive question answering (book § 4.2.11).

SQuAD (Rajpurkar et al. 2016; 2.0: 2018) is JSON: articles -> paragraphs (a ``context``) ->
questions (``qas``), each with gold ``answers`` given as text plus the character offset
``answer_start`` into the context. Version 2.0 adds questions the paragraph cannot answer
(``is_impossible``: no answers, but ``plausible_answers`` a model might be fooled by).

The model predicts a span [start, end) of the context, so every answer must satisfy
``context[start:start + len(text)] == text``; the reader checks it.
Training and evaluating on the same five-article subset would leak, hence
:func:`split_by_article` (whole articles go to one side).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

PathLike = Union[str, Path]


@dataclass(frozen=True)
class SquadAnswer:
    """An answer span: its text and the character offset where it starts in the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """One past the last character: ``context[start:end] == text``."""
        return self.start + len(self.text)


@dataclass(frozen=True)
class SquadExample:
    """One question about one paragraph (``context``) with its gold answers."""

    qid: str
    title: str
    context: str
    question: str
    answers: tuple[SquadAnswer, ...]
    is_impossible: bool = False
    plausible_answers: tuple[SquadAnswer, ...] = ()


def load_squad_json(path: PathLike) -> dict:
    """The SQuAD JSON file as a dict (``{"version": ..., "data": [articles]}``), checked at the top."""
    func = "load_squad_json"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{func}: no such file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{func}: {path} is not valid JSON ({exc})") from None
    _check_top(data, f"{func}: {path}")
    return data


def _check_top(data: Any, where: str) -> None:
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), list):
        raise ValueError(f"{where}: expected a SQuAD dict with a 'data' list of articles, got "
                         f"{type(data).__name__}" + (f" with keys {sorted(data)[:8]}"
                                                     if isinstance(data, Mapping) else ""))


def squad_version(data: Mapping) -> str:
    """"2.0" if the file says so or any question has ``is_impossible``, else "1.1"."""
    if str(data.get("version", "")).startswith("2"):
        return "2.0"
    has_v2 = any("is_impossible" in qa for article in data["data"]
                 for paragraph in article["paragraphs"] for qa in paragraph["qas"])
    return "2.0" if has_v2 else "1.1"


def _answers(raw: Any, context: str, where: str, check_offsets: bool) -> tuple[SquadAnswer, ...]:
    if not isinstance(raw, list):
        raise ValueError(f"read_squad: {where}: answers must be a list, got {type(raw).__name__}")
    out = []
    for a in raw:
        if not isinstance(a, Mapping) or not isinstance(a.get("text"), str) \
                or not isinstance(a.get("answer_start"), int):
            raise ValueError(f"read_squad: {where}: an answer must be {{'text': str, "
                             f"'answer_start': int}}, got {a!r}")
        answer = SquadAnswer(a["text"], a["answer_start"])
        if check_offsets and context[answer.start:answer.end] != answer.text:
            raise ValueError(f"read_squad: {where}: answer {answer.text!r} does not start at "
                             f"character {answer.start} of the context (found "
                             f"{context[answer.start:answer.end]!r})")
        out.append(answer)
    return tuple(out)


def read_squad(source: PathLike | Mapping, check_offsets: bool = True) -> list[SquadExample]:
    """All questions of a SQuAD v1.1 or v2.0 file (a path or the loaded dict), in file order."""
    func = "read_squad"
    data = load_squad_json(source) if isinstance(source, (str, Path)) else source
    _check_top(data, func)
    examples, seen = [], set()
    for a_idx, article in enumerate(data["data"]):
        title = article.get("title", f"article-{a_idx}")
        for p_idx, paragraph in enumerate(article.get("paragraphs", [])):
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise ValueError(f"{func}: article {title!r} paragraph {p_idx} has no 'context' string")
            for qa in paragraph.get("qas", []):
                qid = qa.get("id")
                where = f"article {title!r} paragraph {p_idx} question {qid!r}"
                if not isinstance(qid, str) or not isinstance(qa.get("question"), str):
                    raise ValueError(f"{func}: {where}: needs 'id' and 'question' strings")
                if qid in seen:
                    raise ValueError(f"{func}: {where}: duplicate question id")
                seen.add(qid)
                answers = _answers(qa.get("answers", []), context, where, check_offsets)
                impossible = bool(qa.get("is_impossible", False))
                if impossible and answers:
                    raise ValueError(f"{func}: {where}: is_impossible but has {len(answers)} answers")
                if not impossible and not answers:
                    raise ValueError(f"{func}: {where}: answerable question without answers")
                plausible = _answers(qa.get("plausible_answers", []), context, where, check_offsets)
                examples.append(SquadExample(qid, title, context, qa["question"], answers,
                                             impossible, plausible))
    return examples


def split_by_article(data: Mapping | Sequence[SquadExample], eval_titles: Sequence[str] | None = None,
                     fraction: float | None = None, seed: int = 0):
    """Split SQuAD into (train, eval) by whole articles, so no paragraph is on both sides.

    Give either ``eval_titles`` (the eval articles) or ``fraction`` (share of articles drawn for
    eval with ``numpy.random.default_rng(seed)``; at least one on each side). ``data`` is a SQuAD
    dict (returns two dicts of the same version) or a list of :class:`SquadExample` (two lists);
    the original order is kept on both sides.
    """
    func = "split_by_article"
    is_dict = isinstance(data, Mapping)
    if is_dict:
        _check_top(data, func)
        titles = [article.get("title", f"article-{i}") for i, article in enumerate(data["data"])]
    else:
        titles = list(dict.fromkeys(ex.title for ex in data))  # unique, first-seen order
    if len(set(titles)) != len(titles):
        raise ValueError(f"{func}: article titles are not unique: {titles}")
    if len(titles) < 2:
        raise ValueError(f"{func}: need at least 2 articles to split, got {len(titles)}")
    chosen = _eval_titles(titles, eval_titles, fraction, seed, func)
    if is_dict:
        side = {True: [], False: []}
        for title, article in zip(titles, data["data"]):
            side[title in chosen].append(article)
        version = data.get("version", "1.1")
        return {"version": version, "data": side[False]}, {"version": version, "data": side[True]}
    return [ex for ex in data if ex.title not in chosen], [ex for ex in data if ex.title in chosen]


def _eval_titles(titles: list[str], eval_titles, fraction, seed, func: str) -> set[str]:
    if (eval_titles is None) == (fraction is None):
        raise ValueError(f"{func}: give exactly one of eval_titles or fraction")
    if eval_titles is not None:
        if isinstance(eval_titles, str):
            eval_titles = [eval_titles]
        unknown = [t for t in eval_titles if t not in titles]
        if unknown:
            raise ValueError(f"{func}: unknown article title(s) {unknown}; articles are {titles}")
        chosen = set(eval_titles)
    else:
        if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise ValueError(f"{func}: fraction must be in (0, 1), got {fraction!r}")
        n_eval = min(max(1, round(fraction * len(titles))), len(titles) - 1)
        picks = np.random.default_rng(seed).choice(len(titles), size=n_eval, replace=False)
        chosen = {titles[i] for i in picks}
    if not chosen or len(chosen) == len(titles):
        raise ValueError(f"{func}: both sides need an article; eval would get {len(chosen)} "
                         f"of {len(titles)}")
    return chosen
