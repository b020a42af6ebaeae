"""``HFConfig``: what every model config shares with Hugging Face's ``config.json`` — reading it
(unknown keys kept in ``extra`` for round trips, HF's bookkeeping keys dropped, ``model_type`` checked),
writing it atomically, and ``replace``.

A model's config is a dataclass that inherits this and sets ``model_type``; it says how its keys
differ from HF's with three class attributes and two hooks:

- ``ignored_keys``: HF keys that change nothing in what we build (read and dropped);
- ``aliases``: HF's ``attribute_map`` (``hidden_size`` → ``n_embd`` for GPT-2);
- ``carries_labels``: ``num_labels`` travels as ``id2label``/``label2id``, as in HF's classifiers;
- ``_from_hf(values)`` / ``_to_hf(out)``: any other translation (Llama's ``rope_parameters``).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

from models.text.corpus import atomic_write_text

# Keys HF writes in every config.json that say nothing about the architecture.
COMMON_IGNORED_KEYS = frozenset({"architectures", "model_type", "transformers_version", "_name_or_path",
                                 "torch_dtype", "dtype", "use_cache", "output_attentions", "output_hidden_states",
                                 "return_dict", "gradient_checkpointing"})


class HFConfig:
    """Mixin for dataclass configs with an ``extra: dict`` field (see the module docstring)."""

    model_type: ClassVar[str] = ""
    ignored_keys: ClassVar[frozenset] = COMMON_IGNORED_KEYS
    aliases: ClassVar[dict] = {}
    carries_labels: ClassVar[bool] = False

    # -- hooks ------------------------------------------------------------------------------------
    @classmethod
    def _from_hf(cls, values: dict, overrides: dict) -> dict:
        """HF keys -> our keys, beyond ``aliases`` (identity here)."""
        return values

    def _to_hf(self, out: dict) -> dict:
        """Our keys -> HF keys, beyond ``aliases`` (identity here)."""
        return out

    # -- dict and JSON ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict, **overrides):
        """From HF's ``config.json`` keys; unknown keys go to ``extra``."""
        if not isinstance(values, dict):
            raise TypeError(f"{cls.__name__}.from_dict: expected a dict, got {type(values).__name__}")
        values = {cls.aliases.get(k, k): v for k, v in {**values, **overrides}.items()}
        if values.get("model_type", cls.model_type) != cls.model_type:
            raise ValueError(f"{cls.__name__}.from_dict: model_type is {values['model_type']!r}, "
                             f"expected {cls.model_type!r}")
        values = cls._from_hf(values, overrides)
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in values.items() if k in names}
        extra = {k: v for k, v in values.items() if k not in names and k not in cls.ignored_keys}
        if cls.carries_labels and "num_labels" not in known and isinstance(values.get("id2label"), dict):
            known["num_labels"] = len(values["id2label"])
        return cls(**known, extra=extra)

    @classmethod
    def from_json_file(cls, path, **overrides):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{cls.__name__}.from_json_file: no such file: {str(path)!r}")
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{cls.__name__}.from_json_file: {str(path)!r} is not valid JSON ({err})") from None
        return cls.from_dict(values, **overrides)

    def to_dict(self) -> dict:
        """HF's ``config.json`` keys (with ``carries_labels``, ``id2label``/``label2id`` carry num_labels)."""
        skip = {"extra", "num_labels"} if self.carries_labels else {"extra"}
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        out.update(self.extra)
        if self.carries_labels and (not isinstance(out.get("id2label"), dict)
                                    or len(out["id2label"]) != self.num_labels):
            out["id2label"] = {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
            out["label2id"] = {f"LABEL_{i}": i for i in range(self.num_labels)}
        out["model_type"] = self.model_type
        return self._to_hf(out)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_json(self, path) -> None:
        """Write ``config.json`` atomically (temp file + rename)."""
        atomic_write_text(path, self.to_json_string())

    def replace(self, **changes):
        return dataclasses.replace(self, **{self.aliases.get(k, k): v for k, v in changes.items()})
