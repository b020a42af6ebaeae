"""Transformer blocks equal torch.nn's: the same state_dict names load, outputs and every
parameter and input gradient agree (float64 to 1e-10, float32 to atol 1e-5 / rtol 1e-4) over
hypothesis-chosen sizes, ``batch_first``, ``norm_first``, activations and masks; cached
incremental decoding equals one causal pass; padding never changes real positions."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad
from tolerances import assert_close
from minigrad import Tensor
from minigrad.nn.normalization import LayerNorm
from minigrad.nn.transformer import (LayerCache, Transformer, TransformerDecoder, TransformerDecoderLayer,
                                     TransformerEncoder, TransformerEncoderLayer)

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor", "ignore:Support for mismatched",
                                        "ignore:Converting mask without torch.bool")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _t(a, grad=False):
    return Tensor(np.asarray(a), requires_grad=grad)


def _load(ours, ref):
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    assert list(ours.state_dict()) == list(ref.state_dict())  # the same names, in the same order


def _compare(torch, ours, ref, arrays, call_ours, call_ref, dtype, rng, positions=None):
    """Outputs and all gradients of Σ w ⊙ out; ``positions`` (a bool index) limits the loss to
    real (unpadded) positions."""
    ts = [_t(a, True) for a in arrays]
    rts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref_out = call_ours(*ts), call_ref(*rts)
    w = rng.standard_normal(out.shape).astype(dtype)
    if positions is not None:
        w[~positions] = 0.0
    (out * _t(w)).sum().backward()
    (ref_out * torch.tensor(w)).sum().backward()
    got, want = out.data, ref_out.detach().numpy()
    if positions is not None:
        got, want = got[positions], want[positions]
    assert_close(got, want, dtype)
    for a, b in zip(ts, rts):
        assert_close(a.grad, b.grad.numpy(), dtype)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, ref_params[name].grad.numpy(), dtype, name)


@st.composite
def layer_cases(draw):
    return dict(
        d=draw(st.sampled_from([4, 8])), H=draw(st.sampled_from([1, 2])), ff=draw(st.integers(3, 12)),
        N=draw(st.integers(1, 3)), T=draw(st.integers(1, 5)), S=draw(st.integers(1, 5)),
        batch_first=draw(st.booleans()), norm_first=draw(st.booleans()),
        activation=draw(st.sampled_from(["relu", "gelu"])), bias=draw(st.booleans()),
        mask=draw(st.sampled_from([None, "causal_float", "bool", "float3"])),
        kpm=draw(st.sampled_from([None, "bool", "float"])), eval_mode=draw(st.booleans()),
        dtype=draw(st.sampled_from([np.float64, np.float32])), seed=draw(st.integers(0, 2**31 - 1)))


def _masks(c, rng, L, S, prefix):
    """attn mask (L, S) / (N·H, L, S) and key padding mask (N, S); no query loses every key."""
    out = {}
    if c["mask"] == "causal_float":
        out[f"{prefix}mask"] = Transformer.generate_square_subsequent_mask(L).data[:, :S] if L == S else None
    elif c["mask"] == "bool":
        m = rng.random((L, S)) < 0.4
        m[:, 0] = False
        out[f"{prefix}mask"] = m
    elif c["mask"] == "float3":
        out[f"{prefix}mask"] = rng.standard_normal((c["N"] * c["H"], L, S)).astype(c["dtype"])
    if c["kpm"] == "bool":
        k = rng.random((c["N"], S)) < 0.4
        k[:, 0] = False
        out[f"{prefix}key_padding_mask"] = k
    elif c["kpm"] == "float":
        out[f"{prefix}key_padding_mask"] = rng.standard_normal((c["N"], S)).astype(c["dtype"])
    return {k: v for k, v in out.items() if v is not None}


def _build(torch, c, torch_cls, our_cls, **extra):
    dtype = c["dtype"]
    torch.manual_seed(c["seed"])
    # dropout 0.2 in eval mode (identity) or 0.0 in train mode: deterministic either way
    dropout = 0.2 if c["eval_mode"] else 0.0
    opts = dict(dim_feedforward=c["ff"], dropout=dropout, activation=c["activation"], batch_first=c["batch_first"],
                norm_first=c["norm_first"], bias=c["bias"], **extra)
    ref = torch_cls(c["d"], c["H"], **opts).to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = our_cls(c["d"], c["H"], dtype=dtype, **opts)
    with torch.no_grad():  # non-trivial norms and biases, so their roles are tested too
        for name, p in ref.named_parameters():
            if p.ndim == 1:
                p.normal_()
    _load(ours, ref)
    if c["eval_mode"]:
        ref.eval()
        ours.eval()
    return ours, ref


def _seq(c, rng, length):
    shape = (c["N"], length, c["d"]) if c["batch_first"] else (length, c["N"], c["d"])
    return rng.standard_normal(shape).astype(c["dtype"])


@settings(max_examples=30, **SETTINGS)
@given(layer_cases())
def test_encoder_layer_matches_torch(torch, c):
    rng = np.random.default_rng(c["seed"])
    ours, ref = _build(torch, c, torch.nn.TransformerEncoderLayer, TransformerEncoderLayer)
    masks = _masks(c, rng, c["T"], c["T"], "src_")
    x = _seq(c, rng, c["T"])
    _compare(torch, ours, ref, [x],
             lambda a: ours(a, **{k: _t(v) for k, v in masks.items()}),
             lambda a: ref(a, **{k: torch.tensor(v) for k, v in masks.items()}), c["dtype"], rng)


@settings(max_examples=30, **SETTINGS)
@given(layer_cases())
def test_decoder_layer_matches_torch(torch, c):
    rng = np.random.default_rng(c["seed"])
    ours, ref = _build(torch, c, torch.nn.TransformerDecoderLayer, TransformerDecoderLayer)
    masks = _masks(c, rng, c["T"], c["T"], "tgt_")
    masks.update({k.replace("tgt_", "memory_"): v for k, v in _masks(c, rng, c["T"], c["S"], "tgt_").items()})
    tgt, memory = _seq(c, rng, c["T"]), _seq(c, rng, c["S"])
    _compare(torch, ours, ref, [tgt, memory],
             lambda a, b: ours(a, b, **{k: _t(v) for k, v in masks.items()}),
             lambda a, b: ref(a, b, **{k: torch.tensor(v) for k, v in masks.items()}), c["dtype"], rng)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_full_transformer_matches_torch(torch, batch_first, norm_first):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    opts = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=12, dropout=0.0,
                activation="gelu", batch_first=batch_first, norm_first=norm_first)
    ref = torch.nn.Transformer(**opts).double()
    ours = Transformer(**opts, dtype=np.float64)
    _load(ours, ref)
    N, S, T = 2, 5, 4
    src = rng.standard_normal((N, S, 8) if batch_first else (S, N, 8))
    tgt = rng.standard_normal((N, T, 8) if batch_first else (T, N, 8))
    causal = Transformer.generate_square_subsequent_mask(T, dtype=np.float64)
    src_kpm = np.zeros((N, S), bool)
    src_kpm[1, 3:] = True
    real = np.ones(tgt.shape[:2], bool)  # every target position is real
    _compare(torch, ours, ref, [src, tgt],
             lambda a, b: ours(a, b, tgt_mask=causal, src_key_padding_mask=_t(src_kpm),
                               memory_key_padding_mask=_t(src_kpm)),
             lambda a, b: ref(a, b, tgt_mask=torch.tensor(causal.data), src_key_padding_mask=torch.tensor(src_kpm),
                              memory_key_padding_mask=torch.tensor(src_kpm)), np.float64, rng, real)


@pytest.mark.parametrize("eval_mode", [False, True])
def test_encoder_stack_with_padding_matches_torch_on_real_positions(torch, eval_mode):
    """torch's eval fast path (nested tensors) writes zeros at padded positions: compare only
    the real ones (and their gradients)."""
    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    p = 0.1 if eval_mode else 0.0  # eval: dropout is the identity; train: p = 0
    layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=p, batch_first=True)
    ref = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(8)).double()
    ours = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, dropout=p, batch_first=True, dtype=np.float64), 2,
                              LayerNorm(8, dtype=np.float64))
    _load(ours, ref)
    if eval_mode:
        ref.eval()
        ours.eval()
    x = rng.standard_normal((3, 5, 8))
    kpm = np.zeros((3, 5), bool)
    kpm[0, 2:] = True
    kpm[2, 4:] = True
    _compare(torch, ours, ref, [x], lambda a: ours(a, src_key_padding_mask=_t(kpm)),
             lambda a: ref(a, src_key_padding_mask=torch.tensor(kpm)), np.float64, rng, ~kpm)


def test_square_subsequent_mask_is_torchs_float_mask():
    """torch's documented mask: −inf above the diagonal (future positions), 0 elsewhere."""
    expected = np.where(np.arange(5)[None, :] > np.arange(5)[:, None], -np.inf, 0.0)
    np.testing.assert_array_equal(Transformer.generate_square_subsequent_mask(5).data, expected)
    assert Transformer.generate_square_subsequent_mask(3).dtype == np.float32


def test_padding_never_changes_real_positions():
    rng = np.random.default_rng(2)
    enc = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, dtype=np.float64), 2)
    x = rng.standard_normal((2, 6, 8))
    kpm = np.zeros((2, 6), bool)
    kpm[0, 4:] = True
    kpm[1, 5:] = True
    out = enc(_t(x), src_key_padding_mask=_t(kpm)).data
    x2 = x.copy()
    x2[kpm] = rng.standard_normal((kpm.sum(), 8)) * 50
    out2 = enc(_t(x2), src_key_padding_mask=_t(kpm)).data
    np.testing.assert_allclose(out2[~kpm], out[~kpm], rtol=1e-12, atol=1e-12)
    assert not np.allclose(out2[kpm], out[kpm])  # the padded positions themselves did change


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_equals_full_causal_pass(batch_first, norm_first):
    rng = np.random.default_rng(3)
    minigrad.manual_seed(3)
    layer = TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=batch_first, norm_first=norm_first,
                                    dtype=np.float64)
    dec = TransformerDecoder(layer, 2, LayerNorm(8, dtype=np.float64))
    T, N, S = 5, 2, 4
    ax = 1 if batch_first else 0
    tgt = rng.standard_normal((N, T, 8) if batch_first else (T, N, 8))
    mem = rng.standard_normal((N, S, 8) if batch_first else (S, N, 8))
    mem_kpm = np.array([[False, False, True, True], [False, False, False, False]])
    with minigrad.no_grad():
        full = dec(_t(tgt), _t(mem), tgt_mask=Transformer.generate_square_subsequent_mask(T, np.float64),
                   memory_key_padding_mask=_t(mem_kpm)).data
        cache, steps = dec.new_cache(), []
        for t in range(T):
            step = _t(np.take(tgt, [t], axis=ax))
            steps.append(dec(step, _t(mem), tgt_is_causal=True, memory_key_padding_mask=_t(mem_kpm),
                             cache=cache).data)
    assert all(len(c) == T for c in cache) and len(cache[0].cross_attn) == S
    np.testing.assert_allclose(np.concatenate(steps, ax), full, rtol=1e-11, atol=1e-12)


def test_encoder_layers_with_cache_serve_a_decoder_only_model():
    rng = np.random.default_rng(4)
    enc = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True,
                                                     dtype=np.float64), 3)
    x = rng.standard_normal((2, 6, 8))
    with minigrad.no_grad():
        full = enc(_t(x), is_causal=True).data
        cache = enc.new_cache()
        parts = [enc(_t(x[:, :3]), is_causal=True, cache=cache).data]  # the prompt at once
        parts += [enc(_t(x[:, t:t + 1]), is_causal=True, cache=cache).data for t in range(3, 6)]
    np.testing.assert_allclose(np.concatenate(parts, 1), full, rtol=1e-11, atol=1e-12)


def test_decoder_layer_gradcheck():
    rng = np.random.default_rng(5)
    minigrad.manual_seed(5)
    layer = TransformerDecoderLayer(4, 2, 6, dropout=0.0, batch_first=True, dtype=np.float64)
    tgt, mem = _t(rng.standard_normal((2, 3, 4)), True), _t(rng.standard_normal((2, 2, 4)), True)
    causal = Transformer.generate_square_subsequent_mask(3, np.float64)
    params = [layer.self_attn.in_proj_weight, layer.multihead_attn.out_proj.weight, layer.linear1.weight,
              layer.norm2.weight]
    assert minigrad.gradcheck(lambda a, b, *p: layer(a, b, tgt_mask=causal), [tgt, mem, *params])


def test_layer_repr_names_and_errors():
    layer = TransformerEncoderLayer(8, 2, 16)
    names = [n for n, _ in layer.named_children()]
    assert names == ["self_attn", "linear1", "dropout", "linear2", "norm1", "norm2", "dropout1", "dropout2"]
    dec = TransformerDecoderLayer(8, 2, 16)
    assert [n for n, _ in dec.named_children()] == ["self_attn", "multihead_attn", "linear1", "dropout", "linear2",
                                                   "norm1", "norm2", "norm3", "dropout1", "dropout2", "dropout3"]
    model = Transformer(8, 2, 1, 1, 16)
    assert "encoder.norm.weight" in model.state_dict() and "decoder.layers.0.norm3.bias" in model.state_dict()
    with pytest.raises(ValueError, match="activation should be 'relu' or 'gelu'"):
        TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer: src must be .* got shape \(3, 2, 5\)"):
        layer(_t(np.zeros((3, 2, 5), np.float32)))
    with pytest.raises(ValueError, match="batch number of src and tgt"):
        model(_t(np.zeros((3, 2, 8), np.float32)), _t(np.zeros((3, 4, 8), np.float32)))
    with pytest.raises(ValueError, match="cache has 1 entries for 2 layers"):
        TransformerDecoder(dec, 2)(_t(np.zeros((1, 2, 8), np.float32)), _t(np.zeros((1, 2, 8), np.float32)),
                                   cache=[LayerCache()])
