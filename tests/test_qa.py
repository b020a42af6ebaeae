"""Extractive QA (models.qa): windows over long contexts, labels, best-span search, post-processing."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.data.squad import SquadAnswer, SquadExample
from models.qa import (CLS_INDEX, answer_token_span, best_null_threshold, best_spans, build_features,
                       collate_features, postprocess, window_starts)
from models.text.wordpiece import BertTokenizer

WORDS = [f"w{i}" for i in range(80)]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "what", "is", "?", "un", "##break", "##able", ","] + WORDS


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(VOCAB)


def make_example(n_words: int, answer_words: tuple[int, int], qid: str = "q", impossible: bool = False,
                 split_word_at: int | None = None):
    """A context "w0 w1 … " (word ``split_word_at`` replaced by "unbreakable", three word pieces)
    with the answer covering words answer_words[0]..answer_words[1] inclusive."""
    words = list(WORDS[:n_words])
    if split_word_at is not None:
        words[split_word_at] = "unbreakable"
    context = " ".join(words)
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
    a, b = answer_words
    char_start, char_end = int(starts[a]), int(starts[b] + len(words[b]))
    answer = () if impossible else (SquadAnswer(context[char_start:char_end], char_start),)
    return SquadExample(qid, "t", context, "what is w1 ?", answer, impossible)


def test_window_starts_overlap_by_stride_and_cover_everything():
    assert window_starts(10, 15, 5) == [0]
    assert window_starts(10, 15, 128) == [0]  # one window: the stride does not matter
    assert window_starts(40, 15, 5) == [0, 10, 20, 30]  # [0,15) [10,25) [20,35) [30,40)
    assert window_starts(35, 15, 5) == [0, 10, 20]  # [20, 35) already ends the context
    starts = window_starts(40, 15, 5)
    assert starts[-1] + 15 >= 40 and all(b - a == 10 for a, b in zip(starts, starts[1:]))
    with pytest.raises(ValueError, match="doc_stride"):
        window_starts(40, 15, 15)


def test_answer_token_span_takes_whole_word_pieces():
    offsets = [(0, 2), (3, 5), (5, 10), (10, 13)]  # "w0 un|break|able"
    assert answer_token_span(offsets, 3, 13) == (1, 3)
    assert answer_token_span(offsets, 6, 8) == (2, 2)  # inside a piece: that piece
    with pytest.raises(ValueError, match="no token covers"):
        answer_token_span(offsets, 2, 3)  # the space between tokens


def _check_labels(example, features, room):
    """Every window holding the answer wholly is labelled with it; every other window is CLS;
    a labelled span maps back to the answer's characters through the offsets."""
    answer = example.answers[0]
    labelled = 0
    for f in features:
        ctx = [i for i, o in enumerate(f.offsets) if o is not None]
        covers = [i for i in ctx if f.offsets[i][0] < answer.end and f.offsets[i][1] > answer.start]
        # the tokens of the whole answer, in context terms; is the answer wholly in this window?
        first_char, last_char = f.offsets[ctx[0]][0], f.offsets[ctx[-1]][1]
        inside = first_char <= answer.start and answer.end <= last_char
        if inside:
            labelled += 1
            assert (f.start_position, f.end_position) == (covers[0], covers[-1])
            text = example.context[f.offsets[f.start_position][0]:f.offsets[f.end_position][1]]
            assert text == answer.text
        else:
            assert (f.start_position, f.end_position) == (CLS_INDEX, CLS_INDEX)
    return labelled


def test_answer_crossing_a_window_boundary_is_labelled_where_whole(tokenizer):
    # question "what is w1 ?" = 4 tokens; max_seq_length 22 leaves room = 22 - 4 - 3 = 15 context tokens
    # windows (stride 5 overlap): [0, 15), [10, 25), [20, 35), [30, 40)
    example = make_example(40, (13, 16))  # crosses the end of window 0
    features = build_features([example], tokenizer, max_seq_length=22, doc_stride=5, max_query_length=8,
                              is_training=True)
    assert [f.window_index for f in features] == [0, 1, 2, 3]
    assert [f.start_position for f in features] == [0, 6 + 3, 0, 0]  # prefix = [CLS] + 4 + [SEP] = 6 tokens
    assert _check_labels(example, features, 15) == 1
    assert all(len(f) <= 22 for f in features)
    f = features[1]
    assert f.input_ids[:6] == tuple(tokenizer.convert_tokens_to_ids(["[CLS]", "what", "is", "w1", "?", "[SEP]"]))
    assert f.input_ids[-1] == tokenizer.sep_token_id
    assert f.token_type_ids == (0,) * 6 + (1,) * (len(f) - 6)


def test_answer_in_the_overlap_is_labelled_in_both_windows(tokenizer):
    example = make_example(40, (11, 13))  # tokens 11-13 lie in windows [0,15) and [10,25)
    features = build_features([example], tokenizer, max_seq_length=22, doc_stride=5, is_training=True)
    assert _check_labels(example, features, 15) == 2
    assert [f.start_position for f in features[:2]] == [6 + 11, 6 + 1]


@settings(max_examples=40, deadline=None)
@given(n_words=st.integers(5, 60), data=st.data(), max_seq=st.integers(14, 30), stride=st.integers(0, 6),
       split=st.booleans())
def test_labels_and_offsets_round_trip(tokenizer, n_words, data, max_seq, stride, split):
    a = data.draw(st.integers(0, n_words - 1))
    b = data.draw(st.integers(a, min(n_words - 1, a + 3)))
    split_at = data.draw(st.integers(0, n_words - 1)) if split else None
    example = make_example(n_words, (a, b), split_word_at=split_at)
    features = build_features([example], tokenizer, max_seq_length=max_seq, doc_stride=stride, is_training=True)
    pieces = len(tokenizer.tokenize(example.answers[0].text))  # ≤ 4 words, ≤ 6 pieces: fit in 14 - 7 = 7
    labelled = _check_labels(example, features, max_seq - 7)
    if stride >= pieces - 1:  # overlap enough that some window holds the answer whole
        assert labelled >= 1
    # every context token of every window maps back to its own characters
    context_tokens = tokenizer.tokenize_with_offsets(example.context)
    seen = set()
    for f in features:
        for tok_id, off in zip(f.input_ids, f.offsets):
            if off is not None:
                piece = tokenizer.ids_to_tokens[tok_id].removeprefix("##")
                assert example.context[off[0]:off[1]].lower() == piece
                seen.add(off)
    assert seen == {(s, e) for _, s, e in context_tokens}  # nothing lost between windows


def test_impossible_questions_are_labelled_cls(tokenizer):
    example = make_example(30, (3, 4), impossible=True)
    features = build_features([example], tokenizer, max_seq_length=22, doc_stride=5, is_training=True)
    assert all((f.start_position, f.end_position) == (0, 0) for f in features)


def test_bad_window_options_raise(tokenizer):
    example = make_example(10, (1, 2))
    with pytest.raises(ValueError, match="max_seq_length"):
        build_features([example], tokenizer, max_seq_length=4)
    with pytest.raises(ValueError, match="doc_stride"):
        build_features([example], tokenizer, max_seq_length=12, doc_stride=5)  # room 12 - 4 - 3 = 5
    long_question = SquadExample("q", "t", example.context, " ".join(WORDS[:10]), example.answers)
    with pytest.raises(ValueError, match="no room"):
        build_features([long_question], tokenizer, max_seq_length=12, max_query_length=10)


def test_collate_pads_to_the_longest(tokenizer):
    examples = [make_example(5, (1, 1), "a"), make_example(9, (2, 3), "b")]
    features = build_features(examples, tokenizer, max_seq_length=64, is_training=True)
    batch = collate_features(features)
    assert batch["input_ids"].shape == (2, max(len(f) for f in features))
    assert batch["attention_mask"].sum(axis=1).tolist() == [len(f) for f in features]
    assert batch["start_positions"].tolist() == [f.start_position for f in features]


# ---------------------------------------------------------------------------------------- best span
def test_best_spans_respects_order_length_and_context():
    start = np.array([9.0, 0.0, 5.0, 1.0, 0.0, 4.25])
    end = np.array([9.0, 3.0, 0.0, 1.5, 6.0, 2.5])
    is_context = np.array([False, True, True, True, True, True])  # position 0 is [CLS]
    spans = best_spans(start, end, is_context, n_best=20, max_answer_length=3)
    assert spans[0] == (5.0 + 6.0, 2, 4)  # CLS (9+9) is not context; (2, 1)... would have end < start
    for score, i, j in spans:
        assert is_context[i] and is_context[j] and i <= j and j - i + 1 <= 3
        assert score == start[i] + end[j]
    assert [s for s, _, _ in spans] == sorted((s for s, _, _ in spans), reverse=True)
    assert best_spans(start, end, is_context, max_answer_length=2)[:2] == [(7.0, 3, 4), (6.75, 5, 5)]
    one = best_spans(start, end, is_context, max_answer_length=1)
    assert one[0] == (6.75, 5, 5) and all(i == j for _, i, j in one)
    assert len(best_spans(start, end, is_context, n_best=2, max_answer_length=3)) <= 2


def test_best_spans_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        T = 12
        s, e = rng.normal(size=T), rng.normal(size=T)
        ctx = rng.random(T) < 0.7
        ctx[0] = False
        spans = best_spans(s, e, ctx, n_best=T, max_answer_length=4)
        brute = max(((s[i] + e[j], i, j) for i in range(T) for j in range(i, min(T, i + 4)) if ctx[i] and ctx[j]),
                    default=None)
        assert (spans[0] if spans else None) == (None if brute is None else (float(brute[0]), brute[1], brute[2]))


def test_best_spans_checks_shapes():
    with pytest.raises(ValueError, match="best_spans"):
        best_spans(np.zeros(3), np.zeros(4), np.ones(3, bool))


def test_postprocess_picks_the_best_window_and_the_null_answer(tokenizer):
    example = make_example(40, (13, 14))
    features = build_features([example], tokenizer, max_seq_length=22, doc_stride=5)
    T = max(len(f) for f in features)
    starts, ends = np.zeros((len(features), T)), np.zeros((len(features), T))
    starts[1, 6 + 3], ends[1, 6 + 4] = 5.0, 5.0  # window 1 says tokens 13-14
    starts[0, 6 + 2], ends[0, 6 + 2] = 4.0, 4.0  # window 0 says token 2, lower score
    preds = postprocess([example], features, starts, ends, n_best=5, max_answer_length=5)
    assert preds["q"].text == "w13 w14" and preds["q"].score == 10.0
    starts[:, 0], ends[:, 0] = 6.0, 6.0  # null score 12 in every window > 10
    v2 = postprocess([example], features, starts, ends, version_2_with_negative=True)
    assert v2["q"].text == "" and v2["q"].null_score == 12.0
    assert postprocess([example], features, starts, ends, version_2_with_negative=True,
                       null_score_diff_threshold=2.5)["q"].text == "w13 w14"
    starts[2, 0] = 0.0  # the null score is the smallest over the windows: 6
    assert postprocess([example], features, starts, ends, version_2_with_negative=True)["q"].text == "w13 w14"


def test_best_null_threshold_maximises_exact_match(tokenizer):
    from models.qa import Prediction

    answerable = make_example(10, (2, 2), "a")
    impossible = make_example(10, (2, 2), "b", impossible=True)
    preds = {"a": Prediction("w2", 5.0, 6.0, ()), "b": Prediction("w3", 5.0, 8.0, ())}
    t = best_null_threshold([answerable, impossible], preds)  # diffs: a 1.0 (keep span), b 3.0 (say "")
    assert 1.0 <= t < 3.0


def test_null_threshold_tuning_sees_the_span_hidden_by_the_null_answer(tokenizer):
    """At threshold 0 both answers are "" (null wins), yet the best span of "a" is right: tuning
    must find a threshold that answers "a" and keeps "" for the impossible "b"."""
    example_a = make_example(12, (3, 4), "a")
    example_b = make_example(12, (3, 4), "b", impossible=True)
    features = build_features([example_a, example_b], tokenizer, is_training=True, max_seq_length=64,
                              doc_stride=8, max_query_length=8)
    assert len(features) == 2  # one window each
    starts, ends = [], []
    for f in features:
        s, e = np.zeros(len(f)), np.zeros(len(f))
        s[CLS_INDEX] = 5.0
        e[CLS_INDEX] = 5.0 if f.qid == "a" else 9.0  # null score 10 (a) / 14 (b)
        i = f.start_position if f.qid == "a" else f.offsets.index((0, 2))  # "w0" for b
        j = f.end_position if f.qid == "a" else i
        s[i], e[j] = 4.0, 4.0  # span score 8: below the null score
        starts.append(s), ends.append(e)
    preds = postprocess([example_a, example_b], features, starts, ends, version_2_with_negative=True)
    assert preds["a"].text == "" and preds["a"].span_text == "w3 w4" and preds["b"].text == ""
    t = best_null_threshold([example_a, example_b], preds)
    assert preds["a"].with_threshold(t) == "w3 w4" and preds["b"].with_threshold(t) == ""


def test_best_null_threshold_by_f1_counts_partial_spans(tokenizer):
    """A half-right span (F1 2/3) is worth answering for F1 but not for EM."""
    from models.qa import Prediction

    answerable = make_example(10, (2, 3), "a")  # gold "w2 w3"
    impossible = make_example(10, (2, 2), "b", impossible=True)
    preds = {"a": Prediction("", 5.0, 6.0, (), "w2"), "b": Prediction("", 5.0, 8.0, (), "w5")}  # diffs 1, 3
    assert best_null_threshold([answerable, impossible], preds, "exact") == float("-inf")  # always ""
    t = best_null_threshold([answerable, impossible], preds, "f1")
    assert preds["a"].with_threshold(t) == "w2" and preds["b"].with_threshold(t) == ""
    with pytest.raises(ValueError, match="metric must be"):
        best_null_threshold([answerable], preds, "bleu")
    with pytest.raises(ValueError, match="1 question\\(s\\) have no prediction"):
        best_null_threshold([answerable, make_example(10, (1, 1), "c")], preds)
