"""GRU/RNN language model: the token stream and its exact evaluation rows, the hidden state
carried across windows, overfitting a tiny text, weight tying, checkpoints, generation, and the
gru-lm recipe (beats the unigram model, interrupt-and-resume, bad corpora)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
from models.ngram import NGramLM
from models.recipes import gru_lm as recipe
from models.rnn_lm import RNNLM, eval_rows, evaluate, generate, token_stream, train_epoch
from models.text import Vocab, batchify, load_text, tokenize_sentences, train_valid_test_split


def test_token_stream_predicts_every_word_and_sentence_end():
    vocab = Vocab.build([["a", "b", "c"]])
    stream = token_stream([["a", "b"], ["c"]], vocab)
    assert vocab.decode(stream) == ["</s>", "a", "b", "</s>", "c", "</s>"]
    # the targets are exactly the N-gram model's events: every word and one </s> per sentence
    assert len(stream) - 1 == sum(len(s) + 1 for s in (["a", "b"], ["c"]))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), rows=st.integers(1, 12))
def test_eval_rows_score_every_target_exactly_once(n, rows):
    stream = np.arange(10, 10 + n)
    data = eval_rows(stream, rows, pad_id=0)
    pairs = [(int(x), int(y)) for r in data for x, y in zip(r[:-1], r[1:]) if y != 0]
    assert sorted(pairs) == [(int(a), int(b)) for a, b in zip(stream[:-1], stream[1:])]


def _model(vocab_size=12, **kw):
    minigrad.manual_seed(0)
    kw = {"embed_dim": 8, "hidden_size": 16, **kw}
    return RNNLM(vocab_size, kw.pop("embed_dim"), kw.pop("hidden_size"), **kw)


@pytest.mark.parametrize("cell, layers", [("gru", 1), ("gru", 2), ("rnn", 1)])
def test_carried_hidden_state_equals_one_long_pass(cell, layers):
    model = _model(cell=cell, num_layers=layers)
    ids = np.random.default_rng(0).integers(0, 12, (3, 21))
    with minigrad.no_grad():
        whole, h_whole = model(ids)
        hidden, parts = None, []
        for s in range(0, 21, 5):  # windows of 5, state carried across
            logits, hidden = model(ids[:, s:s + 5], hidden)
            parts.append(logits.data)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hidden.data, h_whole.data, rtol=1e-5, atol=1e-6)
    assert whole.shape == (3, 21, 12) and hidden.shape == (layers, 3, 16)


def test_evaluate_is_the_mean_negative_log_likelihood():
    model = _model()
    stream = np.random.default_rng(1).integers(1, 12, 40)
    with minigrad.no_grad():
        logits, _ = model(stream[None, :-1])
    z = logits.data[0].astype(np.float64)
    logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    expected = -logp[np.arange(39), stream[1:]].mean()
    assert evaluate(model, stream, pad_id=0, rows=1, bptt=7) == pytest.approx(expected, rel=1e-5)


def test_gru_lm_overfits_a_tiny_text():
    text = "the cat sat on the mat . a dog ran in the park . "
    chars = sorted(set(text))
    vocab = Vocab(["<pad>", "<unk>", "<s>", "</s>"] + chars)
    data = batchify(vocab.encode(list(text * 8)), 4)  # (4, 100)
    model = _model(len(vocab), embed_dim=16, hidden_size=64)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        stats = train_epoch(model, data, optimizer, bptt=25, clip=1.0)
    assert stats["loss"] < 0.05, stats["loss"]  # near-zero: the text is memorised
    # greedy decoding then reproduces it
    model.eval()
    out = generate(model, vocab, list("the cat "), max_tokens=16, temperature=0, stop_at_eos=False)
    assert "".join(out) == "the cat sat on the mat ."


def test_weight_tying_shares_one_matrix_and_sums_its_gradients():
    tied = _model(embed_dim=16, hidden_size=16, tie_weights=True)
    assert tied.decoder.weight is tied.embedding.weight
    untied = _model(embed_dim=16, hidden_size=16)
    untied.load_state_dict(tied.state_dict())  # same values, two separate matrices
    names = [n for n, _ in tied.named_parameters()]
    assert "decoder.weight" not in names and len(names) == len(list(untied.parameters())) - 1
    ids = np.random.default_rng(2).integers(0, 12, (2, 6))
    for m in (tied, untied):
        logits, _ = m(ids[:, :-1])
        (logits * logits).mean().backward()
    np.testing.assert_allclose(tied.embedding.weight.grad,
                               untied.embedding.weight.grad + untied.decoder.weight.grad, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="tie_weights needs embed_dim == hidden_size"):
        RNNLM(12, 8, 16, tie_weights=True)


def test_constructor_and_input_errors():
    with pytest.raises(ValueError, match="cell must be one of"):
        RNNLM(10, cell="lstmx")
    with pytest.raises(ValueError, match=r"ids must be a \(B, T\) integer array"):
        _model()(np.zeros(5, np.int64))


def test_checkpoint_roundtrip_gives_identical_outputs_and_training(tmp_path):
    model = _model(num_layers=2, dropout=0.1)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=0.01)
    data = np.random.default_rng(3).integers(0, 12, (4, 30))
    train_epoch(model, data, optimizer, bptt=10)
    rng_state = minigrad.default_generator.get_state()
    minigrad.save_checkpoint(tmp_path / "ckpt.safetensors", model, optimizer, rng=rng_state)

    minigrad.manual_seed(99)  # "another process": other initial weights and random stream
    other = RNNLM(12, 8, 16, num_layers=2, dropout=0.1)
    other_opt = minigrad.optim.Adam(other.parameters(), lr=0.01)
    state = minigrad.load_checkpoint(tmp_path / "ckpt.safetensors")
    other.load_state_dict(state["model"])
    other_opt.load_state_dict(state["optimizer"])
    model.eval(), other.eval()
    ids = data[:, :9]
    np.testing.assert_array_equal(model(ids)[0].data, other(ids)[0].data)

    # training continues identically: Adam's moments and the dropout stream are restored
    minigrad.default_generator.set_state(rng_state)
    expected = train_epoch(model, data, optimizer, bptt=10)["step_losses"]
    minigrad.default_generator.set_state(state["rng"])
    assert train_epoch(other, data, other_opt, bptt=10)["step_losses"] == expected


def test_generation_methods():
    model = _model()
    vocab = Vocab(["<pad>", "<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(8)])
    greedy1 = generate(model, vocab, max_tokens=12, temperature=0)
    assert greedy1 == generate(model, vocab, max_tokens=12, temperature=0, rng=5)  # greedy ignores the rng
    assert generate(model, vocab, max_tokens=12, top_k=1, rng=3) == greedy1  # top-1 sampling is greedy
    a = generate(model, vocab, max_tokens=30, temperature=1.5, rng=7, stop_at_eos=False)
    assert a == generate(model, vocab, max_tokens=30, temperature=1.5, rng=7, stop_at_eos=False)
    assert len(a) == 30 and not {"<pad>", "<s>", "<unk>", "</s>"} & set(a)
    assert generate(model, vocab, ["w1", "w2"], max_tokens=0) == ["w1", "w2"]


# ---------------------------------------------------------------------------------------- recipe
def _corpus_file(tmp_path, n=240, seed=0):
    rng = np.random.default_rng(seed)
    who, verb, what = ["the cat", "a dog", "my bird", "the cow"], ["eats", "sees", "wants"], ["fish", "corn", "seeds"]
    lines = [f"{rng.choice(who)} {rng.choice(verb)} the {rng.choice(what)} ." for _ in range(n)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _args(out, corpus, **overrides):
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    argv = ["--corpus", str(corpus), "--out", str(out), "--embed-dim", "16", "--hidden", "32", "--batch-size", "8",
            "--bptt", "12", "--lr", "0.01", "--samples", "1", "--max-tokens", "8", "--no-plot"]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return parser.parse_args(argv)


def test_recipe_learns_beats_unigram_and_resumes_identically(tmp_path, capsys):
    corpus = _corpus_file(tmp_path)
    assert recipe.run(_args(tmp_path / "full", corpus, epochs=3)) == 0
    assert recipe.run(_args(tmp_path / "part", corpus, epochs=2)) == 0
    assert recipe.run(_args(tmp_path / "part", corpus, epochs=3, resume=True)) == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    part = json.loads((tmp_path / "part" / "metrics.json").read_text())
    for key in ("train_loss", "valid_loss", "step_losses"):
        assert part["history"][key] == full["history"][key]
    assert part["samples"] == full["samples"]
    # the printed unigram bar is NGramLM(1, laplace) on the same split and vocabulary
    sentences = tokenize_sentences(corpus.read_text())
    train, valid, _ = train_valid_test_split(sentences, seed=0, mode="contiguous", chunk_size=20)
    unigram = NGramLM(1, "laplace", min_count=2).fit(train).perplexity(valid)
    assert full["baselines_valid_ppl"]["unigram (Laplace)"] == pytest.approx(unigram)
    assert full["valid_ppl"] < 0.6 * unigram  # visibly learns
    out = capsys.readouterr().out
    assert "beats the unigram model" in out and "resumed from" in out and "[greedy]" in out


def test_recipe_char_level_and_resume_errors(tmp_path, capsys):
    corpus = _corpus_file(tmp_path, n=120)
    assert recipe.run(_args(tmp_path / "c", corpus, epochs=1, level="char", cell="rnn")) == 0
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["vocab_size"] == 4 + len(set("".join(corpus.read_text().lower().split("\n"))))
    capsys.readouterr()
    assert recipe.run(_args(tmp_path / "c", corpus, epochs=2, level="char", cell="gru", resume=True)) == 2
    assert "other options" in capsys.readouterr().err
    assert recipe.run(_args(tmp_path / "none", corpus, epochs=1, resume=True)) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [(None, "not found"), (b"caf\xe9 latin-1 text", "not valid UTF-8"),
                                              (b"\n\n \t", "is empty")])
def test_recipe_bad_corpus_gives_load_texts_error(tmp_path, capsys, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    assert recipe.run(_args(tmp_path / "out", path, epochs=1)) == 2
    err = capsys.readouterr().err
    with pytest.raises((FileNotFoundError, ValueError)) as expected:
        load_text(path)
    assert message in err and str(expected.value) in err
