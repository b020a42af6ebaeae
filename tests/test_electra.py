"""ELECTRA (models.electra) against Hugging Face transformers: the generator, the discriminator and the classifier,
outputs, every gradient, checkpoints both ways, parameter counts; the generator/discriminator pair (shared
embeddings, no gradient through the sampling, clear errors for mismatched configs) and the electra-pretrain recipe."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import minigrad
from models.electra import (ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining,
                            ElectraForSequenceClassification, ElectraModel, ElectraPretrainer, count_parameters,
                            generator_config)
from encoder_parity import (assert_close, assert_loss_and_grads_equal_hf, assert_outputs_equal_hf, mlm_labels,
                            padded_pairs, torch_inputs)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = {  # E < H (embeddings_project) and E = H (none, as HF)
    "projected": dict(vocab_size=97, embedding_size=12, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=37, max_position_embeddings=20),
    "square": dict(vocab_size=61, embedding_size=24, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                   intermediate_size=48, max_position_embeddings=16, hidden_act="gelu_new", pad_token_id=2),
}
HF = {"model": "ElectraModel", "masked_lm": "ElectraForMaskedLM", "pretraining": "ElectraForPreTraining",
      "sequence_classification": "ElectraForSequenceClassification"}
OURS = {"model": ElectraModel, "masked_lm": ElectraForMaskedLM, "pretraining": ElectraForPreTraining,
        "sequence_classification": ElectraForSequenceClassification}
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def hf_config(name: str, **extra):
    return transformers.ElectraConfig(**SMALL[name], **NO_DROPOUT, **extra)


def batch(name: str, seed: int = 0):
    return padded_pairs(SMALL[name]["vocab_size"], SMALL[name].get("pad_token_id", 0), seed)


@pytest.mark.parametrize("name", list(SMALL))
def test_outputs_of_every_class_equal_hf(tmp_path, name):
    ids, mask, types = batch(name)
    for head in OURS:
        out = assert_outputs_equal_hf(OURS[head], getattr(transformers, HF[head]), hf_config(name, num_labels=3),
                                      tmp_path / head, ids, mask, types,
                                      keys=("last_hidden_state" if head == "model" else "logits",), seed=1)
        assert out.hidden_states[0].shape[-1] == SMALL[name]["hidden_size"]  # projected E → H before layer 0
        if head == "model":  # the E → H projection exists only when E ≠ H, as in HF
            names = ElectraModel.from_pretrained(tmp_path / head).state_dict()
            assert any(k.startswith("embeddings_project.") for k in names) == (name == "projected")


@pytest.mark.parametrize("head", list(OURS))
def test_loss_and_every_gradient_equal_hf(tmp_path, head):
    ids, mask, types = batch("projected", seed=4)
    labels = {"model": None, "masked_lm": {"labels": mlm_labels(ids)},
              # replaced (1) / original (0) for every token; the padding is not scored
              "pretraining": {"labels": np.random.default_rng(5).integers(0, 2, ids.shape)},
              "sequence_classification": {"labels": np.array([0, 2, 1])}}[head]
    assert_loss_and_grads_equal_hf(OURS[head], getattr(transformers, HF[head]), hf_config("projected", num_labels=3),
                                   tmp_path, ids, mask, types, labels)


@pytest.mark.parametrize("head", list(OURS))
def test_save_pretrained_loads_in_hf(tmp_path, head):
    ours = OURS[head](ElectraConfig(**SMALL["projected"], num_labels=3), generator=minigrad.Generator(7)).eval()
    ours.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "electra"
    ref = getattr(transformers, HF[head]).from_pretrained(tmp_path, local_files_only=True).eval()
    ids, mask, types = batch("projected", seed=8)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types))
    key = "last_hidden_state" if head == "model" else "logits"
    assert_close(ours(ids, mask, types)[key], expected[key])


def test_parameter_counts_equal_hf():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = transformers.ElectraModel(transformers.ElectraConfig())  # google/electra-small-discriminator
    assert count_parameters(ElectraConfig()) == small.num_parameters() == 13_483_008
    for name in SMALL:
        assert count_parameters(ElectraConfig(**SMALL[name])) == ElectraModel(ElectraConfig(**SMALL[name])).num_parameters()


# ----------------------------------------------------------------------------------------------
# generator + discriminator
# ----------------------------------------------------------------------------------------------
def pair_and_batch(seed: int = 0, rtd_weight: float = 50.0):
    disc = ElectraConfig(**SMALL["projected"], **NO_DROPOUT)
    pair = ElectraPretrainer(generator_config(disc, 0.25), disc, rtd_weight, generator=minigrad.Generator(seed))
    ids, mask, types = batch("projected", seed)
    from models.bert_pretraining import mask_tokens

    special = (mask == 0)
    special[:, 0] = True
    masked, labels = mask_tokens(ids, special, disc.vocab_size, 4, np.random.default_rng(seed), 0.3)
    return pair, {"input_ids": masked, "labels": labels, "original_ids": ids, "attention_mask": mask,
                  "token_type_ids": types}


def test_generator_config_is_a_quarter_of_the_discriminator():
    disc = ElectraConfig(hidden_size=256, num_attention_heads=4, intermediate_size=1024)
    gen = generator_config(disc)
    assert (gen.hidden_size, gen.num_attention_heads, gen.intermediate_size) == (64, 1, 256)
    assert gen.embedding_size == disc.embedding_size and gen.num_hidden_layers == disc.num_hidden_layers
    with pytest.raises(ValueError, match="generator_config: fraction must be in \\(0, 1\\]"):
        generator_config(disc, 0.0)


def test_the_pair_shares_the_embeddings():
    pair, _ = pair_and_batch()
    gen, disc = pair.generator, pair.discriminator
    assert gen.electra.embeddings is disc.electra.embeddings
    assert gen.generator_lm_head.weight is disc.electra.embeddings.word_embeddings.weight
    shared = sum(p.data.size for p in disc.electra.embeddings.parameters())
    assert pair.num_parameters() == gen.num_parameters() + disc.num_parameters() - shared


def test_loss_is_mlm_plus_lambda_rtd_and_no_gradient_flows_through_the_sampling():
    pair, data = pair_and_batch(seed=1)
    pair.train()
    loss, parts = pair(data, np.random.default_rng(9))
    assert abs(float(loss.data) - (parts["mlm_loss"] + 50.0 * parts["rtd_loss"])) < 1e-4
    loss.backward()
    total = {name: p.grad.copy() for name, p in pair.named_parameters()}
    # the generator's own weights learn from its MLM loss only
    pair.zero_grad()
    gen_out = pair.generator(data["input_ids"], data["attention_mask"], data["token_type_ids"], labels=data["labels"],
                             skip_padding=True)
    gen_out.loss.backward()
    for name, p in pair.named_parameters():
        if name.startswith("generator.") and ".embeddings." not in name:
            np.testing.assert_allclose(total[name], p.grad, atol=1e-7, err_msg=name)
    # and the discriminator's from λ·RTD only, on the tokens the same draw sampled
    pair.zero_grad()
    from models.pretraining_data import electra_discriminator_inputs, sample_replacements

    sampled = sample_replacements(gen_out.masked_lm_logits.data, np.random.default_rng(9))
    disc_ids, rtd = electra_discriminator_inputs(data["original_ids"], data["labels"], sampled)
    disc_out = pair.discriminator(disc_ids, data["attention_mask"], data["token_type_ids"], labels=rtd)
    (disc_out.loss * 50.0).backward()
    for name, p in pair.named_parameters():
        if name.startswith("discriminator.") and ".embeddings." not in name:
            np.testing.assert_allclose(total[name], p.grad, atol=1e-6, rtol=1e-4, err_msg=name)
    assert 0.0 <= parts["rtd_auc"] <= 1.0 and parts["mlm_accuracy"][1] == int((data["labels"] != -100).sum())


def test_mismatched_generator_and_discriminator_are_refused():
    disc = ElectraConfig(**SMALL["projected"])
    with pytest.raises(ValueError, match="they differ in vocab_size: generator 50 vs discriminator 97"):
        ElectraPretrainer(generator_config(disc).replace(vocab_size=50), disc)
    with pytest.raises(ValueError, match="embedding_size: generator 16 vs discriminator 12"):
        ElectraPretrainer(generator_config(disc).replace(embedding_size=16), disc)
    with pytest.raises(TypeError, match="the generator config must be an ElectraConfig"):
        from models.bert import BertConfig

        ElectraPretrainer(BertConfig(), disc)
    with pytest.raises(ValueError, match="ElectraForPreTraining: labels must be 0 \\(original\\) or 1"):
        ids, mask, types = batch("projected")
        ElectraForPreTraining(disc)(ids, mask, types, labels=np.full(ids.shape, 2))


def test_pair_checkpoints_are_two_hf_models(tmp_path):
    pair, data = pair_and_batch(seed=2)
    pair.eval().save_pretrained(tmp_path)
    gen = transformers.ElectraForMaskedLM.from_pretrained(tmp_path / "generator", local_files_only=True).eval()
    disc = transformers.ElectraForPreTraining.from_pretrained(tmp_path / "discriminator", local_files_only=True).eval()
    ids, mask, types = data["original_ids"], data["attention_mask"], data["token_type_ids"]
    with torch.no_grad():
        assert_close(pair.generator(ids, mask, types).logits, gen(**torch_inputs(ids, mask, types)).logits)
        assert_close(pair.discriminator(ids, mask, types).logits, disc(**torch_inputs(ids, mask, types)).logits)
    assert torch.equal(gen.electra.embeddings.word_embeddings.weight, disc.electra.embeddings.word_embeddings.weight)


# ----------------------------------------------------------------------------------------------
# the recipe
# ----------------------------------------------------------------------------------------------
def test_electra_pretrain_recipe(tmp_path, capsys):
    from pydoc_data.topics import topics

    from models.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(topics[k] for k in sorted(topics)[:30]), encoding="utf-8")
    args = ["electra-pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--vocab-size", "400",
            "--hidden", "16", "--heads", "2", "--layers", "1", "--embedding-size", "8", "--max-seq-length", "32",
            "--batch-size", "8", "--epochs", "1", "--no-plot", "--no-progress"]
    assert main(args + ["--max-steps", "2"]) == 0
    assert main(args + ["--max-steps", "3", "--resume"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    steps = metrics["history"]["steps"]
    assert steps["step"] == [1, 2, 3] and all(0 <= a <= 1 for a in steps["rtd_auc"] + steps["rtd_accuracy"])
    assert transformers.ElectraForPreTraining.from_pretrained(tmp_path / "run" / "discriminator",
                                                              local_files_only=True)
    assert main(args + ["--generator-size", "2"]) == 2
    assert "--generator-size in (0, 1]" in capsys.readouterr().err
