"""The Reformer (models.reformer, book § 4.9): LSH attention equals a brute-force dense reference for given
rotations and Hugging Face's ``LSHSelfAttention`` given HF's rotations; local attention equals HF's; the
reversible stack reconstructs its inputs and has the gradients of the same stack without reversibility;
``ReformerModel`` / ``ReformerModelWithLMHead`` equal HF's on a small config mixing "lsh" and "local" layers
(outputs, loss, every parameter gradient, checkpoints both ways); clear errors."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import minigrad
from minigrad.kernels import lsh
from minigrad.kernels.reversible import reversible_inverse, reversible_layers, reversible_layers_reference
from minigrad.tensor import where
from models.reformer import ReformerConfig, ReformerModel, ReformerModelWithLMHead, default_num_buckets

SMALL = dict(vocab_size=40, hidden_size=16, num_attention_heads=2, attention_head_size=8,
             attn_layers=["local", "lsh", "local", "lsh"], axial_pos_shape=[4, 8], axial_pos_embds_dim=[6, 10],
             feed_forward_size=24, max_position_embeddings=32, lsh_attn_chunk_length=4, local_attn_chunk_length=8,
             num_buckets=[2, 4], num_hashes=2, hash_seed=5, is_decoder=True, hidden_dropout_prob=0.0,
             local_attention_probs_dropout_prob=0.0, lsh_attention_probs_dropout_prob=0.0, chunk_size_feed_forward=8)


# ----------------------------------------------------------------------------------------------
# LSH attention against a brute-force dense computation
# ----------------------------------------------------------------------------------------------
def brute_force_lsh(qk, v, buckets, chunk, before, after, causal, key_mask):
    """Dense (T, T) attention per hashing round: query t may see key t' as often as t' sits in the sorted
    chunks c(t) − before … c(t) + after (HF's and the paper's P̃_t); HF's scores for padding/future keys
    (−1e9) and for the query itself (−1e5); rounds combined by their log-sum-exp weights."""
    B, A, T, d = qk.shape
    n_hashes = buckets.shape[2]
    order = lsh.sort_by_bucket(buckets)  # (B, A, R·T): r·T + t by (round, bucket, position)
    N = n_hashes * T
    chunk_of = np.arange(N) // chunk
    n_chunks = N // chunk
    counts = np.zeros((B, A, n_hashes, T, T))
    for b in range(B):
        for h in range(A):
            for i in range(N):
                r, t = divmod(int(order[b, h, i]), T)
                for j in range(N):
                    offset = (chunk_of[j] - chunk_of[i]) % n_chunks
                    if offset <= after or offset >= n_chunks - before:
                        counts[b, h, r, t, int(order[b, h, j]) % T] += 1
    k = lsh.length_normalized_keys(qk)
    s = (qk @ k.swapaxes(-1, -2))[:, :, None]  # (B, A, 1, T, T)
    pos = np.arange(T)
    masked = np.zeros((B, 1, 1, T, T), dtype=bool)
    if key_mask is not None:
        masked |= ~key_mask[:, None, None, None, :]
    if causal:
        masked |= pos[:, None] < pos[None, :]
    s = where(masked, lsh.MASKED_SCORE, s)
    s = where(pos[:, None] == pos[None, :], lsh.SELF_SCORE, s)
    with np.errstate(divide="ignore"):
        s = s + np.log(counts)  # multiplicity of each key in the query's chunks (−inf: not there)
    L = s.logsumexp(axis=-1, keepdims=True)  # (B, A, R, T, 1)
    out = (s - L).exp() @ v[:, :, None]  # (B, A, R, T, d)
    w = (L - L.logsumexp(axis=2, keepdims=True)).exp()
    return (w * out).sum(axis=2)


@pytest.mark.parametrize("n_hashes, before, after, causal, padded", [
    (1, 1, 0, False, False), (2, 1, 0, True, True), (3, 1, 1, False, True), (2, 2, 0, True, False)])
def test_lsh_attention_equals_brute_force(n_hashes, before, after, causal, padded):
    rng = np.random.default_rng(n_hashes + 10 * before)
    B, A, T, d, c = 2, 2, 12, 3, 3
    qk, v = rng.standard_normal((B, A, T, d)), rng.standard_normal((B, A, T, d))
    mask = None
    if padded:
        mask = np.ones((B, T), dtype=bool)
        mask[1, -4:] = False
    buckets = lsh.hash_buckets(qk, rng.standard_normal((A, d, n_hashes, 3)), [2, 4], mask)
    u = rng.standard_normal((B, A, T, d))
    ours = [minigrad.Tensor(a, requires_grad=True) for a in (qk, v)]
    brute = [minigrad.Tensor(a, requires_grad=True) for a in (qk, v)]
    out = lsh.lsh_attention(*ours, buckets, c, before, after, causal, mask)
    expected = brute_force_lsh(*brute, buckets, c, before, after, causal, mask)
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-9, atol=1e-9)
    (out * u).sum().backward()
    (expected * u).sum().backward()
    for a, b in zip(ours, brute):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-8, atol=1e-9)


def test_local_attention_equals_dense_band_attention():
    rng = np.random.default_rng(0)
    B, A, T, d, c = 2, 2, 12, 3, 4
    q, k, v = (rng.standard_normal((B, A, T, d)) for _ in range(3))
    out = lsh.local_attention(*(minigrad.Tensor(a) for a in (q, k, v)), c, 1, 0, causal=True).data
    t = np.arange(T)
    see = (t[None, :] <= t[:, None]) & (t[:, None] // c - t[None, :] // c <= 1)  # own and previous chunk, causal
    s = np.where(see, q @ k.swapaxes(-1, -2) / np.sqrt(d), -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(out, (p / p.sum(-1, keepdims=True)) @ v, rtol=1e-12, atol=1e-12)


def test_lsh_bad_inputs_give_clear_errors():
    x = minigrad.Tensor(np.zeros((1, 2, 10, 4)))
    with pytest.raises(ValueError, match="num_buckets must be an even int"):
        lsh.hash_buckets(x.data, np.zeros((2, 4, 1, 2)), 5)
    with pytest.raises(ValueError, match="num_buckets must be an even int"):
        ReformerConfig(num_buckets=[4, 3])
    with pytest.raises(ValueError, match=r"rotations must have shape \(heads=2, head_dim=4, n_hashes, 2\)"):
        lsh.hash_buckets(x.data, np.zeros((2, 4, 1, 3)), 4)
    with pytest.raises(ValueError, match="seq_len 10 is not a multiple of chunk_length 4; pad the input to 12"):
        lsh.lsh_attention(x, x, np.zeros((1, 2, 1, 10), np.int64), 4)
    with pytest.raises(ValueError, match="seq_len 10 is not a multiple of chunk_length 4"):
        lsh.local_attention(x, x, x, 4)
    with pytest.raises(ValueError, match=r"buckets must be integers of shape \(batch=1, heads=2, n_hashes, seq_len=10\)"):
        lsh.lsh_attention(x, x, np.zeros((1, 2, 10), np.int64), 5)
    with pytest.raises(ValueError, match="attn_layers must be a non-empty list"):
        ReformerConfig(attn_layers=["lsh", "full"])
    with pytest.raises(ValueError, match="axial_pos_embds_dim .* must add up to hidden_size=16"):
        ReformerConfig(**{**SMALL, "axial_pos_embds_dim": [6, 9]})
    model = ReformerModel(ReformerConfig(**SMALL)).train()
    with pytest.raises(ValueError, match="in training the sequence length must be a multiple of the chunk lengths' "
                                         "lcm 8, got 12; pad the input to 16"):
        model(np.ones((1, 12), np.int64))
    with pytest.raises(ValueError, match="must equal the axial grid"):
        model(np.ones((1, 16), np.int64))
    with pytest.raises(ValueError, match="is_decoder must be True"):
        ReformerModelWithLMHead(ReformerConfig(**{**SMALL, "is_decoder": False}))


def test_default_bucket_count_follows_the_paper_rule():
    assert default_num_buckets(1024, 64, 4096) == 32  # 2·T/c
    assert default_num_buckets(4096, 64, 4096) == 128
    assert default_num_buckets(2 ** 16, 64, 2 ** 16) == [32, 64]  # above 2·max(√(P/c), c): factorised


# ----------------------------------------------------------------------------------------------
# reversible layers
# ----------------------------------------------------------------------------------------------
def _float64_model(train: bool, p: float = 0.0):
    config = ReformerConfig(**{**SMALL, "hidden_dropout_prob": p, "lsh_attention_probs_dropout_prob": p})
    model = ReformerModel(config, dtype=np.float64, generator=minigrad.Generator(0))
    return model.train() if train else model.eval()


def test_reversible_stack_reconstructs_its_inputs():
    model = _float64_model(train=False)
    rng = np.random.default_rng(0)
    x = minigrad.Tensor(rng.standard_normal((2, 32, 16)))
    R = rng.standard_normal((2, 8, 2, 3))
    steps = model.encoder.steps(None, R)
    y = reversible_layers(x, x, steps, [])
    back = reversible_inverse(y, steps)
    np.testing.assert_allclose(back.data, np.concatenate([x.data, x.data], -1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.2])  # with dropout the backward replays the forward pass's masks
def test_reversible_gradients_equal_the_stack_without_reversibility(p):
    model = _float64_model(train=True, p=p)
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((2, 32, 16))
    u = rng.standard_normal((2, 32, 32))
    mask = np.ones((2, 32), dtype=bool)
    mask[1, -5:] = False
    params = list(model.encoder.layers.parameters())
    results = []
    for run in (reversible_layers, reversible_layers_reference):
        minigrad.manual_seed(3)  # the rotations and dropout masks
        x = minigrad.Tensor(x0, requires_grad=True)
        steps = model.encoder.steps(mask)
        y = run(x, x, steps, params) if run is reversible_layers else run(x, x, steps)
        grads = minigrad.grad((y * u).sum(), [x] + params)
        results.append((y.data, [g.data for g in grads]))
    (y_rev, g_rev), (y_ref, g_ref) = results
    np.testing.assert_allclose(y_rev, y_ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(g_rev, g_ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * max(1.0, np.abs(b).max()))


# ----------------------------------------------------------------------------------------------
# against Hugging Face
# ----------------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.models.reformer import modeling_reformer as hf_reformer  # noqa: E402


def hf_config(**changes):
    return transformers.ReformerConfig(**{**SMALL, **changes})


def hf_rotations(config, dtype=torch.float32) -> np.ndarray:
    """The rotations HF draws with ``hash_seed``: torch.manual_seed(hash_seed); randn(heads, d, n_hashes, Σ b/2)."""
    torch.manual_seed(config.hash_seed)
    shape = (config.num_attention_heads, config.attention_head_size, config.num_hashes,
             lsh.rotation_size(config.num_buckets))
    return torch.randn(shape, dtype=dtype).numpy()


def _heads(x: np.ndarray, A: int) -> np.ndarray:
    B, T, _ = x.shape
    return x.reshape(B, T, A, -1).transpose(0, 2, 1, 3)


@pytest.mark.parametrize("dtype, num_buckets, n_hashes, causal", [
    (torch.float64, 4, 2, False), (torch.float64, [2, 4], 3, True), (torch.float32, 8, 1, True)])
def test_lsh_self_attention_equals_hf(dtype, num_buckets, n_hashes, causal):
    config = hf_config(num_buckets=num_buckets, num_hashes=n_hashes, is_decoder=causal, hash_seed=7)
    torch.manual_seed(0)
    ref = hf_reformer.LSHSelfAttention(config).to(dtype).eval()
    x = torch.randn(2, 32, 16, dtype=dtype)
    mask = torch.ones(2, 32, dtype=torch.long)
    mask[1, -6:] = 0
    with torch.no_grad():
        out = ref(x, attention_mask=mask)
    xs, keys = x.numpy(), mask.numpy().astype(bool)
    qk = _heads(xs @ ref.query_key.weight.detach().numpy().T, 2)
    v = _heads(xs @ ref.value.weight.detach().numpy().T, 2)
    buckets = lsh.hash_buckets(qk, hf_rotations(config, dtype), num_buckets, keys)
    per_round = int(np.prod(lsh.bucket_factors(num_buckets))) + 1  # HF numbers the rounds' buckets apart
    hf_buckets = out.buckets.numpy().reshape(2, 2, n_hashes, 32) - per_round * np.arange(n_hashes)[:, None]
    np.testing.assert_array_equal(buckets, hf_buckets)
    ours = lsh.lsh_attention(minigrad.Tensor(qk), minigrad.Tensor(v), buckets, 4, 1, 0, causal, keys).data
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(ours.transpose(0, 2, 1, 3).reshape(2, 32, 16), out.hidden_states.numpy(), rtol=0,
                               atol=atol)


def test_local_self_attention_equals_hf():
    config = hf_config()
    torch.manual_seed(1)
    ref = hf_reformer.LocalSelfAttention(config).double().eval()
    x = torch.randn(2, 32, 16, dtype=torch.float64)
    mask = torch.ones(2, 32, dtype=torch.long)
    mask[0, -3:] = 0
    with torch.no_grad():
        out = ref(x, attention_mask=mask).hidden_states.numpy()
    xs = x.numpy()
    q, k, v = (_heads(xs @ getattr(ref, n).weight.detach().numpy().T, 2) for n in ("query", "key", "value"))
    ours = lsh.local_attention(*(minigrad.Tensor(a) for a in (q, k, v)), 8, 1, 0, True, mask.numpy().astype(bool))
    np.testing.assert_allclose(ours.data.transpose(0, 2, 1, 3).reshape(2, 32, 16), out, rtol=0, atol=1e-12)


def hf_lm(seed=0, **changes):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.ReformerModelWithLMHead(hf_config(**changes)).eval()


def close(ours, ref, atol=1e-5):
    ref = ref.detach().numpy() if hasattr(ref, "detach") else ref
    ours = ours.data if isinstance(ours, minigrad.Tensor) else ours
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=atol, rtol=0)


@pytest.mark.parametrize("T, padded", [(32, False), (27, True)])  # 27: HF pads to 32 with a mask
def test_reformer_outputs_equal_hf(tmp_path, T, padded):
    ref = hf_lm()
    ref.save_pretrained(tmp_path)
    ours = ReformerModelWithLMHead.from_pretrained(tmp_path)
    ids = np.random.default_rng(T).integers(0, 40, (2, T))
    mask = np.ones((2, T), dtype=np.int64)
    if padded:
        mask[1, 20:] = 0
    R = hf_rotations(ref.config)
    out = ours(ids, mask, rotations=R, output_hidden_states=True)
    with torch.no_grad():
        expected = ref(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                       output_hidden_states=True)
    close(out.logits, expected.logits)
    for a, b in zip(out.hidden_states, expected.hidden_states):
        close(a, b[:, :T])
    bare = ReformerModel.from_pretrained(tmp_path)  # the LM checkpoint into the bare model
    with torch.no_grad():
        expected = ref.reformer(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    close(bare(ids, mask, rotations=R).last_hidden_state, expected.last_hidden_state)  # (B, T, 2H), LayerNormed


def test_lm_loss_and_gradients_equal_hf(tmp_path):
    ref = hf_lm(seed=2)
    ref.save_pretrained(tmp_path)
    ours = ReformerModelWithLMHead.from_pretrained(tmp_path).train()
    ref.train()
    ids = np.random.default_rng(0).integers(0, 40, (2, 32))
    out = ours(ids, labels=ids, rotations=hf_rotations(ref.config))
    expected = ref(input_ids=torch.from_numpy(ids), labels=torch.from_numpy(ids))
    close(out.logits, expected.logits)
    assert abs(out.loss.item() - expected.loss.item()) < 1e-5
    out.loss.backward()
    expected.loss.backward()
    ours_grads = {k: p.grad for k, p in ours.named_parameters() if p.grad is not None}
    ref_grads = {k: p.grad.numpy() for k, p in ref.named_parameters() if p.grad is not None}
    assert set(ours_grads) == set(ref_grads) and len(ref_grads) == len(list(ref.parameters())) - 1  # not lm_head.bias
    for k, g in ref_grads.items():
        np.testing.assert_allclose(ours_grads[k], g, atol=1e-4, rtol=1e-3, err_msg=k)


def test_our_checkpoint_loads_in_hf(tmp_path):
    config = ReformerConfig(**{**SMALL, "axial_pos_embds": False, "num_buckets": 4, "num_hashes": 1})
    ours = ReformerModelWithLMHead(config, generator=minigrad.Generator(3)).eval()
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "reformer" and saved["num_hidden_layers"] == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = transformers.ReformerModelWithLMHead.from_pretrained(tmp_path).eval()
    ids = np.random.default_rng(1).integers(0, 40, (1, 24))
    with torch.no_grad():
        expected = ref(input_ids=torch.from_numpy(ids)).logits
    close(ours(ids, rotations=hf_rotations(ref.config)).logits, expected)


def test_chunked_feed_forward_and_seeds():
    ids = np.random.default_rng(0).integers(0, 40, (1, 32))
    chunked = ReformerModel(ReformerConfig(**SMALL), generator=minigrad.Generator(1)).eval()
    whole = ReformerModel(ReformerConfig(**{**SMALL, "chunk_size_feed_forward": 0}), generator=minigrad.Generator(1))
    a = chunked(ids).last_hidden_state.data
    np.testing.assert_allclose(a, whole.eval()(ids).last_hidden_state.data, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a, chunked(ids).last_hidden_state.data)  # hash_seed: the same rotations each call
    unseeded = ReformerModel(ReformerConfig(**{**SMALL, "hash_seed": None}), generator=minigrad.Generator(1)).eval()
    minigrad.manual_seed(4)
    first = unseeded(ids).last_hidden_state.data
    minigrad.manual_seed(4)
    np.testing.assert_array_equal(first, unseeded(ids).last_hidden_state.data)  # same seed, same numbers


def test_bidirectional_encoder_and_its_gradients_equal_hf(tmp_path):
    """Not causal, chunks after as well as before, 3 rounds over 4 unfactorised buckets: ``ReformerModel``'s
    output and every parameter gradient of Σ u ⊙ output (training mode, dropout 0) equal HF's."""
    changes = dict(is_decoder=False, lsh_num_chunks_after=1, local_num_chunks_after=1, num_buckets=4, num_hashes=3)
    torch.manual_seed(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = transformers.ReformerModel(hf_config(**changes)).train()
    ref.save_pretrained(tmp_path)
    ours = ReformerModel.from_pretrained(tmp_path).train()
    ids = np.random.default_rng(5).integers(0, 40, (2, 32))
    mask = np.ones((2, 32), dtype=np.int64)
    mask[0, -7:] = 0
    u = np.random.default_rng(6).standard_normal((2, 32, 32)).astype(np.float32)
    out = ours(ids, mask, rotations=hf_rotations(ref.config)).last_hidden_state
    expected = ref(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state
    close(out, expected)
    (out * u).sum().backward()
    (expected * torch.from_numpy(u)).sum().backward()
    ref_grads = {k: p.grad.numpy() for k, p in ref.named_parameters() if p.grad is not None}
    ours_grads = {k: p.grad for k, p in ours.named_parameters() if p.grad is not None}
    assert set(ours_grads) == set(ref_grads) and len(ref_grads) == len(list(ref.parameters()))
    for k, g in ref_grads.items():
        np.testing.assert_allclose(ours_grads[k], g, atol=1e-4 * max(1.0, np.abs(g).max()), rtol=1e-3, err_msg=k)
