"""Bengio-style neural LM: the n-gram examples equal the N-gram model's events, the forward
pass equals its equation in NumPy, it fits a tiny text, Word2Vec initialisation, generation,
and the nplm recipe (N-gram table on the same split, interrupt-and-resume, bad corpora)."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

import minigrad
from models.ngram import NGramLM
from models.nplm import NeuralLM, evaluate, generate, init_from_word2vec, ngram_examples, train_epoch
from models.recipes import nplm as recipe
from models.text import Vocab, load_text, tokenize_sentences, train_valid_test_split
from models.word2vec import Word2Vec


def test_ngram_examples_pad_like_the_ngram_model():
    ctx, tgt = ngram_examples([np.array([5, 6]), np.array([7])], order=3, bos_id=2, eos_id=3)
    np.testing.assert_array_equal(ctx, [[2, 2], [2, 5], [5, 6], [2, 2], [2, 7]])
    np.testing.assert_array_equal(tgt, [5, 6, 3, 7, 3])
    with pytest.raises(TypeError, match="sentence 0 must be a 1-D integer id array"):
        ngram_examples([np.array([[1]])], 3, 2, 3)


def test_same_events_as_the_ngram_model():
    """A NeuralLM that outputs the MLE bigram log-probabilities has the N-gram model's perplexity."""
    sentences = [["a", "b"], ["a", "c"], ["b", "a", "b"]]
    vocab = Vocab.build(sentences)
    ngram = NGramLM(2, "mle").fit(sentences)
    ctx, tgt = ngram_examples([vocab.encode(s) for s in sentences], 2, vocab.bos_id, vocab.eos_id)
    v = len(vocab)
    logp = np.full((v, v), -1e4)  # logp[h, w] = log P_MLE(w | h)
    for h in ("<s>", "a", "b", "c"):
        for w in ("a", "b", "c", "</s>"):
            p = ngram.prob(w, [h])
            if p > 0:
                logp[vocab.stoi[h], vocab.stoi[w]] = math.log(p)
    model = NeuralLM(v, 2, embed_dim=v, hidden_size=v)
    # one-hot embedding, tanh ≈ identity for tiny inputs, output scaled back: logits ≈ logp[h]
    eps = 1e-4
    model.embedding.weight.data[:] = np.eye(v) * eps
    model.hidden.weight.data[:] = np.eye(v)
    model.hidden.bias.data[:] = 0
    model.output.weight.data[:] = logp.T / eps
    model.output.bias.data[:] = 0
    nll = evaluate(model, ctx, tgt)
    assert math.exp(nll) == pytest.approx(ngram.perplexity(sentences), rel=1e-4)


@pytest.mark.parametrize("direct", [False, True])
def test_forward_is_bengios_equation(direct):
    minigrad.manual_seed(0)
    model = NeuralLM(11, 4, embed_dim=5, hidden_size=7, direct=direct)
    ctx = np.random.default_rng(0).integers(0, 11, (6, 3))
    c = model.embedding.weight.data
    x = c[ctx].reshape(6, 15).astype(np.float64)  # [C(w_{t-3}); C(w_{t-2}); C(w_{t-1})]
    h = np.tanh(x @ model.hidden.weight.data.T + model.hidden.bias.data)
    y = h @ model.output.weight.data.T + model.output.bias.data
    if direct:
        y = y + x @ model.direct.weight.data.T
    np.testing.assert_allclose(model(ctx).data, y, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"contexts must be \(B, n−1 = 3\) integer ids"):
        model(ctx[:, :2])
    with pytest.raises(ValueError, match="order must be >= 2"):
        NeuralLM(11, 1)


def test_fits_a_tiny_text_and_generates_it():
    sentences = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran"]]
    vocab = Vocab.build(sentences)
    ctx, tgt = ngram_examples([vocab.encode(s) for s in sentences], 3, vocab.bos_id, vocab.eos_id)
    minigrad.manual_seed(0)
    model = NeuralLM(len(vocab), 3, embed_dim=8, hidden_size=32)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=0.02)
    rng = np.random.default_rng(0)
    for _ in range(150):
        stats = train_epoch(model, ctx, tgt, optimizer, rng, batch_size=4)
    # the first word is a coin flip (the / a); everything after it is determined by two words
    assert math.exp(evaluate(model, ctx, tgt)) < 1.2
    assert generate(model, vocab, 10, context=["the"], temperature=0) == sentences[0]
    assert generate(model, vocab, 10, context=["a"], temperature=0) == sentences[1]
    assert stats["loss"] < 0.2


def test_init_from_word2vec_copies_rows_by_word():
    sentences = [["x", "y", "z", "x"], ["y", "z"]]
    w2v = Word2Vec.build(sentences, 6, min_count=2)  # "x", "y", "z" (counts 2, 2, 2)
    w2v.input_vectors.data[:] = np.random.default_rng(0).standard_normal(w2v.input_vectors.shape)
    vocab = Vocab.build(sentences + [["q"]])  # one more word, another order
    minigrad.manual_seed(0)
    model = NeuralLM(len(vocab), 3, embed_dim=6, hidden_size=4)
    before = model.embedding.weight.data.copy()
    assert init_from_word2vec(model.embedding, vocab, w2v) == 3
    table = model.embedding.weight.data
    for w in ("x", "y", "z"):
        a, b = table[vocab.stoi[w]], w2v.vector(w)
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) == pytest.approx(1.0, abs=1e-6)  # same direction
    for w in ("q", "<unk>", "</s>"):
        np.testing.assert_array_equal(table[vocab.stoi[w]], before[vocab.stoi[w]])
    with pytest.raises(ValueError, match="Word2Vec has dimension 6 but the embedding has 5"):
        init_from_word2vec(NeuralLM(len(vocab), 3, embed_dim=5).embedding, vocab, w2v)


# ---------------------------------------------------------------------------------------- recipe
def _corpus_file(tmp_path, n=200, seed=0):
    rng = np.random.default_rng(seed)
    who, verb, what = ["the cat", "a dog", "my bird", "the cow"], ["eats", "sees", "wants"], ["fish", "corn", "seeds"]
    lines = [f"{rng.choice(who)} {rng.choice(verb)} the {rng.choice(what)} ." for _ in range(n)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _args(out, corpus, **overrides):
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    argv = ["--corpus", str(corpus), "--out", str(out), "--order", "3", "--embed-dim", "8", "--hidden", "16",
            "--batch-size", "64", "--lr", "0.01", "--w2v-epochs", "1", "--samples", "1", "--no-plot"]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return parser.parse_args(argv)


@pytest.mark.parametrize("init", ["word2vec", "random"])
def test_recipe_resume_gives_the_same_curve(tmp_path, capsys, init):
    corpus = _corpus_file(tmp_path)
    assert recipe.run(_args(tmp_path / "full", corpus, epochs=3, init=init)) == 0
    assert recipe.run(_args(tmp_path / "part", corpus, epochs=1, init=init)) == 0
    assert recipe.run(_args(tmp_path / "part", corpus, epochs=3, init=init, resume=True)) == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    part = json.loads((tmp_path / "part" / "metrics.json").read_text())
    for key in ("train_loss", "valid_loss", "step_losses"):
        assert part["history"][key] == full["history"][key]
    assert part["samples"] == full["samples"]
    out = capsys.readouterr().out
    assert "resumed from" in out and "| N-gram, Kneser-Ney" in out
    # the table is the N-gram models on the same split and vocabulary
    sentences = tokenize_sentences(corpus.read_text())
    train, valid, _ = train_valid_test_split(sentences, seed=0, mode="contiguous", chunk_size=20)
    for n in (1, 2, 3):
        assert full["ngram_valid_ppl"]["kneser_ney"][str(n)] == pytest.approx(
            NGramLM(n, "kneser_ney", min_count=2).fit(train).perplexity(valid))
    assert full["valid_ppl"] < 0.5 * full["ngram_valid_ppl"]["laplace"]["1"]  # learns far past the unigram


def test_recipe_loads_a_saved_word2vec(tmp_path, capsys):
    corpus = _corpus_file(tmp_path, n=120)
    sentences = tokenize_sentences(corpus.read_text())
    Word2Vec.build(sentences, 8, min_count=1).save(tmp_path / "w2v")
    assert recipe.run(_args(tmp_path / "out", corpus, epochs=1, word2vec=tmp_path / "w2v")) == 0
    assert "loaded Word2Vec" in capsys.readouterr().out
    assert recipe.run(_args(tmp_path / "out2", corpus, epochs=1, word2vec=tmp_path / "w2v", embed_dim=4)) == 2
    assert "Word2Vec has dimension 8 but the embedding has 4" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [(None, "not found"), (b"\xc3\x28 broken", "not valid UTF-8"),
                                              (b"   ", "is empty")])
def test_recipe_bad_corpus_gives_load_texts_error(tmp_path, capsys, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    assert recipe.run(_args(tmp_path / "out", path, epochs=1)) == 2
    err = capsys.readouterr().err
    with pytest.raises((FileNotFoundError, ValueError)) as expected:
        load_text(path)
    assert message in err and str(expected.value) in err
