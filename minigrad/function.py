"""The graph node (`Function`) and the grad-mode switch.

Read this file first: every operation in minigrad is a `Function`, and grad mode decides whether
calling one records it in the graph.

This module imports no other part of minigrad. `minigrad/tensor.py` imports it and hands it the
Tensor class (`_register_tensor_class`) when it loads, which closes the one cycle the design has
— a Function makes Tensors, Tensor methods call Functions — without an import cycle.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np

# ----------------------------------------------------------------------------------------------
# Grad mode
# ----------------------------------------------------------------------------------------------
_grad_enabled = True


def is_grad_enabled() -> bool:
    """Whether operations record the graph.

    Inside a ``backward`` rule this is the one check of "am I building a graph?": it is True
    exactly when the rule runs under ``create_graph=True`` (its inputs are then Tensors)."""
    return _grad_enabled


def _set_grad_enabled(mode: bool) -> bool:
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, bool(mode)
    return previous


@contextmanager
def set_grad_enabled(mode: bool):
    """Context manager that switches graph recording on or off (like torch.set_grad_enabled)."""
    previous = _set_grad_enabled(mode)
    try:
        yield
    finally:
        _set_grad_enabled(previous)


def no_grad():
    """``with minigrad.no_grad():`` — operations inside record no graph."""
    return set_grad_enabled(False)


def enable_grad():
    """``with minigrad.enable_grad():`` — record a graph even inside ``no_grad``."""
    return set_grad_enabled(True)


# ----------------------------------------------------------------------------------------------
# Graph node
# ----------------------------------------------------------------------------------------------
_Tensor = None  # the Tensor class, set by minigrad/tensor.py (see the module docstring)


def _register_tensor_class(cls) -> None:
    global _Tensor
    _Tensor = cls


class Function:
    """One operation in the graph: ``forward`` on NumPy arrays, ``backward`` on gradients.

    A subclass implements ``forward(self, *arrays, **options) -> ndarray`` and
    ``backward(self, grad)`` returning one gradient per input (or None where not needed).

    ``backward`` is written once and runs in two modes. When no graph is being built (the usual
    ``loss.backward()``), ``grad``, ``self.args()`` and ``self.output()`` are NumPy arrays and
    the rule costs no more than its NumPy calls. With ``create_graph=True`` they are Tensors, so
    the same rule records a graph and can be differentiated again. Rules therefore use operators
    and the methods arrays and Tensors share (``sum(axis=, keepdims=)``, ``reshape``,
    ``swapaxes``, indexing) plus the functions of ``xp()`` (``minigrad.ops.xp``: exp, where, cat,
    stack, permute, …); where a rule must know the mode, it asks ``is_grad_enabled()``.
    Gradients may have the broadcast shape: the engine sums them back to each input's shape,
    once, for all ops.
    """

    __slots__ = ("inputs", "needs_input_grad", "out_data", "retainers", "__dict__")

    @classmethod
    def apply(cls, *inputs, **options):
        fn = cls()
        n = len(inputs)  # one- and two-input ops are spelled out: this is the hottest path
        try:
            if n == 1:
                out = fn.forward(inputs[0].data, **options)
            elif n == 2:
                out = fn.forward(inputs[0].data, inputs[1].data, **options)
            else:
                out = fn.forward(*[t.data for t in inputs], **options)
        except ValueError as e:
            if "broadcast" in str(e):
                shapes = " and ".join(str(t.shape) for t in inputs)
                raise ValueError(f"{cls.__name__.lower()}: shapes {shapes} cannot be broadcast together") from None
            raise
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if _grad_enabled:
            if n == 1:
                needs = (inputs[0].requires_grad,)
            elif n == 2:
                needs = (inputs[0].requires_grad, inputs[1].requires_grad)
            else:
                needs = tuple([t.requires_grad for t in inputs])
            if True in needs:
                fn.inputs = inputs
                fn.needs_input_grad = needs
                fn.retainers = None
                return _Tensor._from_node(out, fn)
        return _Tensor._wrap(out)

    def forward(self, *arrays, **options):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def args(self) -> tuple:
        """The inputs for ``backward``: Tensors when a graph is being built, else their arrays."""
        if _grad_enabled:
            return self.inputs
        return tuple([t.data for t in self.inputs])

    def save_output(self, out: np.ndarray) -> np.ndarray:
        """Keep the forward result for ``backward`` (as an array: no reference cycle)."""
        self.out_data = out
        return out

    def output(self):
        """The saved result; when a graph is being built, a Tensor that is this node's output."""
        if _grad_enabled:
            return _Tensor._from_node(self.out_data, self)
        return self.out_data

    def release(self) -> None:
        """Free what backward needed; a second backward through this node is then an error."""
        if self.__dict__:
            self.__dict__.clear()
        self.inputs = None
        self.out_data = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


__all__ = ["Function", "is_grad_enabled", "set_grad_enabled", "no_grad", "enable_grad"]
