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

Every layer and cell works the same way: the input projections W_ih x_t + b_ih of all time
steps are ONE matmul, then ``minigrad.kernels.recurrent.recurrence`` runs the recurrence (a cell
is a recurrence of one step). The step formulas and the fused kernels are in
``minigrad/kernels/recurrent.py``.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from minigrad import functional as F
from minigrad.kernels.recurrent import GATES, GRUSequence, LSTMSequence, RNNSequence, recurrence  # noqa: F401
from minigrad.nn import init
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.tensor import Tensor, cat, stack

# ----------------------------------------------------------------------------------------------
# Checks shared by layers and cells
# ----------------------------------------------------------------------------------------------
_KINDS = {"RNN_TANH": "rnn", "RNN_RELU": "rnn", "GRU": "gru", "LSTM": "lstm"}  # torch's mode -> kernel


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


def _state_pair(owner: str, hx, names: str):
    """LSTM states: None or a pair (h, c)."""
    if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
        raise TypeError(f"{owner}: hx must be None or a pair {names}, got {type(hx).__name__}")
    return (None, None) if hx is None else tuple(hx)


def _project(x: Tensor, w_ih: Tensor, b_ih) -> Tensor:
    """gi = x W_ihᵀ + b_ih for all time steps: ONE matmul over the (T·B, I) rows."""
    return F.linear(x, w_ih, b_ih)  # (T, B, G·H)


# ----------------------------------------------------------------------------------------------
# Layers: all time steps, stacked num_layers deep, optionally bidirectional
# ----------------------------------------------------------------------------------------------
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
        gh = GATES[_KINDS[mode]] * self.hidden_size
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
    def _run(self, x: Tensor, states: list, batched: bool):
        """All layers and directions from the initial ``states`` (each (L·D, B, H)): returns the last
        layer's output in the caller's layout and the final states, each (L·D, B, H) (or unbatched)."""
        kind, nonlinearity = _KINDS[self.mode], getattr(self, "nonlinearity", "tanh")
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for d in range(self._directions):
                k = layer * self._directions + d
                w_ih, w_hh, b_ih, b_hh = self._weights(k)
                out, last = recurrence(kind, _project(x, w_ih, b_ih), [s[k] for s in states], w_hh, b_hh,
                                       reverse=d == 1, nonlinearity=nonlinearity)  # (T, B, H)
                outs.append(out)
                for f, s in zip(finals, last):
                    f.append(s)
            x = outs[0] if len(outs) == 1 else cat(outs, -1)  # (T, B, D·H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True, generator=self.generator)
        h_n = [stack(f, 0) for f in finals]  # (L·D, B, H)
        if not batched:
            return x.squeeze(1), [h.squeeze(1) for h in h_n]
        return (x.transpose(0, 1) if self.batch_first else x), h_n  # (B, T, D·H) or (T, B, D·H)

    def forward(self, input, hx=None):
        """``input`` (T, B, I), (B, T, I) with batch_first, or (T, I); ``hx`` (L·D, B, H) or (L·D, H)
        — for the LSTM a pair (h0, c0). Returns ``output`` (T, B, D·H) (batch_first: (B, T, D·H)) and
        ``h_n`` (L·D, B, H) — for the LSTM the pair (h_n, c_n)."""
        x, batched = self._check_input(input)
        if self.mode == "LSTM":
            h0, c0 = _state_pair("LSTM", hx, "(h0, c0)")
            states = [self._check_state(h0, x.shape[1], batched, "h0"),
                      self._check_state(c0, x.shape[1], batched, "c0")]
            out, (h_n, c_n) = self._run(x, states, batched)
            return out, (h_n, c_n)
        out, (h_n,) = self._run(x, [self._check_state(hx, x.shape[1], batched)], batched)
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


class RNN(RNNBase):
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


class GRU(RNNBase):
    """Gated recurrent unit (Cho et al. 2014), gates (r, z, n) as in torch.nn.GRU::

        r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, dtype=None,
                 generator=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, generator)


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


# ----------------------------------------------------------------------------------------------
# Cells: one time step, for hand-written loops (decoders, teacher forcing)
# ----------------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """Parameters ``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H), ``bias_ih``, ``bias_hh`` (G·H,),
    initialised U(−1/√H, 1/√H); input (B, I) or unbatched (I,). A step is the layers' recurrence
    of length one: h' = recurrence(x W_ihᵀ + b_ih, h)."""

    _kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None, generator=None):
        super().__init__()
        owner = type(self).__name__
        self.input_size = _check_size(owner, "input_size", input_size)
        self.hidden_size = _check_size(owner, "hidden_size", hidden_size)
        self.bias = bool(bias)
        dtype = _float_dtype(owner, dtype)
        gh = GATES[self._kind] * self.hidden_size
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

    def _step(self, input, states: list, what: tuple) -> list:
        """One step from ``states`` (each None, (B, H) or unbatched (H,)): the new states, in the caller's layout."""
        x, batched = self._check_input(input)
        states = [self._check_state(s, x.shape[0], batched, name) for s, name in zip(states, what)]
        gi = _project(x, self.weight_ih, self.bias_ih)  # (B, G·H)
        _, finals = recurrence(self._kind, gi.unsqueeze(0), states, self.weight_hh, self.bias_hh,
                               nonlinearity=getattr(self, "nonlinearity", "tanh"))  # each (B, H)
        return finals if batched else [s.squeeze(0) for s in finals]

    def forward(self, input, hx=None):
        """h' from ``input`` and ``hx`` (None = zeros)."""
        return self._step(input, [hx], ("hx",))[0]

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

    def extra_repr(self) -> str:
        return super().extra_repr() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n as ``GRU``): ``forward(input, h=None) -> h'``."""

    _kind = "gru"


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o as ``LSTM``): ``forward(input, (h, c)=None) -> (h', c')``."""

    _kind = "lstm"

    def forward(self, input, hx=None):
        h, c = self._step(input, list(_state_pair("LSTMCell", hx, "(h, c)")), ("h", "c"))
        return h, c


class GRUCellFunction:
    """One fused GRU step, h' = GRU(gi, h) with gi = x W_ihᵀ + b_ih: the GRU recurrence of length one (the
    step's old name; the step and its derivative are in ``minigrad/kernels/recurrent.py``)."""

    @staticmethod
    def apply(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None = None) -> Tensor:
        return recurrence("gru", gi.unsqueeze(0), [h], w_hh, b_hh)[1][0]  # (B, H)
