"""Checkpoints in the safetensors format (Hugging Face's weight format), with no pickle anywhere.

A safetensors file is an 8-byte header length, a JSON header (name -> dtype, shape, byte
offsets, plus a string->string ``__metadata__`` map) and the raw array bytes. Loading reads
arrays by name, so an HF ``model.safetensors`` opens as ``{name: np.ndarray}``.

* ``save(state_dict, path)`` / ``load(path)`` — flat ``{name: array}`` files.
* ``save_checkpoint(path, model, optimizer, **extra)`` / ``load_checkpoint(path)`` — one file for
  resuming training: the model's arrays, the optimizer's (nested) state and any extra
  JSON-able values (step, scheduler, RNG state). Arrays go in the tensor section; the nesting
  and the scalars go in the metadata as JSON.

Every write is atomic: the bytes go to a temporary file in the destination folder, which is
fsync'ed and then renamed over the destination with ``os.replace``. A crash mid-save leaves the
previous file intact and never a truncated one. What a killed writer does leave is its temporary
file, named ``.<target name>.partial.<host>.<pid>.<random>.tmp`` so that it is recognisable: the
next successful save of the same target removes every such file whose writer (that pid, on this
host) is no longer running (``remove_orphaned_partials``).
"""
from __future__ import annotations

import json
import os
import secrets
import socket
from pathlib import Path
from typing import Mapping

import numpy as np
import safetensors.numpy
from safetensors import safe_open

from minigrad.tensor import Tensor

_CHECKPOINT_FORMAT = "minigrad.checkpoint"
_CHECKPOINT_VERSION = "1"
_PARTIAL = ".partial."  # marks the temporary file of an atomic write: .<name>.partial.<host>.<pid>.<hex>.tmp
# Read the process umask once, so saved files get normal permissions whatever the writer creates them with.
_UMASK = os.umask(0)
os.umask(_UMASK)


# ----------------------------------------------------------------------------------------------
# Flat files
# ----------------------------------------------------------------------------------------------
def _check_arrays(fn: str, state_dict) -> dict[str, np.ndarray]:
    """Validate ``{str: array}`` and return contiguous NumPy arrays."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{fn}: expected a dict of arrays, got {type(state_dict).__name__}")
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"{fn}: keys must be strings, got {type(key).__name__} key {key!r}")
        if isinstance(value, Tensor):
            value = value.data
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{fn}: value for {key!r} must be a numpy array or Tensor, got {type(value).__name__}")
        if value.dtype.kind not in "biufc" or value.dtype == np.complex128:
            raise TypeError(f"{fn}: value for {key!r} has dtype {value.dtype}, which safetensors cannot store "
                            "(use bool, integer or float arrays)")
        # (not np.ascontiguousarray: it turns 0-d arrays into 1-d ones)
        arrays[key] = value if value.flags.c_contiguous else value.copy(order="C")
    return arrays


def _check_metadata(fn: str, metadata) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in metadata.items()):
        raise TypeError(f"{fn}: metadata must be a dict of str -> str, got {metadata!r:.200}")
    return dict(metadata)


def _host() -> str:
    return socket.gethostname().replace(os.sep, "_").replace(".", "_") or "host"


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{_PARTIAL}{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _writer_is_running(pid: int) -> bool:
    if os.name != "posix":
        return True  # no cheap, safe liveness check: never remove another writer's file
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def remove_orphaned_partials(path) -> list[Path]:
    """Remove the temporary files that killed writers of ``path`` left beside it; return them.

    A file counts as orphaned when its name carries this host and the pid of a process that no
    longer runs; a running writer's file (ours included) is never touched."""
    path = Path(path)
    prefix, host = f".{path.name}{_PARTIAL}", _host()
    removed = []
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return removed
    for candidate in candidates:
        fields = candidate.name[len(prefix):].rsplit(".", 3)  # host, pid, random, "tmp"
        if len(fields) != 4 or fields[0] != host or not fields[1].isdigit():
            continue
        pid = int(fields[1])
        if pid == os.getpid() or _writer_is_running(pid):
            continue
        try:
            candidate.unlink()
            removed.append(candidate)
        except FileNotFoundError:
            pass  # another process cleaned it first
    return removed


def atomic_write(path, write, fn: str = "save") -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, fsync it, then rename it over
    ``path``. On any error (even KeyboardInterrupt) the temporary file is removed; after success, the
    ones that killed writers of ``path`` left behind are removed too."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{fn}: folder {str(folder)!r} does not exist (for {str(path)!r})")
    if path.is_dir():
        raise IsADirectoryError(f"{fn}: {str(path)!r} is a folder; expected a file path inside it "
                                f"(e.g. {str(path / 'model.safetensors')!r})")
    tmp = _partial_path(path)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # O_EXCL: a file of our own
    try:
        write(str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    remove_orphaned_partials(path)


_atomic_write = atomic_write  # the name before orphan cleanup


def save(state_dict: Mapping, path, metadata: Mapping | None = None) -> None:
    """Write ``{name: array}`` (NumPy arrays or Tensors) to ``path`` in safetensors format,
    atomically. ``metadata`` is an optional ``{str: str}`` stored in the header."""
    arrays = _check_arrays("save", state_dict)
    metadata = _check_metadata("save", metadata)
    atomic_write(path, lambda tmp: safetensors.numpy.save_file(arrays, tmp, metadata=metadata))


def _open(fn: str, path):
    """safe_open with clear errors for a missing file or a file that is not safetensors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{fn}: no such file: {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{fn}: {str(path)!r} is a folder, expected a .safetensors file "
                                "(e.g. <folder>/model.safetensors)")
    try:
        return safe_open(str(path), framework="np")
    except Exception as err:  # the Rust SafetensorError has no stable Python class to catch
        raise ValueError(f"{fn}: {str(path)!r} is not a valid safetensors file ({err})") from None


def _read_all(fn: str, path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    handle = _open(fn, path)
    with handle as f:
        metadata = f.metadata() or {}
        try:
            arrays = {name: f.get_tensor(name) for name in f.keys()}
        except Exception as err:
            raise ValueError(f"{fn}: cannot read the arrays of {str(path)!r} as NumPy ({err})") from None
    return arrays, metadata


def load(path) -> dict[str, np.ndarray]:
    """Read a safetensors file (ours or a Hugging Face ``model.safetensors``) as
    ``{name: np.ndarray}``, in the file's order."""
    return _read_all("load", path)[0]


def load_metadata(path) -> dict[str, str]:
    """The string metadata stored in a safetensors header (``{}`` when there is none)."""
    with _open("load_metadata", path) as f:
        return dict(f.metadata() or {})


# ----------------------------------------------------------------------------------------------
# Training checkpoints: nested state in one file
# ----------------------------------------------------------------------------------------------
def _state_of(obj):
    """A Module/optimizer/scheduler gives its ``state_dict()``; a dict is used as is."""
    return obj.state_dict() if hasattr(obj, "state_dict") and callable(obj.state_dict) else obj


class _Flattener:
    """Turns a nested tree into (JSON description, {array name: array}).

    Arrays (and NumPy scalars, to keep their exact dtype) are replaced by ``{"__array__": name}``
    and stored as tensors named after their path (``optimizer/state/0/exp_avg``); tuples become
    ``{"__tuple__": [...]}``; dicts with non-string keys become ``{"__dict__": [[key, value], …]}``.
    """

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def _name(self, path: str) -> str:
        name, n = path, 1
        while name in self.arrays:
            name, n = f"{path}#{n}", n + 1
        return name

    def encode(self, value, path: str):
        if isinstance(value, Tensor):
            value = value.data
        if isinstance(value, (np.ndarray, np.generic)):
            name = self._name(path)
            self.arrays[name] = _check_arrays("save_checkpoint", {name: np.asarray(value)})[name]
            return {"__array__": name, "scalar": isinstance(value, np.generic)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, Mapping):
            if all(isinstance(k, str) for k in value) and not any(k.startswith("__") for k in value):
                return {k: self.encode(v, f"{path}/{k}") for k, v in value.items()}
            for k in value:
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise TypeError(f"save_checkpoint: key {k!r} at {path!r} is a {type(k).__name__}; "
                                    "keys must be str, int, float, bool or None")
            return {"__dict__": [[k, self.encode(v, f"{path}/{k}")] for k, v in value.items()]}
        raise TypeError(f"save_checkpoint: cannot store a {type(value).__name__} at {path!r} "
                        "(arrays, Tensors, numbers, str, None, lists, tuples and dicts are supported)")


class _DamagedTree(ValueError):
    """The checkpoint's tree metadata does not describe the file's arrays."""


def _decode(node, arrays: dict[str, np.ndarray]):
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__array__" in node:
        if node["__array__"] not in arrays:
            raise _DamagedTree(f"its tree names the array {node['__array__']!r}, which the file does not hold")
        array = arrays[node["__array__"]]
        return array[()] if node.get("scalar") else array
    if "__tuple__" in node:
        return tuple(_decode(v, arrays) for v in node["__tuple__"])
    if "__dict__" in node:
        return {k: _decode(v, arrays) for k, v in node["__dict__"]}
    return {k: _decode(v, arrays) for k, v in node.items()}


def save_checkpoint(path, model, optimizer=None, **extra) -> None:
    """Save everything needed to resume training in ONE safetensors file, atomically.

    ``model`` and ``optimizer`` are objects with ``state_dict()`` or their state dicts; ``extra``
    holds any other named state: ``scheduler=sched``, ``step=1200``, ``rng=gen.get_state()``.
    Model arrays are stored as ``model/<dotted name>``; other arrays under their nested path.
    """
    tree = {"model": _state_of(model), "optimizer": _state_of(optimizer)}
    for key, value in extra.items():
        tree[key] = _state_of(value)
    if not isinstance(tree["model"], Mapping):
        raise TypeError(f"save_checkpoint: model must be a Module or a state dict, got {type(model).__name__}")
    flat = _Flattener()
    description = {key: flat.encode(value, key) for key, value in tree.items()}
    try:
        header = json.dumps(description, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise TypeError(f"save_checkpoint: the state cannot be written as JSON ({err})") from None
    metadata = {"format": _CHECKPOINT_FORMAT, "version": _CHECKPOINT_VERSION, "tree": header}
    save(flat.arrays, path, metadata=metadata)


def load_checkpoint(path) -> dict:
    """Read a file written by ``save_checkpoint``: ``{"model": {name: array},
    "optimizer": state or None, **extra}`` with the same nesting and types as saved."""
    arrays, metadata = _read_all("load_checkpoint", path)
    if metadata.get("format") != _CHECKPOINT_FORMAT or "tree" not in metadata:
        raise ValueError(f"load_checkpoint: {str(path)!r} is a safetensors file but not a minigrad checkpoint "
                         "(no 'tree' metadata); use minigrad.serialization.load for plain weight files")
    if metadata.get("version") != _CHECKPOINT_VERSION:
        raise ValueError(f"load_checkpoint: unsupported checkpoint version {metadata.get('version')!r} "
                         f"(this minigrad reads version {_CHECKPOINT_VERSION})")
    damaged = f"load_checkpoint: {str(path)!r} is damaged"
    try:
        tree = json.loads(metadata["tree"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{damaged}: its 'tree' metadata is not valid JSON ({err})") from None
    if not isinstance(tree, dict) or "model" not in tree:
        raise ValueError(f"{damaged}: its 'tree' metadata is not a mapping with a 'model' entry "
                         f"(got {metadata['tree'][:80]!r})")
    try:
        return {key: _decode(node, arrays) for key, node in tree.items()}
    except _DamagedTree as err:
        raise ValueError(f"{damaged}: {err}") from None
    except (TypeError, ValueError, KeyError) as err:  # e.g. a "__dict__" entry that is not [key, value] pairs
        raise ValueError(f"{damaged}: its 'tree' metadata does not decode ({type(err).__name__}: {err})") from None
