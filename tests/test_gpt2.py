"""GPT and GPT-2 (models.gpt) against Hugging Face transformers on random-initialised small configs
saved by HF itself: logits, hidden states and attention weights, all parameter gradients of the LM
loss, padding masks (left and right), the key/value cache (cached = uncached), checkpoints both
ways, parameter counts, and clear errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad
from models.generation import DecoderCache
from models.gpt import (GPT2Config, GPT2LMHeadModel, GPT2Model, OpenAIGPTConfig, OpenAIGPTLMHeadModel,
                        OpenAIGPTModel, causal_lm_loss, count_parameters, parameter_shapes)
from models.gpt.checkpoint import LM_HEAD

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

NO_DROPOUT = dict(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
GPT2_SMALL = {
    "gelu_new": dict(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4),
    "relu_inner": dict(vocab_size=61, n_positions=24, n_embd=24, n_layer=3, n_head=2, n_inner=40,
                       activation_function="relu", layer_norm_epsilon=1e-6),
    "scaled": dict(vocab_size=50, n_positions=20, n_embd=16, n_layer=2, n_head=1, activation_function="gelu",
                   scale_attn_by_inverse_layer_idx=True, scale_attn_weights=False),
}
GPT_SMALL = {
    "gelu": dict(vocab_size=89, n_positions=28, n_embd=32, n_layer=2, n_head=4),
    "relu": dict(vocab_size=53, n_positions=16, n_embd=24, n_layer=1, n_head=3, afn="relu"),
}
FAMILIES = {"gpt2": (GPT2_SMALL, "GPT2LMHeadModel", GPT2LMHeadModel, "GPT2Config"),
            "gpt": (GPT_SMALL, "OpenAIGPTLMHeadModel", OpenAIGPTLMHeadModel, "OpenAIGPTConfig")}
CASES = [(family, name) for family, (configs, *_) in FAMILIES.items() for name in configs]


def hf_model(family: str, name: str, seed: int = 0, cls: str | None = None, **extra):
    configs, lm_class, _, config_class = FAMILIES[family]
    config = getattr(transformers, config_class)(**configs[name], **NO_DROPOUT, **extra)
    torch.manual_seed(seed)
    return getattr(transformers, cls or lm_class)(config).eval()


def ours_from(ref, tmp_path, family: str, cls=None):
    ref.save_pretrained(tmp_path)
    return (cls or FAMILIES[family][2]).from_pretrained(tmp_path)


def batch(vocab: int, seed: int = 0, B: int = 3, T: int = 11, side: str = "left"):
    """Token ids and a mask with padding on ``side`` (rows of T, T−3 and T−5 real tokens)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (B, T))
    lengths = np.array([T, T - 3, T - 5][:B])
    real = np.arange(T)[None, :] < lengths[:, None]
    mask = (real if side == "right" else real[:, ::-1]).astype(np.int64)
    return ids, mask


def torch_ids(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def max_diff(ours, ref) -> float:
    ours = ours.data if isinstance(ours, minigrad.Tensor) else ours
    ref = ref.detach().numpy() if hasattr(ref, "detach") else ref
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.abs(ours - ref).max())


# ----------------------------------------------------------------------------------------------
# HF checkpoint -> ours: outputs
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family, name", CASES)
def test_logits_and_hidden_states_equal_hf(tmp_path, family, name):
    ref = hf_model(family, name)
    ours = ours_from(ref, tmp_path, family)
    vocab = FAMILIES[family][0][name]["vocab_size"]
    # left padding for GPT-2 (as in generation); GPT's HF mask adds −1e4 above the diagonal instead of −∞, which
    # differs from ours only at queries that see no real token: right padding has none
    ids, mask = batch(vocab, side="left" if family == "gpt2" else "right")
    out = ours(ids, attention_mask=mask, output_hidden_states=True)
    with torch.no_grad():
        expected = ref(*torch_ids(ids), attention_mask=torch_ids(mask)[0], output_hidden_states=True)
    assert max_diff(out.logits, expected.logits) < 1e-5
    assert len(out.hidden_states) == len(expected.hidden_states) == FAMILIES[family][0][name]["n_layer"] + 1
    for a, b in zip(out.hidden_states, expected.hidden_states):
        assert max_diff(a, b) < 1e-5


@pytest.mark.parametrize("family", ["gpt2", "gpt"])
def test_attention_weights_equal_hf_eager(tmp_path, family):
    name = next(iter(FAMILIES[family][0]))
    ref = hf_model(family, name, attn_implementation="eager")
    ours = ours_from(ref, tmp_path, family)
    ids, mask = batch(FAMILIES[family][0][name]["vocab_size"], seed=1, side="right")
    out = ours(ids, attention_mask=mask, output_attentions=True)
    with torch.no_grad():
        expected = ref(*torch_ids(ids), attention_mask=torch_ids(mask)[0], output_attentions=True)
    assert len(out.attentions) == len(expected.attentions) == 2
    for a, b in zip(out.attentions, expected.attentions):
        assert max_diff(a, b) < 1e-6
    w = out.attentions[0].data
    assert np.all(np.triu(w[0, 0], k=1) == 0)  # causal: nothing above the diagonal
    assert np.all(w[2, :, :, 6:] == 0)  # no weight on the padding keys of the shortest row


@pytest.mark.parametrize("family, name", [("gpt2", "gelu_new"), ("gpt2", "relu_inner"), ("gpt", "gelu")])
def test_lm_loss_and_all_gradients_equal_hf(tmp_path, family, name):
    ref = hf_model(family, name, seed=3).train()
    ours = ours_from(ref, tmp_path, family).train()
    ids, mask = batch(FAMILIES[family][0][name]["vocab_size"], seed=4, side="left" if family == "gpt2" else "right")
    labels = np.where(mask == 1, ids, -100)
    out = ours(ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    expected = ref(*torch_ids(ids), attention_mask=torch_ids(mask)[0], labels=torch_ids(labels)[0])
    expected.loss.backward()
    assert abs(float(out.loss.data) - float(expected.loss.detach())) < 1e-5
    ours_grads = dict(ours.named_parameters())
    names = [k for k, p in ref.named_parameters()]
    assert sorted(names) == sorted(ours_grads)  # every parameter, the tied one once
    for k, p in ref.named_parameters():
        scale = max(1.0, float(p.grad.abs().max()))
        assert max_diff(ours_grads[k].grad, p.grad) < 1e-4 * scale, k


def test_labels_equal_to_input_ids_with_left_padding_equal_hf(tmp_path):
    """labels = input_ids (HF's idiom): the padding positions predict the first real token in HF too."""
    ref = hf_model("gpt2", "gelu_new", seed=5).train()
    ours = ours_from(ref, tmp_path, "gpt2").train()
    ids, mask = batch(97, seed=6)
    out = ours(ids, attention_mask=mask, labels=ids)
    out.loss.backward()
    expected = ref(*torch_ids(ids), attention_mask=torch_ids(mask)[0], labels=torch_ids(ids)[0])
    expected.loss.backward()
    assert abs(float(out.loss.data) - float(expected.loss.detach())) < 1e-5
    grads = dict(ours.named_parameters())
    assert max(max_diff(grads[k].grad, p.grad) for k, p in ref.named_parameters()) < 1e-4


def test_token_type_and_position_ids_equal_hf(tmp_path):
    ref = hf_model("gpt2", "gelu_new", seed=7)
    ours = ours_from(ref, tmp_path, "gpt2")
    ids, mask = batch(97, seed=8, side="right")
    types = np.random.default_rng(9).integers(0, 97, ids.shape)
    positions = np.random.default_rng(10).integers(0, 32, ids.shape)
    out = ours(ids, attention_mask=mask, token_type_ids=types, position_ids=positions)
    with torch.no_grad():
        expected = ref(*torch_ids(ids), attention_mask=torch_ids(mask)[0], token_type_ids=torch_ids(types)[0],
                       position_ids=torch_ids(positions)[0])
    assert max_diff(out.logits, expected.logits) < 1e-5


# ----------------------------------------------------------------------------------------------
# the key/value cache
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["gpt2", "gpt"])
def test_cached_equals_uncached_and_hf(tmp_path, family):
    name = next(iter(FAMILIES[family][0]))
    ref = hf_model(family, name, seed=11)
    ours = ours_from(ref, tmp_path, family)
    ids, mask = batch(FAMILIES[family][0][name]["vocab_size"], seed=12, T=12)
    if family == "gpt":
        mask = np.ones_like(ids)
    full = ours(ids, attention_mask=mask)
    prefix = ours(ids[:, :7], attention_mask=mask[:, :7], use_cache=True)
    cache = prefix.past_key_values
    assert isinstance(cache, DecoderCache) and cache.get_seq_length() == 7
    step = ours(ids[:, 7:9], attention_mask=mask[:, :9], past_key_values=cache)
    last = ours(ids[:, 9:], attention_mask=mask, past_key_values=cache)
    assert cache.get_seq_length() == 12
    cached = np.concatenate([prefix.logits.data, step.logits.data, last.logits.data], axis=1)
    assert max_diff(cached, full.logits) < 1e-5
    with torch.no_grad():
        expected = ref(*torch_ids(ids), attention_mask=torch_ids(mask)[0])
    real = mask.astype(bool)
    assert np.abs(cached - expected.logits.numpy())[real].max() < 1e-5
    if family == "gpt2":  # HF's own cache gives the same numbers
        with torch.no_grad():
            hf_prefix = ref(*torch_ids(ids[:, :7]), attention_mask=torch_ids(mask[:, :7])[0], use_cache=True)
            hf_rest = ref(*torch_ids(ids[:, 7:]), attention_mask=torch_ids(mask)[0], cache=hf_prefix.cache)
        assert max_diff(last.logits, hf_rest.logits[:, 2:]) < 1e-5


@settings(max_examples=20)
@given(seed=st.integers(0, 2**16), cut=st.integers(1, 9), pre=st.booleans())
def test_no_position_sees_the_future(seed, cut, pre):
    """Masked self-attention: changing the tokens after position t leaves the logits up to t unchanged."""
    config = (GPT2Config if pre else OpenAIGPTConfig)(vocab_size=23, n_positions=10, n_embd=8, n_layer=2, n_head=2)
    model = (GPT2LMHeadModel if pre else OpenAIGPTLMHeadModel)(config, generator=minigrad.Generator(seed)).eval()
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 23, (2, 10))
    other = ids.copy()
    other[:, cut:] = rng.integers(0, 23, (2, 10 - cut))
    a, b = model(ids).logits.data, model(other).logits.data
    np.testing.assert_allclose(a[:, :cut], b[:, :cut], rtol=0, atol=1e-6)  # (exactly equal, in fact)
    assert not np.allclose(a[:, cut:], b[:, cut:]) or np.array_equal(ids, other)


def test_gradients_flow_through_the_cache(tmp_path):
    """A loss on the new tokens, with the prefix cached, has the gradients of the uncached forward."""
    ref = hf_model("gpt2", "relu_inner", seed=13)
    a = ours_from(ref, tmp_path, "gpt2")
    b = GPT2LMHeadModel.from_pretrained(tmp_path)
    ids, _ = batch(61, seed=14, T=10)
    labels = ids.copy()
    labels[:, :5] = -100  # only the last five tokens are scored
    a(ids, labels=labels).loss.backward()
    cache = b(ids[:, :4], use_cache=True).past_key_values
    out = b(ids[:, 4:], past_key_values=cache)
    causal_lm_loss(out.logits, labels[:, 4:], 61).backward()
    for (k, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert max_diff(pb.grad, pa.grad) < 1e-6, k


def test_block_gradcheck_float64():
    """The shared block, pre- and post-LN, with and without a cache: float64 central differences."""
    for config in (GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=1, n_head=2, **NO_DROPOUT),
                   OpenAIGPTConfig(vocab_size=11, n_positions=8, n_embd=8, n_layer=1, n_head=2, **NO_DROPOUT)):
        model = GPT2Model if config.pre_layer_norm else OpenAIGPTModel
        block = model(config, dtype=np.float64, generator=minigrad.Generator(0)).h[0]
        rng = np.random.default_rng(0)
        x = minigrad.Tensor(rng.standard_normal((2, 3, 8)), requires_grad=True)
        past = minigrad.Tensor(rng.standard_normal((2, 2, 8)), requires_grad=True)
        from models.gpt.modeling import attention_bias

        minigrad.gradcheck(lambda t: block(t, attention_bias(None, 3, 0, np.float64))[0], (x,))

        def with_cache(p, t):
            cache = DecoderCache(1)
            block(p, attention_bias(None, 2, 0, np.float64), cache.layers[0])
            return block(t, attention_bias(None, 3, 2, np.float64), cache.layers[0])[0]

        minigrad.gradcheck(with_cache, (past, x))


# ----------------------------------------------------------------------------------------------
# ours -> HF, checkpoint names and layouts
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls, hf_cls, config", [
    (GPT2LMHeadModel, "GPT2LMHeadModel", GPT2Config(**GPT2_SMALL["relu_inner"], **NO_DROPOUT)),
    (GPT2Model, "GPT2Model", GPT2Config(**GPT2_SMALL["gelu_new"], **NO_DROPOUT)),
    (OpenAIGPTLMHeadModel, "OpenAIGPTLMHeadModel", OpenAIGPTConfig(**GPT_SMALL["gelu"], **NO_DROPOUT)),
    (GPT2LMHeadModel, "GPT2LMHeadModel", GPT2Config(**GPT2_SMALL["scaled"], **NO_DROPOUT, tie_word_embeddings=False)),
])
def test_save_pretrained_loads_in_hf(tmp_path, cls, hf_cls, config):
    ours = cls(config, generator=minigrad.Generator(7)).eval()
    ours.save_pretrained(tmp_path)
    saved = minigrad.load(tmp_path / "model.safetensors")
    assert (LM_HEAD in saved) == (not config.tie_word_embeddings)  # the tied weight is written once, as HF
    ref = getattr(transformers, hf_cls).from_pretrained(tmp_path, local_files_only=True).eval()
    ids, mask = batch(config.vocab_size, seed=8, side="right")
    out = ours(ids, attention_mask=mask)
    with torch.no_grad():
        expected = ref(*torch_ids(ids), attention_mask=torch_ids(mask)[0])
    key = "logits" if cls is not GPT2Model else "last_hidden_state"
    real = mask.astype(bool)
    assert np.abs(out[key].data - expected[key].numpy())[real].max() < 1e-5
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())  # HF's names, ours
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes left no temp file


def test_checkpoint_layouts_load_like_hf(tmp_path):
    """A bare decoder opens under the LM head and back; OpenAI's original layout (no ``transformer.``
    prefix, stored causal-mask buffers ``attn.bias`` / ``attn.masked_bias``) opens too."""
    ref = hf_model("gpt2", "gelu_new", seed=15)
    ref.save_pretrained(tmp_path / "lm")
    bare = GPT2Model.from_pretrained(tmp_path / "lm")  # prefix stripped, lm_head skipped
    bare.save_pretrained(tmp_path / "bare")
    lm = GPT2LMHeadModel.from_pretrained(tmp_path / "bare")  # prefix added, tied head
    state = {k.removeprefix("transformer."): v.numpy() for k, v in ref.state_dict().items() if k != LM_HEAD}
    for i in range(2):
        state[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 32, 32), np.float32))
        state[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    (tmp_path / "openai").mkdir()
    minigrad.save(state, tmp_path / "openai" / "model.safetensors")
    (tmp_path / "openai" / "config.json").write_text((tmp_path / "lm" / "config.json").read_text())
    original = GPT2LMHeadModel.from_pretrained(tmp_path / "openai")
    ids, _ = batch(97, seed=16)
    with torch.no_grad():
        expected = ref(*torch_ids(ids)).logits
    for model in (lm, original):
        assert max_diff(model(ids).logits, expected) < 1e-5
    assert lm.lm_head.weight is lm.transformer.wte.weight


def test_float64_load_and_dtype(tmp_path):
    ref = hf_model("gpt2", "gelu_new").double()
    ours = ours_from(ref, tmp_path, "gpt2")
    ours64 = GPT2LMHeadModel.from_pretrained(tmp_path, dtype=np.float64)
    ids, mask = batch(97, seed=17)
    with torch.no_grad():
        expected = ref(*torch_ids(ids), attention_mask=torch_ids(mask)[0]).logits
    assert ours64(ids, attention_mask=mask).logits.dtype == np.float64
    assert max_diff(ours64(ids, attention_mask=mask).logits, expected) < 1e-10
    assert ours(ids).logits.dtype == np.float32  # without dtype=: float32, the float64 file cast on loading
    assert max_diff(ours(ids, attention_mask=mask).logits, expected) < 1e-5


# ----------------------------------------------------------------------------------------------
# parameter counts, names, init
# ----------------------------------------------------------------------------------------------
def test_parameter_counts_of_the_papers():
    assert count_parameters(GPT2Config()) == 124_439_808
    assert count_parameters(OpenAIGPTConfig()) == 116_534_784
    with torch.device("meta"):  # HF's models without allocating them
        assert sum(p.numel() for p in transformers.GPT2LMHeadModel(transformers.GPT2Config()).parameters()) \
            == 124_439_808
        assert sum(p.numel() for p in transformers.OpenAIGPTLMHeadModel(
            transformers.OpenAIGPTConfig()).parameters()) == 116_534_784


@pytest.mark.parametrize("family, name", CASES)
def test_shapes_helper_matches_hf_and_ours(family, name):
    configs, _, cls, _ = FAMILIES[family]
    config = cls.config_class(**configs[name])
    ours = cls(config)
    expected = {k: tuple(v.shape) for k, v in hf_model(family, name).state_dict().items() if k != LM_HEAD}
    assert parameter_shapes(config, lm_head=True) == expected
    assert {k: v.shape for k, v in ours.state_dict().items() if k != LM_HEAD} == expected
    assert ours.num_parameters() == count_parameters(config)


def test_hf_init_statistics():
    config = GPT2Config(vocab_size=400, n_positions=64, n_embd=64, n_layer=8, n_head=2, initializer_range=0.04)
    model = GPT2LMHeadModel(config, generator=minigrad.Generator(0))
    block = model.transformer.h[0]
    assert abs(block.mlp.c_fc.weight.data.std() - 0.04) < 0.002
    assert abs(block.attn.c_proj.weight.data.std() - 0.04 / 4) < 0.0005  # 1/√(2·8): GPT-2's residual scaling
    assert np.all(block.attn.c_attn.bias.data == 0) and np.all(block.ln_1.weight.data == 1)
    assert model.lm_head.weight is model.transformer.wte.weight
    again = GPT2LMHeadModel(config, generator=minigrad.Generator(0))
    assert np.array_equal(again.transformer.wpe.weight.data, model.transformer.wpe.weight.data)  # same seed


def test_config_json_round_trip_and_hf_keys(tmp_path):
    config = GPT2Config(**GPT2_SMALL["relu_inner"], pad_token_id=3)
    config.to_json(tmp_path / "config.json")
    again = GPT2Config.from_json_file(tmp_path / "config.json")
    assert again == config
    hf = transformers.GPT2Config.from_json_file(str(tmp_path / "config.json"))
    assert (hf.hidden_size, hf.n_inner, hf.activation_function, hf.pad_token_id) == (24, 40, "relu", 3)
    assert GPT2Config.from_dict({"hidden_size": 48, "num_attention_heads": 4}).n_embd == 48  # HF's aliases
    assert OpenAIGPTConfig().hidden_act == "gelu_new"  # HF's GPT "gelu" is the tanh approximation


@pytest.mark.parametrize("bad, match", [
    (dict(n_embd=30, n_head=4), "multiple"),
    (dict(activation_function="swish2"), "activation"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(attn_pdrop=1.0), "attn_pdrop"),
    (dict(eos_token_id=-1), "eos_token_id"),
    (dict(extra={"add_cross_attention": True}), "cross_attention"),
])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        GPT2Config(**bad)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors():
    model = GPT2LMHeadModel(GPT2Config(**GPT2_SMALL["scaled"]))  # vocab 50, n_positions 20
    ids = np.ones((2, 5), dtype=np.int64)
    with pytest.raises(ValueError, match=r"vocab_size=50.*max 50"):
        model(np.full((2, 5), 50))
    with pytest.raises(ValueError, match=r"n_positions=20"):
        model(np.ones((1, 21), dtype=np.int64))
    cache = model(ids, use_cache=True).past_key_values
    with pytest.raises(ValueError, match=r"n_positions=20.*5 cached \+ 16 new"):
        model(np.ones((2, 16), dtype=np.int64), past_key_values=cache)
    with pytest.raises(ValueError, match=r"cached \+ new tokens\) = \(2, 7\)"):
        model(np.ones((2, 2), dtype=np.int64), attention_mask=np.ones((2, 2), dtype=np.int64), past_key_values=cache)
    with pytest.raises(ValueError, match="only 0"):
        model(ids, attention_mask=np.full((2, 5), 2))
    with pytest.raises(ValueError, match=r"\(batch, seq_len\)"):
        model(np.ones(5, dtype=np.int64))
    with pytest.raises(TypeError, match="integers"):
        model(np.ones((2, 5)))
    with pytest.raises(ValueError, match=r"labels must be -100 or lie in \[0, vocab_size=50\)"):
        model(ids, labels=np.full((2, 5), 77))
    with pytest.raises(ValueError, match="logits_to_keep=0"):
        model(ids, labels=ids, logits_to_keep=1)
    with pytest.raises(TypeError, match="GPT2Model: past_key_values must be a DecoderCache, got tuple"):
        model(ids, past_key_values=((None, None),))
    with pytest.raises(TypeError, match="config must be a GPT2Config"):
        GPT2LMHeadModel(OpenAIGPTConfig())


def test_mismatched_checkpoint_lists_every_problem(tmp_path):
    hf_model("gpt2", "gelu_new").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(n_layer=1, n_inner=100)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as err:
        GPT2LMHeadModel.from_pretrained(tmp_path)
    text = str(err.value)
    assert "unexpected: transformer.h.1." in text
    assert "mis-shaped: transformer.h.0.mlp.c_fc.weight: checkpoint (32, 128), model (32, 100)" in text
    with pytest.raises(ValueError, match="holds a 'gpt2' model, expected 'openai-gpt'"):
        OpenAIGPTLMHeadModel.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        GPT2LMHeadModel.from_pretrained(tmp_path / "nope")
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        GPT2LMHeadModel.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------------------------
# the recipes
# ----------------------------------------------------------------------------------------------
def _small_corpus(tmp_path):
    from models.text import load_corpus

    path = tmp_path / "corpus.txt"
    path.write_text(load_corpus()[:30_000], encoding="utf-8")
    return path


GPT_PRETRAIN_TINY = ["--vocab-size", "300", "--block-size", "16", "--n-embd", "16", "--n-layer", "1", "--n-head", "2",
                     "--batch-size", "8", "--grad-accum", "2", "--warmup", "2", "--max-new-tokens", "4",
                     "--no-progress"]


def test_gpt_pretrain_recipe_trains_resumes_and_saves_for_hf(tmp_path, capsys):
    from models.cli import main

    corpus = _small_corpus(tmp_path)
    common = ["gpt-pretrain", "--corpus", str(corpus), *GPT_PRETRAIN_TINY]
    assert main([*common, "--out", str(tmp_path / "a"), "--max-steps", "4", "--eval-every", "2"]) == 0
    text = capsys.readouterr().out
    assert "nucleus top-p 0.9" in text and "bits per character" in text
    assert main([*common, "--out", str(tmp_path / "b"), "--max-steps", "2", "--eval-every", "2", "--no-plot"]) == 0
    assert main([*common, "--out", str(tmp_path / "b"), "--max-steps", "4", "--eval-every", "2", "--resume",
                 "--no-plot"]) == 0
    a, b = (minigrad.load(tmp_path / run / "model" / "model.safetensors") for run in ("a", "b"))
    assert all(np.array_equal(a[k], b[k]) for k in a)  # stopped and resumed = uninterrupted
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["valid_ppl"] > 1 and len(metrics["samples"]) == 5 and len(metrics["evals"]) == 2
    for png in ("perplexity.png", "attention.png"):
        assert (tmp_path / "a" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folder = tmp_path / "a" / "model"  # the model and its tokenizer open in HF
    ref = transformers.GPT2LMHeadModel.from_pretrained(folder, local_files_only=True).eval()
    tok = transformers.GPT2Tokenizer.from_pretrained(folder)
    ids = np.array([tok.encode("The object is returned.")[:16]])
    from models.text.bpe import GPT2Tokenizer

    assert GPT2Tokenizer.from_pretrained(folder).encode("The object is returned.")[:16] == ids[0].tolist()
    ours = GPT2LMHeadModel.from_pretrained(folder)
    with torch.no_grad():
        assert max_diff(ours(ids).logits, ref(torch.from_numpy(ids)).logits) < 1e-5


def test_gpt_pretrain_recipe_with_gpt2s_own_tokenizer(tmp_path):
    """--tokenizer gpt2: GPT-2's 50,257-token files from ../shared/data/gpt2_bpe, written beside the model."""
    from models.cli import main
    from models.recipes.gpt_pretrain import GPT2_FILES
    from models.text.bpe import GPT2Tokenizer

    if not (GPT2_FILES / "merges.txt").is_file():
        pytest.skip(f"real data {GPT2_FILES} is absent")
    argv = ["gpt-pretrain", "--corpus", str(_small_corpus(tmp_path)), "--tokenizer", "gpt2", *GPT_PRETRAIN_TINY,
            "--max-steps", "1", "--no-plot", "--out", str(tmp_path / "g")]
    assert main(argv) == 0
    folder = tmp_path / "g" / "model"
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == 50257
    assert GPT2Tokenizer.from_pretrained(folder).encode("Hello world<|endoftext|>") == [15496, 995, 50256]  # GPT-2's ids


def test_gpt_pretrain_recipe_bad_options_exit_2(tmp_path, capsys):
    from models.cli import main

    assert main(["gpt-pretrain", "--tokenizer", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
    assert "error: gpt-pretrain recipe: no tokenizer folder" in capsys.readouterr().err
    assert main(["gpt-pretrain", "--n-embd", "30", "--n-head", "4", "--out", str(tmp_path)]) == 2
    assert "multiple of --n-head" in capsys.readouterr().err


def test_warmup_cosine_and_windows():
    from models.recipes.gpt_pretrain import WarmupCosine, split_text, windows

    schedule = WarmupCosine(warmup=4, total=14, floor=0.1)
    factors = [schedule(s) for s in range(16)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0] and abs(factors[4] - 1.0) < 1e-12
    assert abs(factors[9] - 0.55) < 1e-12 and factors[14] == factors[15] == pytest.approx(0.1)
    w = windows(np.arange(10), 3)
    assert w.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]  # each next-token target once
    train, valid = split_text("a\n" * 50)
    assert train + valid == "a\n" * 50 and len(valid) == 10 and train.endswith("\n")


def test_why_transformer_recipe_table(tmp_path, capsys):
    from models.cli import main

    corpus = tmp_path / "chars.txt"
    corpus.write_text((SHAKESPEARE_LINES * 40)[:24_000], encoding="utf-8")
    argv = ["why-transformer", "--corpus", str(corpus), "--out", str(tmp_path / "w"), "--max-order", "3",
            "--block-size", "16", "--batch-size", "4", "--gru-hidden", "16", "--gpt-embd", "16", "--gpt-layers", "1",
            "--gpt-heads", "2", "--max-steps", "3", "--eval-every", "2", "--eval-chars", "500", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| Kneser-Ney n-gram | order" in out and "| GPT | 1 layers, d 16" in out
    metrics = json.loads((tmp_path / "w" / "metrics.json").read_text())
    assert set(metrics["models"]) == {"gru", "gpt"} and metrics["ngram_best_order"] in (2, 3)
    assert all(0 < m["bits_per_char"] < 8 for m in metrics["models"].values())
    assert (tmp_path / "w" / "bits_per_char.png").is_file()
    assert main(["why-transformer", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path)]) == 2
    assert "error: why-transformer recipe: no corpus" in capsys.readouterr().err


def test_gpt_bits_scores_every_character_once():
    """The overlapping held-out windows score each character after the first exactly once."""
    from models.recipes.why_transformer import gpt_bits

    class Uniform:  # P(c) = 1/8 for every character: 3 bits each, whatever the windows
        config = GPT2Config(vocab_size=8, n_positions=8, n_embd=4, n_layer=0, n_head=1)
        training = False

        def eval(self):
            return self

        def train(self, mode=True):
            return self

        def __call__(self, ids):
            from models.bert.modeling import ModelOutput

            return ModelOutput(logits=minigrad.Tensor(np.zeros(ids.shape + (8,), np.float32)))

    for n in (9, 10, 37, 100):
        assert gpt_bits(Uniform(), np.arange(n) % 8, 8) == pytest.approx(3.0)


SHAKESPEARE_LINES = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
                     "First Citizen:\nYou are all resolved rather to die than to famish?\n\n")
