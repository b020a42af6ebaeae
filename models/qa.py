"""Extractive question answering with BERT (book § 4.2.11; Devlin et al. 2019 §4.2, SQuAD).

The model reads ``[CLS] question [SEP] context [SEP]`` and scores every token twice, as the start
and as the end of the answer (``BertForQuestionAnswering``). The answer is the best-scoring span

    (î, ĵ) = argmax_{i ≤ j, j − i + 1 ≤ max_answer_length}  S·h_i + E·h_j        (Devlin et al. §4.2)

and, for SQuAD 2.0, "no answer" is the span (0, 0) at ``[CLS]``: predicted when its score beats the
best real span by more than a threshold (Devlin et al. §4.3).

A context longer than the model's window is cut into *windows* ("doc spans") that overlap by
``doc_stride`` tokens, so that every answer lies whole inside at least one window. Each token
keeps its ``(start, end)`` character offsets in the context, which turn a token span back into the
answer text. Pipeline:

    SquadExample ─► build_features (windows + labels) ─► model ─► postprocess (best span over all
    windows, null answer) ─► {qid: text} ─► squad_evaluate (EM / F1)
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from models.data.squad import SquadExample

CLS_INDEX = 0  # the "no answer" position (SQuAD 2.0) and the label of windows without the answer


@dataclass(frozen=True)
class QAFeature:
    """One window of one question: model inputs, where each token is in the context, and labels.

    ``offsets[i]`` is the (start, end) character span in the context of token ``i``, or None for a
    token that is not context (``[CLS]``, the question, ``[SEP]``). ``start_position`` /
    ``end_position`` are token indices of the gold answer in this window (``CLS_INDEX`` when the
    question is unanswerable or the answer is not wholly inside the window).
    """

    example_index: int
    qid: str
    window_index: int
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int] | None, ...]
    start_position: int = CLS_INDEX
    end_position: int = CLS_INDEX

    def __len__(self) -> int:
        return len(self.input_ids)


def _check_window_options(max_seq_length, doc_stride, max_query_length) -> None:
    func = "build_features"
    for name, value, low in (("max_seq_length", max_seq_length, 8), ("doc_stride", doc_stride, 0),
                             ("max_query_length", max_query_length, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{func}: {name} must be an int >= {low}, got {value!r}")


def window_starts(num_tokens: int, window_size: int, doc_stride: int) -> list[int]:
    """Start token of each window over ``num_tokens`` context tokens: windows of ``window_size``
    tokens, each overlapping the previous by ``doc_stride`` tokens; the last one ends the context.

        starts = 0, s, 2s, …  with step s = window_size − doc_stride
    """
    if num_tokens <= window_size:  # one window holds everything
        return [0]
    if doc_stride >= window_size:
        raise ValueError(f"window_starts: doc_stride={doc_stride} must be smaller than the room left for "
                         f"the context ({window_size} tokens), or the windows would not advance")
    starts, start = [0], 0
    while start + window_size < num_tokens:
        start += window_size - doc_stride
        starts.append(start)
    return starts


def answer_token_span(offsets: Sequence[tuple[int, int]], char_start: int, char_end: int) -> tuple[int, int]:
    """The first and last context token overlapping the characters [char_start, char_end).

    A token overlaps when ``token_start < char_end`` and ``token_end > char_start`` (an answer can
    start or end inside a word piece: the whole piece is taken, as BERT's ``run_squad``).
    """
    hits = [i for i, (a, b) in enumerate(offsets) if a < char_end and b > char_start]
    if not hits:
        raise ValueError(f"answer_token_span: no token covers characters [{char_start}, {char_end}) "
                         "(the answer is only whitespace or was cut from the context)")
    return hits[0], hits[-1]


def build_features(examples: Sequence[SquadExample], tokenizer, max_seq_length: int = 384, doc_stride: int = 128,
                   max_query_length: int = 64, is_training: bool = False) -> list[QAFeature]:
    """SQuAD examples → model windows (BERT's ``convert_examples_to_features``).

    Each window is ``[CLS] q_1 … q_m [SEP] c_k … c_{k+n−1} [SEP]`` with the question cut to
    ``max_query_length`` tokens and n ≤ max_seq_length − m − 3 context tokens; consecutive windows
    overlap by ``doc_stride`` tokens. With ``is_training`` the first gold answer (SQuAD training
    files have one) is labelled in every window that holds it whole, and ``[CLS]`` elsewhere.
    """
    _check_window_options(max_seq_length, doc_stride, max_query_length)
    features = []
    for example_index, example in enumerate(examples):
        question = [tokenizer.convert_tokens_to_ids(t) for t, _, _ in
                    tokenizer.tokenize_with_offsets(example.question)][:max_query_length]
        context = tokenizer.tokenize_with_offsets(example.context)  # [(token, char start, char end)]
        context_ids = [tokenizer.convert_tokens_to_ids(t) for t, _, _ in context]
        context_offsets = [(a, b) for _, a, b in context]
        room = max_seq_length - len(question) - 3  # context tokens per window
        if room < 1:
            raise ValueError(f"build_features: max_seq_length={max_seq_length} leaves no room for the context "
                             f"after a {len(question)}-token question")
        gold = None
        if is_training and not example.is_impossible and example.answers and context:
            answer = example.answers[0]
            gold = answer_token_span(context_offsets, answer.start, answer.end)  # context token indices
        prefix = [tokenizer.cls_token_id] + question + [tokenizer.sep_token_id]
        for w, start in enumerate(window_starts(len(context_ids), room, doc_stride)):
            stop = min(start + room, len(context_ids))
            ids = prefix + context_ids[start:stop] + [tokenizer.sep_token_id]
            types = [0] * len(prefix) + [1] * (stop - start + 1)
            offsets = [None] * len(prefix) + context_offsets[start:stop] + [None]
            s_pos = e_pos = CLS_INDEX
            if gold is not None and start <= gold[0] and gold[1] < stop:  # wholly inside this window
                s_pos, e_pos = gold[0] - start + len(prefix), gold[1] - start + len(prefix)
            features.append(QAFeature(example_index, example.qid, w, tuple(ids), tuple(types), tuple(offsets),
                                      s_pos, e_pos))
    return features


def collate_features(features: Sequence[QAFeature], pad_token_id: int = 0) -> dict[str, np.ndarray]:
    """Dynamic padding to the batch's longest window: ids, types, mask (B, T) and labels (B,)."""
    if not features:
        raise ValueError("collate_features: got an empty batch")
    T = max(len(f) for f in features)
    B = len(features)
    ids = np.full((B, T), pad_token_id, dtype=np.int64)
    types = np.zeros((B, T), dtype=np.int64)
    mask = np.zeros((B, T), dtype=np.int64)
    for b, f in enumerate(features):
        n = len(f)
        ids[b, :n], types[b, :n], mask[b, :n] = f.input_ids, f.token_type_ids, 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask,
            "start_positions": np.array([f.start_position for f in features], dtype=np.int64),
            "end_positions": np.array([f.end_position for f in features], dtype=np.int64)}


# ----------------------------------------------------------------------------------------------
# Best span
# ----------------------------------------------------------------------------------------------
def best_spans(start_logits, end_logits, is_context, n_best: int = 20, max_answer_length: int = 30):
    """The ``n_best`` highest spans of one window, as [(score, start, end)] best first.

        score(i, j) = start_logits[i] + end_logits[j],  i ≤ j,  j − i + 1 ≤ max_answer_length

    Only the ``n_best`` top start and top end positions are paired (BERT's ``run_squad``), and
    both ends must be context tokens (``is_context`` (T,) bool).
    """
    start_logits, end_logits = np.asarray(start_logits, dtype=np.float64), np.asarray(end_logits, dtype=np.float64)
    is_context = np.asarray(is_context, dtype=bool)
    if not (start_logits.ndim == 1 and start_logits.shape == end_logits.shape == is_context.shape):
        raise ValueError(f"best_spans: start_logits, end_logits and is_context must be 1-D of one length, got "
                         f"shapes {start_logits.shape}, {end_logits.shape}, {is_context.shape}")
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(f"best_spans: n_best and max_answer_length must be >= 1, got {n_best}, {max_answer_length}")
    top_starts = np.argsort(-start_logits, kind="stable")[:n_best]
    top_ends = np.argsort(-end_logits, kind="stable")[:n_best]
    spans = [(float(start_logits[i] + end_logits[j]), int(i), int(j))
             for i in top_starts for j in top_ends
             if is_context[i] and is_context[j] and i <= j < i + max_answer_length]
    spans.sort(key=lambda s: -s[0])
    return spans[:n_best]


@dataclass(frozen=True)
class Prediction:
    """A question's answer: text (``""`` = no answer), span score, and the null score (2.0).

    ``span_text`` is the best span even when the null answer won (default: ``text``), so the
    null threshold can be tuned afterwards without decoding again."""

    text: str
    score: float
    null_score: float
    n_best: tuple[tuple[str, float], ...]
    span_text: str | None = None

    def __post_init__(self):
        if self.span_text is None:
            object.__setattr__(self, "span_text", self.text)

    def with_threshold(self, null_score_diff_threshold: float) -> str:
        """The answer under another threshold: "" when null_score − score > threshold, else the span."""
        return "" if self.null_score - self.score > null_score_diff_threshold else self.span_text


def postprocess(examples: Sequence[SquadExample], features: Sequence[QAFeature], start_logits, end_logits,
                n_best: int = 20, max_answer_length: int = 30, version_2_with_negative: bool = False,
                null_score_diff_threshold: float = 0.0) -> dict[str, Prediction]:
    """Logits of every window → one answer per question: the best span over all its windows.

    SQuAD 2.0: the null score is the smallest ``start[CLS] + end[CLS]`` over the windows, and the
    answer is "" when  null_score − best_span_score > null_score_diff_threshold  (HF ``run_qa``).
    """
    if len(start_logits) != len(features) or len(end_logits) != len(features):
        raise ValueError(f"postprocess: need one row of logits per feature ({len(features)}), got "
                         f"{len(start_logits)} and {len(end_logits)}")
    by_example: dict[int, list[int]] = {}
    for k, f in enumerate(features):
        by_example.setdefault(f.example_index, []).append(k)
    out = {}
    for example_index, example in enumerate(examples):
        candidates, null_score = [], float("inf")
        for k in by_example.get(example_index, []):
            f = features[k]
            s, e = np.asarray(start_logits[k])[:len(f)], np.asarray(end_logits[k])[:len(f)]
            null_score = min(null_score, float(s[CLS_INDEX] + e[CLS_INDEX]))
            is_context = np.array([o is not None for o in f.offsets])
            for score, i, j in best_spans(s, e, is_context, n_best, max_answer_length):
                candidates.append((score, example.context[f.offsets[i][0]:f.offsets[j][1]]))
        candidates.sort(key=lambda c: -c[0])
        candidates = candidates[:n_best]
        span_text, best_score = (candidates[0][1], candidates[0][0]) if candidates else ("", float("-inf"))
        pred = Prediction(span_text, best_score, null_score, tuple((t, s) for s, t in candidates), span_text)
        if version_2_with_negative:  # one rule for the null answer: Prediction.with_threshold
            pred = replace(pred, text=pred.with_threshold(null_score_diff_threshold))
        out[example.qid] = pred
    return out


def best_null_threshold(examples: Sequence[SquadExample], predictions: dict[str, Prediction],
                        metric: str = "exact") -> float:
    """The threshold on null_score − best_span_score that maximises EM (``metric="exact"``) or F1
    on ``examples`` — the official SQuAD 2.0 script's ``best_exact_thresh`` / ``best_f1_thresh``,
    tried on each question's best span even where the null answer won. Tuned on the data it is
    scored on: report results tuned this way as such."""
    from models.metrics.squad import exact_match, token_f1

    if metric not in ("exact", "f1"):
        raise ValueError(f"best_null_threshold: metric must be 'exact' or 'f1', got {metric!r}")
    score_of = exact_match if metric == "exact" else token_f1
    diffs = []
    missing = [ex.qid for ex in examples if ex.qid not in predictions]
    if missing:
        raise ValueError(f"best_null_threshold: {len(missing)} question(s) have no prediction, e.g. {missing[:3]}")
    for ex in examples:
        p = predictions[ex.qid]
        golds = [a.text for a in ex.answers]
        span = 0.0 if ex.is_impossible or not golds else max(score_of(p.span_text, g) for g in golds)
        diffs.append((p.null_score - p.score, float(ex.is_impossible), span))
    best, best_thresh = sum(d[2] for d in diffs), float("inf")  # +inf: never "no answer"
    for thresh in [float("-inf")] + sorted({d[0] for d in diffs}):  # "" when diff > thresh
        score = sum(imp if diff > thresh else span for diff, imp, span in diffs)
        if score > best:
            best, best_thresh = score, thresh
    return best_thresh
