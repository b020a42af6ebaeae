"""RoBERTa (models.roberta) and its tokenizer against Hugging Face transformers: positions from padding_idx + 1,
outputs, every gradient, checkpoints both ways, parameter counts, the byte-level BPE tokenizer, clear errors,
and the roberta-pretrain recipe."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import minigrad
from models.roberta import (RobertaConfig, RobertaForMaskedLM, RobertaForSequenceClassification, RobertaModel,
                            count_parameters, create_position_ids_from_input_ids)
from encoder_parity import (assert_close, assert_loss_and_grads_equal_hf, assert_outputs_equal_hf, mlm_labels,
                            padded_pairs, saved_hf_model, torch_inputs)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = {  # roberta-base's layout (pad 1, one token type) and one with pad 0 and two token types
    "base-like": dict(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                      max_position_embeddings=16, type_vocab_size=1, pad_token_id=1, layer_norm_eps=1e-5),
    "types": dict(vocab_size=61, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48,
                  max_position_embeddings=14, type_vocab_size=2, pad_token_id=0, hidden_act="gelu_new"),
}
HF = {"model": "RobertaModel", "masked_lm": "RobertaForMaskedLM", "sequence_classification":
      "RobertaForSequenceClassification"}
OURS = {"model": RobertaModel, "masked_lm": RobertaForMaskedLM, "sequence_classification":
        RobertaForSequenceClassification}


def hf_config(name: str, **extra):
    return transformers.RobertaConfig(**SMALL[name], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                      **extra)


def batch(name: str, seed: int = 0):
    cfg = SMALL[name]
    return padded_pairs(cfg["vocab_size"], cfg["pad_token_id"], seed, types=cfg["type_vocab_size"] > 1)


def test_positions_start_after_padding_idx_as_hf():
    rng = np.random.default_rng(0)
    for pad in (0, 1, 5):
        ids = rng.integers(0, 9, (4, 13))
        ref = transformers.models.roberta.modeling_roberta.RobertaEmbeddings.create_position_ids_from_input_ids(
            torch.from_numpy(ids), pad)
        np.testing.assert_array_equal(create_position_ids_from_input_ids(ids, pad), ref.numpy())
    positions = create_position_ids_from_input_ids(np.array([[5, 6, 7, 1, 1]]), 1)
    assert positions.tolist() == [[2, 3, 4, 1, 1]]  # real tokens from padding_idx + 1, padding at padding_idx


@pytest.mark.parametrize("name", list(SMALL))
def test_model_outputs_equal_hf(tmp_path, name):
    out = assert_outputs_equal_hf(RobertaModel, transformers.RobertaModel, hf_config(name), tmp_path, *batch(name),
                                  keys=("last_hidden_state", "pooler_output"))
    assert len(out.hidden_states) == SMALL[name]["num_hidden_layers"] + 1


@pytest.mark.parametrize("name", list(SMALL))
def test_heads_equal_hf(tmp_path, name):
    ids, mask, types = batch(name, seed=1)
    for head in ("masked_lm", "sequence_classification"):
        ref = saved_hf_model(getattr(transformers, HF[head]), hf_config(name, num_labels=3), tmp_path / head, seed=2)
        ours = OURS[head].from_pretrained(tmp_path / head)
        with torch.no_grad():
            expected = ref(**torch_inputs(ids, mask, types))
        assert_close(ours(ids, mask, types).logits, expected.logits, what=head)


def test_attentions_equal_hf_eager(tmp_path):
    assert_outputs_equal_hf(RobertaModel, transformers.RobertaModel, hf_config("base-like", attn_implementation="eager"),
                            tmp_path, *batch("base-like"), attentions=True)


@pytest.mark.parametrize("head", list(OURS))
def test_loss_and_every_gradient_equal_hf(tmp_path, head):
    ids, mask, types = batch("base-like", seed=4)
    labels = {"model": None, "masked_lm": {"labels": mlm_labels(ids)},
              "sequence_classification": {"labels": np.array([0, 2, 1])}}[head]
    assert_loss_and_grads_equal_hf(OURS[head], getattr(transformers, HF[head]), hf_config("base-like", num_labels=3),
                                   tmp_path, ids, mask, types, labels)


def test_masked_positions_only_equal_full_logits(tmp_path):
    model = RobertaForMaskedLM(RobertaConfig(**SMALL["base-like"]), generator=minigrad.Generator(0)).eval()
    ids, mask, types = batch("base-like")
    labels = np.full(ids.shape, -100)
    labels[0, 3], labels[1, 1] = 5, 6
    out = model(ids, mask, types, labels=labels, full_logits=True)
    np.testing.assert_allclose(out.masked_lm_logits.data, out.logits.data[[0, 1], [3, 1]], atol=1e-6)


def test_skip_padding_gives_the_same_numbers():
    config = RobertaConfig(**SMALL["base-like"], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    a = RobertaForSequenceClassification(config, generator=minigrad.Generator(5)).train()
    b = RobertaForSequenceClassification(config, generator=minigrad.Generator(5)).train()
    ids, mask, types = batch("base-like", seed=5)
    labels = np.array([1, 0, 1])
    out_a, out_b = a(ids, mask, types, labels=labels), b(ids, mask, types, labels=labels, skip_padding=True)
    np.testing.assert_allclose(out_b.logits.data, out_a.logits.data, atol=1e-5)
    out_a.loss.backward()
    out_b.loss.backward()
    for (k, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(pb.grad, pa.grad, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("head", list(OURS))
def test_save_pretrained_loads_in_hf(tmp_path, head):
    ours = OURS[head](RobertaConfig(**SMALL["base-like"], num_labels=3), generator=minigrad.Generator(7)).eval()
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "roberta" and saved["architectures"] == [type(ours).__name__]
    ref = getattr(transformers, HF[head]).from_pretrained(tmp_path, local_files_only=True).eval()
    ids, mask, types = batch("base-like", seed=8)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types))
    out = ours(ids, mask, types)
    assert_close(out.logits if head != "model" else out.last_hidden_state,
                 expected.logits if head != "model" else expected.last_hidden_state)


def test_masked_lm_checkpoint_opens_as_classifier_with_a_fresh_head(tmp_path):
    saved_hf_model(transformers.RobertaForMaskedLM, hf_config("base-like"), tmp_path)
    with pytest.warns(UserWarning, match="newly initialised"):
        model = RobertaForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    assert sorted(model.newly_initialized) == sorted(f"classifier.{p}.{w}" for p in ("dense", "out_proj")
                                                     for w in ("weight", "bias"))


def test_clear_errors(tmp_path):
    config = RobertaConfig(**SMALL["base-like"])  # 16 positions, pad 1: at most 14 tokens
    model = RobertaModel(config, generator=minigrad.Generator(0))
    with pytest.raises(ValueError, match="at most 14 tokens"):
        model(np.full((1, 15), 5))
    with pytest.raises(ValueError, match="RobertaConfig: max_position_embeddings=2 leaves no position"):
        RobertaConfig(**{**SMALL["base-like"], "max_position_embeddings": 2})
    with pytest.raises(ValueError, match="RobertaConfig: hidden_size=30 is not a multiple"):
        RobertaConfig(**{**SMALL["base-like"], "hidden_size": 30})
    saved_hf_model(transformers.RobertaModel, hf_config("base-like"), tmp_path)
    with pytest.raises(ValueError, match="mis-shaped"):
        RobertaModel.from_pretrained(tmp_path, intermediate_size=40)
    (tmp_path / "config.json").write_text(json.dumps({**json.loads((tmp_path / "config.json").read_text()),
                                                      "model_type": "bert"}))
    with pytest.raises(ValueError, match="RobertaConfig.from_dict: model_type is 'bert', expected 'roberta'"):
        RobertaModel.from_pretrained(tmp_path)


def test_parameter_counts_equal_hf():
    small = RobertaConfig(**SMALL["types"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = transformers.RobertaModel(transformers.RobertaConfig(**SMALL["types"]))
    assert count_parameters(small) == ref.num_parameters() == RobertaModel(small).num_parameters()
    assert count_parameters(RobertaConfig()) == 124_645_632  # roberta-base (shapes only, nothing allocated)


# ----------------------------------------------------------------------------------------------
# the tokenizer
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    from pydoc_data.topics import topics

    from models.text.roberta_tokenizer import RobertaTokenizer, train_roberta_bpe

    texts = [topics[k] for k in sorted(topics)][:40]
    vocab, merges = train_roberta_bpe(texts, 700)
    folder = tmp_path_factory.mktemp("roberta_bpe")
    RobertaTokenizer(vocab, merges).save_pretrained(folder)
    lines = [line for text in [topics[k] for k in sorted(topics)][40:] for line in text.split("\n") if line.strip()]
    return folder, lines[:1500]


def test_trained_vocabulary_puts_the_special_tokens_where_roberta_has_them(bpe_files):
    from models.text.roberta_tokenizer import RobertaTokenizer

    tok = RobertaTokenizer.from_pretrained(bpe_files[0])
    assert [tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    assert tok.mask_token_id == len(tok.vocab) - 1 and tok.cls_token_id == 0 and tok.sep_token_id == 2


def test_tokenizer_equals_hf_on_real_lines(bpe_files):
    from models.text.roberta_tokenizer import RobertaTokenizer

    folder, lines = bpe_files
    ours = RobertaTokenizer.from_pretrained(folder)
    ref = transformers.RobertaTokenizer.from_pretrained(folder)  # HF opens our files
    for a, b in zip(lines[:-1:2], lines[1::2]):
        o = ours(a, b, return_special_tokens_mask=True, return_offsets_mapping=True)
        r = ref(a, b, return_special_tokens_mask=True, return_offsets_mapping=True)
        assert dict(o) == {k: r[k] for k in o}, (a, b)
    texts = ["Hello world <mask> x", "a<mask>b", "  spaced  out ", "émoji 😀 ünïcode"]
    for kwargs in ({"padding": True}, {"padding": True, "truncation": True, "max_length": 6},
                   {"padding": "max_length", "max_length": 20, "return_token_type_ids": True}):
        assert ours(texts, **kwargs) == dict(ref(texts, **kwargs))
    pairs = dict(truncation=True, max_length=9)
    assert ours(["a b c d e f g h"], ["i j k"], **pairs) == dict(ref(["a b c d e f g h"], ["i j k"], **pairs))
    for text in texts + lines[:50]:
        ids = ref(text)["input_ids"]
        assert ours.decode(ids) == ref.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)


def test_tokenizer_opens_what_hf_saves(bpe_files, tmp_path):
    from models.text.roberta_tokenizer import RobertaTokenizer

    ref = transformers.RobertaTokenizer.from_pretrained(bpe_files[0])
    ref.save_pretrained(tmp_path)  # transformers 5 writes tokenizer.json
    ours = RobertaTokenizer.from_pretrained(tmp_path)
    for text in bpe_files[1][:200] + ["x <mask> y"]:
        assert ours(text)["input_ids"] == ref(text)["input_ids"]


def test_tokenizer_errors(bpe_files):
    from models.text.roberta_tokenizer import RobertaTokenizer, train_roberta_bpe

    tok = RobertaTokenizer.from_pretrained(bpe_files[0])
    with pytest.raises(ValueError, match="special tokens \\['<cls>'\\] are not in the vocabulary"):
        RobertaTokenizer(tok.vocab, tok.bpe.merges, cls_token="<cls>")
    with pytest.raises(ValueError, match="train_roberta_bpe: vocab_size must be an int >= 261"):
        train_roberta_bpe(["abc"], 100)


# ----------------------------------------------------------------------------------------------
# the recipe
# ----------------------------------------------------------------------------------------------
def small_corpus(path):
    from pydoc_data.topics import topics

    path.write_text("\n\n".join(topics[k] for k in sorted(topics)[:30]), encoding="utf-8")
    return path


def test_roberta_pretrain_recipe_runs_and_resumes(tmp_path, capsys):
    from models.cli import main

    corpus = small_corpus(tmp_path / "corpus.txt")
    args = ["roberta-pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--vocab-size", "400",
            "--hidden", "16", "--heads", "2", "--layers", "1", "--max-seq-length", "32", "--batch-size", "8",
            "--grad-accum", "2", "--epochs", "1", "--no-plot", "--no-progress", "--masking", "static"]
    assert main(args + ["--max-steps", "2"]) == 0
    assert main(args + ["--max-steps", "3", "--resume"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["history"]["steps"]["step"] == [1, 2, 3] and metrics["batch"] == 16
    assert transformers.RobertaForMaskedLM.from_pretrained(tmp_path / "run" / "model", local_files_only=True)
    bad = ["roberta-pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "bad"), "--hidden", "30", "--heads", "4"]
    assert main(bad) == 2
    assert "error: roberta-pretrain: --hidden 30 must be a multiple of --heads 4" in capsys.readouterr().err
