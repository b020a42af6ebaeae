"""Recurrent kernels (book ch. 1–2: the GRU language model and the GRU encoder-decoder): the Elman RNN,
GRU and LSTM recurrences of one layer and direction. Gates are stacked in torch's order.

The references are the book's step formulas below, run in a Python loop over time steps with Tensor ops;
gi = x W_ihᵀ + b_ih is computed for all steps beforehand (one matmul), gh = h W_hhᵀ + b_hh::

    RNN   h' = tanh(gi + gh)                                   (or relu)
    GRU   r = σ(gi_r + gh_r)                                   reset gate
          z = σ(gi_z + gh_z)                                   update gate
          n = tanh(gi_n + r ⊙ gh_n)                            candidate state
          h' = (1 − z) ⊙ n + z ⊙ h
    LSTM  i, f, o = σ(gi_· + gh_·),  g = tanh(gi_g + gh_g)
          c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')

The kernels run the whole recurrence as one ``Function`` (``RNNSequence``, ``GRUSequence``,
``LSTMSequence``): the forward loops over time in NumPy into preallocated buffers; the backward is
back-propagation through time (BPTT) in NumPy, with dW_hh one matmul over all steps at the end —
instead of a graph of ~10 nodes per step. Under create_graph they recompute the gates as Tensors from
the inputs and their own output, so every recurrent layer is twice differentiable. Layers and their
one-step cells share them: a cell is a recurrence of length 1.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from minigrad.function import Function, is_grad_enabled
from minigrad.kernels import using_reference
from minigrad.ops import xp
from minigrad.tensor import stack

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


# ----------------------------------------------------------------------------------------------
# References: one step of each cell, and the loop over time
# ----------------------------------------------------------------------------------------------
def _hidden_projection(h, w_hh, b_hh):
    gh = h @ w_hh.swapaxes(0, 1)  # (B, G·H): all gates' hidden projections in one matmul
    return gh if b_hh is None else gh + b_hh


def rnn_step(gi, h, w_hh, b_hh, nonlinearity: str = "tanh"):
    """h' = tanh(gi + W_hh h + b_hh) (or relu)."""
    a = gi + _hidden_projection(h, w_hh, b_hh)
    return a.tanh() if nonlinearity == "tanh" else a.relu()


def gru_step(gi, h, w_hh, b_hh):
    """One GRU step, the book's equations (module docstring)."""
    H = h.shape[-1]
    gh = _hidden_projection(h, w_hh, b_hh)
    r = (gi[:, :H] + gh[:, :H]).sigmoid()
    z = (gi[:, H:2 * H] + gh[:, H:2 * H]).sigmoid()
    n = (gi[:, 2 * H:] + r * gh[:, 2 * H:]).tanh()
    return (1.0 - z) * n + z * h


def lstm_step(gi, h, c, w_hh, b_hh):
    """One LSTM step: returns (h', c')."""
    H = h.shape[-1]
    a = gi + _hidden_projection(h, w_hh, b_hh)
    i, f, g, o = a[:, :H].sigmoid(), a[:, H:2 * H].sigmoid(), a[:, 2 * H:3 * H].tanh(), a[:, 3 * H:].sigmoid()
    c_new = f * c + i * g
    return o * c_new.tanh(), c_new


def recurrence_reference(kind: str, gi, states: list, w_hh, b_hh, reverse: bool = False,
                         nonlinearity: str = "tanh"):
    """Run the step formula over all T steps of ``gi`` (T, B, G·H): (outputs (T, B, H), final states)."""
    T = gi.shape[0]
    outputs = [None] * T
    for t in _steps(T, reverse):
        if kind == "rnn":
            states = [rnn_step(gi[t], states[0], w_hh, b_hh, nonlinearity)]
        elif kind == "gru":
            states = [gru_step(gi[t], states[0], w_hh, b_hh)]
        else:
            states = list(lstm_step(gi[t], states[0], states[1], w_hh, b_hh))
        outputs[t] = states[0]
    return stack(outputs, 0), states


# ----------------------------------------------------------------------------------------------
# Kernels: the whole recurrence of one layer and direction
# ----------------------------------------------------------------------------------------------
class _StepRows:
    """Per-step results (B, …) gathered into one (T, B, …) result, filled in any time order. In a plain
    backward the rows are written straight into one preallocated buffer (no list, no copy); under
    create_graph they are Tensors, kept in a list and stacked at the end, so the graph stays differentiable."""

    def __init__(self, T: int):
        self.graph = is_grad_enabled()
        self.rows, self.buffer = [None] * T, None

    def __setitem__(self, t: int, row) -> None:
        if self.graph:
            self.rows[t] = row
            return
        if self.buffer is None:
            self.buffer = np.empty((len(self.rows),) + row.shape, dtype=row.dtype)
        self.buffer[t] = row

    def __getitem__(self, t: int):
        return self.rows[t] if self.graph else self.buffer[t]

    def stacked(self):
        return xp().stack(self.rows, 0) if self.graph else self.buffer


def _gate_slices(x, k: int, H: int) -> list:
    """The k gate blocks of width H along the last axis (views)."""
    return [x[..., i * H:(i + 1) * H] for i in range(k)]


def _previous_states(out, first, reverse: bool):
    """(T, B, S) states h_{t-1} that each step read: the initial state, then all outputs but the
    last (walking backwards in time for ``reverse``)."""
    first = first.reshape((1,) + tuple(first.shape))  # (1, B, S)
    return xp().cat([out[1:], first], 0) if reverse else xp().cat([first, out[:-1]], 0)


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


# ----------------------------------------------------------------------------------------------
# Elman RNN: the whole recurrence of one layer/direction
# ----------------------------------------------------------------------------------------------


class RNNSequence(Function):
    """h_t = act(gi_t + h_{t-1} W_hhᵀ + b_hh) for all t (gi = x W_ihᵀ + b_ih precomputed);  the derivative is BPTT (below).

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


# ----------------------------------------------------------------------------------------------
# GRU: one fused step (GRUCell) and the whole recurrence (GRU)
# ----------------------------------------------------------------------------------------------


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
    return c_n, xp().cat([c_r, c_z, c_n * r], -1)


def _tile3(g, c_gh):
    """g ⊙ c_gh with g (…, H) repeated over the three gate blocks of c_gh (…, 3H)."""
    H = g.shape[-1]
    lead = tuple(g.shape[:-1])
    return (g.reshape(lead + (1, H)) * c_gh.reshape(lead + (3, H))).reshape(lead + (3 * H,))


class GRUSequence(Function):
    """The GRU recurrence of one layer and direction over all T steps;  the derivative is BPTT with the step rule below.

    Inputs ``gi`` (T, B, 3H) = x W_ihᵀ + b_ih for every step, ``h0`` (B, H), ``w_hh`` (3H, H),
    optional ``b_hh``; output all states (T, B, H). Backward is BPTT; per step, for the total state
    gradient g_t (the output's gradient plus what step t+1 sends back), with the slopes of ``_gru_slopes``::

        dgh = g·[c_r, c_z, c_n ⊙ r]    dgi = g·[c_r, c_z, c_n]
        dh  = g ⊙ z + dgh W_hh          (direct path + through the three gates, one matmul)

    The slopes c of all steps are computed
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
        if is_grad_enabled():
            dgi = xp().cat([dgh[..., :2 * H], dgi_n], -1)
        else:  # dW and db are taken: dgh's buffer becomes dgi
            dgh[..., 2 * H:] = dgi_n
            dgi = dgh
        return (dgi, dh, dw, db)[:len(need)]


# ----------------------------------------------------------------------------------------------
# LSTM: the whole recurrence of one layer/direction (state = [h | c])
# ----------------------------------------------------------------------------------------------


def _lstm_gates(pre, math):
    """(i, f, g, o) activations from the (…, 4H) pre-activations."""
    H = pre.shape[-1] // 4
    a_i, a_f, a_g, a_o = _gate_slices(pre, 4, H)
    return math.sigmoid(a_i), math.sigmoid(a_f), math.tanh(a_g), math.sigmoid(a_o)


class LSTMSequence(Function):
    """The LSTM recurrence of one layer and direction, output [h_t | c_t] (T, B, 2H);  the derivative is BPTT (below).

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
            prev = _previous_states(out, xp().cat([h0, c0], -1), self.reverse)
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
        slopes = xp().cat([g * i * (1.0 - i), prev_c * f * (1.0 - f), i * (1.0 - g * g), tc * o * (1.0 - o)], -1)
        das, dh, dc = _StepRows(T), None, None
        for t in reversed(_steps(T, self.reverse)):
            gh = dout[t, :, :H] if dh is None else dout[t, :, :H] + dh  # (B, H)
            gc = dout[t, :, H:] if dc is None else dout[t, :, H:] + dc
            dct = gc + gh * k[t]
            das[t] = xp().cat([dct, dct, dct, gh], -1) * slopes[t]  # (B, 4H)
            dh = das[t] @ w_hh
            dc = dct * f[t]
        da = das.stacked()  # (T, B, 4H)
        need = self.needs_input_grad
        dw, db = _weight_grads(da, prev_h, need[3], len(need) > 4 and need[4])
        return (da, dh, dc, dw, db)[:len(need)]


# ----------------------------------------------------------------------------------------------
# The entry point layers and cells call
# ----------------------------------------------------------------------------------------------
def recurrence(kind: str, gi, states: list, w_hh, b_hh=None, reverse: bool = False, nonlinearity: str = "tanh"):
    """The ``kind`` ("rnn", "gru", "lstm") recurrence over ``gi`` (T, B, G·H) from ``states`` ([h0], or [h0, c0]
    for the LSTM, each (B, H)): returns (outputs (T, B, H), final states). The kernel or its reference."""
    if using_reference():
        return recurrence_reference(kind, gi, states, w_hh, b_hh, reverse, nonlinearity)
    extra = () if b_hh is None else (b_hh,)
    if kind == "rnn":
        hs = RNNSequence.apply(gi, states[0], w_hh, *extra, reverse=reverse, nonlinearity=nonlinearity)
    elif kind == "gru":
        hs = GRUSequence.apply(gi, states[0], w_hh, *extra, reverse=reverse)
    else:
        H = states[0].shape[-1]
        hc = LSTMSequence.apply(gi, states[0], states[1], w_hh, *extra, reverse=reverse)  # (T, B, 2H) = [h | c]
        last = hc[0] if reverse else hc[-1]  # (B, 2H)
        return hc[..., :H], [last[:, :H], last[:, H:]]
    return hs, [hs[0] if reverse else hs[-1]]


__all__ = ["GATES", "GRUSequence", "LSTMSequence", "RNNSequence", "gru_step", "lstm_step", "recurrence",
           "recurrence_reference", "rnn_step"]
