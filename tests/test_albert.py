"""ALBERT (models.albert) and its tokenizer against Hugging Face transformers: factorized embeddings, shared
layers (groups and inner groups), outputs, every gradient, checkpoints both ways, the book's parameter counts,
the sharing demo, the SentencePiece tokenizer vs HF AlbertTokenizer, clear errors, and the albert-pretrain recipe."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import minigrad
from models.albert import (AlbertConfig, AlbertForMaskedLM, AlbertForPreTraining, AlbertForSequenceClassification,
                           AlbertModel, count_parameters, layer_transitions, parameter_breakdown)
from models.bert import BertConfig
from encoder_parity import (assert_close, assert_loss_and_grads_equal_hf, assert_outputs_equal_hf, mlm_labels,
                            padded_pairs, saved_hf_model, torch_inputs)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMALL = {  # one shared layer applied 3 times; 2 groups of 2 inner layers over 4 layers; 3 groups over 6
    "shared": dict(vocab_size=97, embedding_size=12, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                   intermediate_size=37, max_position_embeddings=20, type_vocab_size=2),
    "groups": dict(vocab_size=61, embedding_size=8, hidden_size=24, num_hidden_layers=4, num_hidden_groups=2,
                   inner_group_num=2, num_attention_heads=2, intermediate_size=30, max_position_embeddings=16,
                   hidden_act="gelu", pad_token_id=3),
    "uneven": dict(vocab_size=50, embedding_size=16, hidden_size=16, num_hidden_layers=6, num_hidden_groups=3,
                   num_attention_heads=2, intermediate_size=20, max_position_embeddings=16, hidden_act="relu"),
}
HF = {"model": "AlbertModel", "pretraining": "AlbertForPreTraining", "masked_lm": "AlbertForMaskedLM",
      "sequence_classification": "AlbertForSequenceClassification"}
OURS = {"model": AlbertModel, "pretraining": AlbertForPreTraining, "masked_lm": AlbertForMaskedLM,
        "sequence_classification": AlbertForSequenceClassification}
LOGITS = {"pretraining": ("prediction_logits", "sop_logits"), "masked_lm": ("logits",),
          "sequence_classification": ("logits",)}


def hf_config(name: str, **extra):
    return transformers.AlbertConfig(**SMALL[name], classifier_dropout_prob=0.0, **extra)


def batch(name: str, seed: int = 0):
    return padded_pairs(SMALL[name]["vocab_size"], SMALL[name].get("pad_token_id", 0), seed)


@pytest.mark.parametrize("name", list(SMALL))
def test_model_outputs_equal_hf(tmp_path, name):
    out = assert_outputs_equal_hf(AlbertModel, transformers.AlbertModel, hf_config(name), tmp_path, *batch(name),
                                  keys=("last_hidden_state", "pooler_output"))
    cfg = SMALL[name]
    assert len(out.hidden_states) == 1 + cfg["num_hidden_layers"] * cfg.get("inner_group_num", 1)  # HF's count


@pytest.mark.parametrize("name", ["shared", "groups"])
def test_heads_equal_hf(tmp_path, name):
    ids, mask, types = batch(name, seed=1)
    for head, keys in LOGITS.items():
        ref = saved_hf_model(getattr(transformers, HF[head]), hf_config(name, num_labels=3 if head[0] == "s" else 2),
                             tmp_path / head, seed=2)
        ours = OURS[head].from_pretrained(tmp_path / head)
        out = ours(ids, mask, types)
        with torch.no_grad():
            expected = ref(**torch_inputs(ids, mask, types))
        for key in keys:
            assert_close(out[key], expected[key], what=f"{head} {key}")


def test_attentions_equal_hf_eager(tmp_path):
    out = assert_outputs_equal_hf(AlbertModel, transformers.AlbertModel,
                                  hf_config("groups", attn_implementation="eager"), tmp_path, *batch("groups"),
                                  attentions=True)
    assert len(out.attentions) == 8  # 4 layers × 2 inner layers


@pytest.mark.parametrize("head,name", [("model", "groups"), ("pretraining", "groups"), ("pretraining", "shared"),
                                       ("masked_lm", "uneven"), ("sequence_classification", "shared")])
def test_loss_and_every_gradient_equal_hf(tmp_path, head, name):
    ids, mask, types = batch(name, seed=4)
    labels = {"model": None, "masked_lm": {"labels": mlm_labels(ids)},
              "pretraining": {"labels": mlm_labels(ids), "sentence_order_label": np.array([0, 1, 1])},
              "sequence_classification": {"labels": np.array([0, 2, 1])}}[head]
    assert_loss_and_grads_equal_hf(OURS[head], getattr(transformers, HF[head]),
                                   hf_config(name, num_labels=3 if head[0] == "s" else 2), tmp_path, ids, mask, types,
                                   labels)


@pytest.mark.parametrize("head", list(OURS))
def test_save_pretrained_loads_in_hf(tmp_path, head):
    ours = OURS[head](AlbertConfig(**SMALL["groups"], num_labels=3 if head[0] == "s" else 2),
                      generator=minigrad.Generator(7)).eval()
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "albert" and "classifier_dropout" not in saved
    ref = getattr(transformers, HF[head]).from_pretrained(tmp_path, local_files_only=True).eval()
    ids, mask, types = batch("groups", seed=8)
    out = ours(ids, mask, types)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types))
    for key in LOGITS.get(head, ("last_hidden_state", "pooler_output")):
        assert_close(out[key], expected[key], what=key)


def test_skip_padding_gives_the_same_numbers():
    config = AlbertConfig(**SMALL["groups"], classifier_dropout_prob=0.0)
    a = AlbertForSequenceClassification(config, generator=minigrad.Generator(5)).train()
    b = AlbertForSequenceClassification(config, generator=minigrad.Generator(5)).train()
    ids, mask, types = batch("groups", seed=5)
    out_a, out_b = a(ids, mask, types, labels=np.array([1, 0, 1])), b(ids, mask, types, labels=np.array([1, 0, 1]),
                                                                     skip_padding=True)
    np.testing.assert_allclose(out_b.logits.data, out_a.logits.data, atol=1e-5)
    out_a.loss.backward()
    out_b.loss.backward()
    for (k, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(pb.grad, pa.grad, atol=1e-5, err_msg=k)


# ----------------------------------------------------------------------------------------------
# parameters: the book's table and HF's counts
# ----------------------------------------------------------------------------------------------
def test_book_parameter_counts():
    albert, bert = parameter_breakdown(AlbertConfig()), parameter_breakdown(BertConfig())
    assert albert["total"] == count_parameters(AlbertConfig()) == 11_683_584
    assert albert["token/position/segment tables"] + albert["E→H mapping"] == 4_005_120  # embeddings incl. E→H
    assert albert["E→H mapping"] + albert["layers"] == 7_186_944  # HF's albert.encoder (mapping + the shared layer)
    assert bert["total"] == 109_482_240 and bert["token/position/segment tables"] == 23_837_184
    assert bert["layers"] == 85_054_464 and albert["layers"] * 12 == bert["layers"]  # one layer vs twelve


@pytest.mark.parametrize("name", list(SMALL))
def test_parameter_counts_equal_hf(name):
    config = AlbertConfig(**SMALL[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = transformers.AlbertModel(hf_config(name))
    assert count_parameters(config) == ref.num_parameters() == AlbertModel(config).num_parameters()
    layers = {".".join(k.split(".")[:5]) for k in AlbertModel(config).state_dict() if ".albert_layers." in k}
    assert len(layers) == config.num_hidden_groups * config.inner_group_num  # G × inner, not L


def test_base_v2_parameters_equal_hf_built_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = transformers.AlbertModel(transformers.AlbertConfig(hidden_size=768, num_attention_heads=12,
                                                                 intermediate_size=3072))
    assert ref.num_parameters() == count_parameters(AlbertConfig()) == 11_683_584


# ----------------------------------------------------------------------------------------------
# the sharing demo
# ----------------------------------------------------------------------------------------------
def test_layer_transitions_apply_the_shared_layer_any_number_of_times():
    model = AlbertModel(AlbertConfig(**SMALL["shared"]), generator=minigrad.Generator(0)).eval()
    ids, mask, _ = batch("shared")
    curves = layer_transitions(model, ids, mask, applications=24)
    assert len(curves["l2"]) == len(curves["cosine"]) == 24
    assert all(d > 0 for d in curves["l2"]) and all(-1 <= c <= 1 for c in curves["cosine"])
    # with L applications the last state is the model's own output
    hidden = model.embed(ids, np.zeros_like(ids), None)
    last, states, _ = model.encoder(hidden, mask.astype(bool)[:, None, None, :], output_hidden_states=True)
    ref = model(ids, mask).last_hidden_state.data
    np.testing.assert_allclose(last.data, ref, atol=1e-6)
    a, b = states[-2].data[mask == 1], states[-1].data[mask == 1]
    assert abs(layer_transitions(model, ids, mask)["l2"][-1] - np.linalg.norm(b - a, axis=-1).mean()) < 1e-4
    with pytest.raises(TypeError, match="layer_transitions: model must be an AlbertModel"):
        layer_transitions(AlbertForMaskedLM(AlbertConfig(**SMALL["shared"])), ids, mask)


def test_config_errors():
    with pytest.raises(ValueError, match="AlbertConfig: num_hidden_groups must be an int >= 1, got 0"):
        AlbertConfig(**{**SMALL["shared"], "num_hidden_groups": 0})
    with pytest.raises(ValueError, match="AlbertConfig: classifier_dropout_prob must be a probability"):
        AlbertConfig(classifier_dropout_prob=1.5)
    with pytest.raises(ValueError, match="AlbertForPreTraining: sentence_order_label: expected 3 integer"):
        ids, mask, types = batch("shared")
        AlbertForPreTraining(AlbertConfig(**SMALL["shared"]))(ids, mask, types, sentence_order_label=np.array([0, 1]))


# ----------------------------------------------------------------------------------------------
# the tokenizer (SentencePiece equality itself: tests/test_sentencepiece.py)
# ----------------------------------------------------------------------------------------------
SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


@pytest.fixture(scope="module")
def spm_model(tmp_path_factory):
    """A unigram model trained by ``sentencepiece`` on tiny shakespeare (the pydoc text if it is absent), with
    ALBERT's layout: <pad> 0, <unk> 1, [CLS] 2, [SEP] 3, [MASK] 4."""
    spm = pytest.importorskip("sentencepiece")
    if SHAKESPEARE.is_file():
        lines = [line for line in SHAKESPEARE.read_text(encoding="utf-8").split("\n") if line.strip()]
    else:
        from pydoc_data.topics import topics

        lines = [line for k in sorted(topics) for line in topics[k].split("\n") if line.strip()]
    folder = tmp_path_factory.mktemp("albert_spm")
    (folder / "train.txt").write_text("\n".join(lines[:8000]), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(folder / "train.txt"), model_prefix=str(folder / "spiece"),
                                   vocab_size=900, model_type="unigram", pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
                                   control_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2)
    return folder / "spiece.model", lines[8000:12000]


def hf_albert_tokenizer(model_path, **options):
    """HF's AlbertTokenizer on the same pieces and normalization table (HF itself would need protobuf to read
    the file; the pieces and scores come from the sentencepiece package, the charsmap bytes as stored)."""
    import sentencepiece as spm

    from models.text.sentencepiece_model import parse_model_proto

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    charsmap = parse_model_proto(Path(model_path).read_bytes()).normalizer_spec.precompiled_charsmap
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    return transformers.AlbertTokenizer(vocab=vocab, _spm_precompiled_charsmap=charsmap, **options)


@pytest.mark.parametrize("options", [{}, {"do_lower_case": False}, {"keep_accents": True}])
def test_tokenizer_equals_hf_on_real_lines(spm_model, options):
    from models.text.albert_tokenizer import AlbertTokenizer

    path, lines = spm_model
    ours, ref = AlbertTokenizer(path, **options), hf_albert_tokenizer(path, **options)
    extra = ["Hello, World! I'm HERE ``quoted'' café  naïve", "a [MASK] b", "a[MASK]b", "  ", "Ｆｕｌｌ ﬁ", "😀 日本"]
    for text in extra + lines:
        assert ours(text)["input_ids"] == ref(text)["input_ids"], text
    kwargs = dict(return_token_type_ids=True, return_special_tokens_mask=True)
    for a, b in zip(lines[:400:2], lines[1:400:2]):
        assert ours(a, b, **kwargs) == dict(ref(a, b, **kwargs))
    assert ours(extra, padding=True, truncation=True, max_length=7) == dict(ref(extra, padding=True, truncation=True,
                                                                                  max_length=7))
    for text in extra + lines[:300]:
        ids = ref(text)["input_ids"]
        assert ours.decode(ids) == ref.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == ref.decode(ids, skip_special_tokens=True)
        assert ours.tokenize(text) == ref.tokenize(text)


def test_tokenizer_special_tokens_and_files(spm_model, tmp_path):
    from models.text.albert_tokenizer import AlbertTokenizer

    tok = AlbertTokenizer(spm_model[0])
    assert [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id] == [0, 1, 2, 3, 4]
    tok.save_pretrained(tmp_path)
    again = AlbertTokenizer.from_pretrained(tmp_path)
    text = spm_model[1][:50]
    assert again(text) == tok(text) and again.do_lower_case


def test_tokenizer_errors(spm_model, tmp_path):
    from models.text.albert_tokenizer import AlbertTokenizer
    from models.text.sentencepiece_model import SentencePieceModelError

    data = spm_model[0].read_bytes()
    (tmp_path / "cut.model").write_bytes(data[:len(data) // 3])
    with pytest.raises(SentencePieceModelError, match="truncated|ends inside"):
        AlbertTokenizer(tmp_path / "cut.model")
    (tmp_path / "text.model").write_text("this is not a SentencePiece model\n" * 20)
    with pytest.raises(SentencePieceModelError):
        AlbertTokenizer(tmp_path / "text.model")
    with pytest.raises(FileNotFoundError, match="no SentencePiece model file"):
        AlbertTokenizer(tmp_path / "missing.model")
    with pytest.raises(ValueError, match="special tokens \\{'mask_token': '<mask>'\\} are not pieces"):
        AlbertTokenizer(spm_model[0], mask_token="<mask>")
    with pytest.raises(ValueError, match="return_offsets_mapping is not supported"):
        AlbertTokenizer(spm_model[0])("hello", return_offsets_mapping=True)


# ----------------------------------------------------------------------------------------------
# the recipe
# ----------------------------------------------------------------------------------------------
def test_albert_pretrain_recipe(tmp_path, capsys):
    from pydoc_data.topics import topics

    from models.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(topics[k] for k in sorted(topics)[:30]), encoding="utf-8")
    args = ["albert-pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "run"), "--vocab-size", "400",
            "--hidden", "16", "--heads", "2", "--layers", "3", "--embedding-size", "8", "--max-seq-length", "32",
            "--batch-size", "8", "--epochs", "1", "--max-steps", "2", "--applications", "5", "--no-plot",
            "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| total | 11,683,584 | 109,482,240 |" in printed
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(metrics["transitions"]["trained"]["l2"]) == 5 and "sop_accuracy" in metrics["validation"]
    assert transformers.AlbertForPreTraining.from_pretrained(tmp_path / "run" / "model", local_files_only=True)
    assert main(args + ["--embedding-size", "0"]) == 2
    assert "error: albert-pretrain: --embedding-size must be >= 1" in capsys.readouterr().err
