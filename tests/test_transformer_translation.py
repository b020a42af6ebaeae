"""The Transformer translator (models/transformer.py) and its recipe: shapes, masks, padding,
cached vs. uncached decoding, beam 1 = greedy, loss and schedule by hand, torch parity,
checkpoint resume, and a small task actually learned."""
from __future__ import annotations

import math

import numpy as np
import pytest

import minigrad
from models.transformer import (TransformerConfig, TransformerTranslator, check_cached_decoding, evaluate_loss,
                                make_optimizer, translate_corpus)

PAD, BOS, EOS = 0, 1, 2


def tiny(seed=0, dtype=np.float64, **kw) -> TransformerTranslator:
    opts = dict(src_vocab_size=13, tgt_vocab_size=11, d_model=16, nhead=2, num_encoder_layers=2,
                num_decoder_layers=2, dim_feedforward=32, dropout=0.0, max_len=64, pad_id=PAD, bos_id=BOS,
                eos_id=EOS)
    opts.update(kw)
    model = TransformerTranslator(TransformerConfig(**opts), seed=seed)
    return model.to(dtype).eval()


def padded(rows, width=None):
    width = width or max(map(len, rows))
    out = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


SRC = [[3, 4, 5, 6, 7, 2], [8, 9, 2], [10, 11, 12, 3, 2]]
TGT = [[1, 3, 4, 5, 2], [1, 6, 2], [1, 7, 8, 9, 10, 2]]


# ---------------------------------------------------------------------- shapes and masks
def test_shapes():
    m = tiny()
    src, tgt = padded(SRC), padded(TGT)
    memory, src_pad = m.encode(src)
    assert memory.shape == (3, 6, 16) and src_pad.shape == (3, 6)
    assert src_pad.tolist()[1] == [False] * 3 + [True] * 3
    assert m(src, tgt[:, :-1]).shape == (3, 5, 11)
    assert m.cross_attention_weights(src, tgt[:, :-1]).shape == (3, 5, 6)
    assert len(m.new_cache()) == 2


def test_padding_is_masked_and_decoder_is_causal():
    m = tiny()
    src, tgt = padded(SRC), padded(TGT)
    base = m(src, tgt[:, :-1]).data
    src2 = np.where(src == PAD, 5, src)  # other tokens under the padding mask …
    memory = m.transformer.encode(m.embed(m.src_embed, src2), src_key_padding_mask=src == PAD)
    out = m.logits(m.decode(tgt[:, :-1], memory, src == PAD)).data  # … change nothing
    np.testing.assert_allclose(out, base, atol=1e-12)
    memory = m.transformer.encode(m.embed(m.src_embed, src2), src_key_padding_mask=src2 == PAD)
    assert not np.allclose(m.logits(m.decode(tgt[:, :-1], memory, src2 == PAD)).data[1], base[1])
    tgt2 = tgt.copy()
    tgt2[:, 3] = 7  # a later target token cannot change earlier predictions
    changed = m(src, tgt2[:, :-1]).data
    np.testing.assert_allclose(changed[:, :3], base[:, :3], atol=1e-12)
    assert not np.allclose(changed[:, 3:], base[:, 3:])


def test_cross_attention_rows_sum_to_one_and_skip_padding():
    m = tiny()
    w = m.cross_attention_weights(padded(SRC), padded(TGT)[:, :-1])  # (B, T, S)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-12)
    assert np.all(w[1, :, 3:] == 0.0)


def test_padded_batch_equals_one_by_one():
    m = tiny()
    src, tgt = padded(SRC), padded(TGT)
    batch = m(src, tgt[:, :-1]).data
    for i, (s, t) in enumerate(zip(SRC, TGT)):
        alone = m(np.array([s]), np.array([t[:-1]])).data[0]
        np.testing.assert_allclose(batch[i, :len(t) - 1], alone, rtol=1e-10, atol=1e-12)
    greedy = m.greedy_decode(src, max_len=8)
    assert greedy == [m.greedy_decode(np.array([s]), max_len=8)[0] for s in SRC]


# ---------------------------------------------------------------------- decoding
def test_cached_equals_uncached_greedy_and_beam():
    m = tiny(seed=3)
    src = padded(SRC)
    assert m.greedy_decode(src, max_len=9, use_cache=True) == m.greedy_decode(src, max_len=9, use_cache=False)
    for s in SRC:
        a = m.beam_decode(np.array([s]), beam_size=3, max_len=9, use_cache=True)
        b = m.beam_decode(np.array([s]), beam_size=3, max_len=9, use_cache=False)
        assert [t for t, _ in a] == [t for t, _ in b]
        np.testing.assert_allclose([x for _, x in a], [x for _, x in b], rtol=1e-9)
    assert check_cached_decoding(m, src, max_len=9)


def test_cached_step_log_probs_equal_full_pass():
    """Each cached step equals the last row of a full causal pass over the prefix."""
    m = tiny(seed=1)
    src = padded(SRC)
    memory, src_pad = m.encode(src)
    ys = padded(TGT)[:, :4]
    cache = m.new_cache()
    for t in range(ys.shape[1]):
        step = m._step_log_probs(ys[:, t:t + 1], memory, src_pad, cache)
        full = m.logits(m.decode(ys[:, :t + 1], memory, src_pad)).log_softmax(-1).data[:, -1]
        np.testing.assert_allclose(step, full, atol=1e-10)


def test_beam_one_equals_greedy_and_beam_scores():
    from models.beam_search import greedy_search

    m = tiny(seed=5)
    for s in SRC:
        src = np.array([s])
        greedy = m.greedy_decode(src, max_len=10)[0]
        beam1 = m.beam_decode(src, beam_size=1, max_len=10, length_penalty=0.0)
        assert beam1[0][0] == greedy
        # the shared greedy_search over the same step function agrees, and so does the score
        memory, src_pad = m.encode(src)
        toks, score = greedy_search(lambda y, st: (m._step_log_probs(y, memory, src_pad, None), st), None,
                                    bos_id=BOS, eos_id=EOS, max_len=10)
        assert toks == greedy and math.isclose(score, beam1[0][1], rel_tol=1e-9)
        beams = m.beam_decode(src, beam_size=4, max_len=10, length_penalty=0.0)
        assert beams[0][1] >= beam1[0][1] - 1e-12  # a wider beam never finds a worse best
        assert [x for _, x in beams] == sorted((x for _, x in beams), reverse=True)


def test_translate_strips_marks_and_keeps_order():
    m = tiny(seed=2)
    out = translate_corpus(m, [np.array(s) for s in SRC], batch_size=2, max_len=7)
    ref = [r[:-1] if r and r[-1] == EOS else r for r in m.greedy_decode(padded(SRC), max_len=7)]
    assert out == ref
    assert all(EOS not in r for r in out)


# ---------------------------------------------------------------------- loss, schedule, torch
def test_label_smoothed_loss_by_hand():
    m = tiny(label_smoothing=0.1)
    src, tgt = padded(SRC), padded(TGT)
    loss = m.loss(src, tgt).item()
    logits = m(src, tgt[:, :-1]).data.reshape(-1, 11)
    y = tgt[:, 1:].reshape(-1)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    q = np.full(logp.shape, 0.1 / 11)
    q[np.arange(len(y)), y] += 0.9
    per = -(q * logp).sum(1)
    keep = y != PAD
    assert math.isclose(loss, per[keep].mean(), rel_tol=1e-10)
    res = evaluate_loss(m, [(src, tgt)])
    nll = -logp[np.arange(len(y)), y][keep]
    assert res["tokens"] == keep.sum() and math.isclose(res["perplexity"], math.exp(nll.mean()), rel_tol=1e-9)


def test_noam_adam_wiring():
    m = tiny(d_model=16)
    opt, sched = make_optimizer(m, warmup_steps=10, factor=2.0)
    g = opt.param_groups[0]
    assert g["betas"] == (0.9, 0.98) and g["eps"] == 1e-9
    lrs = []
    for _ in range(20):
        lrs.append(g["lr"])
        sched.step()
    expected = [2.0 * 16 ** -0.5 * min(s ** -0.5, s * 10 ** -1.5) for s in range(1, 21)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


def test_tied_and_shared_embeddings():
    m = tiny(src_vocab_size=11, share_embeddings=True)
    assert m.src_embed is m.tgt_embed
    h = m.decode(padded(TGT)[:, :-1], *m.encode(padded([[3, 4, 2], [5, 2], [6, 7, 2]])))
    np.testing.assert_allclose(m.logits(h).data, h.data @ m.tgt_embed.weight.data.T + m.out_bias.data, atol=1e-12)
    untied = tiny(tie_output=False)
    assert untied.logits(h).shape == (3, 5, 11)


def test_matches_torch_with_the_same_weights():
    torch = pytest.importorskip("torch")
    m = tiny(seed=4)
    c = m.config
    ref = torch.nn.Transformer(c.d_model, c.nhead, 2, 2, c.dim_feedforward, 0.0, batch_first=True).double().eval()
    ref.load_state_dict({k[len("transformer."):]: torch.from_numpy(v.data.copy())
                         for k, v in m.state_dict(keep_vars=True).items() if k.startswith("transformer.")})
    src, tgt = padded(SRC), padded(TGT)[:, :-1]
    scale = math.sqrt(c.d_model)
    pe = torch.from_numpy(m.pos.pe.data.astype(np.float64))

    def emb(table, ids):
        return torch.from_numpy(table.data)[torch.from_numpy(ids)] * scale + pe[:ids.shape[1]]

    with torch.no_grad():
        h = ref(emb(m.src_embed.weight, src), emb(m.tgt_embed.weight, tgt),
                tgt_mask=torch.nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], dtype=torch.float64),
                src_key_padding_mask=torch.from_numpy(src == PAD),
                memory_key_padding_mask=torch.from_numpy(src == PAD))
        logits = h @ torch.from_numpy(m.tgt_embed.weight.data).T + torch.from_numpy(m.out_bias.data)
    np.testing.assert_allclose(m(src, tgt).data, logits.numpy(), rtol=1e-9, atol=1e-10)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize("kw, match", [
    (dict(d_model=10, nhead=4), "divisible"),
    (dict(share_embeddings=True), "joint vocabulary"),
    (dict(dropout=1.5), "dropout"),
    (dict(eos_id=11), "eos_id"),
    (dict(num_encoder_layers=0), "num_encoder_layers"),
])
def test_config_errors(kw, match):
    opts = dict(src_vocab_size=13, tgt_vocab_size=11, d_model=16, nhead=2, pad_id=0, bos_id=1, eos_id=2)
    opts.update(kw)
    with pytest.raises(ValueError, match=match):
        TransformerConfig(**opts)


def test_bad_ids_are_clear_errors():
    m = tiny()
    with pytest.raises(ValueError, match=r"encode: src ids must lie in \[0, 13\)"):
        m.encode(np.array([[3, 13]]))
    with pytest.raises(ValueError, match=r"\(B, T\) integer array"):
        m.encode(np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match="one sentence"):
        m.beam_decode(padded(SRC))
    with pytest.raises(ValueError, match="max_len"):
        m.greedy_decode(padded(SRC), max_len=0)


# ---------------------------------------------------------------------- training
def _train_steps(model, opt, sched, batches):
    model.train()
    for src, tgt in batches:
        loss = model.loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return loss.item()


def _recipe_args(out, **kw):
    """The options the transformer recipe's training loop reads (synthetic task unless ``data``)."""
    from argparse import Namespace

    opts = dict(data=None, task="reversal", out=out, seed=0, epochs=1, time_budget=None, max_steps=None,
                batch_size=4, warmup=3, lr_factor=1.0, max_len=50, min_freq=1, shared_vocab=False)
    opts.update(kw)
    return Namespace(**opts)


def _batches(rng, n):
    from types import SimpleNamespace

    out = []
    for _ in range(n):
        tgt = np.c_[np.full(4, BOS), rng.integers(3, 11, (4, 4)), np.full(4, EOS)]
        out.append(SimpleNamespace(src=rng.integers(3, 13, (4, 5)), tgt=tgt, num_target_tokens=int(tgt[:, 1:].size)))
    return out


def test_resume_equals_uninterrupted(tmp_path):
    """The recipe's loop stopped after 2 steps and resumed into fresh objects = 4 steps in one go
    (model, Adam moments, Noam step and the dropout stream all restored from its checkpoint)."""
    from models.recipes.transformer import _make_trainer

    batches = _batches(np.random.default_rng(0), 4)

    def run(out, max_steps=None, resume=False):
        m = tiny(dropout=0.2, dtype=np.float32)
        opt, sched = make_optimizer(m, warmup_steps=3)
        trainer = _make_trainer(_recipe_args(out, max_steps=max_steps), m, opt, sched, log=None)
        if resume:
            minigrad.manual_seed(123)  # the global stream must not matter
            trainer.resume()
        trainer.fit(batches)
        return m, trainer

    m1, _ = run(tmp_path / "a")
    _, stopped = run(tmp_path / "b", max_steps=2)
    assert stopped.global_step == 2 and (tmp_path / "b" / "checkpoint.safetensors").is_file()
    m3, resumed = run(tmp_path / "b", resume=True)
    assert resumed.global_step == 4 and resumed.scheduler.last_epoch == 4
    for (name, a), b in zip(m1.state_dict().items(), m3.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    with pytest.raises(ValueError, match="other options"):  # another model size is refused
        m = tiny(d_model=8, dim_feedforward=16, dtype=np.float32)
        _make_trainer(_recipe_args(tmp_path / "b"), m, *make_optimizer(m), log=None).resume()


def _copy_data(rng, n, lo=3, hi=5, vocab=8):
    rows = [rng.integers(3, vocab, rng.integers(lo, hi + 1)) for _ in range(n)]
    src = [np.r_[r, EOS] for r in rows]
    tgt = [np.r_[BOS, r, EOS] for r in rows]
    return src, tgt


def test_learns_a_tiny_copy_task():
    """A 1+1-layer model learns to copy 3–5 symbols within a few hundred steps."""
    rng = np.random.default_rng(0)
    src, tgt = _copy_data(rng, 512)
    vsrc, vtgt = _copy_data(np.random.default_rng(1), 64)
    m = TransformerTranslator(TransformerConfig(8, 8, d_model=32, nhead=2, num_encoder_layers=1,
                                                num_decoder_layers=1, dim_feedforward=64, dropout=0.0,
                                                label_smoothing=0.0, pad_id=PAD, bos_id=BOS, eos_id=EOS), seed=0)
    opt, sched = make_optimizer(m, warmup_steps=40, factor=0.1)
    for epoch in range(12):
        order = np.random.default_rng(epoch).permutation(len(src))
        batches = [(padded([src[i] for i in order[k:k + 32]]), padded([tgt[i] for i in order[k:k + 32]]))
                   for k in range(0, len(src), 32)]
        _train_steps(m, opt, sched, batches)
    out = translate_corpus(m, vsrc)
    exact = np.mean([o == list(t[1:-1]) for o, t in zip(out, vtgt)])
    assert exact >= 0.95, exact


@pytest.mark.slow
def test_recipe_learns_reversal(tmp_path):
    """The default recipe (book's reversal task) reaches >= 95 % exact match."""
    import json

    from models.cli import main

    assert main(["transformer", "--out", str(tmp_path), "--beam-size", "1", "--no-plot"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["final"]["valid"]["greedy"]["exact_match"] >= 0.95
    assert metrics["cached_equals_uncached"] is True


@pytest.mark.parametrize("data, key", [(None, "exact_match"), ("multi30k", "bleu")])
def test_best_epoch_picks_the_best_score_then_the_lower_loss(tmp_path, data, key):
    from models.recipes.transformer import _make_trainer

    rows = [(0.5, 1.0), (0.9, 0.5), (0.9, 0.4), (0.7, 0.1)]  # (score, validation loss) of epochs 1-4
    scores = iter({key: score, "valid_loss": loss} for score, loss in rows)
    m = tiny(dtype=np.float32)
    trainer = _make_trainer(_recipe_args(tmp_path, data=data, epochs=4), m, *make_optimizer(m),
                            evaluate=lambda _: next(scores), log=None)
    trainer.fit(_batches(np.random.default_rng(1), 1))
    assert trainer.best["epoch"] == 3 and (tmp_path / "best.safetensors").is_file()
