"""``Parameter``: a Tensor that a Module registers as trainable state.

Assigning a Parameter to a Module attribute (``self.weight = Parameter(...)``) is what makes it
appear in ``module.parameters()``, in ``state_dict()`` and hence in the optimizer — the same
convention as ``torch.nn.Parameter``.
"""
from __future__ import annotations

import numpy as np

from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default.

    ``Parameter(data, requires_grad=True)``: ``data`` may be a Tensor (its array is shared, as in
    PyTorch), an ndarray (shared, not copied) or array-like (floats become float32).
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
