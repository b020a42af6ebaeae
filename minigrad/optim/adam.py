"""Adam (Kingma & Ba 2015, Algorithm 1), AMSGrad (Reddi et al. 2018) and AdamW (Loshchilov & Hutter 2019).

PyTorch's update, for a parameter ``p`` with gradient ``g`` at step ``t = 1, 2, ...``::

    g = -g                                   if maximize
    p = p * (1 - lr * weight_decay)          AdamW: decoupled weight decay
    g = g + weight_decay * p                 Adam: L2 penalty folded into the gradient
    m_t = beta1 * m_{t-1} + (1 - beta1) * g                 (first moment, m_0 = 0)
    v_t = beta2 * v_{t-1} + (1 - beta2) * g**2              (second moment, v_0 = 0)
    v_max = max(v_max, v_t); use v_max instead of v_t       if amsgrad
    p = p - lr / (1 - beta1**t) * m_t / (sqrt(v_t) / sqrt(1 - beta2**t) + eps)

The BERT and Transformer recipes train with these. The update below is written with in-place
NumPy ufuncs and one reusable scratch array, because it runs on every parameter at every step.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad.optim.optimizer import Optimizer, check_bool, check_number


def _check_adam_group(owner: str, group: dict) -> None:
    check_number(owner, "lr", group["lr"])
    check_number(owner, "eps", group["eps"])
    check_number(owner, "weight_decay", group["weight_decay"])
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        check_number(owner, f"betas[{i}]", beta, low=0.0, high=1.0, high_inclusive=False)
    check_bool(owner, "amsgrad", group["amsgrad"])
    check_bool(owner, "maximize", group["maximize"])


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, maximize=False)``.

    ``weight_decay`` here is an L2 penalty added to the gradient (PyTorch's Adam); use ``AdamW``
    for decoupled weight decay.
    """

    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False):
        defaults = dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        _check_adam_group(type(self).__name__, defaults)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        _check_adam_group(type(self).__name__, group)

    def _step_group(self, group: dict) -> None:
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        amsgrad, maximize = group["amsgrad"], group["maximize"]
        for p, g in self._grads(group):
            w = p.data
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(w)
                state["exp_avg_sq"] = np.zeros_like(w)
            state["step"] = t = state["step"] + 1
            m, v = state["exp_avg"], state["exp_avg_sq"]
            s = self._buffer(w)  # scratch, reused by every parameter of this shape

            if maximize:
                g = np.negative(g, out=self._buffer(w, slot=1))
            if weight_decay:
                if self._decoupled:
                    w *= 1.0 - lr * weight_decay  # AdamW: p = p * (1 - lr * wd)
                else:
                    # Adam: g = g + wd * p  (into slot 1, never into the user's .grad)
                    g = np.add(g, np.multiply(w, weight_decay, out=s), out=self._buffer(w, slot=1))

            # m = beta1 * m + (1 - beta1) * g
            m *= beta1
            m += np.multiply(g, 1.0 - beta1, out=s)
            # v = beta2 * v + (1 - beta2) * g * g
            v *= beta2
            np.multiply(g, 1.0 - beta2, out=s)
            s *= g
            v += s
            if amsgrad:
                if "max_exp_avg_sq" not in state:  # amsgrad switched on after loading a state
                    state["max_exp_avg_sq"] = np.zeros_like(w)
                v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])

            # p = p - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), with sqrt(bc2) moved to the
            # numerator: one pass fewer over the array, same value up to rounding.
            bias_correction1 = 1.0 - beta1**t
            bias_correction2_sqrt = math.sqrt(1.0 - beta2**t)
            np.sqrt(v, out=s)
            s += eps * bias_correction2_sqrt
            np.divide(m, s, out=s)
            s *= lr * bias_correction2_sqrt / bias_correction1
            w -= s


class AdamW(Adam):
    """``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False)``.

    Decoupled weight decay: the parameters shrink by ``lr * weight_decay`` before the Adam step,
    instead of the penalty passing through the moment estimates.
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
