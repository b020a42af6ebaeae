"""The chapter-2 encoder-decoder: shapes and masks of every module, padded batch = one by one,
the book's AttnDecoderRNN against PyTorch, greedy = beam 1, learning the reversal task, resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

import minigrad
from minigrad import Tensor
from models.data.parallel import SentencePair, reversal_task
from models.data.parallel_batching import ParallelDataset
from models.seq2seq import (
    ATTENTION_TYPES, AttnDecoderRNN, DecoderBase, EncoderRNN, LuongAttnDecoder, build_seq2seq, evaluate,
    plot_attention, train_epoch,
)

V, H, PAD, BOS, EOS = 11, 8, 2, 0, 1


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """Tiny matrices: one BLAS thread is fastest, and a multi-threaded pool on a busy machine is
    many times slower (as the recipe's --threads 1)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
VARIANTS = [("book", "dot"), ("bahdanau", "dot"), ("luong", "dot"), ("luong", "general"), ("none", "dot")]


def model_of(attention, method="dot", max_length=7, seed=0):
    return build_seq2seq(attention, V, V, hidden_size=H, embed_size=6, max_length=max_length, luong_method=method,
                         dropout=0.0, bos_id=BOS, eos_id=EOS, pad_id=PAD, src_pad_id=PAD, seed=seed,
                         dtype=np.float64)


def padded(rows, width=None):
    width = width or max(map(len, rows))
    out = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out, np.array([len(r) for r in rows])


SOURCES = [[3, 4, 5, 6, 1], [7, 8, 1], [9, 10, 3, 4, 5, 1], [5, 1]]
TARGETS = [[0, 6, 5, 4, 3, 1], [0, 8, 7, 1], [0, 5, 4, 3, 10, 9, 1], [0, 5, 1]]


# ---------------------------------------------------------------------------------------------- shapes
def test_every_attention_type_is_tested():
    assert {a for a, _ in VARIANTS} == set(ATTENTION_TYPES)


def test_encoder_shapes_mask_and_final_state():
    enc = EncoderRNN(V, H, 6, pad_id=PAD, dtype=np.float64, generator=minigrad.Generator(0))
    src, lengths = padded(SOURCES)
    mem = enc(src, lengths)
    assert mem.outputs.shape == (4, 6, H) and mem.hidden.shape == (1, 4, H)
    np.testing.assert_array_equal(mem.mask, np.arange(6)[None] < lengths[:, None])
    # the final state is the state after the last REAL token, not after the padding
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(mem.hidden.data[0, b], mem.outputs.data[b, n - 1])


@pytest.mark.parametrize("attention,method", VARIANTS)
def test_decoder_step_shapes_and_masked_weights(attention, method):
    model = model_of(attention, method)
    src, lengths = padded(SOURCES)
    mem = model.encode(src, lengths)
    lp, hidden, w = model.decoder.step(np.array([BOS] * 4), mem.hidden, mem)
    assert lp.shape == (4, V) and hidden.shape == (1, 4, H)
    np.testing.assert_allclose(np.exp(lp.data).sum(1), 1.0, rtol=1e-12)
    if attention == "none":
        assert w is None
        return
    width = 7 if attention == "book" else 6  # the book's decoder scores max_length positions
    assert w.shape == (4, width)
    np.testing.assert_allclose(w.data.sum(1), 1.0, rtol=1e-12)
    keep = np.arange(width)[None] < lengths[:, None]
    assert (w.data[~keep] == 0).all() and (w.data[keep] > 0).all()


@pytest.mark.parametrize("attention,method", VARIANTS)
def test_forward_shapes_and_loss_at_init_is_near_log_v(attention, method):
    model = model_of(attention, method)
    src, lengths = padded(SOURCES)
    tgt, _ = padded(TARGETS)
    log_probs, weights = model(src, lengths, tgt[:, :-1])
    assert log_probs.shape == (4, 6, V)
    assert (weights is None) == (attention == "none")
    if weights is not None:
        assert weights.shape == (4, 6, 6)  # sliced to the real source width for every decoder
    ds = ParallelDataset.synthetic([SentencePair("ab", "ba")])
    batch = ds.batch([0])
    m2 = build_seq2seq(attention, 29, 29, hidden_size=H, max_length=3, luong_method=method, bos_id=0, eos_id=1,
                       pad_id=2, dtype=np.float64)
    loss = m2.loss(batch)
    assert abs(loss.item() - np.log(29)) < 0.5  # untrained: close to uniform over 29 tokens


# ------------------------------------------------------------------------- padded batch = one by one
@pytest.mark.parametrize("attention,method", VARIANTS)
def test_padded_batch_gives_the_same_outputs_as_one_by_one(attention, method):
    model = model_of(attention, method)
    src, src_len = padded(SOURCES)
    tgt, tgt_len = padded(TARGETS)
    log_probs, weights = model(src, src_len, tgt[:, :-1])
    for b in range(len(SOURCES)):
        one_lp, one_w = model(np.array([SOURCES[b]]), None, np.array([TARGETS[b][:-1]]))
        T, S = tgt_len[b] - 1, src_len[b]
        np.testing.assert_allclose(log_probs.data[b, :T], one_lp.data[0], rtol=0, atol=1e-12)
        if weights is not None:
            np.testing.assert_allclose(weights.data[b, :T, :S], one_w.data[0], rtol=0, atol=1e-12)
            assert (weights.data[b, :T, S:] == 0).all()


@pytest.mark.parametrize("attention,method", [("luong", "dot"), ("luong", "general"), ("none", "dot")])
def test_teacher_forcing_in_one_call_equals_the_step_loop(attention, method):
    model = model_of(attention, method)
    src, src_len = padded(SOURCES)
    tgt, _ = padded(TARGETS)
    mem = model.encode(src, src_len)
    emb = model.decoder.embedding(tgt[:, :-1])
    fast = model.decoder._sequence(emb, mem.hidden, mem)
    slow = DecoderBase._sequence(model.decoder, emb, mem.hidden, mem)  # one _step per position
    for a, b in zip(fast, slow):
        if a is not None:
            np.testing.assert_allclose(a.data, b.data, rtol=0, atol=1e-12)


def test_free_running_feeds_back_the_argmax():
    model = model_of("bahdanau")
    src, src_len = padded(SOURCES)
    tgt, _ = padded(TARGETS)
    lp_free, _ = model(src, src_len, tgt[:, :-1], teacher_forcing_ratio=0.0)
    decoded, _ = model.greedy_decode(src, src_len, max_len=6)
    # without teacher forcing the inputs are the model's own greedy choices
    for b, out in enumerate(decoded):
        n = len(out)
        assert lp_free.data[b, :n].argmax(-1).tolist() == out
    # teacher forcing with probability 1 and 0 are the two extremes; the ratio picks per batch
    lp_forced, _ = model(src, src_len, tgt[:, :-1], teacher_forcing_ratio=1.0)
    picks = [np.allclose(model(src, src_len, tgt[:, :-1], teacher_forcing_ratio=0.5, rng=rng)[0].data,
                         lp_forced.data) for rng in [np.random.default_rng(s) for s in range(12)]]
    assert 0 < sum(picks) < 12


# ----------------------------------------------------------------------------------- torch parity
def test_book_attn_decoder_equals_the_pytorch_tutorial_decoder():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    class TorchAttnDecoder(torch.nn.Module):  # the PyTorch tutorial's AttnDecoderRNN, batched
        def __init__(self, hidden, vocab, max_length, embed):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, embed)
            self.attn = torch.nn.Linear(embed + hidden, max_length)
            self.attn_combine = torch.nn.Linear(embed + hidden, hidden)
            self.gru = torch.nn.GRU(hidden, hidden, batch_first=True)
            self.out = torch.nn.Linear(hidden, vocab)

        def forward(self, token, hidden, encoder_outputs):
            embedded = self.embedding(token)  # (B, E)
            attn_weights = F.softmax(self.attn(torch.cat((embedded, hidden[0]), 1)), dim=1)
            attn_applied = torch.bmm(attn_weights.unsqueeze(1), encoder_outputs)  # (B, 1, H)
            output = F.relu(self.attn_combine(torch.cat((embedded, attn_applied[:, 0]), 1))).unsqueeze(1)
            output, hidden = self.gru(output, hidden)
            return F.log_softmax(self.out(output[:, 0]), dim=1), hidden, attn_weights

    torch.manual_seed(0)
    ref = TorchAttnDecoder(H, V, 5, 6).double()
    ours = AttnDecoderRNN(V, H, 5, 6, dropout=0.0, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(0)
    enc_out, h0 = rng.normal(size=(3, 5, H)), rng.normal(size=(1, 3, H))
    tokens = np.array([1, 4, 7])
    from models.seq2seq import EncoderMemory
    mem = EncoderMemory(Tensor(enc_out, requires_grad=True), np.ones((3, 5), bool), Tensor(h0))
    lp, hidden, w = ours.step(tokens, mem.hidden, mem)
    t_enc = torch.tensor(enc_out, requires_grad=True)
    t_lp, t_hidden, t_w = ref(torch.tensor(tokens), torch.tensor(h0), t_enc)
    np.testing.assert_allclose(lp.data, t_lp.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(hidden.data, t_hidden.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(w.data, t_w.detach().numpy(), atol=1e-12)
    # gradients of a loss through one step, for every parameter and the encoder states
    pick = np.array([2, 0, 9])
    (-(lp[np.arange(3), pick]).sum() + (hidden * hidden).sum()).backward()
    (-(t_lp[torch.arange(3), torch.tensor(pick)]).sum() + (t_hidden ** 2).sum()).backward()
    grads = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), atol=1e-10, err_msg=name)
    np.testing.assert_allclose(mem.outputs.grad, t_enc.grad.numpy(), atol=1e-10)


# ------------------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("attention,method", VARIANTS)
def test_greedy_batch_equals_greedy_search_equals_beam_one(attention, method):
    model = model_of(attention, method, seed=3)
    src, src_len = padded(SOURCES)
    batch_out, attn = model.greedy_decode(src, src_len, max_len=6)
    for b, source in enumerate(SOURCES):
        tokens, score = model.greedy_search(np.array(source), max_len=6)
        assert tokens == batch_out[b]
        beam = model.beam_decode(np.array(source), beam_size=1, max_len=6)
        assert beam[0][0] == tokens and beam[0][1] == pytest.approx(score, abs=1e-10)
        if attention != "none":  # the batched attention rows equal a teacher-forced replay
            np.testing.assert_allclose(attn[b], model.attention_for(np.array(source), tokens), atol=1e-12)


@pytest.mark.parametrize("attention,method", [("book", "dot"), ("luong", "general")])
def test_beam_scores_are_the_models_log_probabilities(attention, method):
    """Every hypothesis' score equals log p(y | x) recomputed by teacher forcing — so the beam
    kept each hypothesis' own hidden state while reordering."""
    model = model_of(attention, method, seed=5)
    source = np.array(SOURCES[2])
    results = model.beam_decode(source, beam_size=4, max_len=5)
    assert len(results) == 4
    for tokens, score in results:
        tgt_in = np.array([[BOS, *tokens[:-1]]])
        lp, _ = model(source[None], None, tgt_in)
        assert score == pytest.approx(float(lp.data[0, np.arange(len(tokens)), tokens].sum()), abs=1e-9)
    greedy_score = model.greedy_search(source, max_len=5)[1]
    assert results[0][1] >= greedy_score - 1e-12


# --------------------------------------------------------------------------------------- learning
def _reversal(n_train, n_valid, **kw):
    train, valid = reversal_task(n_train, n_valid, seed=0, **kw)
    ds = ParallelDataset.synthetic(train)
    return ds, ds.encode(valid)


def test_reversal_of_short_strings_is_learned_to_95_percent_exact_match():
    """A small config (strings of 4-5 letters, 1,000 pairs, H = 64): a few seconds."""
    ds, dv = _reversal(1000, 100, min_len=4, max_len=5)
    model = build_seq2seq("book", 29, 29, hidden_size=64, max_length=6, bos_id=0, eos_id=1, pad_id=2, seed=0)
    before = evaluate(model, dv)
    opt = minigrad.optim.Adam(model.parameters(), lr=5e-3)
    for epoch in range(6):
        losses = train_epoch(model, ds, opt, epoch=epoch, batch_size=32, teacher_forcing_ratio=1.0)
    after = evaluate(model, dv)
    assert before["loss"] > 3.2 and before["exact_match"] == 0.0
    assert after["loss"] < 0.1 and np.mean(losses[-5:]) < 0.1
    assert after["exact_match"] >= 0.95


@pytest.mark.slow
def test_reversal_is_learned_to_95_percent_exact_match():
    """The book's result: 3,000 training strings of 10-12 letters, 300 validation strings."""
    ds, dv = _reversal(3000, 300)
    model = build_seq2seq("book", 29, 29, hidden_size=128, max_length=13, bos_id=0, eos_id=1, pad_id=2, seed=0)
    opt = minigrad.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for epoch in range(1, 5):  # ~35 s on 2 busy cores
        losses = train_epoch(model, ds, opt, epoch=epoch, batch_size=32, teacher_forcing_ratio=0.5)
        first = losses[0] if first is None else first
    result = evaluate(model, dv)
    assert first > 3.0 and result["loss"] < 0.1
    assert result["exact_match"] >= 0.95


# ------------------------------------------------------------------------------------ the recipe
def test_recipe_resume_equals_uninterrupted(tmp_path, capsys):
    from models.cli import main

    common = ["seq2seq", "--num-train", "64", "--num-valid", "20", "--hidden-size", "12", "--batch-size", "16",
              "--quiet", "--beam-size", "2", "--heatmaps", "1", "--attention", "bahdanau"]
    assert main(common + ["--epochs", "2", "--out", str(tmp_path / "a"), "--no-plot"]) == 0
    assert main(common + ["--epochs", "1", "--out", str(tmp_path / "b"), "--no-plot"]) == 0
    assert main(common + ["--epochs", "2", "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = minigrad.load_checkpoint(tmp_path / "a" / "checkpoint.safetensors")
    b = minigrad.load_checkpoint(tmp_path / "b" / "checkpoint.safetensors")
    for name, value in a["model"].items():
        np.testing.assert_array_equal(value, b["model"][name], err_msg=name)
    ma = json.loads((tmp_path / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert ma["history"][-1]["valid_loss"] == mb["history"][-1]["valid_loss"]
    assert ma["exact_match_beam"] == mb["exact_match_beam"] and ma["epochs"] == mb["epochs"] == 2
    assert (tmp_path / "b" / "loss.png").stat().st_size > 1000
    assert (tmp_path / "b" / "attention_0.png").read_bytes()[:4] == b"\x89PNG"
    # a checkpoint of another configuration is refused with a clear message
    assert main(common + ["--epochs", "3", "--out", str(tmp_path / "b"), "--resume", "--hidden-size", "8"]) == 2
    assert "hidden_size" in capsys.readouterr().err


def test_recipe_compare_prints_one_row_per_decoder(tmp_path, capsys):
    from models.cli import main

    assert main(["seq2seq", "--compare", "--num-train", "40", "--num-valid", "10", "--hidden-size", "8",
                 "--epochs", "1", "--quiet", "--no-plot", "--beam-size", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "compare.json").read_text())
    assert [r["label"] for r in rows] == ["book (AttnDecoderRNN)", "Bahdanau (additive)", "Luong dot",
                                         "Luong general", "no attention"]
    for r in rows:
        assert f"| {r['label']} | {100 * r['exact_match_greedy']:.1f}% |" in out
    assert (tmp_path / "luong-general" / "metrics.json").is_file()


# -------------------------------------------------------------------------------------- errors
def test_bad_input_gives_clear_errors(tmp_path):
    model = model_of("book", max_length=4)
    with pytest.raises(ValueError, match="AttnDecoderRNN: the source has 5 positions but max_length=4"):
        model(np.array([[3, 4, 5, 6, 1]]), None, np.array([[0]]))
    with pytest.raises(TypeError, match="EncoderRNN: expected a non-empty 2-D integer array"):
        model.encoder(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"EncoderRNN: lengths must be in \[1, 3\]"):
        model.encoder(np.ones((2, 3), dtype=int), [3, 4])
    dec = LuongAttnDecoder(V, H, dtype=np.float64)
    mem = model_of("luong").encode(np.array([[3, 1]]))
    with pytest.raises(ValueError, match=r"LuongAttnDecoder.step: hidden must be a \(1, B=2, H=8\)"):
        dec.step(np.array([0, 0]), mem.hidden, mem)
    with pytest.raises(ValueError, match="build_seq2seq: attention must be one of"):
        build_seq2seq("transformer", V, V, bos_id=0, eos_id=1, pad_id=2)
    with pytest.raises(ValueError, match=r"teacher_forcing_ratio must be in \[0, 1\]"):
        model(np.array([[3, 1]]), None, np.array([[0]]), teacher_forcing_ratio=1.5)
    with pytest.raises(ValueError, match=r"plot_attention: weights must be"):
        plot_attention(tmp_path / "x.png", np.zeros((2, 2)), ["a"], ["b", "c"])
