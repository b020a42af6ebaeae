"""BERT pre-training (models.bert_pretraining): NSP pairs, MLM masking statistics, the
masked-position loss, overfitting a few sentences, and resuming equal to not stopping."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

import minigrad
from minigrad.nn.losses import cross_entropy
from models.bert import BertConfig, BertForPreTraining
from models.bert_pretraining import (IS_NEXT, NOT_NEXT, PretrainConfig, apply_static_masking,
                                     create_pretraining_data, default_documents, documents_from_text,
                                     iterate_batches, mask_tokens, pretrain, truncate_seq_pair)

PAD, CLS, SEP, MASK = 0, 1, 2, 3


def fake_tokenizer(vocab_size: int):
    return SimpleNamespace(pad_token_id=PAD, cls_token_id=CLS, sep_token_id=SEP, mask_token_id=MASK,
                           vocab=dict.fromkeys(range(vocab_size)))


def synthetic_documents(n_docs=40, n_sentences=12, seed=0):
    """Token t = 1000·doc + 10·sentence + k (k < 10): every token tells where it came from."""
    rng = np.random.default_rng(seed)
    return [[[1000 * (d + 1) + 10 * s + k for k in range(int(rng.integers(3, 10)))] for s in range(n_sentences)]
            for d in range(n_docs)]


# ----------------------------------------------------------------------------------------------
# masking
# ----------------------------------------------------------------------------------------------
def test_mlm_masking_rates_and_special_tokens():
    rng = np.random.default_rng(0)
    B, T, V = 600, 128, 30522
    ids = rng.integers(5, V, (B, T))
    lengths = rng.integers(10, T + 1, B)
    special = np.arange(T)[None, :] >= lengths[:, None] - 1  # padding and the final [SEP]
    special[:, 0] = True  # [CLS]
    special[np.arange(B), lengths // 2] = True  # the middle [SEP]
    masked, labels = mask_tokens(ids, special, V, MASK, np.random.default_rng(1))
    chosen = labels != -100
    assert not (chosen & special).any()  # special tokens are never chosen
    assert np.array_equal(masked[special], ids[special])  # and never changed
    assert np.array_equal(labels[chosen], ids[chosen])  # labels: the original ids, −100 elsewhere
    n = (~special).sum(axis=1)
    assert np.array_equal(chosen.sum(axis=1), np.maximum(1, np.rint(0.15 * n)))  # exactly 15 % per row
    total = chosen.sum()
    as_mask = (masked[chosen] == MASK).mean()
    unchanged = (masked[chosen] == ids[chosen]).mean()
    random = 1 - as_mask - unchanged
    assert abs(total / (~special).sum() - 0.15) < 0.005
    assert abs(as_mask - 0.8) < 0.01 and abs(random - 0.1) < 0.01 and abs(unchanged - 0.1) < 0.01
    assert np.array_equal(masked[~chosen], ids[~chosen])
    # chosen positions are spread uniformly over the candidates (first vs second half of each row)
    first_half = (chosen & (np.arange(T)[None, :] < lengths[:, None] // 2)).sum()
    assert abs(first_half / total - 0.5) < 0.03


def test_masking_is_deterministic_under_a_seed():
    ids = np.arange(5, 5 + 2 * 30).reshape(2, 30)
    special = np.zeros_like(ids, dtype=bool)
    a = mask_tokens(ids, special, 100, MASK, np.random.default_rng(7))
    b = mask_tokens(ids, special, 100, MASK, np.random.default_rng(7))
    c = mask_tokens(ids, special, 100, MASK, np.random.default_rng(8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_static_and_dynamic_masking():
    data = create_pretraining_data(synthetic_documents(), fake_tokenizer(50_000), 64, seed=0)
    apply_static_masking(data, seed=3)
    static = [b["labels"] for _, b in iterate_batches(data, 16, epoch=0, seed=5, masking="static")]
    static1 = [b["labels"] for _, b in iterate_batches(data, 16, epoch=1, seed=5, masking="static")]
    dyn0 = [b["labels"] for _, b in iterate_batches(data, 16, epoch=0, seed=5)]
    dyn0_again = [b["labels"] for _, b in iterate_batches(data, 16, epoch=0, seed=5)]
    dyn1 = [b for _, b in iterate_batches(data, 16, epoch=1, seed=5)]
    assert all(np.array_equal(x, y) for x, y in zip(dyn0, dyn0_again))  # reproducible
    # static: the same sequence keeps its masks in every epoch (the order changes)
    key = lambda labels_list: sorted(tuple(r) for b in labels_list for r in (b != -100))  # noqa: E731
    assert key(static) == key(static1)
    assert key(dyn0) != key([b["labels"] for b in dyn1])
    # a batch rebuilt from its index alone (what resuming needs) is the same batch
    later = dict(iterate_batches(data, 16, epoch=1, seed=5, start=2))
    assert np.array_equal(later[2]["input_ids"], dyn1[2]["input_ids"])
    with pytest.raises(ValueError, match="apply_static_masking"):
        fresh = create_pretraining_data(synthetic_documents(), fake_tokenizer(50_000), 64, seed=0)
        next(iterate_batches(fresh, 16, 0, 0, masking="static"))


# ----------------------------------------------------------------------------------------------
# NSP pairs
# ----------------------------------------------------------------------------------------------
def _segments(row_ids, row_types, row_mask):
    real = row_ids[row_mask == 1]
    types = row_types[row_mask == 1]
    assert real[0] == CLS and real[-1] == SEP
    a, b = real[1:][types[1:] == 0], real[types == 1]
    assert a[-1] == SEP
    return a[:-1], b[:-1]


def test_nsp_pairs_structure_and_ratio():
    documents = synthetic_documents(n_docs=60, n_sentences=15)
    data = create_pretraining_data(documents, fake_tokenizer(100_000), 48, short_seq_prob=0.2, dupe_factor=2,
                                   seed=1)
    assert abs(data.next_sentence_label.mean() - 0.5) < 0.04  # 50 % NotNext
    lengths = data.attention_mask.sum(axis=1)
    assert lengths.max() <= 48 and np.all(data.input_ids[data.attention_mask == 0] == PAD)
    assert (lengths < 30).mean() > 0.1  # short_seq_prob gives some short sequences
    for row in range(len(data)):
        a, b = _segments(data.input_ids[row], data.token_type_ids[row], data.attention_mask[row])
        assert len(a) >= 1 and len(b) >= 1
        assert np.array_equal(data.special_tokens_mask[row], np.isin(data.input_ids[row], (PAD, CLS, SEP)))
        doc_a, doc_b = set(a // 1000), set(b // 1000)
        assert len(doc_a) == 1 and len(doc_b) == 1
        if data.next_sentence_label[row] == IS_NEXT:
            assert doc_a == doc_b  # B continues A, in the same document
            assert (a % 1000).max() < (b % 1000).min()  # and comes after it
        else:
            assert doc_a != doc_b  # B is from another document


def test_truncate_seq_pair_trims_the_longer_side():
    rng = np.random.default_rng(0)
    a, b = list(range(10)), list(range(100, 103))
    truncate_seq_pair(a, b, 8, rng)
    assert len(a) == 5 and b == [100, 101, 102]
    assert a == sorted(a) and set(a) <= set(range(10))


def test_documents_from_text_and_default_corpus():
    docs = documents_from_text("First one. Second one!\nStill doc one.\n\n\nDoc two here. And more?")
    assert docs == [["First one.", "Second one!", "Still doc one."], ["Doc two here.", "And more?"]]
    corpus = default_documents()
    assert len(corpus) > 50 and all(doc for doc in corpus)


def test_data_errors():
    with pytest.raises(ValueError, match="at least 2 documents"):
        create_pretraining_data(synthetic_documents(n_docs=1), fake_tokenizer(10_000))
    with pytest.raises(ValueError, match="max_seq_length"):
        create_pretraining_data(synthetic_documents(), fake_tokenizer(10_000), max_seq_length=3)
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        mask_tokens(np.ones((2, 3), int), np.ones((2, 4), bool), 10, MASK, np.random.default_rng(0))
    with pytest.raises(ValueError, match="grad_accum_steps"):
        PretrainConfig(grad_accum_steps=0)
    with pytest.raises(ValueError, match="masking"):
        PretrainConfig(masking="sometimes")


# ----------------------------------------------------------------------------------------------
# loss and training
# ----------------------------------------------------------------------------------------------
def tiny_config(vocab_size=60, **kw):
    base = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=64)
    return BertConfig(**{**base, **kw})


def test_masked_position_loss_equals_full_logits_loss():
    model = BertForPreTraining(tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                               generator=minigrad.Generator(0)).train()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 60, (4, 12))
    special = np.zeros_like(ids, dtype=bool)
    special[:, 0] = True
    masked, labels = mask_tokens(ids, special, 60, MASK, rng)
    nsp = np.array([0, 1, 0, 1])
    out = model(masked, labels=labels, next_sentence_label=nsp, full_logits=True)
    N = int((labels != -100).sum())
    assert out.masked_lm_logits.shape == (N, 60)
    full = cross_entropy(out.prediction_logits.reshape(-1, 60), labels.reshape(-1), ignore_index=-100)
    assert abs(float(out.masked_lm_loss.data) - float(full.data)) < 1e-6
    out.masked_lm_loss.backward()
    fast = {k: p.grad.copy() for k, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    out = model(masked, labels=labels, next_sentence_label=nsp, full_logits=True)
    cross_entropy(out.prediction_logits.reshape(-1, 60), labels.reshape(-1)).backward()
    for k, p in model.named_parameters():
        if k in fast:
            np.testing.assert_allclose(fast[k], p.grad, atol=1e-6, err_msg=k)


def test_tiny_bert_overfits_a_few_sentences():
    documents = [[[10 + d * 8 + s * 2, 11 + d * 8 + s * 2] for s in range(4)] for d in range(4)]
    data = create_pretraining_data(documents, fake_tokenizer(60), 16, short_seq_prob=0.0, seed=0)
    data = data.subset(np.arange(min(8, len(data))))
    apply_static_masking(data, seed=0)
    minigrad.manual_seed(0)
    model = BertForPreTraining(tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0),
                               generator=minigrad.Generator(0))
    config = PretrainConfig(epochs=150, batch_size=8, learning_rate=5e-3, warmup_ratio=0.05, weight_decay=0.0,
                            masking="static", seed=0)
    history = pretrain(model, data, config)
    assert history.mlm_loss[0] > 3.0
    assert np.mean(history.mlm_loss[-5:]) < 0.05
    assert np.mean(history.mlm_accuracy[-5:]) == 1.0
    assert np.mean(history.nsp_accuracy[-5:]) == 1.0


def test_resume_equals_uninterrupted_run(tmp_path):
    data = create_pretraining_data(synthetic_documents(n_docs=6, n_sentences=4), fake_tokenizer(7000), 24,
                                   dupe_factor=4, seed=0)
    data = data.subset(np.arange(20))
    config = PretrainConfig(epochs=2, batch_size=4, grad_accum_steps=2, learning_rate=1e-3, seed=3)

    def fresh():  # dropout on, so the restored random state matters
        return BertForPreTraining(tiny_config(vocab_size=7000, hidden_size=16, intermediate_size=32),
                                  generator=minigrad.Generator(1))

    straight = fresh()
    h1 = pretrain(straight, data, config, checkpoint_path=tmp_path / "a.safetensors")
    resumed = fresh()
    path = tmp_path / "b.safetensors"
    stopped = pretrain(resumed, data, config, checkpoint_path=path, max_steps=4)  # stops mid-epoch 1 (3/epoch)
    assert len(stopped.step) == 4
    resumed = fresh()
    h2 = pretrain(resumed, data, config, checkpoint_path=path, resume=True)
    assert h1.step == h2.step == list(range(1, 7))
    assert h1.loss == h2.loss and h1.lr == h2.lr
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert np.array_equal(a, b), k
    with pytest.raises(ValueError, match="different settings"):
        pretrain(fresh(), data, PretrainConfig(epochs=3, batch_size=4, grad_accum_steps=2, seed=3),
                 checkpoint_path=path, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        pretrain(fresh(), data, config, checkpoint_path=tmp_path / "none.safetensors", resume=True)


def test_bad_mlm_labels_give_clear_errors():
    model = BertForPreTraining(tiny_config())
    ids = np.full((2, 6), 7)
    with pytest.raises(ValueError, match=r"labels must have shape \(batch, seq_len\)"):
        model(ids, labels=np.full((2, 5), -100))
    with pytest.raises(ValueError, match="vocab_size=60"):
        model(ids, labels=np.full((2, 6), 60))
    with pytest.raises(ValueError, match="next_sentence_label"):
        model(ids, next_sentence_label=np.array([0, 2]))


def test_bert_pretrain_recipe_runs_and_resumes(tmp_path):
    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "theta", "kappa", "lambda", "zeta"]
    docs = ["\n".join(" ".join(rng.choice(words, 6)) + "." for _ in range(8)) for _ in range(8)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(docs))
    from models.cli import main

    common = ["bert-pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--epochs", "2",
              "--vocab-size", "60", "--hidden", "16", "--heads", "2", "--layers", "1", "--max-seq-length", "32",
              "--batch-size", "4", "--no-plot"]
    assert main(common + ["--max-steps", "2"]) == 0
    assert main(common + ["--resume"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    steps = metrics["history"]["step"]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 2
    assert 0.0 <= metrics["validation"]["nsp_accuracy"] <= 1.0
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert main(["bert-pretrain", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path)]) == 2
