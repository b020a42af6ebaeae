"""What the HF-parity tests of BERT's successors share (tests/test_roberta.py, test_albert.py, test_electra.py):
a padded batch of pairs, torch inputs, output and gradient comparisons, and an HF model built and saved by HF."""
from __future__ import annotations

import numpy as np

import minigrad


def padded_pairs(vocab_size: int, pad: int, seed: int = 0, B: int = 3, T: int = 11, types: bool = True):
    """A batch of sequences of lengths T, T − 4 and 5, right-padded with ``pad``; token types 1 on the second
    half of each row when ``types`` (a pair), else all 0."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, (B, T))
    ids[ids == pad] = (pad + 1) % vocab_size  # no padding id inside a row
    lengths = [T, T - 4, 5][:B]
    mask = (np.arange(T)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
    token_types = np.zeros((B, T), dtype=np.int64)
    if types:
        for b, n in enumerate(lengths):
            token_types[b, n // 2:n] = 1
    ids[mask == 0] = pad
    return ids, mask, token_types


def torch_inputs(ids, mask, types=None):
    import torch

    out = dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    if types is not None:
        out["token_type_ids"] = torch.from_numpy(types)
    return out


def assert_close(ours, ref, atol: float = 1e-5, what: str = "") -> float:
    """Our output equals HF's within ``atol``; returns the largest difference."""
    ref = ref.detach().numpy() if hasattr(ref, "detach") else np.asarray(ref)
    ours = ours.data if isinstance(ours, minigrad.Tensor) else np.asarray(ours)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs HF {ref.shape}"
    np.testing.assert_allclose(ours, ref, atol=atol, rtol=0, err_msg=what)
    return float(np.abs(ours - ref).max(initial=0.0))


def assert_grads_equal(ours, ref, atol: float = 1e-4) -> int:
    """Every parameter gradient of HF's model equals ours (by name); returns how many were compared."""
    grads = {name: p.grad for name, p in ours.named_parameters()}
    n = 0
    for name, p in ref.named_parameters():
        if p.grad is None:
            continue
        assert grads.get(name) is not None, f"no gradient for {name}"
        np.testing.assert_allclose(grads[name], p.grad.numpy(), atol=atol, rtol=1e-3, err_msg=name)
        n += 1
    return n


def saved_hf_model(transformers_class, hf_config, directory, seed: int = 0, train: bool = False):
    """An HF model of ``hf_config`` with seeded random weights, saved by HF's own ``save_pretrained``."""
    import torch

    torch.manual_seed(seed)
    model = transformers_class(hf_config)
    model.train(train)
    model.save_pretrained(directory)
    return model
