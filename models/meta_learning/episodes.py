"""Episodes as arrays: the encoded support and query sets a learner reads, and the evaluation of
fixed tasks (book § 5.2: "encode the support and the query data, then predict the query labels
from the encoded support").

``EpisodeBatch`` is one training or evaluation episode as token ids; ``encode_episode`` builds it
from a ``models.data.arsc.Episode``. Evaluation tasks can have thousands of queries (every line of
a target's ``.test`` file), so ``evaluate_tasks`` reads each support set once and scores the
queries in length-sorted chunks (little padding, bounded memory).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.data.arsc import EncodedTexts, Episode, encode_texts


def take(texts: EncodedTexts, index) -> EncodedTexts:
    """Rows ``index`` of ``texts``, trimmed to the longest of them."""
    index = np.asarray(index, dtype=np.int64)
    mask = texts.attention_mask[index]
    width = max(1, int(mask.sum(axis=1).max())) if len(index) else 1
    return EncodedTexts(texts.ids[index][:, :width], mask[:, :width])


def join(first: EncodedTexts, second: EncodedTexts, pad_id: int) -> EncodedTexts:
    """``first`` then ``second`` as one batch, padded to the longer (so one encoder pass serves both)."""
    width = max(first.ids.shape[1], second.ids.shape[1])

    def widen(t: EncodedTexts, fill: int) -> tuple[np.ndarray, np.ndarray]:
        extra = width - t.ids.shape[1]
        return (np.pad(t.ids, ((0, 0), (0, extra)), constant_values=fill),
                np.pad(t.attention_mask, ((0, 0), (0, extra))))

    (a_ids, a_mask), (b_ids, b_mask) = widen(first, pad_id), widen(second, pad_id)
    return EncodedTexts(np.concatenate([a_ids, b_ids]), np.concatenate([a_mask, b_mask]))


@dataclass(frozen=True, eq=False)
class EpisodeBatch:
    """An N-way episode as arrays: support (N·K rows, class-major) and query texts with their labels."""

    name: str
    n_way: int
    support: EncodedTexts
    support_labels: np.ndarray
    query: EncodedTexts
    query_labels: np.ndarray

    @property
    def size(self) -> int:
        """Queries scored: what an episode's loss and accuracy average over."""
        return len(self.query_labels)


def encode_episode(episode: Episode, encoder, max_length: int, max_queries: int | None = None,
                   seed: int = 0) -> EpisodeBatch:
    """Token ids of an episode's texts (``encoder``: a WordPiece ``BertTokenizer`` or a ``Vocab``),
    each truncated to ``max_length`` and padded to the longest of its set. ``max_queries`` keeps
    that many queries, drawn with ``seed`` and kept in file order (a quicker validation set)."""
    rows = np.arange(len(episode.query_texts))
    if max_queries is not None and max_queries < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_queries, replace=False))
    support = encode_texts(episode.support_texts, encoder, max_length, pad_to_max_length=False)
    query = encode_texts([episode.query_texts[i] for i in rows], encoder, max_length, pad_to_max_length=False)
    return EpisodeBatch(episode.name, episode.n_way, support, np.asarray(episode.support_labels), query,
                        np.asarray(episode.query_labels)[rows])


def check_support(owner: str, labels, n_way: int, balanced: bool = False) -> np.ndarray:
    """Support labels as int64, every class 0..n_way-1 present (and, if ``balanced``, equally often)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{owner}: support labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    counts = np.bincount(labels, minlength=n_way) if labels.size and labels.min() >= 0 else None
    if counts is None or len(counts) != n_way or (counts == 0).any():
        raise ValueError(f"{owner}: support labels must cover every class 0..{n_way - 1}, got "
                         f"{sorted(set(labels.tolist()))}")
    if balanced and len(set(counts.tolist())) != 1:
        raise ValueError(f"{owner}: every class needs the same number of support examples (K shots), got "
                         f"counts {counts.tolist()}")
    return labels.astype(np.int64, copy=False)


def predict_tasks(model, tasks: Sequence[EpisodeBatch], chunk: int = 128) -> dict[str, np.ndarray]:
    """Predicted classes of every query of each fixed task: its support read once
    (``model.read_support``), its queries scored ``chunk`` at a time, shortest first
    (``model.score_queries``)."""
    names = [task.name for task in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"predict_tasks: task names must be unique (results are keyed by name), got {names}")
    predictions = {}
    for task in tasks:
        state = model.read_support(task.support, task.support_labels, task.n_way)
        order = np.argsort(task.query.lengths, kind="stable")
        predicted = np.empty(len(order), dtype=np.int64)
        for start in range(0, len(order), chunk):
            rows = order[start:start + chunk]
            predicted[rows] = np.asarray(model.score_queries(state, take(task.query, rows))).argmax(axis=1)
        predictions[task.name] = predicted
    return predictions


def balanced_accuracy(predicted, labels, n_way: int) -> float:
    """The mean over classes of the share of that class's queries predicted right: the accuracy
    the same predictor would have on queries balanced between the classes (the book's test batches
    are balanced; ARSC's test files are mostly positive)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    recalls = [(predicted[labels == c] == c).mean() for c in range(n_way) if (labels == c).any()]
    return float(np.mean(recalls))


def evaluate_tasks(model, tasks: Sequence[EpisodeBatch], chunk: int = 128, balanced: bool = False) -> dict[str, float]:
    """Accuracy (or, with ``balanced``, balanced accuracy) of ``model`` on each fixed task."""
    predictions = predict_tasks(model, tasks, chunk)
    return {t.name: balanced_accuracy(predictions[t.name], t.query_labels, t.n_way) if balanced
            else float((predictions[t.name] == t.query_labels).mean()) for t in tasks}


def summarize(accuracies: dict[str, float], tasks: Sequence[EpisodeBatch] | None = None) -> dict:
    """Mean and standard deviation (population, ddof 0) over tasks, and, given the tasks, the
    accuracy over all their queries pooled (larger tasks weigh more)."""
    values = np.array(list(accuracies.values()))
    out = {"mean": float(values.mean()), "std": float(values.std()), "tasks": len(values)}
    if tasks is not None:
        sizes = np.array([t.size for t in tasks])
        out["pooled"] = float((values * sizes).sum() / sizes.sum())
        out["queries"] = int(sizes.sum())
    return out
