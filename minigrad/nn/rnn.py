"""Recurrent layers: ``RNN``, ``GRU`` and ``LSTM`` and their one-step cells (book ch. 1–2: the GRU
language model and the GRU encoder-decoder). Constructor arguments, gate order, parameter names
and shapes are PyTorch's, so a ``torch.nn.GRU`` state_dict loads unchanged.

Elman RNN (Elman 1990)::

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                      (or relu)

GRU (Cho et al. 2014), gates stacked as (r, z, n) in ``weight_ih``/``weight_hh``::

    r = σ(W_ir x + b_ir + W_hr h + b_hr)            reset gate
    z = σ(W_iz x + b_iz + W_hz h + b_hz)            update gate
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))   candidate state
    h' = (1 − z) ⊙ n + z ⊙ h

LSTM (Hochreiter & Schmidhuber 1997), gates stacked as (i, f, g, o)::

    i, f, o = σ(·),  g = tanh(·)   of  W_i· x + b_i· + W_h· h + b_h·
    c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')

Why it is fast: the input projections W_ih x_t of all time steps are ONE matmul per layer and
direction (over T·B rows), done before the loop. The recurrence itself is one fused ``Function``
per layer and direction (``GRUSequence`` …): its forward runs the time loop in NumPy into
preallocated buffers, and its backward runs back-propagation through time (BPTT) in NumPy and
gets dW_hh with a single matmul over all steps at the end — instead of a graph of ~10 nodes per
step. Backward rules follow the dual-mode convention of ``minigrad.tensor.Function``: with
``create_graph=True`` they recompute the gates as Tensors from the inputs and the node's own
output, so every layer here is twice differentiable.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from scipy.special import expit

from minigrad import functional as F
from minigrad.nn import init
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.ops import _ArrayMath, xp
from minigrad.tensor import Function, Tensor, cat, is_grad_enabled, stack

# ==============================================================================================
# helpers shared by the fused Functions; each works on NumPy arrays and on Tensors alike
# ==============================================================================================


def _concat(parts, axis: int = -1):
    """Join along ``axis``: NumPy for arrays, ``minigrad.cat`` as soon as one part is a Tensor."""
    if any(isinstance(p, Tensor) for p in parts):
        return cat(parts, axis)
    return np.concatenate(parts, axis)


class _StepRows:
    """Per-step results (B, …) gathered into one (T, B, …) result, filled in any time order.
    Arrays are written straight into one preallocated buffer (no list, no copy); Tensors are
    kept in a list and stacked at the end, so the graph stays differentiable."""

    def __init__(self, T: int):
        self.rows, self.buffer = [None] * T, None

    def __setitem__(self, t: int, row) -> None:
        if isinstance(row, Tensor):
            self.rows[t] = row
            return
        if self.buffer is None:
            self.buffer = np.empty((len(self.rows),) + row.shape, dtype=row.dtype)
        self.buffer[t] = row

    def __getitem__(self, t: int):
        return self.rows[t] if self.buffer is None else self.buffer[t]

    def stacked(self):
        return stack(self.rows, 0) if self.buffer is None else self.buffer


def _gate_slices(x, k: int, H: int) -> list:
    """The k gate blocks of width H along the last axis (views)."""
    return [x[..., i * H:(i + 1) * H] for i in range(k)]


def _previous_states(out, first, reverse: bool):
    """(T, B, S) states h_{t-1} that each step read: the initial state, then all outputs but the
    last (walking backwards in time for ``reverse``)."""
    first = first.reshape((1,) + tuple(first.shape))  # (1, B, S)
    return _concat([out[1:], first], 0) if reverse else _concat([first, out[:-1]], 0)


def _steps(T: int, reverse: bool) -> range:
    """Time steps in the order the forward pass visits them."""
    return range(T - 1, -1, -1) if reverse else range(T)


def _state_buffer(h0: np.ndarray, T: int, reverse: bool) -> np.ndarray:
    """(T + 1, B, S) buffer of all states with h0 in place: step t reads slot t + reverse and
    writes slot t + 1 − reverse, so the outputs are one contiguous slice (no T separate cats)."""
    states = np.empty((T + 1,) + h0.shape, dtype=h0.dtype)
    states[T if reverse else 0] = h0
    return states


def _outputs(states: np.ndarray, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, previous states) as views of the state buffer, both (T, B, S)."""
    return (states[:-1], states[1:]) if reverse else (states[1:], states[:-1])


def _weight_grads(dpre, prev, needs_w: bool, needs_b: bool):
    """dW_hh = Σ_t dpre_tᵀ h_{t-1} (one matmul over all T·B rows) and db_hh = Σ_t Σ_b dpre_t."""
    G = dpre.shape[-1]
    rows = dpre.reshape(-1, G)  # (T·B, G·H)
    dw = rows.swapaxes(0, 1) @ prev.reshape(rows.shape[0], -1) if needs_w else None  # (G·H, H)
    db = rows.sum(axis=0) if needs_b else None  # (G·H,)
    return dw, db


def _as_bias(rest):
    return rest[0] if rest else None


# ==============================================================================================
# Elman RNN: the whole recurrence of one layer/direction
# ==============================================================================================


class RNNSequence(Function):
    """h_t = act(gi_t + h_{t-1} W_hhᵀ + b_hh) for all t, with gi = x W_ihᵀ + b_ih precomputed.

    Inputs ``gi`` (T, B, H), ``h0`` (B, H), ``w_hh`` (H, H), optional ``b_hh`` (H,); output all
    states (T, B, H). Backward (BPTT), with a_t the pre-activation::

        g_t  = ∂L/∂h_t (from the output) + ∂L/∂h_t (through step t+1)
        da_t = g_t ⊙ act'(a_t)        act' = 1 − h_t² (tanh) or [h_t > 0] (relu)
        ∂L/∂h_{t-1} (through step t) = da_t W_hh
        dgi_t = da_t,  dW_hh = Σ_t da_tᵀ h_{t-1},  db_hh = Σ_t da_t,  dh0 = ∂L/∂h_0
    """

    def forward(self, gi, h0, w_hh, b_hh=None, reverse=False, nonlinearity="tanh"):
        self.reverse, self.nonlinearity = reverse, nonlinearity
        T = gi.shape[0]
        states = _state_buffer(h0, T, reverse)
        w_t = w_hh.T
        for t in _steps(T, reverse):
            a = states[t + 1 - reverse]  # (B, H) written in place
            np.matmul(states[t + reverse], w_t, out=a)
            a += gi[t]
            if b_hh is not None:
                a += b_hh
            if nonlinearity == "tanh":
                np.tanh(a, out=a)
            else:
                np.maximum(a, 0, out=a)
        self.states = states
        return self.save_output(_outputs(states, reverse)[0])

    def backward(self, dout):
        gi, h0, w_hh, *rest = self.args()
        hs = self.output()  # (T, B, H)
        T = hs.shape[0]
        prev = _previous_states(hs, h0, self.reverse) if is_grad_enabled() else _outputs(self.states, self.reverse)[1]
        if self.nonlinearity == "tanh":
            slope = 1.0 - hs * hs  # (T, B, H)
        else:
            slope = (self.out_data > 0).astype(self.out_data.dtype)  # a constant: relu'' = 0
        das, dh = _StepRows(T), None
        for t in reversed(_steps(T, self.reverse)):
            g = dout[t] if dh is None else dout[t] + dh  # (B, H)
            das[t] = g * slope[t]
            dh = das[t] @ w_hh  # gradient reaching the previous state
        da = das.stacked()  # (T, B, H)
        need = self.needs_input_grad
        dw, db = _weight_grads(da, prev, need[2], len(need) > 3 and need[3])
        return (da, dh, dw, db)[:len(need)]


# ==============================================================================================
# GRU: one fused step (GRUCell) and the whole recurrence (GRU)
# ==============================================================================================


def _gru_gates(gi, h, w_hh, b_hh, math):
    """r, z, n and hn = W_hn h + b_hn for any leading dims (one step or all steps at once)."""
    H = h.shape[-1]
    gh = h @ w_hh.swapaxes(0, 1)  # (..., 3H): the three hidden projections in one matmul
    if b_hh is not None:
        gh = gh + b_hh
    i_r, i_z, i_n = _gate_slices(gi, 3, H)
    h_r, h_z, hn = _gate_slices(gh, 3, H)
    r = math.sigmoid(i_r + h_r)
    z = math.sigmoid(i_z + h_z)
    n = math.tanh(i_n + r * hn)
    return r, z, n, hn


def _gru_slopes(r, z, n, hn, prev):
    """∂h'/∂(pre-activations), from h' = (1 − z) ⊙ n + z ⊙ h:

        ∂h'/∂a_n = (1 − z) ⊙ (1 − n²)                  n = tanh(a_n), a_n = i_n + r ⊙ hn
        ∂h'/∂a_r = ∂h'/∂a_n ⊙ hn ⊙ r ⊙ (1 − r)          r = σ(a_r)
        ∂h'/∂a_z = (h − n) ⊙ z ⊙ (1 − z)                z = σ(a_z)

    Returns (c_n, c_gh) with c_gh = [c_r, c_z, c_n ⊙ r] (…, 3H): the gradient of the hidden
    projection gh = W_hh h + b_hh is g·c_gh (the n block passes through r), that of the input
    projection gi is the same but with c_n in the n block."""
    c_n = (1.0 - z) * (1.0 - n * n)
    c_r = c_n * hn * r * (1.0 - r)
    c_z = (prev - n) * z * (1.0 - z)
    return c_n, _concat([c_r, c_z, c_n * r], -1)


def _tile3(g, c_gh):
    """g ⊙ c_gh with g (…, H) repeated over the three gate blocks of c_gh (…, 3H)."""
    H = g.shape[-1]
    lead = tuple(g.shape[:-1])
    return (g.reshape(lead + (1, H)) * c_gh.reshape(lead + (3, H))).reshape(lead + (3 * H,))


class GRUCellFunction(Function):
    """One fused GRU step h' = GRU(gi, h) with gi = x W_ihᵀ + b_ih precomputed.

    Inputs ``gi`` (B, 3H), ``h`` (B, H), ``w_hh`` (3H, H), optional ``b_hh`` (3H,). Forward saves
    r, z, n and hn = W_hn h + b_hn. Backward, for g = ∂L/∂h' (see ``_gru_slopes``)::

        dgh = g·[c_r, c_z, c_n ⊙ r]    dgi = g·[c_r, c_z, c_n]
        dh  = g ⊙ z + dgh W_hh          (direct path + through the three gates, one matmul)
        dW_hh = dghᵀ h,  db_hh = Σ_batch dgh
    """

    def forward(self, gi, h, w_hh, b_hh=None):
        self.saved = _gru_gates(gi, h, w_hh, b_hh, _ArrayMath)
        r, z, n, hn = self.saved
        return n + z * (h - n)

    def backward(self, g):
        gi, h, w_hh, *rest = self.args()
        if is_grad_enabled():  # create_graph: the gates as Tensors, so this rule is differentiable
            r, z, n, hn = _gru_gates(gi, h, w_hh, _as_bias(rest), xp())
        else:
            r, z, n, hn = self.saved
        c_n, c_gh = _gru_slopes(r, z, n, hn, h)
        dgh = _tile3(g, c_gh)  # (B, 3H)
        H = g.shape[-1]
        dgi = _concat([dgh[..., :2 * H], g * c_n], -1)
        dh = g * z + dgh @ w_hh
        need = self.needs_input_grad
        dw, db = _weight_grads(dgh, h, need[2], len(need) > 3 and need[3])
        return (dgi, dh, dw, db)[:len(need)]


class GRUSequence(Function):
    """The GRU recurrence of one layer and direction over all T steps.

    Inputs ``gi`` (T, B, 3H) = x W_ihᵀ + b_ih for every step, ``h0`` (B, H), ``w_hh`` (3H, H),
    optional ``b_hh``; output all states (T, B, H). Backward is BPTT with the step rule of
    ``GRUCellFunction``, where the state gradient g_t sums the output's gradient and what step
    t+1 sends back (g ⊙ z + dgh W_hh). The slopes c (``_gru_slopes``) of all steps are computed
    in one vectorised pass before the loop, so the loop does one broadcast product and one
    (B, 3H) @ (3H, H) matmul per step; dW_hh is one (3H, T·B) @ (T·B, H) matmul at the end.
    """

    def forward(self, gi, h0, w_hh, b_hh=None, reverse=False):
        self.reverse = reverse
        T, B, G = gi.shape
        H = G // 3
        states = _state_buffer(h0, T, reverse)
        gh = np.empty((B, G), dtype=gi.dtype)  # (B, 3H) hidden projections of one step
        rz = np.empty((T, B, 2 * H), dtype=gi.dtype)  # (T, B, 2H) r and z side by side
        hn = np.empty((T, B, H), dtype=gi.dtype)  # W_hn h + b_hn, kept for the backward
        n = np.empty((T, B, H), dtype=gi.dtype)
        w_t = w_hh.T
        for t in _steps(T, reverse):
            h = states[t + reverse]  # (B, H)
            np.matmul(h, w_t, out=gh)
            if b_hh is not None:
                gh += b_hh
            np.add(gi[t, :, :2 * H], gh[:, :2 * H], out=rz[t])
            expit(rz[t], out=rz[t])
            r, z = rz[t, :, :H], rz[t, :, H:]
            hn[t] = gh[:, 2 * H:]
            np.multiply(r, hn[t], out=n[t])  # r ⊙ hn
            n[t] += gi[t, :, 2 * H:]
            np.tanh(n[t], out=n[t])
            h_new = states[t + 1 - reverse]  # h' = n + z ⊙ (h − n)
            np.subtract(h, n[t], out=h_new)
            h_new *= z
            h_new += n[t]
        self.saved = (states, rz, n, hn)
        return self.save_output(_outputs(states, reverse)[0])

    def backward(self, dout):
        gi, h0, w_hh, *rest = self.args()
        T, _, H = dout.shape
        if is_grad_enabled():  # create_graph: recompute all gates at once from inputs and output
            prev = _previous_states(self.output(), h0, self.reverse)
            r, z, n, hn = _gru_gates(gi, prev, w_hh, _as_bias(rest), xp())
        else:
            states, rz, n, hn = self.saved
            prev = _outputs(states, self.reverse)[1]
            r, z = rz[..., :H], rz[..., H:]
        c_n, c_gh = _gru_slopes(r, z, n, hn, prev)  # (T, B, H), (T, B, 3H)
        gs, dghs, dh = _StepRows(T), _StepRows(T), None
        for t in reversed(_steps(T, self.reverse)):
            g = dout[t] if dh is None else dout[t] + dh  # (B, H) total gradient of h_t
            gs[t] = g
            dghs[t] = _tile3(g, c_gh[t])  # (B, 3H)
            dh = g * z[t] + dghs[t] @ w_hh  # to h_{t-1}
        dgh = dghs.stacked()  # (T, B, 3H)
        need = self.needs_input_grad
        dw, db = _weight_grads(dgh, prev, need[2], len(need) > 3 and need[3])
        dgi_n = gs.stacked() * c_n  # (T, B, H): the n block of dgi skips the factor r
        if isinstance(dgh, Tensor):
            dgi = cat([dgh[..., :2 * H], dgi_n], -1)
        else:  # dW and db are taken: dgh's buffer becomes dgi
            dgh[..., 2 * H:] = dgi_n
            dgi = dgh
        return (dgi, dh, dw, db)[:len(need)]


# ==============================================================================================
# LSTM: the whole recurrence of one layer/direction (state = [h | c])
# ==============================================================================================


def _lstm_gates(pre, math):
    """(i, f, g, o) activations from the (…, 4H) pre-activations."""
    H = pre.shape[-1] // 4
    a_i, a_f, a_g, a_o = _gate_slices(pre, 4, H)
    return math.sigmoid(a_i), math.sigmoid(a_f), math.tanh(a_g), math.sigmoid(a_o)


class LSTMSequence(Function):
    """The LSTM recurrence of one layer and direction; the output stacks [h_t | c_t] (T, B, 2H).

    Inputs ``gi`` (T, B, 4H) = x W_ihᵀ + b_ih, ``h0``, ``c0`` (B, H), ``w_hh`` (4H, H), optional
    ``b_hh``. Backward (BPTT), with gh_t, gc_t the total gradients of h_t and c_t::

        dc   = gc + gh ⊙ o ⊙ (1 − tanh²c)          (c' reaches h' through o ⊙ tanh c')
        da_i = dc ⊙ g ⊙ i(1 − i)      da_f = dc ⊙ c_{t-1} ⊙ f(1 − f)
        da_g = dc ⊙ i ⊙ (1 − g²)      da_o = gh ⊙ tanh c ⊙ o(1 − o)
        gh_{t-1} += da W_hh,   gc_{t-1} += dc ⊙ f,   dW_hh = Σ_t da_tᵀ h_{t-1}
    """

    def forward(self, gi, h0, c0, w_hh, b_hh=None, reverse=False):
        self.reverse = reverse
        T, B, G = gi.shape
        H = G // 4
        states = _state_buffer(np.concatenate([h0, c0], -1), T, reverse)  # (T+1, B, 2H)
        gates = np.empty_like(gi)  # (T, B, 4H) activated i, f, g, o
        w_t = w_hh.T
        for t in _steps(T, reverse):
            p, a = states[t + reverse], gates[t]
            np.matmul(p[:, :H], w_t, out=a)
            a += gi[t]
            if b_hh is not None:
                a += b_hh
            expit(a[:, :2 * H], out=a[:, :2 * H])
            np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])
            expit(a[:, 3 * H:], out=a[:, 3 * H:])
            i, f, g, o = _gate_slices(a, 4, H)
            q = states[t + 1 - reverse]
            c_new, h_new = q[:, H:], q[:, :H]
            np.multiply(f, p[:, H:], out=c_new)  # c' = f ⊙ c + i ⊙ g
            c_new += i * g
            np.tanh(c_new, out=h_new)  # h' = o ⊙ tanh c'
            h_new *= o
        self.saved = (states, gates)
        return self.save_output(_outputs(states, self.reverse)[0])

    def backward(self, dout):
        gi, h0, c0, w_hh, *rest = self.args()
        out = self.output()  # (T, B, 2H)
        T, _, H2 = dout.shape
        H = H2 // 2
        math = xp()
        if is_grad_enabled():
            prev = _previous_states(out, _concat([h0, c0], -1), self.reverse)
            pre = gi + prev[..., :H] @ w_hh.swapaxes(0, 1)
            if rest:
                pre = pre + rest[0]
            i, f, g, o = _lstm_gates(pre, math)
        else:
            states, gates = self.saved
            prev = _outputs(states, self.reverse)[1]
            i, f, g, o = _gate_slices(gates, 4, H)
        prev_h, prev_c = prev[..., :H], prev[..., H:]
        tc = math.tanh(out[..., H:])
        k = o * (1.0 - tc * tc)  # ∂h/∂c
        slopes = _concat([g * i * (1.0 - i), prev_c * f * (1.0 - f), i * (1.0 - g * g), tc * o * (1.0 - o)], -1)
        das, dh, dc = _StepRows(T), None, None
        for t in reversed(_steps(T, self.reverse)):
            gh = dout[t, :, :H] if dh is None else dout[t, :, :H] + dh  # (B, H)
            gc = dout[t, :, H:] if dc is None else dout[t, :, H:] + dc
            dct = gc + gh * k[t]
            das[t] = _concat([dct, dct, dct, gh], -1) * slopes[t]  # (B, 4H)
            dh = das[t] @ w_hh
            dc = dct * f[t]
        da = das.stacked()  # (T, B, 4H)
        need = self.needs_input_grad
        dw, db = _weight_grads(da, prev_h, need[3], len(need) > 4 and need[4])
        return (da, dh, dc, dw, db)[:len(need)]


# ==============================================================================================
# Modules
# ==============================================================================================
_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _check_size(owner: str, name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _float_dtype(owner: str, dtype) -> np.dtype:
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype.kind != "f":
        raise TypeError(f"{owner}: dtype must be floating-point, got {dtype}")
    return dtype


def _as_input(owner: str, x, dtype: np.dtype, what: str = "input") -> Tensor:
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.dtype != dtype:
        raise TypeError(f"{owner}: {what} has dtype {x.dtype}, the parameters have {dtype} "
                        "(cast with .float()/.double() or module.to(dtype))")
    return x


def _project(x: Tensor, w_ih: Tensor, b_ih) -> Tensor:
    """gi = x W_ihᵀ + b_ih for all time steps: ONE matmul over the (T·B, I) rows."""
    T, B, _ = x.shape
    gi = x.reshape(T * B, x.shape[2]) @ w_ih.T  # (T·B, G·H)
    if b_ih is not None:
        gi = gi + b_ih
    return gi.reshape(T, B, gi.shape[1])  # (T, B, G·H)


class RNNBase(Module):
    """Shared machinery of ``RNN``, ``GRU`` and ``LSTM``: parameters, checks and the layer loop.

    Parameters per layer k and direction (suffix ``_reverse`` for the backward one), in PyTorch's
    order and shapes (G = gates: 1 RNN, 3 GRU, 4 LSTM; D = 2 if bidirectional else 1)::

        weight_ih_l{k} (G·H, I if k == 0 else D·H)   weight_hh_l{k} (G·H, H)
        bias_ih_l{k}   (G·H,)                         bias_hh_l{k}   (G·H,)

    all initialised U(−1/√H, 1/√H). ``generator`` seeds the initialisation and the dropout
    between layers (applied to every layer's output but the last, in training mode only).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, dtype=None,
                 generator=None):
        super().__init__()
        owner = type(self).__name__
        self.mode = mode
        self.input_size = _check_size(owner, "input_size", input_size)
        self.hidden_size = _check_size(owner, "hidden_size", hidden_size)
        self.num_layers = _check_size(owner, "num_layers", num_layers)
        if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{owner}: dropout must be a probability in [0, 1], got {dropout!r}")
        if dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{owner}: dropout={dropout} has no effect with num_layers=1 "
                          "(it is applied between layers)", stacklevel=3)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.dropout = float(dropout)
        self.generator = generator
        dtype = _float_dtype(owner, dtype)
        gh = _GATES[mode] * self.hidden_size
        directions = 2 if self.bidirectional else 1
        self._weight_names = []
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.hidden_size * directions
            for d in range(directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                shapes = {"weight_ih": (gh, in_size), "weight_hh": (gh, self.hidden_size)}
                if self.bias:
                    shapes.update(bias_ih=(gh,), bias_hh=(gh,))
                for name, shape in shapes.items():
                    setattr(self, name + sfx, Parameter(np.empty(shape, dtype=dtype)))
                self._weight_names.append(tuple(n + sfx for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")))
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound, generator=generator)

    def flatten_parameters(self) -> None:
        """Does nothing (PyTorch packs cuDNN weights here); kept so torch code runs unchanged."""

    def _weights(self, k: int) -> tuple:
        """(w_ih, w_hh, b_ih, b_hh) of layer·direction index k (biases None when bias=False)."""
        return tuple(getattr(self, n) if self.bias or i < 2 else None for i, n in enumerate(self._weight_names[k]))

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    # ------------------------------------------------------------------ input checks
    def _check_input(self, x) -> tuple[Tensor, bool]:
        """(input as (T, B, I), batched?)."""
        owner = type(self).__name__
        x = _as_input(owner, x, self.weight_ih_l0.dtype)
        if x.ndim not in (2, 3):
            raise ValueError(f"{owner}: expected input of 3 dimensions ({'B, T' if self.batch_first else 'T, B'}, "
                             f"input_size) or 2 (T, input_size) for an unbatched sequence, got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: expected input with last dimension input_size={self.input_size}, "
                             f"got shape {x.shape}")
        batched = x.ndim == 3
        if not batched:
            x = x.unsqueeze(1)  # (T, 1, I)
        elif self.batch_first:
            x = x.transpose(0, 1)  # (B, T, I) -> (T, B, I)
        if x.shape[0] == 0:
            raise ValueError(f"{owner}: the input sequence is empty (length 0), got shape {tuple(x.shape)}")
        return x, batched

    def _check_state(self, h, batch: int, batched: bool, what: str = "hx") -> Tensor:
        """An initial state as (L·D, B, H); zeros when ``h`` is None."""
        owner = type(self).__name__
        dtype = self.weight_ih_l0.dtype
        layers = self.num_layers * self._directions
        if h is None:
            return Tensor._wrap(np.zeros((layers, batch, self.hidden_size), dtype=dtype))
        h = _as_input(owner, h, dtype, what)
        expected = (layers, batch, self.hidden_size) if batched else (layers, self.hidden_size)
        if tuple(h.shape) != expected:
            raise ValueError(f"{owner}: expected {what} of shape {expected} (num_layers * num_directions, "
                             f"{'batch, ' if batched else ''}hidden_size), got {tuple(h.shape)}")
        return h if batched else h.unsqueeze(1)

    # ------------------------------------------------------------------ the layer loop
    def _run(self, x: Tensor, states: tuple) -> tuple[Tensor, list]:
        """Run all layers and directions; ``states`` holds the (L·D, B, H) initial states.
        Returns the last layer's output (T, B, D·H) and the final states (one list per state)."""
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for d in range(self._directions):
                k = layer * self._directions + d
                out, last = self._recur(x, [s[k] for s in states], self._weights(k), reverse=d == 1)
                outs.append(out)
                for f, s in zip(finals, last):
                    f.append(s)
            x = outs[0] if len(outs) == 1 else cat(outs, -1)  # (T, B, D·H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True, generator=self.generator)
        return x, finals

    def _recur(self, x, state, weights, reverse):  # pragma: no cover - abstract
        raise NotImplementedError

    def _finish(self, out: Tensor, finals: list, batched: bool):
        """Output back to the caller's layout and the final states stacked as (L·D, B, H)."""
        h_n = [stack(f, 0) for f in finals]  # (L·D, B, H)
        if not batched:
            return out.squeeze(1), [h.squeeze(1) for h in h_n]
        if self.batch_first:
            out = out.transpose(0, 1)  # (T, B, D·H) -> (B, T, D·H)
        return out, h_n

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class _SingleStateRNN(RNNBase):
    """RNN and GRU: one state h; ``forward(input, hx=None) -> (output, h_n)``."""

    def forward(self, input, hx=None):
        """``input`` (T, B, I), (B, T, I) with batch_first, or (T, I); ``hx`` (L·D, B, H) or (L·D, H).
        Returns ``output`` (T, B, D·H) (batch_first: (B, T, D·H)) and ``h_n`` (L·D, B, H)."""
        x, batched = self._check_input(input)
        h0 = self._check_state(hx, x.shape[1], batched)
        out, finals = self._run(x, (h0,))
        out, (h_n,) = self._finish(out, finals, batched)
        return out, h_n


class RNN(_SingleStateRNN):
    """Elman RNN, h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh) (or relu), stacked
    ``num_layers`` deep, optionally bidirectional (torch.nn.RNN's arguments and names)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype=None, generator=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype, generator)

    def _recur(self, x, state, weights, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        extra = () if b_hh is None else (b_hh,)
        hs = RNNSequence.apply(_project(x, w_ih, b_ih), state[0], w_hh, *extra, reverse=reverse,
                               nonlinearity=self.nonlinearity)  # (T, B, H)
        return hs, [hs[0] if reverse else hs[-1]]


class GRU(_SingleStateRNN):
    """Gated recurrent unit (Cho et al. 2014), gates (r, z, n) as in torch.nn.GRU::

        r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, dtype=None,
                 generator=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, generator)

    def _recur(self, x, state, weights, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        extra = () if b_hh is None else (b_hh,)
        hs = GRUSequence.apply(_project(x, w_ih, b_ih), state[0], w_hh, *extra, reverse=reverse)  # (T, B, H)
        return hs, [hs[0] if reverse else hs[-1]]


class LSTM(RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), gates (i, f, g, o) as torch.nn.LSTM::

        i, f, o = σ(W_i· x + b_i· + W_h· h + b_h·),  g = tanh(W_ig x + b_ig + W_hg h + b_hg)
        c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c')

    ``forward(input, (h0, c0)=None) -> (output, (h_n, c_n))``. ``proj_size`` is not supported.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 dtype=None, generator=None):
        if proj_size:
            raise ValueError(f"LSTM: proj_size={proj_size!r} is not supported (only 0)")
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, generator)

    def forward(self, input, hx=None):
        """``hx`` is None or a pair (h0, c0), each (L·D, B, H) (or (L·D, H) unbatched)."""
        x, batched = self._check_input(input)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTM: hx must be None or a pair (h0, c0), got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        states = (self._check_state(h0, x.shape[1], batched, "h0"), self._check_state(c0, x.shape[1], batched, "c0"))
        out, finals = self._run(x, states)
        out, (h_n, c_n) = self._finish(out, finals, batched)
        return out, (h_n, c_n)

    def _recur(self, x, state, weights, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        H = self.hidden_size
        extra = () if b_hh is None else (b_hh,)
        hc = LSTMSequence.apply(_project(x, w_ih, b_ih), state[0], state[1], w_hh, *extra,
                                reverse=reverse)  # (T, B, 2H) = [h | c]
        last = hc[0] if reverse else hc[-1]  # (B, 2H)
        return hc[..., :H], [last[:, :H], last[:, H:]]


# ==============================================================================================
# Cells: one time step, for hand-written loops (decoders, teacher forcing)
# ==============================================================================================


class RNNCellBase(Module):
    """Parameters ``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H), ``bias_ih``, ``bias_hh`` (G·H,),
    initialised U(−1/√H, 1/√H); input (B, I) or unbatched (I,)."""

    _num_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None, generator=None):
        super().__init__()
        owner = type(self).__name__
        self.input_size = _check_size(owner, "input_size", input_size)
        self.hidden_size = _check_size(owner, "hidden_size", hidden_size)
        self.bias = bool(bias)
        dtype = _float_dtype(owner, dtype)
        gh = self._num_gates * self.hidden_size
        self.weight_ih = Parameter(np.empty((gh, self.input_size), dtype=dtype))
        self.weight_hh = Parameter(np.empty((gh, self.hidden_size), dtype=dtype))
        if self.bias:
            self.bias_ih = Parameter(np.empty((gh,), dtype=dtype))
            self.bias_hh = Parameter(np.empty((gh,), dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound, generator=generator)

    def _check_input(self, x) -> tuple[Tensor, bool]:
        owner = type(self).__name__
        x = _as_input(owner, x, self.weight_ih.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{owner}: expected input of shape (batch, {self.input_size}) or ({self.input_size},), "
                             f"got {tuple(x.shape)}")
        return (x, True) if x.ndim == 2 else (x.unsqueeze(0), False)

    def _check_state(self, h, batch: int, batched: bool, what: str = "hx") -> Tensor:
        owner = type(self).__name__
        if h is None:
            return Tensor._wrap(np.zeros((batch, self.hidden_size), dtype=self.weight_ih.dtype))
        h = _as_input(owner, h, self.weight_ih.dtype, what)
        expected = (batch, self.hidden_size) if batched else (self.hidden_size,)
        if tuple(h.shape) != expected:
            raise ValueError(f"{owner}: expected {what} of shape {expected}, got {tuple(h.shape)}")
        return h if batched else h.unsqueeze(0)

    def _input_projection(self, x: Tensor) -> Tensor:
        gi = x @ self.weight_ih.T  # (B, G·H)
        return gi if self.bias_ih is None else gi + self.bias_ih

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) (or relu), one step of ``RNN``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype=None, generator=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, dtype, generator)

    def forward(self, input, hx=None):
        x, batched = self._check_input(input)
        h = self._check_state(hx, x.shape[0], batched)
        a = self._input_projection(x) + h @ self.weight_hh.T  # (B, H)
        if self.bias_hh is not None:
            a = a + self.bias_hh
        h_new = a.tanh() if self.nonlinearity == "tanh" else a.relu()
        return h_new if batched else h_new.squeeze(0)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n as ``GRU``), the hidden side fused into ``GRUCellFunction``."""

    _num_gates = 3

    def forward(self, input, hx=None):
        x, batched = self._check_input(input)
        h = self._check_state(hx, x.shape[0], batched)
        extra = () if self.bias_hh is None else (self.bias_hh,)
        h_new = GRUCellFunction.apply(self._input_projection(x), h, self.weight_hh, *extra)  # (B, H)
        return h_new if batched else h_new.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o as ``LSTM``): ``forward(input, (h, c)=None) -> (h', c')``."""

    _num_gates = 4

    def forward(self, input, hx=None):
        x, batched = self._check_input(input)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be None or a pair (h, c), got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        h = self._check_state(h0, x.shape[0], batched, "h")
        c = self._check_state(c0, x.shape[0], batched, "c")
        extra = () if self.bias_hh is None else (self.bias_hh,)
        hc = LSTMSequence.apply(self._input_projection(x).unsqueeze(0), h, c, self.weight_hh, *extra)[0]  # (B, 2H)
        H = self.hidden_size
        h_new, c_new = hc[:, :H], hc[:, H:]
        return (h_new, c_new) if batched else (h_new.squeeze(0), c_new.squeeze(0))
