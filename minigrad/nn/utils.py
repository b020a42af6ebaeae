"""Gradient clipping: keep one bad batch from throwing the parameters far away.

Clipping by global norm (Pascanu et al. 2013, "On the difficulty of training recurrent neural
networks") treats all gradients as one long vector ``g`` and rescales it when it is too long::

    total_norm = ||g||_p = || (||g_1||_p, ||g_2||_p, ...) ||_p
    g <- g * min(1, max_norm / (total_norm + 1e-6))

It keeps the gradient's direction; the RNN language models and the Transformer recipes use it.
Both functions modify the ``.grad`` arrays in place, as PyTorch's do.
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

from minigrad.tensor import Tensor


def _grads(fn_name: str, parameters) -> list[np.ndarray]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = []
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn_name}: parameters[{i}] must be a minigrad Tensor, got {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _vector_norm(x: np.ndarray, norm_type: float) -> float:
    """||x||_p of the flattened array (p = inf: largest magnitude)."""
    if norm_type == 2.0:
        flat = x.ravel()
        return math.sqrt(float(np.dot(flat, flat)))  # BLAS dot: one pass, no temporary
    return float(np.linalg.norm(x.ravel(), ord=norm_type))


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Rescale the gradients in place so that their joint ``norm_type``-norm is at most ``max_norm``.

    Returns the total norm *before* clipping (a float). Parameters without ``.grad`` are skipped;
    with none left the norm is 0.0. A non-finite total norm raises RuntimeError when
    ``error_if_nonfinite``; otherwise the gradients are scaled by the (nan or 0) coefficient, as
    in PyTorch.
    """
    name = "clip_grad_norm_"
    for arg, value in (("max_norm", max_norm), ("norm_type", norm_type)):
        if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
            raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
    if max_norm < 0:
        raise ValueError(f"{name}: max_norm must be >= 0, got {max_norm!r}")
    norm_type = float(norm_type)
    grads = _grads(name, parameters)
    if not grads:
        return 0.0

    # the norm of the per-tensor norms equals the norm of all entries together
    total_norm = _vector_norm(np.array([_vector_norm(g, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise RuntimeError(
            f"{name}: the total norm of order {norm_type} of the gradients is {total_norm}, so it cannot "
            "be clipped; set error_if_nonfinite=False to scale the gradients by it anyway"
        )
    # g <- g * min(1, max_norm / (total_norm + 1e-6))
    clip_coef = max_norm / (total_norm + 1e-6)  # an inf norm gives 0, a nan norm nan: as PyTorch
    if not clip_coef >= 1.0:  # `not >=` so that a nan coefficient is applied too
        with np.errstate(invalid="ignore"):  # inf·0 = nan is the intended result here
            for g in grads:
                g *= clip_coef
    return total_norm


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient entry into ``[-clip_value, clip_value]`` in place."""
    name = "clip_grad_value_"
    if isinstance(clip_value, bool) or not isinstance(clip_value, Real) or math.isnan(clip_value):
        raise TypeError(f"{name}: clip_value must be a real number, got {clip_value!r}")
    if clip_value < 0:
        raise ValueError(f"{name}: clip_value must be >= 0, got {clip_value!r}")
    for g in _grads(name, parameters):
        np.clip(g, -clip_value, clip_value, out=g)


__all__ = ["clip_grad_norm_", "clip_grad_value_"]
