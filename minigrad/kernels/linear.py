"""The affine map of every ``Linear`` layer:  y = x Wᵀ + b,  x (…, K), W (N, K), b (N,).

The reference is that line in Tensor ops. The kernel flattens the leading dimensions so that each
direction is one 2-D GEMM over all rows, adds the bias in place, and takes dW = gᵀ x straight in
W's (N, K) layout (no transposed copy).
"""
from __future__ import annotations

from minigrad.function import Function
from minigrad.kernels import using_reference


def linear_reference(x, weight, bias):
    """y = x Wᵀ + b in plain Tensor ops."""
    y = x @ weight.swapaxes(0, 1)  # (…, N)
    return y if bias is None else y + bias


class LinearFunction(Function):
    """y = x Wᵀ + b over the rows of x;  dx = g W,  dW = gᵀ x,  db = Σ_rows g."""

    def forward(self, x, weight, bias=None):
        rows = x.reshape(-1, x.shape[-1])  # (R, K)
        out = rows @ weight.T  # (R, N)
        if bias is not None:
            out += bias  # in place: no second (R, N) array
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, g):
        x, weight = self.args()[:2]
        need = self.needs_input_grad
        g_rows = g.reshape(-1, weight.shape[0])  # (R, N)
        gx = (g_rows @ weight).reshape(x.shape) if need[0] else None  # (…, K)
        gw = g_rows.swapaxes(0, 1) @ x.reshape(-1, x.shape[-1]) if need[1] else None  # (N, K)
        if len(need) == 2:
            return gx, gw
        gb = g_rows.sum(axis=0) if need[2] else None  # (N,)
        return gx, gw, gb


def linear(x, weight, bias=None):
    """x Wᵀ + b for Tensors of one dtype (checked by the caller): the kernel or its reference."""
    if using_reference():
        return linear_reference(x, weight, bias)
    return LinearFunction.apply(x, weight) if bias is None else LinearFunction.apply(x, weight, bias)


__all__ = ["LinearFunction", "linear", "linear_reference"]
