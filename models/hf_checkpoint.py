"""What every Hugging Face checkpoint reader and writer shares: the file names, the folder and config
checks, reading the (possibly sharded) ``model.safetensors``, one report of every mismatch between a
checkpoint and the names/shapes a config implies, and the atomic write of a checkpoint folder.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from minigrad.serialization import load as load_safetensors
from minigrad.serialization import save as save_safetensors

from models.text.corpus import atomic_write_text

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"


def checkpoint_folder(directory, owner: str) -> Path:
    """``directory`` as a Path; a clear error when it is not a folder."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{owner}: {str(directory)!r} is not a directory")
    return directory


def read_config(directory, owner: str) -> dict:
    """The keys of ``config.json`` in ``directory``."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: no {CONFIG_NAME} in {str(directory)!r}")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{owner}: {str(path)!r} is not valid JSON ({err})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{owner}: {str(path)!r} must hold a JSON object, got {type(values).__name__}")
    return values


def read_weights(directory, owner: str = "from_pretrained") -> dict[str, np.ndarray]:
    """``model.safetensors``, or the shards listed in ``model.safetensors.index.json``."""
    directory = Path(directory)
    single, index = directory / WEIGHTS_NAME, directory / INDEX_NAME
    if single.is_file():
        return load_safetensors(single)
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        state = {}
        for shard in sorted(set(weight_map.values())):
            state.update(load_safetensors(directory / shard))
        return state
    found = sorted(p.name for p in directory.iterdir())
    hint = " (PyTorch pickle files are not read: convert them to safetensors)" \
        if any(n.endswith((".bin", ".pt", ".pth")) for n in found) else ""
    raise FileNotFoundError(f"{owner}: no {WEIGHTS_NAME} in {str(directory)!r}; found {found}{hint}")


def mismatch_report(state: dict, expected: dict, owner: str, summary: str,
                    skippable: Callable[[str], bool] | None = None, may_be_absent: Iterable[str] = ()) -> str:
    """Every missing, unexpected and mis-shaped tensor of ``state`` against ``expected`` ({name: shape}),
    as one message ("" when they match). ``skippable(name)``: names that may be in the file and are not
    loaded; ``may_be_absent``: expected names the file need not hold (newly initialised)."""
    absent = set(may_be_absent)
    skip = skippable or (lambda name: False)
    missing = [k for k in expected if k not in state and k not in absent]
    unexpected = [k for k in state if k not in expected and not skip(k)]
    mis_shaped = [f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k])}"
                  for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    if not (missing or unexpected or mis_shaped):
        return ""
    lines = [f"{owner}: the checkpoint does not match the config ({summary})"]
    for title, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped)):
        if names:
            lines.append(f"  {len(names)} {title}: " + ", ".join(names[:20]) + (" …" if len(names) > 20 else ""))
    return "\n".join(lines)


def load_into(model, arrays: dict, fresh, owner: str, stacklevel: int = 4):
    """``arrays`` loaded into ``model`` (returned in eval mode). ``fresh``: the expected tensors the checkpoint
    did not hold, left at their new initial values — one warning, as HF — and listed in
    ``model.newly_initialized``. ``stacklevel`` points the warning at the caller of ``from_pretrained``."""
    model.load_state_dict(arrays, strict=False)
    fresh = list(fresh)
    if fresh:
        warnings.warn(f"{owner}: {len(fresh)} tensors not in the checkpoint were newly initialised "
                      f"({', '.join(fresh[:6])}{' …' if len(fresh) > 6 else ''}); train before use",
                      stacklevel=stacklevel)
    model.newly_initialized = fresh
    return model.eval()


def load_matching(cls, config, state: dict, expected: dict, owner: str, summary: str, dtype=None,
                  skippable: Callable[[str], bool] | None = None, may_be_absent: Iterable[str] = (),
                  stacklevel: int = 5):
    """``cls(config)`` in eval mode with the tensors of ``state`` that ``expected`` ({name: shape}) names,
    after ``mismatch_report`` found nothing wrong (else its one message as a ValueError, before any model
    is built). Names in ``may_be_absent`` that the file lacks get HF's initialisation (``load_into``); with
    none, the model is built without initialising anything."""
    report = mismatch_report(state, expected, owner, summary, skippable=skippable, may_be_absent=may_be_absent)
    if report:
        raise ValueError(report)
    fresh = [k for k in may_be_absent if k not in state]
    model = cls(config, dtype=dtype, initialize=bool(fresh))
    return load_into(model, {k: state[k] for k in expected if k in state}, fresh, owner, stacklevel)


def write_checkpoint(directory, state: dict, config: dict) -> None:
    """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created if needed), atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_safetensors(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
