"""``Module``: the building block of every model, and the containers ``ModuleList``,
``ModuleDict`` and ``Sequential``.

A model is a tree of Modules. Assigning a ``Parameter`` or a ``Module`` to an attribute
registers it (``Module.__setattr__``), so the tree can be walked to collect parameters for the
optimizer and to name every array in a checkpoint with PyTorch's dotted names
(``encoder.layer.0.attention.self.query.weight``). Those names are what let a minigrad model load
a PyTorch / Hugging Face ``state_dict`` converted to NumPy, array for array.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Callable, Iterator, Mapping

import numpy as np

from minigrad.nn.parameter import Parameter
from minigrad.tensor import Tensor

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _addindent(text: str, spaces: int) -> str:
    """Indent every line but the first (for the nested repr)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _check_name(kind: str, module: "Module", name) -> None:
    """A registered name must be a non-empty string without '.', and must not hide an attribute."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if name == "" or "." in name:
        raise KeyError(f"{kind} name can't be empty or contain \".\", got {name!r}")
    if "_parameters" not in module.__dict__:
        raise AttributeError(f"cannot register a {kind} before Module.__init__() call")
    registered = name in module._parameters or name in module._buffers or name in module._modules
    if hasattr(module, name) and not registered:
        raise KeyError(f"attribute {name!r} already exists")


def _as_array(value) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else value


class Module:
    """Base class of all layers and models (``torch.nn.Module``'s interface).

    Subclasses call ``super().__init__()`` first, assign Parameters, sub-Modules and buffers as
    attributes, and define ``forward``; ``module(x)`` calls ``forward(x)``.
    """

    training: bool

    def __init__(self) -> None:
        # object.__setattr__: our own __setattr__ needs these dicts to exist already.
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or ``None``: a declared but absent parameter, like ``bias=False``)."""
        _check_name("parameter", self, name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(minigrad.nn.Parameter or None required)")
        self._discard(name, self._parameters)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register non-trainable state (running statistics, position ids, causal masks, …).

        Buffers follow ``to(dtype)`` and, when ``persistent``, appear in ``state_dict()``.
        NumPy arrays are wrapped in a Tensor that does not require grad.
        """
        _check_name("buffer", self, name)
        if tensor is not None:
            if isinstance(tensor, np.ndarray):
                tensor = Tensor(tensor)
            elif not isinstance(tensor, Tensor):
                raise TypeError(f"register_buffer: cannot assign '{type(tensor).__name__}' object to buffer "
                                f"'{name}' (Tensor, numpy array or None required)")
        self._discard(name, self._buffers)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register a child module under ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name("module", self, name)
        self._discard(name, self._modules)
        self._modules[name] = module

    register_module = add_module

    def _discard(self, name: str, keep: dict) -> None:
        """Forget ``name`` in every store but ``keep`` (where it keeps its position), so a name
        lives in exactly one place."""
        for store in (self.__dict__, self._parameters, self._buffers, self._modules):
            if store is not keep:
                store.pop(name, None)
        if keep is not self._buffers:
            self._non_persistent_buffers.discard(name)

    def __setattr__(self, name: str, value) -> None:
        d = self.__dict__
        if "_parameters" not in d and isinstance(value, (Parameter, Module)):
            raise AttributeError(f"cannot assign {type(value).__name__} '{name}' before Module.__init__() call "
                                 f"(call super().__init__() first in {type(self).__name__}.__init__)")
        if isinstance(value, Parameter):
            self._discard(name, self._parameters)
            self._parameters[name] = value
        elif "_parameters" in d and name in self._parameters:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(minigrad.nn.Parameter or None expected)")
            self._parameters[name] = None
        elif isinstance(value, Module):
            self._discard(name, self._modules)
            self._modules[name] = value
        elif "_modules" in d and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(minigrad.nn.Module or None expected)")
            self._modules[name] = None
        elif "_buffers" in d and name in self._buffers:
            if value is not None and not isinstance(value, (Tensor, np.ndarray)):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(Tensor, numpy array or None expected)")
            self._buffers[name] = Tensor(value) if isinstance(value, np.ndarray) else value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str):
        # Only called when normal lookup failed: look in the registries, else a clear error.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = list(super().__dir__())
        for store in (self._parameters, self._buffers, self._modules):
            keys += [k for k in store if not k[0].isdigit()]
        return sorted(set(keys))

    # ------------------------------------------------------------------ walking the tree
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """(dotted name, module) for this module and all descendants, depth first, each once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                sub_prefix = prefix + ("." if prefix else "") + name
                yield from module.named_modules(memo, sub_prefix, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, module in self.named_modules():
            yield module

    def _named_members(self, store: str, prefix: str, recurse: bool, remove_duplicate: bool):
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        seen = set()
        for module_prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) in registration order; a shared Parameter is listed once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def get_submodule(self, target: str) -> "Module":
        """The module at dotted path ``target`` (``""`` is self)."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules or module._modules[part] is None:
                raise AttributeError(f"get_submodule: {type(module).__name__} has no submodule {part!r} "
                                     f"(looking up {target!r})")
            module = module._modules[part]
        return module

    # ------------------------------------------------------------------ checkpoints
    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Every parameter and persistent buffer with its full name. Unlike ``named_parameters``
        this does not de-duplicate: a tied weight appears under each name, as in PyTorch."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers:
                yield prefix + name, buf
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_items(prefix + name + ".")

    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> dict:
        """``{dotted name: np.ndarray}`` of all parameters and persistent buffers (copies).

        With ``keep_vars=True`` the values are the Parameter/buffer Tensors themselves.
        """
        return {name: (t if keep_vars else t.data.copy()) for name, t in self._state_items(prefix)}

    def load_state_dict(self, state_dict: Mapping, strict: bool = True, assign: bool = False):
        """Copy arrays from ``state_dict`` (numpy arrays or Tensors) into this module's parameters
        and persistent buffers, by name.

        Everything is checked before anything is copied: missing keys, unexpected keys (both only
        when ``strict``), shape mismatches and non-numeric values are all reported together in one
        RuntimeError, and the module is left unchanged. Values are cast to the dtype of the
        existing parameter (same-kind casts, e.g. float64 -> float32); with ``assign=True`` the
        checkpoint's dtype is kept instead. Parameter objects keep their identity, so an
        optimizer built before loading still holds them. Returns
        ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"load_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
        own = dict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems, plan = [], []
        for name, target in own.items():
            if name not in state_dict:
                continue
            value, problem = self._check_state_value(name, target, state_dict[name], assign)
            if problem:
                problems.append(problem)
            else:
                plan.append((target, value))
        if strict and unexpected:
            problems.insert(0, "Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
        if strict and missing:
            problems.insert(0, "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(problems))
        for target, value in plan:
            self._copy_into(target, value, assign)
        return _IncompatibleKeys(missing, unexpected)

    @staticmethod
    def _check_state_value(name: str, target: Tensor, value, assign: bool):
        """(array, None) when ``value`` can be loaded into ``target``, else (None, message)."""
        if not isinstance(value, (Tensor, np.ndarray, np.generic, int, float, bool)):
            return None, f"value for {name} is a {type(value).__name__}, expected a numpy array or Tensor."
        array = np.asarray(_as_array(value))
        if array.dtype.kind not in "biuf":
            return None, f"value for {name} has dtype {array.dtype}, expected a numeric array."
        if array.shape != target.shape:
            return None, (f"size mismatch for {name}: copying a param with shape {array.shape} from checkpoint, "
                          f"the shape in current model is {target.shape}.")
        if assign and isinstance(target, Parameter) and array.dtype.kind != "f":
            return None, f"value for {name} has dtype {array.dtype}; a Parameter needs a floating-point array."
        if not assign and not np.can_cast(array.dtype, target.dtype, casting="same_kind"):
            return None, (f"dtype mismatch for {name}: cannot cast checkpoint dtype {array.dtype} "
                          f"to the model's {target.dtype}.")
        return array, None

    @staticmethod
    def _copy_into(target: Tensor, array: np.ndarray, assign: bool) -> None:
        if assign:
            target.data = np.array(array, copy=True)
        elif target.data.flags.writeable:
            # In place, like torch's param.copy_(): views of the parameter stay valid.
            np.copyto(target.data, array, casting="same_kind")
        else:
            target.data = np.array(array, dtype=target.dtype, copy=True)
        if target.grad is not None and target.grad.dtype != target.data.dtype:
            target.grad = target.grad.astype(target.data.dtype)

    # ------------------------------------------------------------------ modes and bulk edits
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active, …) for this module and all descendants."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode is expected to be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget accumulated gradients (``.grad = None``, or fill with zeros in place)."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (``False``) or unfreeze all parameters."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every descendant, then on self (children first, as in PyTorch)."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def to(self, dtype) -> "Module":
        """Cast all parameters (and their grads) and floating-point buffers to ``dtype`` in place.

        Parameter objects keep their identity. ``to("cpu")`` is accepted and does nothing,
        so code written for PyTorch runs unchanged.
        """
        if isinstance(dtype, str) and dtype == "cpu":
            return self
        if dtype is None:
            raise TypeError("to: expected a floating-point dtype such as np.float64, got None")
        try:
            target = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"to: expected a floating-point dtype, got {dtype!r}") from None
        if target.kind != "f":
            raise TypeError(f"to: only floating-point dtypes are supported, got {target}")
        for tensor in list(self.parameters()) + list(self.buffers()):
            if tensor.dtype.kind == "f" and tensor.dtype != target:
                tensor.data = tensor.data.astype(target)
                if tensor.grad is not None:
                    tensor.grad = tensor.grad.astype(target)
        return self

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """One-line description of this module's settings, shown inside its repr."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, module in self._modules.items():
            lines.append(f"({name}): " + _addindent(repr(module), 2))
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                return main + lines[0] + ")"
            main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"


# ----------------------------------------------------------------------------------------------
# Containers
# ----------------------------------------------------------------------------------------------
class ModuleList(Module):
    """A list of modules, registered under the names "0", "1", … (as in PyTorch)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, idx: int) -> int:
        if not isinstance(idx, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, not {type(idx).__name__}")
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for {type(self).__name__} of length {n}")
        return int(idx) % n

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(self._index(idx))]

    def __setitem__(self, idx, module: Module) -> None:
        self.add_module(str(self._index(idx)), module)

    def __delitem__(self, idx) -> None:
        items = list(self._modules.values())
        if isinstance(idx, slice):
            del items[idx]
        else:
            del items[self._index(idx)]
        self._modules.clear()
        self.extend(items)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules) -> "ModuleList":
        return self.extend(modules)

    def __add__(self, other) -> "ModuleList":
        return ModuleList(list(self) + list(other))

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError(f"{type(self).__name__}.extend should be called with an iterable of modules, "
                            f"got {type(modules).__name__}")
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, module)
        self._modules.clear()
        self.extend(items)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(); iterate over it instead")

    def __repr__(self) -> str:
        """Runs of identical layers are folded, as PyTorch prints them: ``(0-5): 6 x Block(...)``."""
        if not self._modules:
            return type(self).__name__ + "()"
        runs = []  # [first index, last index, repr]
        for i, module in enumerate(self):
            text = repr(module)
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = [f"({a}): {text}" if a == b else f"({a}-{b}): {b - a + 1} x {text}" for a, b, text in runs]
        return type(self).__name__ + "(\n  " + "\n  ".join(_addindent(line, 2) for line in lines) + "\n)"


class ModuleDict(Module):
    """A dict of modules keyed by strings, in insertion order."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r} (keys: {list(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules) -> None:
        items = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for entry in items:
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise TypeError(f"ModuleDict.update expects a mapping or (key, module) pairs, got {entry!r}")
            self[entry[0]] = entry[1]

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it instead")


class Sequential(Module):
    """Modules applied one after another: ``forward(x) = m_n(… m_1(m_0(x)))``.

    ``Sequential(m0, m1, …)`` names them "0", "1", …; ``Sequential(OrderedDict(name=module))``
    keeps the given names.
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (OrderedDict, dict)):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, not a Module")
                self.add_module(str(i), module)

    def __getitem__(self, idx):
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        if not isinstance(idx, (int, np.integer)):
            raise TypeError(f"Sequential indices must be integers or slices, not {type(idx).__name__}")
        if not -len(items) <= idx < len(items):
            raise IndexError(f"index {idx} is out of range for Sequential of length {len(items)}")
        return items[idx][1]

    def __setitem__(self, idx: int, module: Module) -> None:
        name = list(self._modules)[idx]
        self.add_module(name, module)

    def __delitem__(self, idx) -> None:
        names = list(self._modules)
        for name in (names[idx] if isinstance(idx, slice) else [names[idx]]):
            del self._modules[name]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x
