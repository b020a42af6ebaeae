"""The optimizer base class: parameter groups, per-parameter state, and checkpointable state dicts.

An optimizer owns *parameter groups* (``param_groups``: a list of dicts, each with a ``"params"``
list and its own hyperparameters such as ``"lr"``) and a per-parameter ``state`` dict (momentum
buffers, Adam's moments, step counts). ``step()`` reads every parameter's ``.grad`` (a NumPy array,
or None to skip the parameter) and updates its ``.data`` **in place**: the arrays are shared with
the modules that own them, so rebinding ``.data`` would silently detach the model.

``state_dict()`` has PyTorch's structure::

    {"state": {0: {"step": 3, "exp_avg": ndarray, ...}, 1: {...}},
     "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), ..., "params": [0, 1]}]}

Parameters are referred to by their position in the groups (0, 1, 2, ... in group order), state
values are NumPy arrays or Python scalars, so a checkpoint can store the arrays as tensors and the
rest as JSON (``load_state_dict`` accepts the string keys and lists JSON gives back).
"""
from __future__ import annotations

import math
from collections import defaultdict
from numbers import Real

import numpy as np

from minigrad.tensor import Tensor, enable_grad


class _Required:
    """Sentinel for a hyperparameter without a default (e.g. SGD's ``lr``)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


# ----------------------------------------------------------------------------------------------
# Hyperparameter checks shared by the optimizers
# ----------------------------------------------------------------------------------------------
def check_number(owner: str, name: str, value, low: float = 0.0, high: float | None = None,
                 high_inclusive: bool = True) -> None:
    """Raise a clear error unless ``low <= value (<|<=) high`` and ``value`` is a real number."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r} ({type(value).__name__})")
    ok = low <= value and (high is None or (value <= high if high_inclusive else value < high))
    if not ok or math.isnan(value):
        upper = "" if high is None else f" and {name} {'<=' if high_inclusive else '<'} {high}"
        raise ValueError(f"{owner}: invalid {name}={value!r} (expected {name} >= {low}{upper})")


def check_bool(owner: str, name: str, value) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")


class Optimizer:
    """Base class: ``Optimizer(params, defaults)``.

    ``params`` is an iterable of Tensors that require grad, or of dicts ``{"params": [...],
    "lr": ..., ...}`` (parameter groups; keys missing from a group take ``defaults``).
    Subclasses implement ``_check_group(group)`` (validate hyperparameters) and
    ``_step_group(group)`` (update every parameter of one group in place).
    """

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = defaultdict(dict)  # Tensor (identity-hashed) -> {name: value}
        self._scratch: dict = {}  # (shape, dtype, slot) -> reusable temporary array

        name = type(self).__name__
        if isinstance(params, (Tensor, np.ndarray)):
            raise TypeError(
                f"{name}: params must be an iterable of Tensors or of dicts, got a single "
                f"{type(params).__name__}; wrap it in a list: [param]"
            )
        if isinstance(params, dict):
            raise TypeError(f"{name}: params must be an iterable of Tensors or a list of param-group "
                            f"dicts, got one dict; wrap it in a list: [{{'params': ...}}]")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be an ordered collection (list/tuple), not a set: "
                            "a set's order changes between runs, which would scramble saved state")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list (did the model register any Parameters?)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group ``{"params": [...], <hyperparameter>: value, ...}``; unset keys take defaults."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: expected a dict, got {type(param_group).__name__} "
                            "(do not mix Tensors and group dicts in one params list)")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{name}.add_param_group: the group has no 'params' key (keys: {sorted(group)})")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be an ordered collection (list/tuple), not a set: "
                            "a set's order changes between runs, which would scramble saved state")
        group["params"] = list(params)

        index_in_group = len(self.param_groups)
        seen = set()
        for i, p in enumerate(group["params"]):
            where = f"param_groups[{index_in_group}]['params'][{i}]"
            if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], Tensor):
                raise TypeError(f"{name}: {where} is a (name, tensor) pair; pass model.parameters(), "
                                "not model.named_parameters()")
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: {where} must be a minigrad Tensor, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(f"{name}: {where} (shape {p.shape}) does not require grad; "
                                 "pass only trainable parameters, e.g. [p for p in params if p.requires_grad]")
            if not p.is_leaf:
                raise ValueError(f"{name}: {where} (shape {p.shape}) is not a leaf tensor "
                                 "(it was computed by an operation); an optimizer can only update leaves")
            if id(p) in seen:
                raise ValueError(f"{name}: {where} (shape {p.shape}) appears twice in the same group")
            seen.add(id(p))

        for other_index, other in enumerate(self.param_groups):
            if any(id(p) in seen for p in other["params"]):
                raise ValueError(f"{name}: some parameters appear in more than one parameter group "
                                 f"(groups {other_index} and {index_in_group})")

        for key, default in self.defaults.items():
            if key not in group:
                if default is required:
                    raise ValueError(f"{name}: parameter group {index_in_group} did not specify a value "
                                     f"of the required hyperparameter {key!r}")
                group[key] = default
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group: dict) -> None:
        """Validate one group's hyperparameters (subclasses override)."""

    # ------------------------------------------------------------------ step
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``.grad = None`` (default, like PyTorch) or fill them with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.fill(0)

    def step(self, closure=None):
        """One update of every parameter that has a ``.grad``; ``closure`` re-evaluates the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _grads(self, group: dict):
        """Yield ``(param, grad)`` for the parameters of ``group`` that have a gradient."""
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            if grad.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}.step: a parameter of shape {p.data.shape} has a "
                                 f".grad of shape {grad.shape}")
            yield p, grad

    def _buffer(self, like: np.ndarray, slot: int = 0) -> np.ndarray:
        """A reusable temporary with ``like``'s shape and dtype (saves an allocation per op).

        Parameters are updated one after the other, so all parameters of one shape share it.
        """
        key = (like.shape, like.dtype.str, slot)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = np.empty(like.shape, like.dtype)
        return buf

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}`` (copies)."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index and s:
                state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore ``state_dict()``'s output (or its JSON/safetensors round trip) onto these parameters."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}: expected a dict with keys 'state' and 'param_groups', got {got}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: the saved state has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        index_to_param = {}
        for g, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}: saved parameter group {g} has {len(saved['params'])} parameters, "
                                 f"this optimizer's group {g} has {len(group['params'])}")
            for i, p in zip(saved["params"], group["params"]):
                index_to_param[int(i)] = p

        new_state: dict = defaultdict(dict)
        for key, values in state_dict["state"].items():
            idx = int(key)
            if idx not in index_to_param:
                raise ValueError(f"{name}: the saved state refers to parameter {idx}, which no group lists")
            p = index_to_param[idx]
            new_state[p] = {k: self._restore_value(name, idx, p, k, v) for k, v in values.items()}

        new_groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            new_group = {**group, **{k: v for k, v in saved.items() if k != "params"}}
            if isinstance(new_group.get("betas"), list):
                new_group["betas"] = tuple(new_group["betas"])  # JSON turns tuples into lists
            self._check_group(new_group)
            new_groups.append(new_group)
        self.param_groups = new_groups
        self.state = new_state

    @staticmethod
    def _restore_value(name: str, idx: int, p: Tensor, key: str, value):
        """A saved state entry, as an array of the parameter's dtype or a Python scalar."""
        if key == "step":  # a count, stored as int (PyTorch keeps a float tensor)
            return int(np.asarray(value).item())
        if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
            arr = np.asarray(value)
            if arr.shape != p.data.shape:
                raise ValueError(f"{name}: state[{idx}][{key!r}] has shape {arr.shape}, "
                                 f"but parameter {idx} has shape {p.data.shape}")
            return np.array(arr, dtype=p.data.dtype, copy=True)
        return value

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        lines.append(")")
        return "\n".join(lines)
