"""Fused kernels, each beside the plain reference it must equal.

A layer says *what* it computes in a few lines and calls a kernel for *how* to compute it fast.
Each file here holds one family — normalization, attention, recurrent, losses, activation,
embedding, linear — and, for every kernel in it:

- the **kernel**: one ``Function`` whose forward and backward are hand-fused NumPy (fewer
  passes over memory, buffers reused in place, a backward derived by hand in its docstring);
- the **reference**: the same math in ordinary Tensor operations — a few lines under the
  equation they implement, differentiated by the engine, twice if asked.

``tests/test_kernels.py`` checks that every kernel and its reference give the same outputs and
the same first (and, where supported, second) derivatives on hypothesis inputs.

To read or step through the math, run any layer or model on the references::

    with minigrad.kernels.reference():
        loss = model(x)          # every kernel call takes its plain-ops reference
        loss.backward()

or set ``MINIGRAD_KERNELS=reference`` in the environment (the test suite runs that way once in
CI). The references are slower (see the README's table); they are for reading and checking.

This file imports nothing else of minigrad: ``minigrad/tensor.py`` imports the activation
kernels, and the kernel families import tensor.py.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

_CHOICES = ("fast", "reference")
_env = os.environ.get("MINIGRAD_KERNELS", "fast")
if _env not in _CHOICES:
    raise ValueError(f"MINIGRAD_KERNELS must be 'fast' or 'reference', got {_env!r}")
_use_reference = _env == "reference"
# How often a layer has asked which path to take. The test suite reads it around each test to know
# which tests can depend on MINIGRAD_KERNELS (the others are not rerun on the references in CI).
_questions = 0


def using_reference() -> bool:
    """True inside ``reference()`` (or with ``MINIGRAD_KERNELS=reference``): layers use the plain ops."""
    global _questions
    _questions += 1
    return _use_reference


def times_asked() -> int:
    """How many times ``using_reference()`` has been called in this process: a test during which
    it did not change ran no kernel and its outcome cannot depend on the choice of path."""
    return _questions


@contextmanager
def reference(enabled: bool = True):
    """``with minigrad.kernels.reference():`` — every kernel call inside runs its plain-ops reference."""
    global _use_reference
    previous, _use_reference = _use_reference, bool(enabled)
    try:
        yield
    finally:
        _use_reference = previous


__all__ = ["reference", "times_asked", "using_reference"]
