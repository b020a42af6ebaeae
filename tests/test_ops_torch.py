"""Every op in the case table gives PyTorch's forward values and input gradients on identical
inputs (float64 to 1e-10, float32 to 1e-5), with hypothesis choosing shapes, broadcast pairs,
axes, keepdims, non-contiguous views and repeated indices."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad
from tolerances import assert_close
from op_cases import CASES, MG, torch_namespace

torch = pytest.importorskip("torch")
TORCH = torch_namespace()


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _run_minigrad(instance, dtype, weights):
    ts = [minigrad.Tensor(a.astype(dtype), requires_grad=True) for a in instance.inputs]
    outs = _as_tuple(instance.fn(MG, *ts))
    loss = sum((o * minigrad.Tensor(w.astype(dtype))).sum() for o, w in zip(outs, weights))
    loss.backward()
    return [o.data for o in outs], [t.grad if t.grad is not None else np.zeros(t.shape) for t in ts]


def _run_torch(instance, dtype, weights):
    ts = [torch.from_numpy(np.array(a, dtype=dtype)).requires_grad_(True) for a in instance.inputs]
    outs = _as_tuple(instance.torch()(TORCH, *ts))
    loss = sum((o * torch.from_numpy(w.astype(dtype))).sum() for o, w in zip(outs, weights))
    loss.backward()
    return [o.detach().numpy() for o in outs], [t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for t in ts]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_matches_torch(name, dtype, data):
    instance = data.draw(CASES[name])
    with minigrad.no_grad():
        probe = _as_tuple(instance.fn(MG, *[minigrad.Tensor(a) for a in instance.inputs]))
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(p.shape) for p in probe]
    ours_out, ours_grad = _run_minigrad(instance, dtype, weights)
    ref_out, ref_grad = _run_torch(instance, dtype, weights)
    assert len(ours_out) == len(ref_out)
    for o, r in zip(ours_out, ref_out):
        assert o.shape == r.shape, f"{name}: output shape {o.shape} vs torch {r.shape}"
        assert o.dtype == r.dtype, f"{name}: output dtype {o.dtype} vs torch {r.dtype}"
        assert_close(o, r, dtype, f"{name}: forward")
    for i, (g, r) in enumerate(zip(ours_grad, ref_grad)):
        assert g.shape == r.shape
        assert_close(g, r, dtype, f"{name}: gradient of input {i}")
