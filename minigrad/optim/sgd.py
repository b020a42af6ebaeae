"""Stochastic gradient descent with momentum (Polyak 1964; Nesterov 1983; Sutskever et al. 2013).

PyTorch's update rule, for a parameter ``p`` with gradient ``g`` at step ``t``::

    g = -g                          if maximize
    g = g + weight_decay * p        (L2 penalty folded into the gradient)
    b_1 = g                         (first step: the buffer starts at the gradient, undampened)
    b_t = momentum * b_{t-1} + (1 - dampening) * g
    d = g + momentum * b_t          if nesterov, else d = b_t       (d = g when momentum == 0)
    p = p - lr * d
"""
from __future__ import annotations

import numpy as np

from minigrad.optim.optimizer import Optimizer, check_bool, check_number, required


class SGD(Optimizer):
    """``SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False)``."""

    def __init__(self, params, lr=required, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, maximize: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        if lr is not required:
            check_number("SGD", "lr", lr)
        super().__init__(params, defaults)

    def _check_group(self, group: dict) -> None:
        check_number("SGD", "lr", group["lr"])
        check_number("SGD", "momentum", group["momentum"])
        check_number("SGD", "dampening", group["dampening"], high=1.0)
        check_number("SGD", "weight_decay", group["weight_decay"])
        check_bool("SGD", "nesterov", group["nesterov"])
        check_bool("SGD", "maximize", group["maximize"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True requires momentum > 0 and dampening == 0, got "
                             f"momentum={group['momentum']!r}, dampening={group['dampening']!r}")

    def _step_group(self, group: dict) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        for p, g in self._grads(group):
            w = p.data
            if maximize or weight_decay:
                d = self._buffer(w, slot=1)  # never modify the user's .grad
                if maximize:
                    np.negative(g, out=d)
                else:
                    np.copyto(d, g)
                if weight_decay:
                    # g + weight_decay * p
                    tmp = np.multiply(w, weight_decay, out=self._buffer(w))
                    d += tmp
                g = d

            if momentum:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, copy=True)
                else:
                    # b = momentum * b + (1 - dampening) * g
                    buf *= momentum
                    if dampening:
                        buf += np.multiply(g, 1.0 - dampening, out=self._buffer(w))
                    else:
                        buf += g
                if nesterov:
                    # d = g + momentum * b
                    d = np.multiply(buf, momentum, out=self._buffer(w))
                    d += g
                else:
                    d = buf
            else:
                d = g
            # p = p - lr * d
            w -= np.multiply(d, lr, out=self._buffer(w))
