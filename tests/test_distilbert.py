"""DistilBERT (models.distilbert) against Hugging Face transformers: outputs, gradients, checkpoints both
ways, the parameter count of the default config, the BERT blocks it shares, and clear errors."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import minigrad
from models.bert.modeling import BertEmbeddings, BertEncoder, BertSelfAttention
from models.distilbert import (DistilBertConfig, DistilBertForMaskedLM, DistilBertForSequenceClassification,
                               DistilBertModel, backbone_shapes, count_parameters, head_shapes, sinusoidal_positions)
from tests.tolerances import assert_close

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = {
    "gelu": dict(vocab_size=97, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=40,
                 activation="gelu"),
    "relu": dict(vocab_size=61, dim=24, n_layers=3, n_heads=2, hidden_dim=48, max_position_embeddings=16,
                 activation="relu", pad_token_id=3),
}
NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0, qa_dropout=0.0)
CLASSES = {"model": (DistilBertModel, "DistilBertModel"), "masked_lm": (DistilBertForMaskedLM, "DistilBertForMaskedLM"),
           "sequence_classification": (DistilBertForSequenceClassification, "DistilBertForSequenceClassification")}


def hf_model(head: str, name: str, seed: int = 0, **extra):
    torch.manual_seed(seed)
    config = transformers.DistilBertConfig(**SMALL[name], **NO_DROPOUT, **extra)
    return getattr(transformers, CLASSES[head][1])(config).eval()


def padded_batch(cfg: dict, seed: int = 0, B: int = 3, T: int = 11):
    """Token ids with right padding (lengths T, T − 4, 5) and their attention mask."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(4, cfg["vocab_size"], (B, T))
    lengths = np.array([T, T - 4, 5][:B])
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    ids[mask == 0] = cfg.get("pad_token_id", 0)
    return ids, mask


def torch_inputs(ids, mask):
    return dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))


def check(ours, ref, what):
    assert_close(ours.data if isinstance(ours, minigrad.Tensor) else ours, ref.detach().numpy(), np.float32, what)


# ----------------------------------------------------------------------------------------------
# HF checkpoint -> ours: outputs
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_model_outputs_and_hidden_states_equal_hf(tmp_path, name):
    ref = hf_model("model", name)
    ref.save_pretrained(tmp_path)
    ours = DistilBertModel.from_pretrained(tmp_path)
    ids, mask = padded_batch(SMALL[name])
    out = ours(ids, mask, output_hidden_states=True)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask), output_hidden_states=True)
    check(out.last_hidden_state, expected.last_hidden_state, "last_hidden_state")
    assert len(out.hidden_states) == SMALL[name]["n_layers"] + 1 == len(expected.hidden_states)
    for i, (a, b) in enumerate(zip(out.hidden_states, expected.hidden_states)):
        check(a, b, f"hidden_states[{i}]")
    diff = np.abs(out.last_hidden_state.data - expected.last_hidden_state.numpy()).max()
    assert diff < 1e-5, diff


@pytest.mark.parametrize("name", list(SMALL))
def test_head_logits_equal_hf(tmp_path, name):
    ids, mask = padded_batch(SMALL[name], seed=1)
    for head in ("masked_lm", "sequence_classification"):
        ref = hf_model(head, name, seed=2, num_labels=3)
        ref.save_pretrained(tmp_path / head)
        ours = CLASSES[head][0].from_pretrained(tmp_path / head)
        with torch.no_grad():
            expected = ref(**torch_inputs(ids, mask)).logits
        logits = ours(ids, mask).logits
        check(logits, expected, f"{head} logits")
        assert np.abs(logits.data - expected.numpy()).max() < 1e-5


def test_output_attentions_equal_hf_eager(tmp_path):
    ref = hf_model("model", "gelu", attn_implementation="eager")
    ref.save_pretrained(tmp_path)
    ours = DistilBertModel.from_pretrained(tmp_path)
    ids, mask = padded_batch(SMALL["gelu"])
    out = ours(ids, mask, output_attentions=True)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (3, 4, 11, 11)
    for a, b in zip(out.attentions, expected.attentions):
        check(a, b, "attention weights")
    assert np.all(out.attentions[0].data[2, :, :, 5:] == 0)  # no weight on padding keys


def test_skip_padding_gives_the_same_numbers(tmp_path):
    hf_model("sequence_classification", "gelu").save_pretrained(tmp_path)
    a = DistilBertForSequenceClassification.from_pretrained(tmp_path).train()
    b = DistilBertForSequenceClassification.from_pretrained(tmp_path).train()
    ids, mask = padded_batch(SMALL["gelu"], seed=5)
    labels = np.array([1, 0, 1])
    out_a, out_b = a(ids, mask, labels=labels), b(ids, mask, labels=labels, skip_padding=True)
    real = mask.astype(bool)
    np.testing.assert_allclose(out_b.last_hidden_state.data[real], out_a.last_hidden_state.data[real], atol=1e-5)
    out_a.loss.backward()
    out_b.loss.backward()
    for (k, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(pb.grad, pa.grad, atol=1e-5, err_msg=k)


# ----------------------------------------------------------------------------------------------
# Losses and gradients
# ----------------------------------------------------------------------------------------------
def _grads_equal(ours, ref) -> int:
    grads = {k: p.grad for k, p in ours.named_parameters()}
    n = 0
    for k, p in ref.named_parameters():
        assert p.grad is not None, f"HF has no gradient for {k}"
        assert grads.get(k) is not None, f"no gradient for {k}"
        assert_close(grads[k], p.grad, np.float32, f"grad {k}")
        assert np.abs(grads[k] - p.grad.numpy()).max() <= 1e-4 * max(1.0, float(np.abs(p.grad.numpy()).max())), k
        n += 1
    return n


@pytest.mark.parametrize("head", ["sequence_classification", "masked_lm", "regression"])
def test_loss_and_every_gradient_equal_hf(tmp_path, head):
    name = "gelu"
    labels_num = 1 if head == "regression" else 3
    kind = "sequence_classification" if head == "regression" else head
    ref = hf_model(kind, name, seed=3, num_labels=labels_num).train()
    ref.save_pretrained(tmp_path)
    ours = CLASSES[kind][0].from_pretrained(tmp_path).train()
    ids, mask = padded_batch(SMALL[name], seed=4)
    if head == "sequence_classification":
        labels = np.array([0, 2, 1])
    elif head == "regression":
        labels = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    else:
        labels = np.full(ids.shape, -100)
        labels[0, [2, 5]], labels[1, 3], labels[2, 1] = ids[0, [2, 5]], ids[1, 3], 7
    out = ours(ids, mask, labels=labels)
    out.loss.backward()
    expected = ref(**torch_inputs(ids, mask), labels=torch.from_numpy(labels))
    expected.loss.backward()
    assert abs(float(out.loss.data) - float(expected.loss.detach())) < 1e-5
    assert _grads_equal(ours, ref) == len(list(ref.parameters()))


def test_masked_lm_logits_at_masked_positions_equal_the_full_logits(tmp_path):
    hf_model("masked_lm", "relu").save_pretrained(tmp_path)
    ours = DistilBertForMaskedLM.from_pretrained(tmp_path)
    ids, mask = padded_batch(SMALL["relu"])
    labels = np.full(ids.shape, -100)
    labels[0, 1], labels[2, 4] = 5, 9
    out = ours(ids, mask, labels=labels, full_logits=True)
    np.testing.assert_allclose(out.masked_lm_logits.data, out.logits.data[[0, 2], [1, 4]], atol=1e-6)
    assert "logits" not in ours(ids, mask, labels=labels)  # only the masked rows by default


# ----------------------------------------------------------------------------------------------
# Ours -> HF
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", list(CLASSES))
def test_save_pretrained_loads_in_hf(tmp_path, head):
    config = DistilBertConfig(**SMALL["relu"], num_labels=3)
    ours = CLASSES[head][0](config, generator=minigrad.Generator(7)).eval()
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "distilbert" and saved["architectures"] == [CLASSES[head][1]]
    names = set(minigrad.load(tmp_path / "model.safetensors"))
    assert "vocab_projector.weight" not in names  # tied to the word embeddings, as HF writes it
    assert not any("token_type" in n or "pooler" in n for n in names)
    ref = getattr(transformers, CLASSES[head][1]).from_pretrained(tmp_path, local_files_only=True).eval()
    ids, mask = padded_batch(SMALL["relu"], seed=8)
    key = "last_hidden_state" if head == "model" else "logits"
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask))[key]
    check(ours(ids, mask)[key], expected, f"{head} {key}")


def test_a_bare_checkpoint_gets_a_fresh_head_with_a_warning(tmp_path):
    hf_model("model", "gelu").save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="newly initialised"):
        model = DistilBertForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    assert sorted(model.newly_initialized) == sorted(head_shapes(model.config, "sequence_classification"))
    bare = DistilBertModel.from_pretrained(tmp_path)
    np.testing.assert_array_equal(model.distilbert.embeddings.word_embeddings.weight.data,
                                  bare.embeddings.word_embeddings.weight.data)
    hf_model("sequence_classification", "gelu").save_pretrained(tmp_path / "cls")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the classifier's own head is skipped silently by the bare model
        DistilBertModel.from_pretrained(tmp_path / "cls")


# ----------------------------------------------------------------------------------------------
# Size, shared blocks, config
# ----------------------------------------------------------------------------------------------
def test_parameter_count_of_the_default_config_and_of_small_models_equal_hf():
    assert count_parameters(DistilBertConfig()) == 66_362_880  # distilbert-base-uncased
    assert count_parameters(DistilBertConfig(), embeddings=False) == 42_527_232  # the book's 42.5 M
    for name in SMALL:
        config = DistilBertConfig(**SMALL[name])
        ours = DistilBertModel(config)
        assert ours.num_parameters() == count_parameters(config) == hf_model("model", name).num_parameters()
        assert {k: v.shape for k, v in ours.state_dict().items()} == backbone_shapes(config)


def test_distilbert_is_built_from_berts_blocks():
    model = DistilBertForSequenceClassification(DistilBertConfig(**SMALL["gelu"]))
    assert isinstance(model.distilbert.transformer, BertEncoder)
    assert isinstance(model.distilbert.embeddings, BertEmbeddings)
    assert "token_type_embeddings" not in model.distilbert.embeddings._modules
    assert all(isinstance(block.attention, BertSelfAttention) for block in model.distilbert.transformer.layer)


def test_sinusoidal_positions_equal_hf():
    from transformers.models.distilbert.modeling_distilbert import _create_sinusoidal_embeddings

    expected = _create_sinusoidal_embeddings(20, 16, torch.empty(20, 16))
    np.testing.assert_allclose(sinusoidal_positions(20, 16), expected.numpy(), atol=1e-7)
    model = DistilBertModel(DistilBertConfig(**SMALL["gelu"], sinusoidal_pos_embds=True))
    np.testing.assert_allclose(model.embeddings.position_embeddings.weight.data, sinusoidal_positions(40, 32))


def test_config_round_trip_keeps_hf_keys():
    config = DistilBertConfig.from_dict({**SMALL["relu"], "model_type": "distilbert", "id2label": {"0": "a", "1": "b",
                                         "2": "c"}, "some_future_key": 1, "transformers_version": "5"})
    assert config.num_labels == 3 and config.extra["some_future_key"] == 1
    assert config.hidden_size == 24 and config.num_hidden_layers == 3 and config.type_vocab_size == 0
    again = DistilBertConfig.from_dict(config.to_dict())
    assert again == config and again.extra == config.extra


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
def test_bad_configs_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="dim=30 is not a multiple of n_heads=4"):
        DistilBertConfig(dim=30, n_heads=4)
    with pytest.raises(ValueError, match="activation must be one of"):
        DistilBertConfig(activation="swish2")
    with pytest.raises(ValueError, match="seq_classif_dropout must be a probability"):
        DistilBertConfig(seq_classif_dropout=1.5)
    with pytest.raises(ValueError, match="model_type is 'bert'"):
        DistilBertConfig.from_dict({"model_type": "bert"})


def test_a_mismatched_checkpoint_lists_every_problem(tmp_path):
    hf_model("model", "gelu").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["n_layers"], config["hidden_dim"] = 3, 40
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as err:
        DistilBertModel.from_pretrained(tmp_path)
    text = str(err.value)
    assert "DistilBertModel.from_pretrained" in text and "missing" in text and "mis-shaped" in text
    assert "transformer.layer.2.attention.q_lin.weight" in text and "ffn.lin1.weight" in text


def test_bad_inputs_are_refused(tmp_path):
    model = DistilBertModel(DistilBertConfig(**SMALL["gelu"]))
    with pytest.raises(ValueError, match=r"DistilBertModel: input_ids must lie in \[0, vocab_size=97\)"):
        model(np.array([[1, 200]]))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=40"):
        model(np.ones((1, 41), dtype=np.int64))
    with pytest.raises(TypeError, match="config must be a DistilBertConfig"):
        DistilBertModel(object())
