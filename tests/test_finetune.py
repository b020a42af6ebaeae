"""Fine-tuning loop (models.finetune): batching, a tiny BERT learning toy tasks, exact resume."""
from __future__ import annotations

import numpy as np
import pytest

import minigrad
from minigrad import nn
from models.bert import BertConfig, BertForSequenceClassification
from models.data.glue import InputExample
from models.finetune import (Trainer, TrainingConfig, classification_loss, collate, encode_examples,
                             evaluate_classifier, fine_tune_classifier, length_bucketed_batches, parameter_groups)
from models.text.wordpiece import BertTokenizer

WORDS = ["good", "bad", "the", "film", "was", "plot", "a", "very", "acting", "music"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer(VOCAB)


def tiny_model(num_labels=2, seed=0, dropout=0.1):
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32, num_labels=num_labels,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertForSequenceClassification(config, generator=minigrad.Generator(seed))


def toy_sentiment(n, seed):
    """Label 1 iff the sentence holds "good" (else it holds "bad"), among 2-6 filler words."""
    rng = np.random.default_rng(seed)
    fillers = WORDS[2:]
    out = []
    for i in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(fillers, size=rng.integers(2, 7)))
        words.insert(int(rng.integers(len(words) + 1)), "good" if label else "bad")
        out.append(InputExample(" ".join(words), None, label, str(i)))
    return out


# ------------------------------------------------------------------------------------------ batching
def test_bucketed_batches_cover_every_example_once_and_group_lengths():
    rng_lengths = np.random.default_rng(0).integers(3, 100, size=1000)
    batches = length_bucketed_batches(rng_lengths, 32, np.random.default_rng(1), bucket_batches=8)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert all(len(b) <= 32 for b in batches)
    padding = sum(len(b) * rng_lengths[b].max() - rng_lengths[b].sum() for b in batches)
    shuffled = np.random.default_rng(2).permutation(1000)
    padding_random = sum(32 * rng_lengths[shuffled[i:i + 32]].max() - rng_lengths[shuffled[i:i + 32]].sum()
                         for i in range(0, 1000, 32))
    assert padding < 0.25 * padding_random
    again = length_bucketed_batches(rng_lengths, 32, np.random.default_rng(1), bucket_batches=8)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # deterministic under a seed
    ordered = length_bucketed_batches(rng_lengths, 32)  # evaluation: sorted, in order
    assert np.all(np.diff(rng_lengths[np.concatenate(ordered)]) >= 0)
    with pytest.raises(ValueError, match="batch_size"):
        length_bucketed_batches(rng_lengths, 0)


def test_encode_and_collate_pairs_with_dynamic_padding(tokenizer):
    examples = [InputExample("good film", "bad plot", 1), InputExample("the film was very good", "a", 0)]
    data = encode_examples(examples, tokenizer, max_seq_length=6)
    assert data.lengths.tolist() == [6, 6]  # [CLS] good film [SEP] bad plot [SEP] = 7 → truncated to 6
    assert data.input_ids[0] == tokenizer.convert_tokens_to_ids(["[CLS]", "good", "film", "[SEP]", "bad", "[SEP]"])
    batch = collate(encode_examples(examples, tokenizer, 16), [1, 0])
    assert batch["input_ids"].shape == (2, 9)  # longest of the two, not 16
    assert batch["attention_mask"].sum(axis=1).tolist() == [9, 7]
    assert batch["token_type_ids"][1].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert batch["labels"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="label"):
        encode_examples([InputExample("good", None, None)], tokenizer)


def test_no_weight_decay_on_biases_and_layer_norm():
    model = tiny_model()
    decay, no_decay = parameter_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert decayed | exempt == set(names.values()) and not decayed & exempt
    assert all(n.endswith("bias") or "LayerNorm" in n for n in exempt)
    assert any("LayerNorm.weight" in n for n in exempt)
    assert all(n.endswith("weight") and "LayerNorm" not in n for n in decayed)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=-1), dict(lr=0.0), dict(warmup_ratio=1.0),
                                 dict(patience=0), dict(epochs=True)])
def test_training_config_rejects_bad_values(bad):
    field = next(iter(bad))
    with pytest.raises(ValueError, match=f"TrainingConfig: {field}"):
        TrainingConfig(**bad)


def test_tiny_bert_learns_a_separable_task_to_100_percent(tokenizer):
    minigrad.manual_seed(0)
    train, dev = toy_sentiment(192, seed=1), toy_sentiment(64, seed=2)
    config = TrainingConfig(epochs=6, lr=3e-3, batch_size=16, seed=0, patience=None)
    trainer, preds, labels = fine_tune_classifier(tiny_model(), tokenizer, train, dev, "sst2", config,
                                                  max_seq_length=16, log=lambda *_: None, progress=False)
    assert (preds == labels).mean() == 1.0
    assert trainer.history["eval"][-1]["accuracy"] == 1.0 or trainer.best_score == 1.0
    losses = [v for _, v in trainer.history["loss"]]
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:5])


def test_regression_head_fits_a_score(tokenizer):
    """num_labels = 1: MSE regression (SICK relatedness / STS-B); the score is the number of "good"."""
    rng = np.random.default_rng(0)
    examples = []
    for i in range(160):
        k = int(rng.integers(0, 4))
        words = ["good"] * k + list(rng.choice(WORDS[2:], size=3))
        rng.shuffle(words)
        examples.append(InputExample(" ".join(words), None, float(k), str(i)))
    config = TrainingConfig(epochs=6, lr=3e-3, batch_size=16, seed=0, patience=None)
    trainer, preds, labels = fine_tune_classifier(tiny_model(num_labels=1), tokenizer, examples[:128], examples[128:],
                                                  "sick-sts", config, 16, log=lambda *_: None, progress=False)
    assert labels.dtype == np.float32 and preds.shape == (32,)
    assert np.corrcoef(preds, labels)[0, 1] > 0.9
    assert trainer.best_score > 0.9  # Pearson, the task's main metric
    # evaluate_classifier on the same examples maps back with the training standardisation
    mean, scale = trainer.label_standardisation
    assert abs(mean - np.mean([e.label for e in examples[:128]])) < 1e-5
    scores, again = evaluate_classifier(trainer.model, tokenizer, examples[128:], "sick-sts", 16, mean, scale)
    np.testing.assert_allclose(again, preds, rtol=1e-6, atol=1e-6)
    assert scores["pearson"] == pytest.approx(float(np.corrcoef(preds, labels)[0, 1]), abs=1e-6)
    with pytest.raises(ValueError, match="num_labels"):
        fine_tune_classifier(tiny_model(num_labels=2), tokenizer, examples[:8], examples[8:16], "sick-sts", config)


def _trainer(tokenizer, out_dir, data, config):
    minigrad.manual_seed(0)
    model = tiny_model(seed=3)
    train = encode_examples(data, tokenizer, 16)
    dev = encode_examples(toy_sentiment(16, seed=5), tokenizer, 16)

    def evaluate(m):
        logits = m(**{k: v for k, v in collate(dev, np.arange(len(dev))).items() if k != "labels"})["logits"].data
        return {"accuracy": float((logits.argmax(1) == dev.labels).mean()), "loss_proxy": float(-logits.std())}

    return Trainer(model, train.lengths, lambda idx: collate(train, idx), classification_loss, evaluate,
                   "loss_proxy", config, out_dir, log=lambda *_: None, progress=False)


@pytest.mark.parametrize("interrupt_at", [3, 5])  # mid-epoch 1 and mid-epoch 2 (4 steps an epoch)
def test_resume_equals_uninterrupted(tokenizer, tmp_path, interrupt_at):
    data = toy_sentiment(60, seed=4)
    config = TrainingConfig(epochs=2, lr=1e-3, batch_size=16, seed=7, patience=None)
    straight = _trainer(tokenizer, tmp_path / "a", data, config)
    straight.fit()
    first = _trainer(tokenizer, tmp_path / "b", data, config)
    first.fit(stop_after_steps=interrupt_at)  # "interrupted": last.ckpt written at that step
    resumed = _trainer(tokenizer, tmp_path / "b", data, config).resume()  # a new process: fresh objects
    resumed.fit()
    assert [v for _, v in resumed.history["loss"]] == [v for _, v in straight.history["loss"]]
    assert resumed.history["eval"] == straight.history["eval"]
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert resumed.best_epoch == straight.best_epoch
    with pytest.raises(ValueError, match="checkpoint was made with"):
        _trainer(tokenizer, tmp_path / "b", data, TrainingConfig(epochs=3, lr=1e-3, batch_size=16, seed=7)).resume()


def test_early_stopping_and_best_weights_are_restored(tokenizer, tmp_path):
    data = toy_sentiment(32, seed=4)
    scores = iter([0.5, 0.9, 0.4, 0.3, 0.2, 0.1])
    trainer = _trainer(tokenizer, tmp_path, data, TrainingConfig(epochs=6, lr=1e-3, batch_size=16, patience=2))
    kept = {}

    def evaluate(m):
        score = next(scores)
        if score == 0.9:
            kept.update({k: v.copy() for k, v in m.state_dict().items()})
        return {"loss_proxy": score}

    trainer.evaluate = evaluate
    trainer.fit()
    assert [e["loss_proxy"] for e in trainer.history["eval"]] == [0.5, 0.9, 0.4, 0.3]  # stopped after 2 worse
    assert trainer.best_epoch == 2 and "early stopping" in trainer.stopped
    for name, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, kept[name], err_msg=name)
    assert (tmp_path / "best.safetensors").is_file() and (tmp_path / "last.ckpt").is_file()


# ------------------------------------------------------------------------------------------ recipe
def _tiny_pretrained(tmp_path, tokenizer, head=BertForSequenceClassification):
    folder = tmp_path / "tiny-bert"
    tiny_model().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_recipe_end_to_end_on_tiny_files(tokenizer, tmp_path):
    import json

    from models.cli import main

    data = tmp_path / "sst2"
    data.mkdir()
    for name, seed, n in (("stsa.binary.train", 1, 48), ("stsa.binary.dev", 2, 16), ("stsa.binary.test", 3, 4)):
        lines = [f"{ex.label} {ex.text_a}" for ex in toy_sentiment(n, seed)]
        (data / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    model_dir = _tiny_pretrained(tmp_path, tokenizer)
    out = tmp_path / "run"
    argv = ["finetune", "--task", "sst2", "--data", str(tmp_path), "--model", str(model_dir), "--out", str(out),
            "--epochs", "1", "--batch-size", "16", "--max-train", "32", "--max-eval", "0", "--no-progress"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"] == {"train": 32, "train_total": 48, "eval": 16, "eval_total": 16, "eval_split": "dev"}
    assert metrics["steps"] == 2 and any("SUBSAMPLED" in n for n in metrics["notes"])
    assert 0.0 <= metrics["final"]["accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == 16
    assert metrics["held_out"]["test"]["examples"] == 4 and 0.0 <= metrics["held_out"]["test"]["accuracy"] <= 1.0
    for name in ("learning_curve.png", "confusion_matrix.png", "best.safetensors", "last.ckpt"):
        assert (out / name).is_file(), name
    assert main(argv[:-1] + ["--resume", "--epochs", "1", "--no-progress"]) == 0  # nothing left: same result
    assert json.loads((out / "metrics.json").read_text())["final"] == metrics["final"]


def test_recipe_reports_bad_paths_without_traceback(tmp_path, capsys):
    from models.cli import main

    assert main(["finetune", "--task", "cola", "--data", str(tmp_path / "missing"), "--model", str(tmp_path)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["finetune", "--task", "cola", "--model", str(tmp_path / "nope")]) == 2


def test_squad_recipe_end_to_end_on_a_tiny_file(tokenizer, tmp_path):
    import json

    from models.cli import main
    from models.metrics import squad_evaluate

    def article(title, n):
        context = "the film was very good , the plot was bad"
        qas = [{"id": f"{title}{i}", "question": "the plot was", "is_impossible": i % 2 == 1,
                "answers": [] if i % 2 else [{"text": "bad", "answer_start": context.index("bad")}]}
               for i in range(n)]
        return {"title": title, "paragraphs": [{"context": context, "qas": qas}]}

    squad = {"version": "v2.0", "data": [article("A", 6), article("B", 4)]}
    (tmp_path / "squad.json").write_text(json.dumps(squad), encoding="utf-8")
    model_dir = _tiny_pretrained(tmp_path, tokenizer)
    out = tmp_path / "run"
    assert main(["finetune", "--task", "squad", "--data", str(tmp_path / "squad.json"), "--model", str(model_dir),
                 "--out", str(out), "--eval-article", "B", "--epochs", "1", "--batch-size", "4",
                 "--max-seq-length", "16", "--doc-stride", "4", "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["train"] == 6 and metrics["data"]["eval"] == 4 and metrics["data"]["train_articles"] == ["A"]
    predictions = json.loads((out / "predictions.json").read_text())
    assert sorted(predictions) == ["B0", "B1", "B2", "B3"]
    expected = squad_evaluate(squad["data"][1:], predictions, version="2.0")
    assert metrics["final"]["exact"] == expected["exact"] and metrics["final"]["f1"] == expected["f1"]
    # the tuned threshold can only do better than threshold 0 on the data it is tuned on
    assert metrics["final"]["best_f1"] >= metrics["final"]["f1"] and metrics["final"]["best_exact"] >= expected["exact"]
    odds = json.loads((out / "null_odds.json").read_text())
    assert sorted(odds) == sorted(predictions)
