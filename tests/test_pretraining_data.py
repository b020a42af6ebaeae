"""The pre-training data of RoBERTa, ALBERT and ELECTRA (models.pretraining_data): FULL-SENTENCES packing,
masking statistics, dynamic vs static masks, sentence-order pairs, replaced-token labels and sampling, the AUC,
gradient accumulation equal to one large batch, and resuming equal to not stopping."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import minigrad
from models.pretraining_data import (IN_ORDER, SWAPPED, create_sop_data, electra_discriminator_inputs, epoch_masks,
                                     evaluate_objective, mask_key, mlm_batches, mlm_objective, mlm_sop_objective,
                                     pack_full_sentences, roc_auc, rtd_objective, sample_replacements,
                                     sop_pairs_from_document)

PAD, CLS, SEP, MASK = 0, 1, 2, 3


def fake_tokenizer(vocab_size: int):
    return SimpleNamespace(pad_token_id=PAD, cls_token_id=CLS, sep_token_id=SEP, mask_token_id=MASK,
                           vocab=dict.fromkeys(range(vocab_size)))


def coded_documents(n_docs=30, n_sentences=10, seed=0, longest=12):
    """Token 10000·(doc+1) + 100·sentence + k: every token tells where it came from."""
    rng = np.random.default_rng(seed)
    return [[[10000 * (d + 1) + 100 * s + k for k in range(int(rng.integers(2, longest)))]
             for s in range(int(rng.integers(2, n_sentences)))] for d in range(n_docs)]


def where(token: int) -> tuple[int, int, int]:
    return token // 10000 - 1, token % 10000 // 100, token % 100


# ----------------------------------------------------------------------------------------------
# FULL-SENTENCES
# ----------------------------------------------------------------------------------------------
def test_full_sentences_pack_whole_contiguous_sentences_across_documents():
    docs = coded_documents()
    docs[3][1] = [40000 + 100 + k for k in range(70)]  # longer than a row: cut into pieces, nothing lost
    data = pack_full_sentences(docs, fake_tokenizer(400_000), max_seq_length=32)
    stream = [t for doc in docs for s in doc for t in s]
    tokens, boundaries = [], 0
    for row, mask in zip(data.input_ids, data.attention_mask):
        n = int(mask.sum())
        assert row[0] == CLS and row[n - 1] == SEP and (row[n:] == PAD).all() and n <= 32
        inner = row[1:n - 1]
        boundaries += int((inner == SEP).sum())
        for i in np.flatnonzero(inner == SEP):  # a [SEP] inside a row sits exactly between two documents
            assert where(int(inner[i - 1]))[0] + 1 == where(int(inner[i + 1]))[0] and where(int(inner[i + 1]))[1:] == (0, 0)
        tokens += [int(t) for t in inner if t != SEP]
        doc, sentence, k = where(int(inner[0]))
        assert k == 0 or ((doc, sentence) == (3, 1) and k % 30 == 0)  # a row starts a sentence (or a piece of one)
    assert tokens == stream  # every token once, in corpus order
    assert boundaries <= len(docs) - 1 and boundaries > 0
    special = data.special_tokens_mask
    assert np.array_equal(special, (data.attention_mask == 0) | (data.input_ids == CLS) | (data.input_ids == SEP))
    assert data.attention_mask.mean() > 0.8  # rows are nearly full: little padding
    assert (data.token_type_ids == 0).all()


def test_full_sentences_errors():
    with pytest.raises(ValueError, match="pack_full_sentences: max_seq_length must be an int >= 4"):
        pack_full_sentences(coded_documents(), fake_tokenizer(10), 3)
    with pytest.raises(ValueError, match="got no sentences"):
        pack_full_sentences([], fake_tokenizer(10))


# ----------------------------------------------------------------------------------------------
# masking
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def packed():
    rng = np.random.default_rng(1)
    docs = [[list(rng.integers(10, 5000, int(rng.integers(5, 40)))) for _ in range(12)] for _ in range(120)]
    return pack_full_sentences(docs, fake_tokenizer(5000), max_seq_length=64)


def test_masking_statistics_and_special_tokens(packed):
    masked, labels = epoch_masks(packed, epoch=0, seed=0)
    chosen = labels != -100
    special = packed.special_tokens_mask
    assert not (chosen & special).any() and np.array_equal(masked[special], packed.input_ids[special])
    assert np.array_equal(labels[chosen], packed.input_ids[chosen])
    n = (~special).sum(axis=1)
    assert np.array_equal(chosen.sum(axis=1), np.maximum(1, np.rint(0.15 * n)))  # 15 % of every row
    as_mask = (masked[chosen] == MASK).mean()
    kept = (masked[chosen] == packed.input_ids[chosen]).mean()
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.015 and abs(1 - as_mask - kept - 0.1) < 0.015
    assert np.array_equal(masked[~chosen], packed.input_ids[~chosen])


def test_dynamic_masks_differ_every_epoch_and_static_masks_repeat(packed):
    dynamic = [epoch_masks(packed, e, seed=3, masking="dynamic")[1] for e in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert (dynamic[a] != dynamic[b]).mean() > 0.1
    static = [epoch_masks(packed, e, seed=3, masking="static", copies=3)[1] for e in range(7)]
    assert np.array_equal(static[0], static[3]) and np.array_equal(static[1], static[4])
    assert np.array_equal(static[0], static[6])
    assert (static[0] != static[1]).mean() > 0.1 and (static[1] != static[2]).mean() > 0.1
    assert np.array_equal(epoch_masks(packed, 5, seed=3)[1], epoch_masks(packed, 5, seed=3)[1])  # seeded
    assert [mask_key(e, "static", 10) for e in (0, 9, 10, 39)] == [0, 9, 0, 9]  # BERT: 10 masks over 40 epochs
    with pytest.raises(ValueError, match="mask_key: masking must be one of"):
        mask_key(0, "sometimes")


def test_batches_cover_every_row_once_per_epoch(packed):
    for epoch in (0, 1):
        rows = np.concatenate([b["original_ids"][:, 1] * 10_000 + b["original_ids"][:, 2]
                               for b in mlm_batches(packed, 16, epoch, seed=0)])
        assert sorted(rows) == sorted(packed.input_ids[:, 1] * 10_000 + packed.input_ids[:, 2])
    first = [b["original_ids"][0, 1] for b in mlm_batches(packed, 16, 0, seed=0)]
    again = [b["original_ids"][0, 1] for b in mlm_batches(packed, 16, 0, seed=0)]
    other = [b["original_ids"][0, 1] for b in mlm_batches(packed, 16, 1, seed=0)]
    assert first == again and first != other
    with pytest.raises(ValueError, match="mlm_batches: batch_size must be a positive int"):
        next(mlm_batches(packed, 0, 0, 0))


# ----------------------------------------------------------------------------------------------
# sentence order
# ----------------------------------------------------------------------------------------------
def test_sop_pairs_are_consecutive_segments_swapped_half_the_time():
    docs = coded_documents(n_docs=1000, n_sentences=14, seed=2)
    rng = np.random.default_rng(0)
    pairs = [p for doc in docs for p in sop_pairs_from_document(doc, 64, 0.1, rng)]
    assert len(pairs) > 1000
    labels = np.array([label for _, _, label in pairs])
    n = len(labels)
    assert abs(labels.mean() - 0.5) < 4 * np.sqrt(0.25 / n)  # a fair coin (4 σ)
    for a, b, label in pairs:
        doc_a, doc_b = {where(t)[0] for t in a}, {where(t)[0] for t in b}
        assert doc_a == doc_b and len(doc_a) == 1  # one document
        first, second = (a, b) if label == IN_ORDER else (b, a)
        last_of_first = max(where(t)[1] for t in first)
        first_of_second = min(where(t)[1] for t in second)
        assert last_of_first < first_of_second  # in order: A before B; swapped: B before A
        assert len(a) + len(b) <= 61
    assert SWAPPED == 1 and IN_ORDER == 0


def test_sop_data_rows(tmp_path):
    docs = coded_documents(n_docs=50)
    data = create_sop_data(docs, fake_tokenizer(600_000), max_seq_length=48, seed=1)
    assert set(np.unique(data.next_sentence_label)) == {0, 1}
    assert (data.input_ids[:, 0] == CLS).all() and (data.token_type_ids.max(axis=1) == 1).all()
    with pytest.raises(ValueError, match="no document has two sentences"):
        create_sop_data([[[5, 6, 7]]], fake_tokenizer(10))


# ----------------------------------------------------------------------------------------------
# replaced-token detection
# ----------------------------------------------------------------------------------------------
def test_rtd_labels_are_exactly_replaced_not_equal_original():
    rng = np.random.default_rng(0)
    original = rng.integers(5, 50, (4, 9))
    labels = np.full(original.shape, -100)
    positions = [(0, 1), (0, 4), (1, 2), (2, 8), (3, 0), (3, 5)]
    for r, c in positions:
        labels[r, c] = original[r, c]
    sampled = np.array([original[0, 1], 7, original[1, 2], 9, 11, original[3, 5]])  # three samples = the original
    replaced, rtd = electra_discriminator_inputs(original, labels, sampled)
    assert np.array_equal(rtd, (replaced != original).astype(int))
    assert rtd.sum() == 3 and rtd[0, 1] == 0 and rtd[0, 4] == 1  # a sample equal to the original is original
    assert [replaced[r, c] for r, c in positions] == sampled.tolist()  # row-major order, as masked_lm_logits
    with pytest.raises(ValueError, match="6 masked positions but 2 sampled tokens"):
        electra_discriminator_inputs(original, labels, sampled[:2])


def test_sampling_follows_the_softmax():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    draws = sample_replacements(np.repeat(logits, 40_000, axis=0), np.random.default_rng(1))
    freq = np.bincount(draws, minlength=4) / len(draws)
    np.testing.assert_allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.01)
    again = sample_replacements(np.repeat(logits, 100, axis=0), np.random.default_rng(1))
    assert np.array_equal(again, draws[:100])  # seeded


def test_roc_auc():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5  # ties count half
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 500), np.round(rng.normal(size=500), 1)  # with ties
    assert abs(roc_auc(y, s) - sklearn.roc_auc_score(y, s)) < 1e-12


# ----------------------------------------------------------------------------------------------
# large batches by accumulation; resuming
# ----------------------------------------------------------------------------------------------
def tiny_roberta(dtype=np.float64):
    from models.roberta import RobertaConfig, RobertaForMaskedLM

    config = RobertaConfig(vocab_size=5000, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=70, pad_token_id=PAD,
                           hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return RobertaForMaskedLM(config, dtype=dtype, generator=minigrad.Generator(0))


def test_four_accumulated_batches_of_8_equal_one_batch_of_32(packed):
    from minigrad.optim import SGD
    from models.training import TrainConfig, Trainer

    rng = np.random.default_rng(5)  # sentences of 31 tokens: every FULL-SENTENCES row holds two, all rows are
    document = [list(rng.integers(10, 5000, 31)) for _ in range(64)]  # full, every row has as many masks
    data = pack_full_sentences([document], fake_tokenizer(5000), max_seq_length=64)
    assert len(data) == 32 and data.attention_mask.all()
    grads = []
    for batch_size, accum in ((32, 1), (8, 4)):
        model = tiny_roberta()
        trainer = Trainer(model, SGD(model.parameters(), lr=0.0), mlm_objective,
                          TrainConfig(epochs=1, grad_accum_steps=accum), log=None, progress=False)
        trainer.fit(lambda epoch: mlm_batches(data, batch_size, epoch, seed=4))
        assert trainer.global_step == 1
        grads.append({name: p.grad.copy() for name, p in model.named_parameters()})
    for name in grads[0]:
        np.testing.assert_allclose(grads[1][name], grads[0][name], atol=1e-6, rtol=0, err_msg=name)


def test_electra_resumed_run_equals_uninterrupted(tmp_path, packed):
    from models.bert_pretraining import PretrainConfig, pretraining_trainer
    from models.electra import ElectraConfig, ElectraPretrainer, generator_config

    data = packed.subset(np.arange(40))
    disc = ElectraConfig(vocab_size=5000, embedding_size=8, hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    config = PretrainConfig(epochs=2, batch_size=8, learning_rate=1e-3)

    def run(stop_after, resume=False):
        minigrad.manual_seed(0)
        pair = ElectraPretrainer(generator_config(disc), disc, generator=minigrad.Generator(1))
        sampling = np.random.default_rng(7)
        trainer = pretraining_trainer(pair, len(data), config, rtd_objective(sampling), tmp_path / "ckpt.safetensors",
                                      stop_after, rngs={"sampling": sampling})
        if resume:
            trainer.resume()
        trainer.fit(lambda epoch: mlm_batches(data, 8, epoch, seed=2))
        return pair, trainer

    straight, trainer = run(None)
    run(3)
    resumed, again = run(None, resume=True)
    assert again.history["steps"]["loss"] == trainer.history["steps"]["loss"]
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert np.array_equal(a.data, b.data), name


def test_evaluate_objective_pools_accuracies(packed):
    from models.albert import AlbertConfig, AlbertForPreTraining

    docs = coded_documents(n_docs=20)
    tokenizer = fake_tokenizer(600_000)
    data = create_sop_data([[[t % 4000 + 10 for t in s] for s in d] for d in docs], tokenizer, 32, seed=0)
    data.vocab_size = 4100
    model = AlbertForPreTraining(AlbertConfig(vocab_size=4100, embedding_size=8, hidden_size=16, num_hidden_layers=2,
                                              num_attention_heads=2, intermediate_size=32, max_position_embeddings=32),
                                 generator=minigrad.Generator(0))
    result = evaluate_objective(model, mlm_batches(data, 16, 0, seed=1), mlm_sop_objective)
    assert set(result) == {"loss", "mlm_loss", "sop_loss", "mlm_accuracy", "sop_accuracy"}
    assert 0 <= result["sop_accuracy"] <= 1 and abs(result["loss"] - result["mlm_loss"] - result["sop_loss"]) < 1e-4
    roberta = evaluate_objective(tiny_roberta(np.float32), mlm_batches(packed.subset(np.arange(20)), 10, 0, 0),
                                 mlm_objective)
    assert set(roberta) == {"loss", "mlm_accuracy"}


# ----------------------------------------------------------------------------------------------
# the comparison recipe (BERT vs RoBERTa-style vs ELECTRA, then SST-2)
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow  # about 10 s on a busy machine: four pre-trainings and five fine-tunings, tiny
def test_pretrain_compare_recipe_runs_resumes_and_refuses_bad_flags(tmp_path, capsys):
    import json

    from pydoc_data.topics import topics

    from models.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(topics[k] for k in sorted(topics)[:30]), encoding="utf-8")
    rng = np.random.default_rng(0)
    words = {0: ["dull", "boring", "bad", "mess"], 1: ["great", "funny", "moving", "fine"]}
    sst2 = tmp_path / "sst2"  # SST-2's layout: "label sentence" lines
    sst2.mkdir()
    for split, n in (("train", 48), ("dev", 16), ("test", 16)):
        labels = rng.integers(0, 2, n)
        lines = [f"{y} the film is {' '.join(rng.choice(words[int(y)], 3))} ." for y in labels]
        (sst2 / f"stsa.binary.{split}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["pretrain-compare", "--corpus", str(corpus), "--data", str(tmp_path), "--out", str(tmp_path / "run"),
            "--steps", "2", "--hidden", "16", "--heads", "2", "--layers", "1", "--max-seq-length", "32",
            "--batch-size", "8", "--vocab-size", "400", "--finetune-epochs", "1", "--no-plot", "--no-progress"]
    assert main(args) == 0
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())["results"]
    assert list(first) == ["bert", "roberta", "electra", "scratch"]
    assert all(0.0 <= r["dev_accuracy"] <= 1.0 and 0.0 <= r["test_accuracy"] <= 1.0 for r in first.values())
    assert "rtd_auc" in first["electra"]["end_points"] and "nsp_accuracy" in first["bert"]["end_points"]
    assert main(args + ["--resume", "--models", "roberta"]) == 0  # pre-training done: only the fine-tuning again
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())["results"]["roberta"]
    assert again["dev_accuracy"] == first["roberta"]["dev_accuracy"]  # same seed, same numbers
    assert again["pretraining_seconds"] >= first["roberta"]["pretraining_seconds"] - 0.1  # earlier seconds kept
    capsys.readouterr()
    assert main(args + ["--models", "bert,xlnet"]) == 2
    assert "error: pretrain-compare: --models takes names among" in capsys.readouterr().err
