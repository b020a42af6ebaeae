"""Quantizing a BERT classifier (book appendix § A.4): every Linear quantized, ggml block weights,
quantized models saved to safetensors and read back with identical logits, clear errors for damaged
files, torch.ao's quantize_dynamic of HF's model as the reference, and the recipe's --task mode."""
from __future__ import annotations

import functools
import json
import warnings

import numpy as np
import pytest

import minigrad
from minigrad import nn
from models.bert import BertConfig, BertForSequenceClassification
from models.distilbert import DistilBertForSequenceClassification
from models.distillation import student_from_teacher
from quant import HistogramObserver, MinMaxObserver, QuantizedLinear, convert, prepare, quantize_dynamic
from quant.block_modules import BlockQuantizedLinear, quantize_weights_blocks
from quant.blocks import dequantize_blocks, quantize_blocks
from quant.serialization import load_quantized, quantized_layers, save_quantized

CONFIG = dict(vocab_size=61, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
              max_position_embeddings=24, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def classifier(seed=0):
    return BertForSequenceClassification(BertConfig(**CONFIG), generator=minigrad.Generator(seed)).eval()


def sentences(seed=0, B=6, T=10):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, CONFIG["vocab_size"], (B, T))
    mask = (np.arange(T)[None, :] < rng.integers(3, T + 1, B)[:, None]).astype(np.int64)
    return ids * mask, mask


def logits(model, ids, mask):
    with minigrad.no_grad():
        return model(ids, attention_mask=mask).logits.data


def static(model, observer, per_channel=True):
    prepared = prepare(model, observer=observer)
    for seed in range(3):
        ids, mask = sentences(100 + seed)
        with minigrad.no_grad():
            prepared(ids, attention_mask=mask)
    return convert(prepared, per_channel=per_channel)


SCHEMES = {
    "dynamic per channel": lambda m: quantize_dynamic(m),
    "dynamic per tensor": lambda m: quantize_dynamic(m, per_channel=False),
    "static min-max": lambda m: static(m, MinMaxObserver),
    "static histogram per tensor": lambda m: static(m, functools.partial(HistogramObserver, bins=128), False),
    "Q8_0 blocks": lambda m: quantize_weights_blocks(m, "Q8_0"),
    "Q4_1 blocks": lambda m: quantize_weights_blocks(m, "Q4_1"),
}


# ----------------------------------------------------------------------------------------------
# What gets quantized
# ----------------------------------------------------------------------------------------------
def test_dynamic_quantization_reaches_every_linear_attention_projections_included():
    model = classifier()
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 2 * 6 + 2  # q, k, v, attention output, two feed-forward; pooler, classifier
    q = quantize_dynamic(model)
    assert sorted(quantized_layers(q)) == sorted(linears)
    assert isinstance(q.bert.encoder.layer[0].attention.self.query, QuantizedLinear)
    ids, mask = sentences()
    f, d = logits(model, ids, mask), logits(q, ids, mask)
    assert 0 < np.abs(f - d).max() < 0.02 * max(1.0, np.abs(f).max())


def test_block_linear_computes_with_the_dequantized_blocks_and_stays_small():
    minigrad.manual_seed(0)
    layer = nn.Linear(64, 5)
    x = np.random.default_rng(1).standard_normal((3, 7, 64)).astype(np.float32)
    for ttype, ratio in (("Q8_0", 34 / 128), ("Q4_1", 20 / 128)):
        q = BlockQuantizedLinear.from_float(layer, ttype)
        w = dequantize_blocks(quantize_blocks(layer.weight.data, ttype), ttype, (5, 64))
        with minigrad.no_grad():
            np.testing.assert_allclose(q(minigrad.Tensor(x)).data, x @ w.T + layer.bias.data, rtol=1e-6, atol=1e-6)
        assert q.weight_blocks.data.nbytes == pytest.approx(ratio * layer.weight.data.nbytes)
    with pytest.raises(ValueError, match="in_features=40 is not a multiple of 32"):
        BlockQuantizedLinear.from_float(nn.Linear(40, 3))
    with pytest.raises(ValueError, match="ttype must be one of Q8_0, Q4_0, Q4_1"):
        BlockQuantizedLinear.from_float(layer, "F16")
    with pytest.raises(RuntimeError, match="inference-only"):
        q(minigrad.Tensor(x, requires_grad=True))


# ----------------------------------------------------------------------------------------------
# Save -> load
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_save_then_load_gives_identical_logits(tmp_path, scheme):
    model = classifier(1)
    q = SCHEMES[scheme](model)
    path = tmp_path / "q.safetensors"
    save_quantized(q, path, metadata={"config": json.dumps(CONFIG)})
    loaded = load_quantized(path, BertForSequenceClassification(BertConfig(**CONFIG), initialize=False))
    ids, mask = sentences(2)
    np.testing.assert_array_equal(logits(loaded, ids, mask), logits(q, ids, mask))
    assert quantized_layers(loaded) == quantized_layers(q)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    float_path = tmp_path / "float.safetensors"
    minigrad.save(model.state_dict(), float_path)
    assert path.stat().st_size < 0.75 * float_path.stat().st_size  # embeddings stay float32


def test_the_file_holds_int8_weights_with_their_scales_and_no_pickle(tmp_path):
    from safetensors import safe_open

    q = static(classifier(), MinMaxObserver)
    save_quantized(q, tmp_path / "q.safetensors")
    with safe_open(str(tmp_path / "q.safetensors"), framework="np") as f:
        name = "bert.encoder.layer.0.attention.self.query."
        assert f.get_tensor(name + "weight_q").dtype == np.int8
        assert f.get_tensor(name + "weight_scale").dtype == np.float32
        assert f.get_tensor(name + "weight_scale").shape == (64,)  # per channel
        assert f.get_tensor(name + "bias_q").dtype == np.int32  # static: the bias on the accumulator's grid
        assert f.get_tensor(name + "input_scale").shape == ()
        assert json.loads(f.metadata()["layers"])[name[:-1]]["mode"] == "static"
    assert (tmp_path / "q.safetensors").read_bytes()[8:9] == b"{"  # a JSON header after the 8-byte length


def test_a_quantized_student_round_trips_too(tmp_path):
    student = student_from_teacher(classifier(3))
    q = quantize_dynamic(student)
    save_quantized(q, tmp_path / "s.safetensors")
    loaded = load_quantized(tmp_path / "s.safetensors", DistilBertForSequenceClassification(student.config,
                                                                                           initialize=False))
    ids, mask = sentences(4)
    np.testing.assert_array_equal(logits(loaded, ids, mask), logits(q, ids, mask))


# ----------------------------------------------------------------------------------------------
# Damaged files
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "q.safetensors"
    save_quantized(quantize_dynamic(classifier()), path)
    return path


def skeleton(**changes):
    return BertForSequenceClassification(BertConfig(**{**CONFIG, **changes}), initialize=False)


def test_a_truncated_file_is_a_clear_error(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"load_quantized: cannot read .*q\.safetensors"):
        load_quantized(saved, skeleton())


def test_a_damaged_header_is_a_clear_error(saved):
    data = bytearray(saved.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].decode()
    header = header.replace('"format":"quant.quantized_model"', '"format":"quant.quantized_modeX"')
    data[8:8 + n] = header.encode()
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is not a quantized-model file"):
        load_quantized(saved, skeleton())


def test_a_corrupted_array_or_another_architecture_is_a_clear_error(tmp_path, saved):
    state = minigrad.load(saved)
    meta = minigrad.serialization.load_metadata(saved)
    state["bert.encoder.layer.1.output.dense.weight_q"] = state["bert.encoder.layer.1.output.dense.weight_q"][:, :5]
    minigrad.save(state, tmp_path / "bad.safetensors", metadata=meta)
    with pytest.raises(ValueError, match=r"layer 'bert.encoder.layer.1.output.dense' cannot be rebuilt .*weight_q"):
        load_quantized(tmp_path / "bad.safetensors", skeleton())
    with pytest.raises(ValueError, match=r"quantizes layer 'bert\.encoder\.layer\.1\.[a-z.]+', which the given"):
        load_quantized(saved, skeleton(num_hidden_layers=1))
    with pytest.raises(ValueError, match=r"does not fit the given BertForSequenceClassification.*size mismatch"):
        load_quantized(saved, skeleton(vocab_size=70))
    minigrad.save(classifier().state_dict(), tmp_path / "float.safetensors")
    with pytest.raises(ValueError, match="not a quantized-model file"):
        load_quantized(tmp_path / "float.safetensors", skeleton())
    with pytest.raises(ValueError, match="reserved"):
        save_quantized(classifier(), tmp_path / "x.safetensors", metadata={"layers": "{}"})


# ----------------------------------------------------------------------------------------------
# torch.ao's quantize_dynamic of HF's model, same weights
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("per_channel", [True, False])
def test_dynamic_int8_bert_agrees_with_torch_ao_on_hf_bert(tmp_path, per_channel):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if "qnnpack" not in torch.backends.quantized.supported_engines:
        pytest.skip("torch has no qnnpack engine (fbgemm/x86 quantize activations to 7 bits)")
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

    model = classifier(5)
    model.save_pretrained(tmp_path)
    hf = transformers.BertForSequenceClassification.from_pretrained(tmp_path, local_files_only=True).eval()
    engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = "qnnpack"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notices
            ref = torch_quantize_dynamic(hf, {torch.nn.Linear: per_channel_dynamic_qconfig if per_channel
                                              else default_dynamic_qconfig}, dtype=torch.qint8)
            ours = quantize_dynamic(model, per_channel=per_channel)
            ids, mask = sentences(6, B=64, T=12)
            with torch.no_grad():
                expected = ref(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()
    finally:
        torch.backends.quantized.engine = engine
    got = logits(ours, ids, mask)
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.99
    # the same integer arithmetic: most logits are equal to float rounding; a few differ where a float
    # difference elsewhere (GELU, LayerNorm) moved an activation across a rounding boundary
    assert np.median(np.abs(got - expected)) < 1e-6
    assert np.abs(got - expected).max() < 0.01 * np.abs(expected).max()


# ----------------------------------------------------------------------------------------------
# The recipe, on a tiny classifier and a tiny CoLA
# ----------------------------------------------------------------------------------------------
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "a", "big", "red"]


def _tiny_task(tmp_path):
    from models.text.wordpiece import BertTokenizer

    data = tmp_path / "data" / "cola"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("in_domain_train.tsv", 64), ("in_domain_dev.tsv", 16), ("out_of_domain_dev.tsv", 24)):
        lines = [f"src\t{int(rng.integers(2))}\t\t{' '.join(rng.choice(WORDS, rng.integers(2, 7)))}" for _ in range(n)]
        (data / name).write_text("\n".join(lines) + "\n")
    base = tmp_path / "base"
    config = BertConfig(**{**CONFIG, "vocab_size": 15})
    clf = BertForSequenceClassification(config, generator=minigrad.Generator(0))
    clf.save_pretrained(base)
    BertTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS).save_pretrained(base)
    student_from_teacher(clf).save_pretrained(tmp_path / "student")
    return tmp_path / "data", base, tmp_path / "student"


def test_quantize_task_mode_writes_the_table(tmp_path, capsys):
    from models.cli import main

    data, base, student = _tiny_task(tmp_path)
    out = tmp_path / "out"
    code = main(["quantize", "--task", "cola", "--data", str(data), "--model", str(base), "--classifier", str(base),
                 "--student", str(student), "--out", str(out), "--repeats", "1", "--calibration-batches", "1",
                 "--no-plot", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["sentences"] == 24 and metrics["split"] == "dev_out_of_domain"
    rows = {r["scheme"]: r for r in metrics["rows"]}
    assert {"float32", "dynamic int8, per channel", "static int8, histogram", "Q4_1 blocks (weights only)",
            "student + dynamic int8"} <= set(rows)
    assert all(r["reload_identical"] for r in rows.values())
    assert rows["dynamic int8, per channel"]["file_mb"] < rows["float32"]["file_mb"]
    assert "book acc." in metrics["table"] and "0.816" in metrics["table"]
    assert main(["quantize", "--classifier", str(base), "--out", str(out)]) == 2
    assert "--classifier belongs to the classifier mode; add --task" in capsys.readouterr().err


def test_the_error_histogram_is_a_png_named_after_its_scheme(tmp_path):
    from models.recipes.quantize_classifier import _plot_errors, _slug

    assert _slug("Q4_1 blocks (weights only)") == "q4_1_blocks_weights_only"
    assert _slug("student (3 layers), float32") == "student_3_layers_float32"
    path = tmp_path / f"error_histogram_{_slug('static int8, min-max')}.png"
    _plot_errors(path, "static int8, min-max", np.random.default_rng(0).normal(0, 0.01, (24, 2)))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
