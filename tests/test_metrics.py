"""Metrics against hand-computed values and their reference libraries (sacrebleu, NLTK, sklearn, SciPy)."""
from __future__ import annotations

import gzip
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.metrics import (
    BLEUStats, accuracy, average_ranks, bleu_from_stats, brevity_penalty, confusion_matrix,
    corpus_bleu, exact_match, matthews_corrcoef, normalize_answer, pearson, perplexity,
    precision_recall_f1, references_from_streams, sentence_bleu, spearman, squad_evaluate,
    token_f1, tokenize_13a,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MULTI30K_VAL = DATA / "multi30k" / "val.en.gz"


# ------------------------------------------------------------------------------ BLEU by hand

HYP = "the cat sat on the mat"
REF = "the cat is on the mat"
# clipped matches / totals: 1-grams 5/6, 2-grams 3/5 (the cat, on the, the mat), 3-grams 1/4
# (on the mat), 4-grams 0/3; c = r = 6 so BP = 1


def _geo(*p):
    return math.exp(sum(math.log(x) for x in p) / len(p))


@pytest.mark.parametrize("smoothing,expected", [
    ("none", 0.0),
    ("floor", _geo(5 / 6, 3 / 5, 1 / 4, 0.1 / 3)),
    ("exp", _geo(5 / 6, 3 / 5, 1 / 4, 1 / (2 * 3))),
    ("add-k", _geo(5 / 6, 4 / 6, 2 / 5, 1 / 4)),
])
def test_sentence_bleu_hand_computed(smoothing, expected):
    score = sentence_bleu(HYP, [REF], smoothing=smoothing)
    assert score.bleu == pytest.approx(expected, abs=1e-12)
    assert score.stats == BLEUStats((5, 3, 1, 0), (6, 5, 4, 3), 6, 6)
    assert score.brevity_penalty == 1.0


def test_brevity_penalty_and_effective_order_by_hand():
    # c = 2, r = 6: BP = exp(1 - 6/2); 1- and 2-gram precisions are 1, no 3-grams exist
    s = sentence_bleu("the cat", ["the cat is on the mat"], effective_order=True)
    assert s.brevity_penalty == pytest.approx(math.exp(-2.0), abs=1e-15)
    assert s.bleu == pytest.approx(math.exp(-2.0), abs=1e-12)
    assert sentence_bleu("the cat", ["the cat is on the mat"], effective_order=False).bleu == 0.0
    assert brevity_penalty(6, 0) == 0.0 and brevity_penalty(5, 6) == 1.0


def test_closest_reference_length_prefers_shorter_on_tie():
    refs = ["a " * 13, "a " * 11]
    assert sentence_bleu("a " * 12, refs).stats.ref_len == 11
    assert sentence_bleu("a " * 7, ["a " * 11, "a " * 8, "a " * 6]).stats.ref_len == 6


def test_clipping_by_the_most_generous_reference():
    # "the" x7 against refs with 2 and 1 "the": clipped to 2 (Papineni's example)
    s = sentence_bleu("the the the the the the the", ["the cat is on the mat", "there is a cat on the mat"],
                      smoothing="floor")
    assert s.stats.matches[0] == 2 and s.stats.totals[0] == 7


def test_weights_and_max_order_by_hand():
    s = corpus_bleu([HYP], [[REF]], weights=(0.5, 0.5), smoothing="none")
    assert s.bleu == pytest.approx(math.exp(0.5 * math.log(5 / 6) + 0.5 * math.log(3 / 5)), abs=1e-12)
    s = corpus_bleu([HYP], [[REF]], max_order=3, smoothing="none")
    assert s.bleu == pytest.approx(_geo(5 / 6, 3 / 5, 1 / 4), abs=1e-12)


@pytest.mark.parametrize("line,expected", [
    ("Hello, world.", "Hello , world ."),
    ("It costs 3.14 or 1,000 dollars.", "It costs 3.14 or 1,000 dollars ."),
    ("from 1990-2000", "from 1990 - 2000"),
    ("Tom &amp; Jerry &quot;cats&quot;", 'Tom & Jerry " cats "'),
    ("don't (really)", "don't ( really )"),  # the apostrophe stays
    ("a-b <skipped> c", "a-b c"),
])
def test_tokenize_13a_by_hand(line, expected):
    assert tokenize_13a(line) == expected


def test_bleu_bad_input_errors():
    with pytest.raises(ValueError, match="corpus_bleu: got 2 hypotheses but 1 reference"):
        corpus_bleu(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="smoothing must be one of"):
        corpus_bleu(["a"], [["a"]], smoothing="method9")
    with pytest.raises(ValueError, match="weights"):
        corpus_bleu(["a"], [["a"]], weights=(1.0, -1.0))
    with pytest.raises(ValueError, match="max_order=3 but 2 weights"):
        corpus_bleu(["a"], [["a"]], weights=(0.5, 0.5), max_order=3)
    with pytest.raises(ValueError, match="hypothesis 0 has no reference"):
        corpus_bleu(["a"], [[None]])
    with pytest.raises(ValueError, match="empty list of hypotheses"):
        corpus_bleu([], [])
    with pytest.raises(TypeError, match="hypothesis 0 must be a str"):
        corpus_bleu([3], [["a"]])
    with pytest.raises(ValueError, match="effective_order"):
        corpus_bleu(["a"], [["a"]], convention="nltk", effective_order=True)
    with pytest.raises(ValueError, match="tokenize must be one of"):
        corpus_bleu(["a"], [["a"]], tokenize="intl")


# ------------------------------------------------------------------- BLEU vs sacrebleu and NLTK

def _perturb(sentence: str, rng: random.Random, noise: float) -> str:
    """Deterministic word drops, duplications and neighbour swaps."""
    words = []
    for w in sentence.split():
        r = rng.random()
        if r < noise / 3:
            continue
        words.append(w)
        if r > 1 - noise / 6:
            words.append(w)
    for _ in range(int(noise * len(words))):
        if len(words) > 1:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


@pytest.fixture(scope="module")
def multi30k_refs():
    if not MULTI30K_VAL.is_file():
        pytest.skip(f"{MULTI30K_VAL} not present")
    with gzip.open(MULTI30K_VAL, "rt", encoding="utf-8") as fh:
        refs = [line.rstrip("\n") for line in fh]
    assert len(refs) == 1014
    return refs


@pytest.fixture(scope="module")
def systems(multi30k_refs):
    rng = random.Random(1234)
    return {noise: [_perturb(r, rng, noise) for r in multi30k_refs] for noise in (0.1, 0.5, 1.5)}


@pytest.mark.parametrize("smoothing", ["none", "floor", "add-k", "exp"])
def test_corpus_bleu_equals_sacrebleu_on_multi30k(multi30k_refs, systems, smoothing):
    sacrebleu = pytest.importorskip("sacrebleu")
    refs = [[r] for r in multi30k_refs]
    for noise, hyps in systems.items():
        for lowercase in ((False, True) if noise == 0.5 else (False,)):
            ref = sacrebleu.corpus_bleu(hyps, [multi30k_refs], smooth_method=smoothing,
                                        lowercase=lowercase, force=True)
            ours = corpus_bleu(hyps, refs, smoothing=smoothing, lowercase=lowercase)
            assert ours.score == pytest.approx(ref.score, abs=1e-9), (noise, lowercase)
            if smoothing != "add-k":  # sacrebleu reports add-k's counts with k added
                assert list(ours.stats.matches) == list(ref.counts)
            assert (ours.stats.hyp_len, ours.stats.ref_len) == (ref.sys_len, ref.ref_len)
    ref = sacrebleu.corpus_bleu(systems[0.5], [multi30k_refs], smooth_method=smoothing,
                                tokenize="none", force=True)
    assert corpus_bleu(systems[0.5], refs, smoothing=smoothing, tokenize="none").score == \
        pytest.approx(ref.score, abs=1e-9)


def test_corpus_bleu_multiple_references_equals_sacrebleu(multi30k_refs, systems):
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = random.Random(7)
    second = [_perturb(r, rng, 0.3) for r in multi30k_refs]
    third = [None if i % 3 else _perturb(r, rng, 0.8) for i, r in enumerate(multi30k_refs)]
    streams = [multi30k_refs, second, third]
    refs = references_from_streams(*streams)
    for hyps in systems.values():
        ref = sacrebleu.corpus_bleu(hyps, streams, force=True)
        assert corpus_bleu(hyps, refs).score == pytest.approx(ref.score, abs=1e-9)


def test_sentence_bleu_equals_sacrebleu_on_multi30k(multi30k_refs, systems):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps = systems[0.5][:300]
    for smoothing in ("exp", "floor", "add-k", "none"):
        for hyp, ref in zip(hyps, multi30k_refs):
            expected = sacrebleu.sentence_bleu(hyp, [ref], smooth_method=smoothing).score
            assert sentence_bleu(hyp, [ref], smoothing=smoothing).score == pytest.approx(expected, abs=1e-9)


def test_corpus_of_short_sentences_equals_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    hyps, refs = ["a cat", "dog"], ["a cat sat", "the dog"]
    for smoothing in ("none", "floor", "add-k", "exp"):
        for eff in (False, True):
            ref = sacrebleu.corpus_bleu(hyps, [refs], smooth_method=smoothing, use_effective_order=eff)
            ours = corpus_bleu(hyps, [[r] for r in refs], smoothing=smoothing, effective_order=eff)
            assert ours.score == pytest.approx(ref.score, abs=1e-9), (smoothing, eff)


def _nltk():
    bleu_score = pytest.importorskip("nltk.translate.bleu_score")
    return bleu_score, bleu_score.SmoothingFunction()


@pytest.mark.parametrize("method", range(5))
def test_bleu_equals_nltk_on_multi30k(multi30k_refs, systems, method):
    bleu_score, sf = _nltk()
    smooth = getattr(sf, f"method{method}")
    refs = [[r.split()] for r in multi30k_refs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns about zero counts under method0
        for noise, all_weights in ((0.1, [(0.25,) * 4]),
                                   (1.5, [(0.25,) * 4, (0.5, 0.5), (0.1, 0.3, 0.5, 0.1)])):
            hyp_tokens = [h.split() for h in systems[noise]]
            for weights in all_weights:
                expected = bleu_score.corpus_bleu(refs, hyp_tokens, weights=weights,
                                                  smoothing_function=smooth)
                ours = corpus_bleu(hyp_tokens, refs, weights=weights, smoothing=f"method{method}",
                                   convention="nltk")
                assert ours.bleu == pytest.approx(expected, abs=1e-12)
        for hyp, ref in zip(systems[1.5][:200], refs):
            expected = bleu_score.sentence_bleu(ref, hyp.split(), smoothing_function=smooth)
            ours = sentence_bleu(hyp.split(), ref, smoothing=f"method{method}", convention="nltk")
            assert ours.bleu == pytest.approx(expected, abs=1e-12)


_WORDS = st.lists(st.sampled_from("a b c d e".split()), min_size=0, max_size=9)


@settings(max_examples=150, deadline=None)
@given(hyp=_WORDS, refs=st.lists(_WORDS, min_size=1, max_size=3), method=st.integers(0, 4))
def test_sentence_bleu_equals_nltk_random(hyp, refs, method):
    bleu_score, sf = _nltk()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = bleu_score.sentence_bleu(refs, hyp, smoothing_function=getattr(sf, f"method{method}"))
    ours = sentence_bleu(hyp, refs, smoothing=f"method{method}", convention="nltk")
    assert ours.bleu == pytest.approx(expected, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(hyps=st.lists(_WORDS, min_size=1, max_size=4), data=st.data(),
       smoothing=st.sampled_from(["none", "floor", "add-k", "exp"]), eff=st.booleans())
def test_corpus_bleu_equals_sacrebleu_random(hyps, data, smoothing, eff):
    sacrebleu = pytest.importorskip("sacrebleu")
    refs = [" ".join(data.draw(_WORDS)) for _ in hyps]
    hyps = [" ".join(h) for h in hyps]
    ref = sacrebleu.corpus_bleu(hyps, [refs], smooth_method=smoothing, use_effective_order=eff,
                                tokenize="none")
    ours = corpus_bleu(hyps, [[r] for r in refs], smoothing=smoothing, effective_order=eff,
                       tokenize="none")
    assert ours.score == pytest.approx(ref.score, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=40)
       | st.text(alphabet="ab1,.-&;()'\" \n", max_size=30))
def test_tokenize_13a_equals_sacrebleu(line):
    tokenizers = pytest.importorskip("sacrebleu.tokenizers.tokenizer_13a")
    assert tokenize_13a(line) == tokenizers.Tokenizer13a()(line)


def test_bleu_from_stats_adds_up():
    a = sentence_bleu(HYP, [REF]).stats
    b = sentence_bleu("the cat", [REF]).stats
    total = a + b
    assert total == BLEUStats((7, 4, 1, 0), (8, 6, 4, 3), 8, 12)
    assert bleu_from_stats(total, smoothing="none").bleu == 0.0


# -------------------------------------------------------------------- classification vs sklearn

_labels = st.lists(st.integers(0, 3), min_size=1, max_size=40)
_binary = st.lists(st.integers(0, 1), min_size=1, max_size=40)


def _pairs(labels):
    return labels.flatmap(lambda t: st.tuples(st.just(t), st.lists(
        st.integers(0, max(max(t), 1)), min_size=len(t), max_size=len(t))))


@settings(max_examples=100, deadline=None)
@given(_pairs(_labels))
def test_classification_metrics_equal_sklearn(pair):
    skm = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when a single label is present
        assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=1e-12)
        np.testing.assert_array_equal(confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
        assert matthews_corrcoef(y_true, y_pred) == pytest.approx(skm.matthews_corrcoef(y_true, y_pred),
                                                                  abs=1e-12)
        for average in ("macro", "micro"):
            for labels in (None, [2, 0, 3]):  # a subset of classes, absent ones included
                expected = skm.precision_recall_fscore_support(y_true, y_pred, average=average,
                                                               labels=labels, zero_division=0)[:3]
                ours = precision_recall_f1(y_true, y_pred, average=average, labels=labels)
                np.testing.assert_allclose(ours, expected, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(_pairs(_binary), st.sampled_from([0, 1]), st.sampled_from([0.0, 1.0]))
def test_binary_precision_recall_f1_equal_sklearn(pair, pos_label, zero_division):
    skm = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = skm.precision_recall_fscore_support(y_true, y_pred, average="binary",
                                                       pos_label=pos_label,
                                                       zero_division=zero_division)[:3]
    ours = precision_recall_f1(y_true, y_pred, pos_label=pos_label, zero_division=zero_division)
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_degenerate_classification_cases():
    # a classifier that always says "acceptable": MCC 0 (sklearn's convention), F1 of class 0 is 0
    y_true = [0, 1, 1, 0, 1]
    assert matthews_corrcoef(y_true, [1] * 5) == 0.0
    assert matthews_corrcoef([1] * 5, [1] * 5) == 0.0
    assert matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert precision_recall_f1(y_true, [1] * 5, pos_label=0) == (0.0, 0.0, 0.0)
    assert precision_recall_f1([0, 0], [0, 0]) == (0.0, 0.0, 0.0)  # positive class never seen
    # 2x2 MCC by the textbook formula: TP=2, TN=1, FP=1, FN=1
    mcc = (2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2)
    assert matthews_corrcoef([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(mcc, abs=1e-15)
    # string labels
    assert accuracy(["pos", "neg"], ["pos", "pos"]) == 0.5
    np.testing.assert_array_equal(confusion_matrix(["b", "a", "b"], ["b", "b", "a"]), [[0, 1], [1, 1]])


def test_classification_errors():
    with pytest.raises(ValueError, match="accuracy: y_true has 2 labels but y_pred has 3"):
        accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="must be 1-D"):
        accuracy([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="empty"):
        matthews_corrcoef([], [])
    with pytest.raises(ValueError, match="at most 2 classes"):
        precision_recall_f1([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="pos_label='yes' is not a valid label"):
        precision_recall_f1(["a", "b"], ["a", "b"], pos_label="yes")
    with pytest.raises(ValueError, match="average must be"):
        precision_recall_f1([0, 1], [0, 1], average="weighted")


_values = st.lists(st.integers(-5, 5), min_size=2, max_size=30) | st.lists(
    st.floats(-1e3, 1e3, allow_subnormal=False), min_size=2, max_size=30)


@settings(max_examples=200, deadline=None)
@given(_values.flatmap(lambda x: st.tuples(st.just(x), st.lists(
    st.integers(-5, 5), min_size=len(x), max_size=len(x)))))
def test_correlations_equal_scipy(pair):
    stats = pytest.importorskip("scipy.stats")
    x, y = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy warns on constant input and returns NaN
        exp_p = stats.pearsonr(x, y)[0] if len(x) > 1 else float("nan")
        exp_s = stats.spearmanr(x, y)[0]
    np.testing.assert_allclose(pearson(x, y), exp_p, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(spearman(x, y), exp_s, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(average_ranks(x), stats.rankdata(x), atol=0)


def test_correlations_by_hand_and_errors():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="at least 2"):
        pearson([1], [1])
    with pytest.raises(ValueError, match="NaN or inf"):
        spearman([1, float("nan")], [1, 2])


def test_perplexity():
    # a uniform model over V words has NLL ln V per token and perplexity V
    assert perplexity(100 * math.log(50), 100) == pytest.approx(50.0)
    assert perplexity(0.0, 7) == 1.0
    assert perplexity(1e6, 1) == math.inf
    with pytest.raises(ValueError, match="num_tokens must be > 0"):
        perplexity(1.0, 0)
    with pytest.raises(TypeError, match="num_tokens must be an int"):
        perplexity(1.0, 2.5)
    with pytest.raises(ValueError, match="finite"):
        perplexity(float("nan"), 3)


# --------------------------------------------------------------------------------- SQuAD EM / F1

def test_normalize_and_scores_by_hand():
    assert normalize_answer("The  Cat, a dog!") == "cat dog"
    assert normalize_answer("an apple-pie") == "applepie"
    assert exact_match("the Eiffel Tower", "Eiffel tower.") == 1
    # pred tokens {eiffel, tower, in, paris}, gold {eiffel, tower}: P = 1/2, R = 1, F1 = 2/3
    assert token_f1("Eiffel tower in Paris", "the Eiffel Tower") == pytest.approx(2 / 3)
    assert token_f1("x y y", "y y z") == pytest.approx(2 / 3)  # shared tokens counted with multiplicity
    assert token_f1("a b b", "b b c") == pytest.approx(0.8)  # "a" is an article: P = 1, R = 2/3
    assert token_f1("", "") == 1.0 and token_f1("", "Paris") == 0.0  # v2.0 no-answer rule
    assert token_f1("", "", version="1.1") == 0.0


def _hand_dataset(version="v2.0"):
    qas = [
        {"id": "q1", "question": "?", "answers": [{"text": "Denver Broncos", "answer_start": 0},
                                                   {"text": "the Broncos", "answer_start": 0}],
         "is_impossible": False},
        {"id": "q2", "question": "?", "answers": [{"text": "Santa Clara, California", "answer_start": 0}],
         "is_impossible": False},
        {"id": "q3", "question": "?", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "x", "answer_start": 0}]},
        {"id": "q4", "question": "?", "answers": [], "is_impossible": True},
    ]
    return {"version": version, "data": [{"title": "T", "paragraphs": [{"context": "c", "qas": qas}]}]}


def test_squad_evaluate_by_hand():
    preds = {"q1": "Broncos", "q2": "Santa Clara", "q3": "", "q4": "x"}
    # q1: EM 1 (vs "the Broncos"), F1 1; q2: EM 0, F1 = 2*(1*2/3)/(1+2/3) = 0.8;
    # q3: no-answer predicted empty -> 1/1; q4: answered an impossible question -> 0/0
    result = squad_evaluate(_hand_dataset(), preds)
    assert result["exact"] == pytest.approx(100 * 2 / 4)
    assert result["f1"] == pytest.approx(100 * (1 + 0.8 + 1 + 0) / 4)
    assert result["HasAns_exact"] == pytest.approx(50.0) and result["HasAns_f1"] == pytest.approx(90.0)
    assert result["NoAns_exact"] == result["NoAns_f1"] == pytest.approx(50.0)
    assert result["total"] == 4 and result["HasAns_total"] == 2 and result["NoAns_total"] == 2
    with pytest.raises(ValueError, match="1 question\\(s\\) have no prediction"):
        squad_evaluate(_hand_dataset(), {k: v for k, v in preds.items() if k != "q2"})
    partial = squad_evaluate(_hand_dataset(), {"q1": "Broncos"}, allow_missing=True)
    assert partial["exact"] == pytest.approx(25.0)


def test_squad_v2_drops_gold_answers_that_normalise_to_nothing():
    data = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [
        {"id": "q", "question": "?", "answers": [{"text": "The", "answer_start": 0},
                                                 {"text": "cat", "answer_start": 0}]}]}]}]}
    assert squad_evaluate(data, {"q": ""})["exact"] == 0.0  # only "cat" remains as gold
    assert squad_evaluate(data, {"q": "the cat"})["exact"] == 100.0
    # v1.1 keeps every gold text: "" equals normalize("The") for EM, but F1 is 0
    v1 = squad_evaluate(data, {"q": ""}, version="1.1")
    assert v1["exact"] == 100.0 and v1["f1"] == 0.0
