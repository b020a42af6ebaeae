"""What the HF-parity tests of BERT and its successors share (tests/test_bert.py, test_roberta.py,
test_albert.py, test_electra.py): a padded batch of pairs, torch inputs, an HF model built and saved by HF, and
the two checks every class passes — outputs (``assert_outputs_equal_hf``) and the loss with every parameter
gradient (``assert_loss_and_grads_equal_hf``).

With ``PARITY_REPORT=file.jsonl`` set, every comparison appends its largest difference to that file (test,
what was compared, max |ours − HF|): ``python tests/encoder_parity.py file.jsonl`` prints the table the closing
note of the issue pastes.
"""
from __future__ import annotations

import json
import os
import sys
from collections import defaultdict

import numpy as np

import minigrad


def record(what: str, difference: float) -> None:
    """Append (current test, what, max difference) to ``$PARITY_REPORT`` when it is set."""
    path = os.environ.get("PARITY_REPORT")
    if path:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"test": test, "what": what, "diff": difference}) + "\n")


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
    difference = float(np.abs(ours - ref).max(initial=0.0))
    record(what or "output", difference)
    return difference


def assert_grads_equal(ours, ref, atol: float = 1e-4) -> int:
    """Every parameter gradient of HF's model equals ours (by name); returns how many were compared."""
    grads = {name: p.grad for name, p in ours.named_parameters()}
    n, largest = 0, 0.0
    for name, p in ref.named_parameters():
        if p.grad is None:
            continue
        assert grads.get(name) is not None, f"no gradient for {name}"
        np.testing.assert_allclose(grads[name], p.grad.numpy(), atol=atol, rtol=1e-3, err_msg=name)
        largest = max(largest, float(np.abs(grads[name] - p.grad.numpy()).max(initial=0.0)))
        n += 1
    record("gradients", largest)
    return n


def saved_hf_model(transformers_class, hf_config, directory, seed: int = 0, train: bool = False):
    """An HF model of ``hf_config`` with seeded random weights, saved by HF's own ``save_pretrained``."""
    import torch

    torch.manual_seed(seed)
    model = transformers_class(hf_config)
    model.train(train)
    model.save_pretrained(directory)
    return model


def mlm_labels(ids: np.ndarray) -> np.ndarray:
    """Masked-LM labels of a ``padded_pairs`` batch: four positions predicted (one of them a token other than the
    one at that place), −100 elsewhere."""
    labels = np.full(ids.shape, -100)
    labels[0, [2, 5]], labels[1, 3], labels[2, 1] = ids[0, [2, 5]], ids[1, 3], 7
    return labels


def assert_outputs_equal_hf(ours_class, hf_class, hf_config, directory, ids, mask, types=None,
                            keys=("last_hidden_state",), seed: int = 0, attentions: bool = False):
    """HF's model of ``hf_config`` (random, saved by HF) opens as ``ours_class`` and gives HF's ``keys`` and every
    hidden state (as many as HF's), on a padded batch — and every attention map with ``attentions`` (HF's config
    must then say ``attn_implementation="eager"``); returns our outputs."""
    import torch

    ref = saved_hf_model(hf_class, hf_config, directory, seed)
    ours = ours_class.from_pretrained(directory)
    out = ours(ids, mask, types, output_hidden_states=True, output_attentions=attentions)
    with torch.no_grad():
        expected = ref(**torch_inputs(ids, mask, types), output_hidden_states=True, output_attentions=attentions)
    for key in keys:
        assert_close(out[key], expected[key], what=key)
    for key in ("hidden_states",) + (("attentions",) if attentions else ()):
        assert len(out[key]) == len(expected[key]), key
        for a, b in zip(out[key], expected[key]):
            assert_close(a, b, what=key)
    return out


def assert_loss_and_grads_equal_hf(ours_class, hf_class, hf_config, directory, ids, mask, types=None,
                                   labels: dict | None = None, seed: int = 3) -> None:
    """In training mode, our loss equals HF's (1e-5) and so does the gradient of every parameter HF has (1e-4).

    ``labels`` (the head's label arguments) make the loss HF computes. Without them (a bare encoder) the loss is
    a fixed random projection (a weighted mean) of ``last_hidden_state`` (and of ``pooler_output`` when there is one), so that every
    parameter of the encoder gets a gradient.
    """
    import torch

    ref = saved_hf_model(hf_class, hf_config, directory, seed=seed, train=True)
    ours = ours_class.from_pretrained(directory).train()
    out = ours(ids, mask, types, **(labels or {}))
    expected = ref(**torch_inputs(ids, mask, types), **{k: torch.from_numpy(v) for k, v in (labels or {}).items()})
    if labels is None:
        rng = np.random.default_rng(seed)
        loss, ref_loss = 0.0, 0.0
        for key in ("last_hidden_state", "pooler_output"):
            if out.get(key) is not None:
                weight = rng.standard_normal(out[key].shape).astype(np.float32)
                weight /= weight.size  # a mean, so that the gradients have a head loss's size
                loss = (out[key] * weight).sum() + loss
                ref_loss = (expected[key] * torch.from_numpy(weight)).sum() + ref_loss
    else:
        loss, ref_loss = out.loss, expected.loss
    loss.backward()
    ref_loss.backward()
    difference = abs(float(loss.data) - float(ref_loss.detach()))
    record("loss", difference)
    assert difference < 1e-5 * max(1.0, abs(float(ref_loss.detach())))
    assert assert_grads_equal(ours, ref) == len(list(ref.parameters()))


def report(path: str) -> None:
    """The largest difference per test file and quantity in a ``PARITY_REPORT`` file, as a Markdown table."""
    worst: dict = defaultdict(float)
    counts: dict = defaultdict(int)
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        what = "hidden states / outputs" if row["what"] not in ("gradients", "loss", "attentions") else row["what"]
        key = (row["test"].split("::")[0].replace("tests/", ""), what)
        worst[key] = max(worst[key], row["diff"])
        counts[key] += 1
    print("| test file | compared | comparisons | max abs. difference |")
    print("|---|---|---:|---:|")
    for (test, what), diff in sorted(worst.items()):
        print(f"| {test} | {what} | {counts[test, what]} | {diff:.1e} |")


if __name__ == "__main__":
    report(sys.argv[1])
