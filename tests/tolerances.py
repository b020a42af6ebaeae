"""One rule for comparing our results with a reference library's (torch, HF) on the same inputs.

- **Finite values only.** A reference that is ±inf or NaN makes the test depend on the reference's
  special-value behaviour, which differs between CPU kernels (torch's GELU(±inf) is inf on one
  machine and nan on another). Such cases are checked against exact math in their own tests.
- **Tolerances scale with the magnitude of the terms.** ``rtol`` covers entries of ordinary size.
  An entry whose true value is 0 (or nearly) is what is left after terms of size ``scale``
  cancelled: rounding noise of about eps·scale on both sides, of either sign. So ``atol`` is
  multiplied by ``scale``, by default the largest entry of the reference (at least 1) — for a
  gradient, the size of its largest component. Pass ``scale`` when the cancelling terms are larger
  than every result (e.g. cos(x1, x2) with d = 1: the true gradient is 0 everywhere, made of terms
  of size 1/‖x‖); an array ``scale`` (broadcast against the result) sets it entry by entry, e.g. per
  row of a LayerNorm, whose terms grow with the row's 1/σ.
"""
from __future__ import annotations

import numpy as np

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-5)}


def _numpy(a):
    return a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)


def tolerance(dtype, scale=1.0) -> dict:
    """``dict(rtol=..., atol=...)`` for ``dtype`` (float32 / float64) with ``atol`` scaled by ``scale`` (>= 1)."""
    tol = TOL[np.dtype(dtype).type]
    return dict(rtol=tol["rtol"], atol=tol["atol"] * np.maximum(1.0, scale))


def assert_close(ours, ref, dtype, what: str = "", scale=None) -> None:
    """Assert ``ours`` equals the reference result ``ref`` (an array or a torch tensor) to ``dtype``'s rounding."""
    ours, ref = _numpy(ours), _numpy(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} vs reference {ref.shape}"
    assert np.isfinite(ref).all(), (f"{what}: the reference is not finite ({ref[~np.isfinite(ref)][:4]}); "
                                    "check special values against exact math instead")
    if scale is None:
        scale = float(np.abs(ref).max(initial=0.0))
    tol = tolerance(dtype, scale)
    # assert_allclose takes a scalar atol only; an array one is checked entry by entry here
    bad = ~(np.abs(ours - ref) <= tol["atol"] + tol["rtol"] * np.abs(ref))
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{what}: {int(bad.sum())} of {ref.size} entries differ; first at {i}: ours "
                             f"{ours[i]!r}, reference {ref[i]!r}, allowed {np.broadcast_to(tol['atol'], ref.shape)[i]:.3g}"
                             f" + {tol['rtol']}·|reference|")
