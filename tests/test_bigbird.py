"""BigBird (models.bigbird, book § 4.8): block-sparse attention equals dense attention under the equivalent
mask; the model equals Hugging Face's ``BigBirdModel`` in ``block_sparse`` mode (evaluation: HF's all-zero
plan; training with dropout 0: HF's own random plan) and in ``original_full`` mode — outputs and every
parameter gradient; checkpoints both ways; clear errors."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import minigrad
from minigrad import functional as F
from minigrad.kernels.block_sparse import block_sparse_attention, dense_equivalent_mask
from models.bigbird import BigBirdConfig, BigBirdForSequenceClassification, BigBirdModel, random_block_plan

SMALL = dict(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
             max_position_embeddings=128, block_size=4, num_random_blocks=2, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0, sep_token_id=5)


def _tensors(arrays):
    return [minigrad.Tensor(a, requires_grad=True) for a in arrays]


# ----------------------------------------------------------------------------------------------
# the attention itself
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("plan_kind", ["seeded", "zeros"])
def test_block_sparse_equals_dense_attention_with_the_equivalent_mask(plan_kind):
    rng = np.random.default_rng(0)
    B, A, nb, bs, d, r = 2, 3, 9, 4, 5, 2
    T = nb * bs
    plan = random_block_plan(nb, r, A, minigrad.Generator(1)) if plan_kind == "seeded" else np.zeros((A, nb - 2, r),
                                                                                                      np.int64)
    keys = np.ones((B, T), dtype=bool)
    keys[1, -7:] = False
    arrays = [rng.standard_normal((B, A, T, d)) for _ in range(3)]
    u = rng.standard_normal((B, A, T, d))
    sparse, dense = _tensors(arrays), _tensors(arrays)
    out = block_sparse_attention(*sparse, plan, bs, key_mask=keys)
    mask = dense_equivalent_mask(plan, nb, bs)[None] + np.where(keys, 0.0, -np.inf)[:, None, None, :]  # (B, A, T, T)
    expected = F.scaled_dot_product_attention(*dense, attn_mask=mask)
    np.testing.assert_allclose(out.data, expected.data, rtol=1e-10, atol=1e-12)
    (out * u).sum().backward()
    (expected * u).sum().backward()
    for a, b in zip(sparse, dense):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)
    # the pattern is sparse: linear in T — 2 global rows of T, (nb − 2) rows of at most 5 + r blocks
    allowed = np.isfinite(dense_equivalent_mask(plan, nb, bs)).sum(axis=(1, 2))
    assert (allowed <= 2 * bs * T + (nb - 2) * bs * (5 + r) * bs).all() and (allowed < T * T).all()


def test_random_plan_is_legal_distinct_and_seeded():
    nb, r, A = 12, 3, 4
    plan = random_block_plan(nb, r, A, minigrad.Generator(7))
    assert plan.shape == (A, nb - 2, r)
    for h in range(A):
        for row, i in enumerate(range(1, nb - 1)):
            chosen = set(plan[h, row].tolist())
            assert len(chosen) == r and not chosen & {0, nb - 1, i - 1, i, i + 1}
    assert np.array_equal(plan, random_block_plan(nb, r, A, minigrad.Generator(7)))
    assert not np.array_equal(plan, random_block_plan(nb, r, A, minigrad.Generator(8)))
    with pytest.raises(ValueError, match="only 2 blocks outside its window.*num_random_blocks=3"):
        random_block_plan(7, 3, 2, minigrad.Generator(0))


def test_bad_inputs_give_clear_errors():
    q = minigrad.Tensor(np.zeros((1, 2, 10, 3)))
    with pytest.raises(ValueError, match="seq_len 10 is not a multiple of block_size 4; pad the input to 12"):
        block_sparse_attention(q, q, q, np.zeros((2, 1, 0), np.int64), 4)
    with pytest.raises(ValueError, match="at least 3 blocks.*2 block"):
        block_sparse_attention(q, q, q, np.zeros((2, 0, 0), np.int64), 5)
    with pytest.raises(ValueError, match=r"random_blocks must be integers of shape \(heads=2, blocks − 2=3, r\)"):
        block_sparse_attention(q, q, q, np.zeros((1, 3, 1), np.int64), 2)
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        block_sparse_attention(q, q, q, np.full((2, 3, 1), 5), 2)
    with pytest.raises(ValueError, match="key_mask must be bool"):
        block_sparse_attention(q, q, q, np.zeros((2, 3, 1), np.int64), 2, key_mask=np.ones((1, 10)))
    with pytest.raises(ValueError, match="attention_type must be one of"):
        BigBirdConfig(attention_type="sparse")
    with pytest.raises(ValueError, match="num_random_blocks must be an int >= 0"):
        BigBirdConfig(num_random_blocks=-1)
    model = BigBirdModel(BigBirdConfig.from_dict({**SMALL, "max_position_embeddings": 42}))
    with pytest.raises(ValueError, match="padded to 44.*exceeds max_position_embeddings=42"):
        model(np.ones((1, 41), np.int64))
    with pytest.raises(ValueError, match="output_attentions is not available in block_sparse mode"):
        model(np.ones((1, 40), np.int64), output_attentions=True)


# ----------------------------------------------------------------------------------------------
# against Hugging Face
# ----------------------------------------------------------------------------------------------
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def hf_model(cls: str = "BigBirdModel", seed: int = 0, **changes):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(transformers, cls)(transformers.BigBirdConfig(**{**SMALL, **changes})).eval()


def batch(T: int, seed: int = 0, B: int = 2):
    rng = np.random.default_rng(seed)
    ids = rng.integers(6, SMALL["vocab_size"], (B, T))
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, T - T // 4:] = 0
    ids[mask == 0] = 0
    types = (np.arange(T) >= T // 2).astype(np.int64)[None].repeat(B, 0)
    return ids, mask, types


def torch_inputs(ids, mask, types):
    return dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                token_type_ids=torch.from_numpy(types))


def close(ours, ref, atol=1e-5):
    ref = ref.detach().numpy() if hasattr(ref, "detach") else ref
    ours = ours.data if isinstance(ours, minigrad.Tensor) else ours
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=atol, rtol=0)


def hf_train_plans(ref, T: int) -> list:
    """HF's training plan of every layer, drawn the way its forward draws it (``np.random.seed(layer index)``)."""
    plans, cfg = [], ref.config
    layers = ref.bert.encoder.layer if hasattr(ref, "bert") else ref.encoder.layer
    state = np.random.get_state()
    for i, layer in enumerate(layers):
        attention = layer.attention.self
        attention.train()
        np.random.seed(i)
        lengths, counts = attention._get_rand_attn_plan(T, cfg.block_size, cfg.num_random_blocks)
        plans.append(np.stack(attention._bigbird_block_rand_mask_with_head(
            from_seq_length=T, to_seq_length=T, from_block_size=cfg.block_size, to_block_size=cfg.block_size,
            num_heads=cfg.num_attention_heads, plan_from_length=lengths, plan_num_rand_blocks=counts)))
    np.random.set_state(state)
    return plans


@pytest.mark.parametrize("T, changes", [(50, {}), (37, {"use_bias": False, "rescale_embeddings": True,
                                                         "num_random_blocks": 1, "hidden_act": "relu"})])
def test_block_sparse_eval_equals_hf(tmp_path, T, changes):  # padded to 13 and 10 blocks of 4
    ref = hf_model(**changes)
    ref.save_pretrained(tmp_path)
    ours = BigBirdModel.from_pretrained(tmp_path)
    assert ours.uses_block_sparse(T)
    ids, mask, types = batch(T)
    out = ours(ids, mask, types, output_hidden_states=True)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types), output_hidden_states=True)
    assert ref.attention_type == "block_sparse"
    close(out.last_hidden_state, expected.last_hidden_state)
    close(out.pooler_output, expected.pooler_output)
    for a, b in zip(out.hidden_states[1:], expected.hidden_states[1:]):  # HF records them padded
        close(a, b[:, :T])


def test_full_attention_and_the_short_input_fall_back_equal_hf(tmp_path):
    ref = hf_model(attention_type="original_full")
    ref.save_pretrained(tmp_path)
    ours = BigBirdModel.from_pretrained(tmp_path)
    ids, mask, types = batch(50)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types))
    close(ours(ids, mask, types).last_hidden_state, expected.last_hidden_state)
    sparse = BigBirdModel.from_pretrained(tmp_path, attention_type="block_sparse")
    short = [a[:, :36] for a in (ids, mask, types)]  # 36 = (5 + 2·2)·4 tokens: HF falls back to full attention
    assert not sparse.uses_block_sparse(36)
    with torch.no_grad():
        expected = ref(**torch_inputs(*short))
    close(sparse(*short).last_hidden_state, expected.last_hidden_state)


@pytest.mark.parametrize("attention_type", ["block_sparse", "original_full"])
def test_training_loss_and_gradients_equal_hf(tmp_path, attention_type):
    ref = hf_model("BigBirdForSequenceClassification", seed=3, attention_type=attention_type, num_labels=3)
    ref.save_pretrained(tmp_path)
    ours = BigBirdForSequenceClassification.from_pretrained(tmp_path).train()
    ref.train()
    T = 48
    ids, mask, types = batch(T, seed=1)
    labels = np.array([2, 0])
    plans = hf_train_plans(ref, T) if attention_type == "block_sparse" else None
    if plans is not None:
        assert any(p.any() for p in plans)  # a real random plan, not the evaluation zeros
    out = ours(ids, mask, types, labels=labels, random_blocks=plans)
    expected = ref(**torch_inputs(ids, mask, types), labels=torch.from_numpy(labels))
    close(out.logits, expected.logits)
    assert abs(out.loss.item() - expected.loss.item()) < 1e-5
    out.loss.backward()
    expected.loss.backward()
    ours_grads = {k: p.grad for k, p in ours.named_parameters() if p.grad is not None}
    ref_grads = {k: p.grad.numpy() for k, p in ref.named_parameters() if p.grad is not None}
    assert set(ours_grads) == set(ref_grads) and len(ref_grads) > 30  # all but the (unused) pooler
    for k, g in ref_grads.items():
        np.testing.assert_allclose(ours_grads[k], g, atol=1e-4, rtol=1e-3, err_msg=k)


def test_our_checkpoint_loads_in_hf(tmp_path):
    config = BigBirdConfig.from_dict(SMALL, num_labels=3)
    ours = BigBirdForSequenceClassification(config, generator=minigrad.Generator(4)).eval()
    ours.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "big_bird"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = transformers.BigBirdForSequenceClassification.from_pretrained(tmp_path).eval()
    ids, mask, types = batch(44, seed=2)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types))
    close(ours(ids, mask, types).logits, expected.logits)
    bare = BigBirdModel.from_pretrained(tmp_path)  # the head checkpoint into the bare model: prefix removed
    close(bare(ids, mask, types).last_hidden_state, ours.bert(ids, mask, types).last_hidden_state, atol=0)
    bare.save_pretrained(tmp_path / "bare")
    with pytest.warns(UserWarning, match="4 tensors not in the checkpoint were newly initialised"):
        head = BigBirdForSequenceClassification.from_pretrained(tmp_path / "bare")  # HF's rule: a fresh head
    close(head.bert(ids, mask, types).last_hidden_state, bare(ids, mask, types).last_hidden_state, atol=0)


def test_mismatched_checkpoint_lists_every_problem(tmp_path):
    hf_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(num_hidden_layers=1, intermediate_size=20)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as err:
        BigBirdModel.from_pretrained(tmp_path)
    text = str(err.value)
    assert "unexpected: encoder.layer.1" in text
    assert "mis-shaped: encoder.layer.0.intermediate.dense.weight: checkpoint (24, 16), model (20, 16)" in text
    config.update(model_type="bert")
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model_type is 'bert', expected 'big_bird'"):
        BigBirdModel.from_pretrained(tmp_path)
