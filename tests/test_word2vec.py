"""Word2Vec: the fused negative-sampling loss against the composite minigrad loss (gradcheck),
hand-computed losses, the noise table, subsampling, example windows, similar-context words
ending up nearest, save/load, PCA, the recipe (resume, bad corpora)."""
from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np
import pytest

import minigrad
from minigrad import Tensor
from models.recipes import word2vec as recipe
from models.text import load_text
from models.word2vec import (
    NoiseSampler,
    Word2Vec,
    cbow_examples,
    keep_probability,
    negative_sampling_loss,
    negative_sampling_loss_reference,
    noise_distribution,
    pca_2d,
    skipgram_examples,
    subsample,
)


def _batch(rng, v=9, b=6, c=3, k=4):
    ctx = rng.integers(0, v, (b, c))
    weights = rng.random((b, c))
    targets = rng.integers(0, v, (b, k + 1))
    targets[0] = 2  # repeated ids: the scatter-add must accumulate
    return ctx, weights, targets


@pytest.mark.parametrize("c", [1, 4])  # skip-gram (one context word) and CBOW (a weighted window)
def test_fused_loss_equals_reference_and_passes_gradcheck(c):
    rng = np.random.default_rng(c)
    w_in = Tensor(rng.standard_normal((9, 5)), requires_grad=True)
    w_out = Tensor(rng.standard_normal((9, 5)), requires_grad=True)
    ctx, weights, targets = _batch(rng, c=c)

    def fused(a, b):
        return negative_sampling_loss(a, b, ctx, weights, targets)

    def reference(a, b):
        return negative_sampling_loss_reference(a, b, ctx, weights, targets)

    assert fused(w_in, w_out).item() == pytest.approx(reference(w_in, w_out).item(), rel=1e-13)
    assert minigrad.gradcheck(fused, (w_in, w_out))
    assert minigrad.gradcheck(reference, (w_in, w_out))
    assert minigrad.gradgradcheck(fused, (w_in, w_out))
    g_fused = minigrad.grad(fused(w_in, w_out), [w_in, w_out])
    g_ref = minigrad.grad(reference(w_in, w_out), [w_in, w_out])
    for a, b in zip(g_fused, g_ref):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-14)


def test_loss_by_hand():
    # D = 1, h = v_0 = 1, true target u_1 = 2, noise word u_2 = -1:
    # loss = -log σ(2) - log σ(+1) = log(1 + e^-2) + log(1 + e^-1)
    w_in = Tensor(np.array([[1.0], [0.0], [0.0]]), requires_grad=True)
    w_out = Tensor(np.array([[0.0], [2.0], [-1.0]]), requires_grad=True)
    loss = negative_sampling_loss(w_in, w_out, [[0]], [[1.0]], [[1, 2]])
    assert loss.item() == pytest.approx(math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)), rel=1e-14)
    loss.backward()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    # ∂/∂s = σ(s) - y: (σ(2) - 1, σ(-1) - 0); ∂/∂h = Σ ∂s·u; ∂/∂u = ∂s·h
    assert w_in.grad[0, 0] == pytest.approx((sig(2) - 1) * 2 + sig(-1) * -1, rel=1e-12)
    np.testing.assert_allclose(w_out.grad[:, 0], [0.0, sig(2) - 1, sig(-1)], rtol=1e-12)


def test_loss_rejects_bad_batches():
    w = Tensor(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="weights must have the contexts' shape"):
        negative_sampling_loss(w, w, [[0, 1]], [[1.0]], [[1, 2]])
    with pytest.raises(IndexError, match=r"targets ids must lie in \[0, 4\)"):
        negative_sampling_loss(w, w, [[0]], [[1.0]], [[1, 9]])
    with pytest.raises(ValueError, match="must have the same shape"):
        negative_sampling_loss(w, Tensor(np.zeros((4, 2))), [[0]], [[1.0]], [[1, 2]])


def test_noise_distribution_is_unigram_to_the_three_quarters():
    counts = np.array([0, 0, 16, 81, 1])  # 16^.75 = 8, 81^.75 = 27, 1^.75 = 1
    np.testing.assert_allclose(noise_distribution(counts), [0, 0, 8 / 36, 27 / 36, 1 / 36], rtol=1e-12)
    sampler = NoiseSampler(counts)
    draws = sampler.sample((200_000,), np.random.default_rng(0))
    freq = np.bincount(draws, minlength=5) / draws.size
    assert freq[0] == freq[1] == 0  # never-seen ids (specials) are never drawn
    p = sampler.probs
    np.testing.assert_array_less(np.abs(freq - p), 4 * np.sqrt(p * (1 - p) / draws.size) + 1e-12)


def test_subsampling_keep_probability():
    counts = np.array([0, 900, 100])  # f = 0.9, 0.1 with t = 0.01
    keep = keep_probability(counts, t=0.01)
    assert keep[1] == pytest.approx(math.sqrt(0.01 / 0.9) + 0.01 / 0.9)
    assert keep[2] == pytest.approx(math.sqrt(0.1) + 0.1)
    assert keep[0] == 1.0
    assert (keep_probability(counts, t=0.0) == 1).all()
    assert (keep_probability(np.array([1, 1, 1000]), t=0.01)[:2] == 1).all()  # words rarer than t·N: kept
    ids = np.repeat([1, 2], [90_000, 10_000])
    kept = subsample(ids, keep, np.random.default_rng(0))
    for w in (1, 2):
        assert kept[ids == w].mean() == pytest.approx(keep[w], abs=0.01)


def test_examples_stay_inside_sentences():
    ids = np.array([10, 11, 12, 13, 14])
    sent = np.array([0, 0, 0, 1, 1])
    c, o = skipgram_examples(ids, sent, window=1, rng=np.random.default_rng(0))
    assert sorted(zip(c.tolist(), o.tolist())) == [(10, 11), (11, 10), (11, 12), (12, 11), (13, 14), (14, 13)]
    ctx, w, centre = cbow_examples(ids, sent, window=1, rng=np.random.default_rng(0))
    rows = {int(t): sorted(zip(ctx[i][w[i] > 0].tolist(), w[i][w[i] > 0].tolist())) for i, t in enumerate(centre)}
    assert rows == {10: [(11, 1.0)], 11: [(10, 0.5), (12, 0.5)], 12: [(11, 1.0)], 13: [(14, 1.0)], 14: [(13, 1.0)]}


def test_reduced_window_weights_near_words_more():
    # window 2: each centre's reach b ~ U{1, 2}, so distance-2 pairs appear half as often
    ids = np.arange(20_000)
    c, o = skipgram_examples(ids, np.zeros_like(ids), window=2, rng=np.random.default_rng(0))
    dist = np.abs(c - o)
    assert (dist == 1).sum() == pytest.approx(2 * (len(ids) - 1), abs=0)
    assert (dist == 2).sum() / (dist == 1).sum() == pytest.approx(0.5, abs=0.02)


def _two_topics(n=400, seed=0):
    """Animals and fruits each appear in their own contexts."""
    rng = np.random.default_rng(seed)
    animals, fruits = ["cat", "dog", "cow", "horse"], ["apple", "pear", "plum", "grape"]
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            out.append(["the", str(rng.choice(animals)), "runs", "and", "barks", "loudly"])
        else:
            out.append(["i", "eat", "a", "sweet", str(rng.choice(fruits)), "today"])
    return out, animals, fruits


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_words_with_similar_contexts_end_up_nearest(mode):
    sentences, animals, fruits = _two_topics()
    minigrad.manual_seed(0)
    model = Word2Vec.build(sentences, 16, min_count=1, mode=mode, window=3, subsample_t=0.0)
    model.fit(sentences, epochs=8, lr=0.02, batch_size=256, seed=0)
    for group in (animals, fruits):
        for w in group:
            near = [n for n, _ in model.most_similar(w, 3)]
            assert set(near) <= set(group) - {w}, (w, model.most_similar(w, 5))


def test_queries_and_errors():
    sentences, animals, _ = _two_topics(60)
    model = Word2Vec.build(sentences, 8, min_count=1)
    with pytest.raises(ValueError, match="'zebra' is not in the vocabulary"):
        model.most_similar("zebra")
    with pytest.raises(ValueError, match="'<unk>' is not in the vocabulary"):
        model.vector("<unk>")
    with pytest.raises(ValueError, match="mode must be one of"):
        Word2Vec.build(sentences, 8, mode="glove")
    u = model.unit_vectors()
    a, b, c = (model.vocab.stoi[w] for w in ("cat", "dog", "cow"))
    q = u[b] - u[a] + u[c]
    cos = u @ q / np.linalg.norm(q)
    cos[[0, 1, 2, 3, a, b, c]] = -np.inf
    assert model.analogy("cat", "dog", "cow")[0][0] == model.vocab.itos[int(np.argmax(cos))]
    assert model.similarity("cat", "dog") == pytest.approx(float(u[a] @ u[b]))


def test_save_load_roundtrip(tmp_path):
    sentences, _, _ = _two_topics(80)
    model = Word2Vec.build(sentences, 8, min_count=1, mode="cbow", window=2, negatives=3)
    model.fit(sentences, epochs=1, seed=1)
    model.save(tmp_path / "w2v")
    back = Word2Vec.load(tmp_path / "w2v")
    assert back.vocab == model.vocab and back.config == model.config
    np.testing.assert_array_equal(back.input_vectors.data, model.input_vectors.data)
    np.testing.assert_array_equal(back.output_vectors.data, model.output_vectors.data)
    np.testing.assert_array_equal(back.counts.data, model.counts.data)
    assert back.most_similar("cat", 3) == model.most_similar("cat", 3)
    assert sorted(os.listdir(tmp_path / "w2v")) == ["vocab.json", "word2vec.safetensors"]  # no temp files left
    with pytest.raises(FileNotFoundError, match="no word2vec.safetensors"):
        Word2Vec.load(tmp_path / "missing")


def test_pca_2d_recovers_a_line():
    t = np.linspace(-2, 3, 11)
    direction = np.array([1.0, 2.0, 2.0]) / 3.0
    points = t[:, None] * direction + np.array([5.0, -1.0, 0.5])
    xy = pca_2d(points)
    np.testing.assert_allclose(xy[:, 0], t - t.mean(), atol=1e-12)  # sign fixed: largest loading > 0
    np.testing.assert_allclose(xy[:, 1], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match=r"pca_2d: need a \(N, D\) array"):
        pca_2d(np.zeros(5))


# ---------------------------------------------------------------------------------------- recipe
def _args(tmp_path, out, corpus, **overrides):
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    argv = ["--corpus", str(corpus), "--out", str(out), "--dim", "8", "--min-count", "1", "--batch-size", "128",
            "--no-plot"]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return parser.parse_args(argv)


def _corpus_file(tmp_path):
    sentences, _, _ = _two_topics(150)
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) + "." for s in sentences), encoding="utf-8")
    return path


def test_recipe_resume_gives_the_same_curve(tmp_path, capsys):
    corpus = _corpus_file(tmp_path)
    assert recipe.run(_args(tmp_path, tmp_path / "full", corpus, epochs=2)) == 0
    assert recipe.run(_args(tmp_path, tmp_path / "part", corpus, epochs=1)) == 0
    assert recipe.run(_args(tmp_path, tmp_path / "part", corpus, epochs=2, resume=True)) == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    part = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert len(full["history"]["loss"]) == 2
    assert part["history"]["loss"] == full["history"]["loss"]
    assert part["history"]["step_losses"] == full["history"]["step_losses"]
    assert part["neighbours"] == full["neighbours"]
    out = capsys.readouterr().out
    assert "words/s" in out and "resumed from" in out
    # a checkpoint made with other options is refused
    assert recipe.run(_args(tmp_path, tmp_path / "part", corpus, epochs=3, resume=True, dim=4)) == 2
    assert "other options" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [(None, "not found"), (b"\xff\xfe\x00bad", "not valid UTF-8"),
                                              (b"  \n ", "is empty")])
def test_recipe_bad_corpus_gives_load_texts_error(tmp_path, capsys, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    assert recipe.run(_args(tmp_path, tmp_path / "out", path, epochs=1)) == 2
    err = capsys.readouterr().err
    assert message in err
    with pytest.raises((FileNotFoundError, ValueError)) as expected:
        load_text(path)
    assert str(expected.value) in err  # the very message of load_text
