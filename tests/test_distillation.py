"""Knowledge distillation (models.distillation): the loss against a direct computation and torch's
``kl_div``, its gradients (gradcheck and the T² rule), the student initialised from exactly the chosen
teacher layers, and a tiny task-specific distillation run (distilled vs hard labels, same steps)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
from minigrad import Tensor
from models.bert import BertConfig, BertForMaskedLM, BertForPreTraining, BertForSequenceClassification, BertModel
from models.data.glue import InputExample
from models.distilbert import DistilBertForMaskedLM, DistilBertForSequenceClassification, DistilBertModel
from models.distillation import (BERT_TO_DISTILBERT_BLOCK, DistillationConfig, distill_classifier,
                                 distillation_loss, every_other_layer, hidden_cosine_loss,
                                 parameters_without_embeddings, soft_target_loss, student_from_teacher)
from models.finetune import TrainingConfig
from models.text.wordpiece import BertTokenizer


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def direct_loss(zs, zt, labels, hs, ht, mask, c: DistillationConfig) -> float:
    """The loss written out in NumPy float64, term by term."""
    T = c.temperature
    p_t, p_s = softmax(zt / T), softmax(zs / T)
    kl = np.sum(p_t * (np.log(p_t) - np.log(p_s))) / len(zs)
    log_p = np.log(softmax(zs))
    keep = labels != -100
    ce = -np.mean(log_p[keep, labels[keep]])
    rows = mask.reshape(-1).astype(bool)
    a, b = hs.reshape(-1, hs.shape[-1])[rows], ht.reshape(-1, ht.shape[-1])[rows]
    cos = np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return c.alpha_ce * T * T * kl + c.alpha_hard * ce + c.alpha_cos * np.mean(1 - cos)


def random_case(seed, N=5, C=4, B=2, T=3, H=6, dtype=np.float64):
    rng = np.random.default_rng(seed)
    zs, zt = rng.normal(0, 2, (N, C)).astype(dtype), rng.normal(0, 2, (N, C)).astype(dtype)
    labels = rng.integers(0, C, N)
    labels[0] = -100
    hs, ht = rng.normal(size=(B, T, H)).astype(dtype), rng.normal(size=(B, T, H)).astype(dtype)
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 1:] = 0
    return zs, zt, labels, hs, ht, mask


# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------
@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), temperature=st.floats(0.5, 8.0), n=st.integers(1, 6), c=st.integers(2, 7))
def test_soft_target_loss_equals_torch_kl_div_times_t_squared(seed, temperature, n, c):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(seed)
    zs, zt = rng.normal(0, 3, (n, c)), rng.normal(0, 3, (n, c))
    ours = soft_target_loss(Tensor(zs), zt, temperature)
    log_p_s = F.log_softmax(torch.from_numpy(zs) / temperature, -1)
    p_t = F.softmax(torch.from_numpy(zt) / temperature, -1)
    ref = F.kl_div(log_p_s, p_t, reduction="batchmean", log_target=False) * temperature ** 2
    assert abs(float(ours.data) - float(ref)) <= 1e-10 * max(1.0, abs(float(ref)))
    p_t, p_s = softmax(zt / temperature), softmax(zs / temperature)
    direct = temperature ** 2 * np.sum(p_t * np.log(p_t / p_s)) / n
    assert abs(float(ours.data) - direct) <= 1e-9 * max(1.0, direct)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_distillation_loss_equals_the_direct_computation(dtype):
    config = DistillationConfig(temperature=3.0, alpha_ce=5.0, alpha_hard=2.0, alpha_cos=1.0)
    zs, zt, labels, hs, ht, mask = random_case(0, dtype=dtype)
    out = distillation_loss(Tensor(zs), zt, labels, Tensor(hs), ht, mask, config)
    expected = direct_loss(*(a.astype(np.float64) if a.dtype.kind == "f" else a
                             for a in (zs, zt, labels, hs, ht, mask)), config)
    tol = 1e-10 if dtype == np.float64 else 1e-5
    assert abs(float(out.loss.data) - expected) <= tol * max(1.0, expected)
    assert set(out) == {"loss", "soft_loss", "hard_loss", "cosine_loss"}
    total = 5.0 * float(out.soft_loss.data) + 2.0 * float(out.hard_loss.data) + float(out.cosine_loss.data)
    assert abs(total - float(out.loss.data)) <= tol * max(1.0, total)


def test_cosine_term_equals_torch_cosine_embedding_loss_and_skips_padding():
    torch = pytest.importorskip("torch")
    _, _, _, hs, ht, mask = random_case(1)
    rows = mask.reshape(-1).astype(bool)
    a, b = torch.from_numpy(hs.reshape(-1, 6)[rows]), torch.from_numpy(ht.reshape(-1, 6)[rows])
    ref = torch.nn.functional.cosine_embedding_loss(a, b, torch.ones(len(a)))
    ours = hidden_cosine_loss(Tensor(hs), ht, mask)
    assert abs(float(ours.data) - float(ref)) < 1e-12
    changed = ht.copy()
    changed[1, 2] += 100.0  # a padding position: no effect
    assert float(hidden_cosine_loss(Tensor(hs), changed, mask).data) == float(ours.data)
    assert float(hidden_cosine_loss(Tensor(ht), ht, mask).data) < 1e-12


def test_loss_gradients_pass_gradcheck():
    zs, zt, labels, hs, ht, mask = random_case(2)
    config = DistillationConfig(temperature=2.5, alpha_ce=1.5, alpha_hard=0.7, alpha_cos=2.0)

    def loss(student_logits, student_hidden):
        return distillation_loss(student_logits, zt, labels, student_hidden, ht, mask, config).loss

    assert minigrad.gradcheck(loss, (Tensor(zs, requires_grad=True), Tensor(hs, requires_grad=True)))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 10.0])
def test_soft_gradient_is_t_times_the_probability_gap(temperature):
    """d(T²·KL)/dz_s = T·(softmax(z_s/T) − softmax(z_t/T)) / N: without the T² it would shrink as 1/T²."""
    zs, zt, *_ = random_case(3)
    x = Tensor(zs, requires_grad=True)
    soft_target_loss(x, zt, temperature).backward()
    expected = temperature * (softmax(zs / temperature) - softmax(zt / temperature)) / len(zs)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-9, atol=1e-12)


def test_a_term_with_alpha_zero_needs_no_inputs_and_errors_name_the_missing_input():
    zs, zt, labels, *_ = random_case(4)
    out = distillation_loss(Tensor(zs), zt, labels, config=DistillationConfig(alpha_cos=0.0))
    assert "cosine_loss" not in out
    with pytest.raises(ValueError, match="alpha_cos=1.0 needs student_hidden and teacher_hidden"):
        distillation_loss(Tensor(zs), zt, labels)
    with pytest.raises(ValueError, match="alpha_hard=2.0 needs labels"):
        distillation_loss(Tensor(zs), zt, None, config=DistillationConfig(alpha_cos=0.0))
    with pytest.raises(ValueError, match=r"soft_target_loss: student_logits and teacher_logits must both have shape"):
        soft_target_loss(Tensor(zs), zt[:, :2])
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        DistillationConfig(temperature=0.0)
    with pytest.raises(ValueError, match="every alpha is 0"):
        DistillationConfig(alpha_ce=0, alpha_hard=0, alpha_cos=0)


# ----------------------------------------------------------------------------------------------
# The student
# ----------------------------------------------------------------------------------------------
def teacher_config(**changes):
    base = dict(vocab_size=53, hidden_size=24, num_hidden_layers=6, num_attention_heads=3, intermediate_size=40,
                max_position_embeddings=24, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3)
    return BertConfig(**{**base, **changes})


def single_sentences(seed=0, B=3, T=9):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, 53, (B, T))
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 5:], mask[2, 3:] = 0, 0
    return ids * mask, mask


@pytest.mark.parametrize("layers", [None, (1, 3), (5,)])
def test_the_student_copies_exactly_the_chosen_teacher_layers(layers):
    teacher = BertForSequenceClassification(teacher_config(), generator=minigrad.Generator(0)).eval()
    student = student_from_teacher(teacher, layers)
    chosen = every_other_layer(6) if layers is None else layers
    assert isinstance(student, DistilBertForSequenceClassification) and student.config.n_layers == len(chosen)
    t, s = teacher.state_dict(), student.state_dict()
    for new, old in enumerate(chosen):
        for bert_name, distil_name in BERT_TO_DISTILBERT_BLOCK.items():
            for kind in ("weight", "bias"):
                np.testing.assert_array_equal(s[f"distilbert.transformer.layer.{new}.{distil_name}.{kind}"],
                                              t[f"bert.encoder.layer.{old}.{bert_name}.{kind}"])
    np.testing.assert_array_equal(s["pre_classifier.weight"], t["bert.pooler.dense.weight"])
    np.testing.assert_array_equal(s["classifier.bias"], t["classifier.bias"])
    np.testing.assert_array_equal(s["distilbert.embeddings.position_embeddings.weight"],
                                  t["bert.embeddings.position_embeddings.weight"]
                                  + t["bert.embeddings.token_type_embeddings.weight"][0])
    # the same function: a BERT with just those layers computes the student's hidden states
    short = BertModel(teacher_config(num_hidden_layers=len(chosen)), add_pooling_layer=False)
    state = {k[len("bert."):]: v for k, v in t.items() if k.startswith("bert.") and ".layer." not in k
             and "pooler" not in k}
    for new, old in enumerate(chosen):
        state.update({k.replace(f"bert.encoder.layer.{old}.", f"encoder.layer.{new}."): v for k, v in t.items()
                      if k.startswith(f"bert.encoder.layer.{old}.")})
    short.load_state_dict(state)
    ids, mask = single_sentences()
    expected = short.eval()(ids, mask).last_hidden_state.data
    np.testing.assert_allclose(student(ids, mask).last_hidden_state.data, expected, atol=2e-6)
    student.distilbert.transformer.layer[0].attention.q_lin.weight.data[...] = 0.0  # copies: the teacher keeps its own
    assert np.abs(teacher.bert.encoder.layer[chosen[0]].attention.self.query.weight.data).max() > 0


def test_a_student_with_every_layer_computes_what_the_teacher_computes():
    ids, mask = single_sentences(1)
    for cls, student_cls, key in ((BertModel, DistilBertModel, "last_hidden_state"),
                                  (BertForMaskedLM, DistilBertForMaskedLM, "logits"),
                                  (BertForPreTraining, DistilBertForMaskedLM, "prediction_logits")):
        teacher = cls(teacher_config(), generator=minigrad.Generator(2)).eval()
        student = student_from_teacher(teacher, range(6))
        assert type(student) is student_cls
        ours = student(ids, mask)["logits" if key == "prediction_logits" else key].data
        np.testing.assert_allclose(ours, teacher(ids, mask)[key].data, atol=3e-6)


def test_student_size_and_bad_requests():
    teacher = BertForSequenceClassification(teacher_config(), generator=minigrad.Generator(3))
    student = student_from_teacher(teacher)
    per_layer = parameters_without_embeddings(BertModel(teacher_config(num_hidden_layers=1), add_pooling_layer=False))
    assert parameters_without_embeddings(student) == 3 * per_layer + (24 * 24 + 24) + (24 * 3 + 3)
    with pytest.raises(ValueError, match=r"layers must be distinct increasing indices in \[0, 6\)"):
        student_from_teacher(teacher, (0, 6))
    with pytest.raises(ValueError, match="distinct increasing"):
        student_from_teacher(teacher, (2, 1))
    with pytest.raises(ValueError, match="layer_norm_eps is 1e-05"):
        student_from_teacher(BertModel(teacher_config(layer_norm_eps=1e-5)))
    with pytest.raises(TypeError, match="teacher must be a BERT model"):
        student_from_teacher(student)


# ----------------------------------------------------------------------------------------------
# Task-specific distillation, tiny
# ----------------------------------------------------------------------------------------------
WORDS = ["good", "bad", "the", "film", "was", "plot", "a", "very", "acting", "music"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS


def toy_sentiment(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = int(rng.integers(2))
        words = list(rng.choice(WORDS[2:], size=rng.integers(2, 6)))
        words.insert(int(rng.integers(len(words) + 1)), "good" if label else "bad")
        out.append(InputExample(" ".join(words), None, label, str(i)))
    return out


def test_task_distillation_runs_the_same_steps_with_and_without_the_teacher():
    tokenizer = BertTokenizer(VOCAB)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    teacher = BertForSequenceClassification(config, generator=minigrad.Generator(0)).eval()
    train, dev = toy_sentiment(48, 1), toy_sentiment(16, 2)
    training = TrainingConfig(epochs=2, lr=3e-3, batch_size=16, seed=0, patience=None)
    runs = {}
    for name, distillation in (("distilled", DistillationConfig()), ("hard", None), ("again", DistillationConfig())):
        student = student_from_teacher(teacher, (1,))
        runs[name] = distill_classifier(student, teacher, tokenizer, train, dev, "sst2", training, distillation,
                                        max_seq_length=12, log=lambda *_: None, progress=False)
    (a, preds_a, labels), (b, _, _), (again, preds_again, _) = runs["distilled"], runs["hard"], runs["again"]
    assert a.global_step == b.global_step == 6
    steps = a.loop.history["steps"]
    assert {"soft_loss", "hard_loss", "cosine_loss"} <= set(steps)
    assert "soft_loss" not in b.loop.history["steps"]
    assert a.history["loss"] == again.history["loss"] and np.array_equal(preds_a, preds_again)  # same seed
    assert a.history["loss"] != b.history["loss"]
    assert len(preds_a) == len(labels) == 16
    with pytest.raises(ValueError, match="regression"):
        distill_classifier(student_from_teacher(teacher), teacher, tokenizer, train, dev, "sick-sts", training, None)


# ----------------------------------------------------------------------------------------------
# The recipe, on a tiny pre-trained BERT and a tiny SST-2
# ----------------------------------------------------------------------------------------------
def _tiny_sst2(tmp_path):
    data = tmp_path / "data" / "sst2"
    data.mkdir(parents=True)
    for split, (n, seed) in {"train": (48, 1), "dev": (16, 2), "test": (16, 3)}.items():
        lines = [f"{e.label} {e.text_a}" for e in toy_sentiment(n, seed)]
        (data / f"stsa.binary.{split}").write_text("\n".join(lines) + "\n")
    base = tmp_path / "base"
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    BertForSequenceClassification(config, generator=minigrad.Generator(0)).save_pretrained(base)
    BertTokenizer(VOCAB).save_pretrained(base)
    return tmp_path / "data", base


def test_distill_recipe_trains_teacher_and_both_students_and_writes_the_table(tmp_path, capsys):
    import json

    from models.cli import main

    data, base = _tiny_sst2(tmp_path)
    out = tmp_path / "out"
    args = ["distill", "--task", "sst2", "--data", str(data), "--model", str(base), "--out", str(out), "--epochs", "1",
            "--batch-size", "16", "--max-seq-length", "12", "--repeats", "1", "--no-plot", "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    teacher, distilled, hard = metrics["rows"]
    assert (teacher["layers"], distilled["layers"], hard["layers"]) == (4, 2, 2)  # layers 0 and 2 of 4
    assert teacher["steps"] == distilled["steps"] == hard["steps"] == 3  # 48 examples / 16, one epoch
    assert set(distilled["scores"]) == {"dev", "test"}
    assert "book: DistilBERT" in metrics["table"] and "0.0055 (GPU)" in metrics["table"]
    student = DistilBertForSequenceClassification.from_pretrained(out / "student-distilled")
    assert student.config.n_layers == 2
    assert main(args[:-2] + ["--student-layers", "0,x"]) == 2
    assert "--student-layers must be comma-separated integers" in capsys.readouterr().err
