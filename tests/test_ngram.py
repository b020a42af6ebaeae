"""N-gram LM: hand-computed cases for every smoothing, proper distributions, nltk parity,
counts, generation, EM for interpolation weights, the recipe."""
from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.ngram import SMOOTHINGS, NGramLM, _discounts
from models.text import Vocab, load_default_corpus, load_text, tokenize_sentences, train_valid_test_split

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHAKESPEARE = DATA / "tinyshakespeare" / "input.txt"

# a b / a c / b a b   ->  V = {a, b, c, </s>, <unk>} (|V| = 5)
# bigram counts: (<s> a)=2 (<s> b)=1 (a b)=2 (a c)=1 (b a)=1 (b </s>)=2 (c </s>)=1
# unigram counts: a=3 b=3 c=1 </s>=3 (N=10); continuation N1+(• w): a=2 b=2 c=1 </s>=2 (sum 7)
TOY = [["a", "b"], ["a", "c"], ["b", "a", "b"]]


def _pydoc_sentences(n: int) -> list[list[str]]:
    return tokenize_sentences(load_default_corpus()[:200_000])[:n]


def _padded(sentence, n):
    return ["<s>"] * (n - 1) + list(sentence) + ["</s>"]


def _events(sentences, n):
    """(history, word) of every predicted token, as the model sees them."""
    for s in sentences:
        p = _padded(s, n)
        for i in range(n - 1, len(p)):
            yield tuple(p[i - n + 1:i]), p[i]


# -- the book's worked example and hand-computed cases -------------------------------------
def test_book_example_add_one():
    """P(sells | she) = (4 + 1) / (4 + 10) with add-one smoothing over a 10-word vocabulary."""
    corpus = [s.split() for s in ("she sells sea shells", "she sells shells by the sea",
                                  "she sells sea shells on the sea shore", "she sells the shore shells")]
    lm = NGramLM(2, "laplace").fit(corpus)
    assert lm.num_predictable == 10                        # 8 words + </s> + <unk>
    assert lm.count(["she", "sells"]) == 4 and lm.context_count(["she"]) == 4
    assert lm.prob("sells", ["she"]) == pytest.approx(5 / 14, abs=1e-15)
    assert lm.prob("sea", ["she"]) == pytest.approx(1 / 14, abs=1e-15)


def test_mle_laplace_add_k_hand():
    assert NGramLM(2, "mle").fit(TOY).prob("b", ["a"]) == pytest.approx(2 / 3)
    assert NGramLM(2, "mle").fit(TOY).prob("a", ["a"]) == 0.0
    assert NGramLM(1, "mle").fit(TOY).prob("</s>") == pytest.approx(3 / 10)
    assert NGramLM(2, "laplace").fit(TOY).prob("b", ["a"]) == pytest.approx(3 / 8)
    assert NGramLM(2, "laplace").fit(TOY).prob("a", ["c"]) == pytest.approx(1 / 6)
    assert NGramLM(2, "add_k", k=0.5).fit(TOY).prob("b", ["a"]) == pytest.approx(2.5 / 5.5)
    assert NGramLM(2, "laplace").fit(TOY).prob("zzz", ["a"]) == pytest.approx(1 / 8)  # <unk>


def test_interpolated_hand():
    lm = NGramLM(2, "interpolated", lambdas=[0.8, 0.6]).fit(TOY)
    p1_b = 0.8 * 3 / 10 + 0.2 / 5                          # λ1 P_ML(b) + (1 - λ1) / |V| = 0.28
    assert lm.prob("b", ["a"]) == pytest.approx(0.6 * 2 / 3 + 0.4 * p1_b)
    assert lm.prob("a", ["c"]) == pytest.approx(0.4 * p1_b)
    assert lm.prob("<unk>", ["a"]) == pytest.approx(0.4 * 0.2 / 5)
    assert lm.prob("b", ["never-seen"]) == pytest.approx(p1_b)  # unseen context: lower order


def test_absolute_discount_backoff_hand():
    lm = NGramLM(2, "backoff", discount=0.5).fit(TOY)
    p1 = {w: max(c - 0.5, 0) / 10 + 0.5 * 4 / 10 / 5 for w, c in
          {"a": 3, "b": 3, "c": 1, "</s>": 3, "<unk>": 0}.items()}
    assert lm.prob("c", []) == pytest.approx(p1["c"]) == pytest.approx(0.09)
    assert lm.prob("b", ["a"]) == pytest.approx(1.5 / 3)            # (c - D) / c(h)
    assert lm.prob("c", ["a"]) == pytest.approx(0.5 / 3)
    alpha = (0.5 * 2 / 3) / (1 - p1["b"] - p1["c"])                    # freed mass / unseen mass
    assert lm.prob("a", ["a"]) == pytest.approx(alpha * p1["a"])
    assert lm.prob("<unk>", ["a"]) == pytest.approx(alpha * p1["<unk>"])


def test_kneser_ney_bigram_hand():
    lm = NGramLM(2, "kneser_ney", discount=0.5).fit(TOY)
    p_cont = {w: max(n - 0.5, 0) / 7 + 0.5 * 4 / 7 / 5 for w, n in
              {"a": 2, "b": 2, "c": 1, "</s>": 2, "<unk>": 0}.items()}
    assert lm.prob("c", []) == pytest.approx(4.5 / 35)
    assert lm.prob("b", ["a"]) == pytest.approx(1.5 / 3 + 0.5 * 2 / 3 * p_cont["b"])
    assert lm.prob("a", ["a"]) == pytest.approx(0.5 * 2 / 3 * p_cont["a"])


def test_kneser_ney_trigram_hand_with_sentence_start_raw_counts():
    lm = NGramLM(3, "kneser_ney", discount=0.5).fit(TOY)
    p1 = {"a": 9.5 / 35, "</s>": 9.5 / 35}
    # context (b,): continuation counts N1+(• b </s>) = |{a}| = 1, N1+(• b a) = |{<s>}| = 1
    p2_eos_b = (1 - 0.5) / 2 + 0.5 * 2 / 2 * p1["</s>"]
    assert lm.prob("</s>", ["a", "b"]) == pytest.approx((2 - 0.5) / 2 + 0.5 * 1 / 2 * p2_eos_b)
    # context (<s>,) has no real left context: raw counts c(<s> a) = 2, c(<s> b) = 1
    p2_a_bos = (2 - 0.5) / 3 + 0.5 * 2 / 3 * p1["a"]
    assert lm.prob("a", ["<s>", "<s>"]) == pytest.approx((2 - 0.5) / 3 + 0.5 * 2 / 3 * p2_a_bos)


def test_kneser_ney_continuation_san_francisco():
    """The classic KN argument: 'francisco' is frequent but only ever follows 'san', so as a
    continuation of a new context it is less likely than 'glasses', which follows many words."""
    corpus = [["san", "francisco", "is", "foggy"]] * 5 + [[w, "glasses"] for w in ("my", "his", "new", "reading")]
    kn = NGramLM(2, "kneser_ney").fit(corpus)
    jm = NGramLM(2, "interpolated").fit(corpus)
    assert kn.prob("glasses", ["without"]) > kn.prob("francisco", ["without"])
    assert jm.prob("glasses", ["without"]) < jm.prob("francisco", ["without"])


def test_modified_kneser_ney_discounts():
    counts = np.array([1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [7])   # n1=10 n2=5 n3=3 n4=2
    y = 10 / (10 + 2 * 5)
    np.testing.assert_allclose(_discounts(counts, True), [0, 1 - 2 * y * 5 / 10, 2 - 3 * y * 3 / 5, 3 - 4 * y * 2 / 3])
    np.testing.assert_allclose(_discounts(counts, False), [0, y, y, y])
    np.testing.assert_allclose(_discounts(np.array([1, 1, 1]), True), [0, 0.5, 0.5, 0.5])  # no n2: fallback


def test_stupid_backoff_hand_and_not_a_distribution():
    lm = NGramLM(2, "stupid_backoff", alpha=0.4).fit(TOY)
    assert lm.prob("b", ["a"]) == pytest.approx(2 / 3)
    assert lm.prob("a", ["a"]) == pytest.approx(0.4 * 3 / 10)
    assert lm.prob("<unk>", ["a"]) == pytest.approx(0.4 * 0.4 / 5)    # unseen unigram: α / |V|
    assert lm.next_word_probs(["a"]).sum() > 1.0


# -- every smoothing but stupid backoff is a proper distribution --------------------------------
_SENTENCES = st.lists(st.lists(st.sampled_from("abcde"), max_size=6), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(_SENTENCES, _SENTENCES)
def test_proper_distribution_over_vocabulary(train, test):
    for smoothing in SMOOTHINGS:
        if smoothing == "stupid_backoff":
            continue
        for order in (1, 2, 3, 4):
            for modified in (False, True) if smoothing == "kneser_ney" else (False,):
                lm = NGramLM(order, smoothing, modified=modified, k=0.3).fit(train)
                seen = {h for h, _ in _events(train, order)}
                unseen = {("e",) * (order - 1), ("zz",) * (order - 1)} - seen
                for context in seen | (set() if smoothing == "mle" else unseen):
                    p = lm.next_word_probs(context)
                    assert p.sum() == pytest.approx(1.0, abs=1e-9), (smoothing, order, context)
                    assert p[lm.vocab.bos_id] == 0 and (p >= 0).all()
                # the vectorised perplexity equals the scalar definition
                logps = [lm.logprob(w, h) for h, w in _events(test, order)]
                expected = math.exp(-np.mean(logps)) if np.isfinite(logps).all() else math.inf
                assert lm.perplexity(test) == pytest.approx(expected, rel=1e-9)


def test_fixed_vocab_with_pad_is_never_predicted():
    vocab = Vocab.build(TOY + [["d"]])
    lm = NGramLM(2, "kneser_ney", vocab=vocab).fit(TOY)
    p = lm.next_word_probs(["a"])
    assert p[vocab.pad_id] == 0 and p[vocab.bos_id] == 0 and p.sum() == pytest.approx(1.0)
    assert lm.num_predictable == len(vocab) - 2 and lm.prob("d", ["a"]) > 0


# -- nltk parity ---------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2, 3])
def test_nltk_parity_mle_laplace_lidstone(order):
    """Same padded text (n-1 <s>, one </s>) and vocabulary. nltk conventions: its vocabulary is
    our predicted vocabulary (words, </s>, and <unk> as nltk's unk label); our <s> is not in it,
    so nltk maps <s> in contexts to <unk>, which is harmless here because training has no <unk>
    (min_count=1) and the scored test sentences are in-vocabulary."""
    nltk_lm = pytest.importorskip("nltk.lm")
    from nltk.util import ngrams

    sentences = _pydoc_sentences(260)
    train, test = sentences[:200], sentences[200:]
    ours = {"mle": NGramLM(order, "mle").fit(train), "laplace": NGramLM(order, "laplace").fit(train),
            "add_k": NGramLM(order, "add_k", k=0.3).fit(train)}
    words = [w for w in ours["mle"].vocab.itos if w not in ("<s>", "<unk>")]
    test = [s for s in test if all(w in ours["mle"].vocab for w in s)]
    assert len(test) >= 5
    text = [list(ngrams(_padded(s, order), order)) for s in train]
    test_ngrams = [g for s in test for g in ngrams(_padded(s, order), order)]
    train_ngrams = [g for s in text for g in s]
    refs = {"mle": nltk_lm.MLE, "laplace": nltk_lm.Laplace, "add_k": lambda n, **kw: nltk_lm.Lidstone(0.3, n, **kw)}
    for name, make in refs.items():
        ref = make(order, vocabulary=nltk_lm.Vocabulary(words, unk_cutoff=1, unk_label="<unk>"))
        ref.fit(text)
        assert len(ref.vocab) == ours[name].num_predictable
        assert ours[name].perplexity(test) == pytest.approx(ref.perplexity(test_ngrams), rel=1e-10)
        assert ours[name].perplexity(train) == pytest.approx(ref.perplexity(train_ngrams), rel=1e-10)
        for g in (test_ngrams[:40] + train_ngrams[:40]):
            for w in (g[-1], "<unk>", "the", "</s>", "never-seen-word"):
                assert ours[name].prob(w, g[:-1]) == pytest.approx(ref.score(w, g[:-1]), abs=1e-14)


# -- counts, <unk>, sparsity -----------------------------------------------------------------------
def test_counts_match_python_counter():
    sentences = _pydoc_sentences(150)
    for order in (1, 2, 3, 4):
        lm = NGramLM(order, "mle").fit(sentences)
        for m in range(1, order + 1):
            ref = Counter(h[len(h) - m + 1:] + (w,) if m > 1 else (w,) for h, w in _events(sentences, order))
            assert lm.ngram_counts(m) == dict(ref)
        some = list(ref.items())[:50]
        assert all(lm.count(list(g)) == c for g, c in some)
        contexts = Counter(h for h, _ in _events(sentences, order))
        assert all(lm.context_count(list(h)) == c for h, c in list(contexts.items())[:50])
    assert lm.count(["no", "such", "gram", "here"]) == 0


def test_min_count_maps_rare_words_to_unk():
    lm = NGramLM(2, "laplace", min_count=2).fit(TOY)
    assert "c" not in lm.vocab and lm.count(["a", "<unk>"]) == 1
    assert lm.prob("c", ["a"]) == lm.prob("never-seen", ["a"]) == lm.prob("<unk>", ["a"])


def test_unseen_ngram_rate():
    lm = NGramLM(2, "mle").fit([["a", "b"]])
    rates = lm.unseen_ngram_rate([["a", "c"]])   # events: (<s> a) seen, (a <unk>), (<unk> </s>)
    assert rates == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}


# -- generation -------------------------------------------------------------------------------------
def test_generate():
    lm = NGramLM(3, "mle").fit([["a", "b", "c"]])
    assert lm.generate(10, seed=0) == ["a", "b", "c"]
    assert lm.generate(8, seed=0, stop_at_eos=False) == ["a", "b", "c", "</s>"] * 2
    assert lm.generate(10, context=["a", "b"], seed=0) == ["c"]
    assert lm.generate(10, context=["b"], seed=0) == ["c"]         # (<s>, b) unseen: backs off to (b,)
    big = NGramLM(3, "kneser_ney").fit(_pydoc_sentences(300))
    a = big.generate(20, seed=5)
    assert a == big.generate(20, seed=5) and a != big.generate(20, seed=6)
    assert all(t in big.vocab for t in a)
    assert "<unk>" not in big.generate(200, seed=1, stop_at_eos=False, skip_unk=True)
    greedy = big.generate(5, seed=1, temperature=0)
    assert greedy == big.generate(5, seed=2, temperature=0)


# -- EM for Jelinek–Mercer weights ------------------------------------------------------------------
def test_tune_lambdas_em_increases_held_out_likelihood():
    sentences = _pydoc_sentences(600)
    train, held = sentences[:500], sentences[500:]
    previous = NGramLM(3, "interpolated").fit(train).perplexity(held)
    for iterations in (1, 2, 4, 8):
        lm = NGramLM(3, "interpolated").fit(train)
        lam = lm.tune_lambdas(held, iterations=iterations)
        assert ((lam > 0) & (lam < 1)).all()
        ppl = lm.perplexity(held)
        assert ppl <= previous + 1e-9                    # EM never decreases the likelihood
        previous = ppl
    with pytest.raises(ValueError, match="only for smoothing='interpolated'"):
        NGramLM(2, "laplace").fit(train).tune_lambdas(held)


# -- errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    ({"order": 0}, "order must be an int >= 1"),
    ({"order": 2, "smoothing": "good_turing"}, "smoothing must be one of"),
    ({"order": 2, "smoothing": "add_k", "k": 0}, "k > 0"),
    ({"order": 2, "discount": 1.5}, r"discount must be in \(0, 1\)"),
    ({"order": 2, "lambdas": [0.5]}, "lambdas must be 2 weights"),
    ({"order": 2, "min_count": 0}, "min_count"),
    ({"order": 2, "vocab": Vocab.build([["a"]], specials=("<pad>", "<unk>"))}, "missing"),
])
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NGramLM(**kwargs)


def test_fit_and_query_errors():
    lm = NGramLM(2, "laplace")
    with pytest.raises(RuntimeError, match="call fit"):
        lm.prob("a", ["b"])
    with pytest.raises(TypeError, match="expected a list of token lists"):
        lm.fit("a b c")
    with pytest.raises(TypeError, match="sentence 1 must be a list of str tokens"):
        lm.fit([["a"], "b c"])
    with pytest.raises(TypeError, match="tokens must be str, got int"):
        lm.fit([["a", 3]])
    with pytest.raises(ValueError, match="no sentences"):
        lm.fit([])
    lm.fit(TOY)
    with pytest.raises(TypeError, match="context must be a sequence of tokens"):
        lm.prob("a", "b")
    with pytest.raises(ValueError, match="ngram must be a sequence of 1..2 tokens"):
        lm.count(["a", "b", "c"])
    with pytest.raises(ValueError, match="num_words"):
        lm.generate(-1)


# -- real data and the recipe ------------------------------------------------------------------------
@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="shared data not present")
def test_tiny_shakespeare_perplexities():
    sentences = tokenize_sentences(load_text(SHAKESPEARE))
    train, valid, _ = train_valid_test_split(sentences, seed=0, mode="contiguous", chunk_size=50)
    ppl = {(s, o): NGramLM(o, s, min_count=2).fit(train).perplexity(valid)
           for s, o in (("laplace", 1), ("laplace", 3), ("kneser_ney", 3), ("kneser_ney", 2))}
    assert 250 < ppl["laplace", 1] < 450                  # unigram
    assert 90 < ppl["kneser_ney", 3] < 160
    assert ppl["kneser_ney", 3] < ppl["kneser_ney", 2] < ppl["laplace", 1] < ppl["laplace", 3]


def test_recipe_writes_table_metrics_and_plot(tmp_path, capsys):
    from models.recipes import ngram as recipe

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(load_default_corpus()[:80_000], encoding="utf-8")
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    args = parser.parse_args(["--corpus", str(corpus), "--out", str(tmp_path / "run"), "--max-order", "3"])
    assert recipe.run(args) == 0
    out = capsys.readouterr().out
    assert "Kneser-Ney (interp.)" in out and "unseen n-grams (valid)" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    ppl = metrics["valid_perplexity"]
    assert ppl["mle"]["3"] is None                          # infinite: unseen trigrams
    assert ppl["kneser_ney"]["3"] < ppl["kneser_ney"]["1"] and ppl["laplace"]["3"] > ppl["laplace"]["2"]
    assert metrics["unseen_ngram_rate_valid"]["3"] > metrics["unseen_ngram_rate_valid"]["2"]
    assert len(metrics["samples"]) == 3
    assert (tmp_path / "run" / "perplexity_by_order.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



@pytest.mark.parametrize("content, message", [
    (None, "corpus file not found"), (b"\xff\xfe bad", "not valid UTF-8"), (b"  \n", "is empty"),
])
def test_recipe_bad_corpus_gives_one_line_error(tmp_path, capsys, content, message):
    from models.recipes import ngram as recipe

    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    assert recipe.run(parser.parse_args(["--corpus", str(path), "--out", str(tmp_path / "x")])) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: load_text:") and message in err
    assert not (tmp_path / "x").exists()
