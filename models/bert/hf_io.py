"""Reading and writing Hugging Face BERT checkpoints: ``config.json`` + ``model.safetensors``.

A checkpoint is a flat ``{name: array}`` map. The names are HF's, with a ``bert.`` prefix on the
encoder when a head sits on top (``bert.encoder.layer.0…``, ``cls.predictions.bias``) and none for
a bare ``BertModel``. Loading follows HF's rules, which make fine-tuning work:

* the prefix is added or removed as the target class needs;
* a head absent from the file (e.g. a classifier on a pre-trained encoder) or an absent pooler
  is freshly initialised, with a warning; the heads of other classes in the file are skipped;
* the tied decoder weight may be absent (it *is* the word-embedding matrix);
* anything else — a missing encoder tensor, an unknown name, a shape that does not match the
  config — is an error that lists every problem at once, before any model is built.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from minigrad.serialization import load as load_safetensors
from minigrad.serialization import save as save_safetensors

from models.bert.config import BertConfig, backbone_shapes, head_shapes

WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
CONFIG_NAME = "config.json"
TIED_NAMES = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
HEAD_ROOTS = ("cls", "classifier", "qa_outputs")
_WITH_POOLER = ("model", "pretraining", "sequence_classification")


def expected_shapes(config: BertConfig, head: str) -> tuple[dict[str, tuple], dict[str, tuple], dict[str, tuple]]:
    """(encoder shapes, pooler shapes, head shapes) with the names the class uses in ``state_dict``."""
    prefix = "" if head == "model" else "bert."
    encoder = {prefix + k: v for k, v in backbone_shapes(config, add_pooling_layer=head in _WITH_POOLER).items()}
    pooler = {k: encoder.pop(k) for k in list(encoder) if k.startswith(prefix + "pooler.")}
    return encoder, pooler, head_shapes(config, head)


def read_weights(directory: Path) -> dict[str, np.ndarray]:
    """``model.safetensors``, or the shards listed in ``model.safetensors.index.json``."""
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
    raise FileNotFoundError(f"from_pretrained: no {WEIGHTS_NAME} in {str(directory)!r}; found {found}{hint}")


def normalise_names(state: dict, head: str) -> dict[str, np.ndarray]:
    """Old ``gamma``/``beta`` LayerNorm names → ``weight``/``bias``; the ``bert.`` prefix as ``head`` needs."""
    out = {}
    for name, array in state.items():
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        root = name.split(".", 1)[0]
        if head == "model" and root == "bert":
            name = name[len("bert."):]
        elif head != "model" and root in ("embeddings", "encoder", "pooler"):
            name = "bert." + name
        out[name] = array
    return out


def _skippable(name: str, head: str) -> bool:
    """Names HF also skips: buffers, the tied decoder, other classes' heads and poolers."""
    if name.endswith(BUFFER_SUFFIXES) or name in TIED_NAMES:
        return True
    root = name.split(".", 1)[0]
    return root in HEAD_ROOTS or (head not in _WITH_POOLER and name.startswith(("pooler.", "bert.pooler.")))


def match_state(state: dict, config: BertConfig, head: str, owner: str):
    """Check a checkpoint against the class's expected names and shapes.

    Returns (arrays to load, names freshly initialised). Raises ValueError listing every
    missing, unexpected and mis-shaped tensor.
    """
    state = normalise_names(state, head)
    encoder, pooler, own_head = expected_shapes(config, head)
    expected = {**encoder, **pooler, **own_head}
    fresh = []
    for group in (own_head, pooler):  # wholly absent: newly initialised (HF's rule)
        if group and not any(k in state for k in group):
            fresh += list(group)
    missing = [k for k in expected if k not in state and k not in fresh]
    unexpected = [k for k in state if k not in expected and not _skippable(k, head)]
    mis_shaped = [f"{k}: checkpoint {tuple(state[k].shape)}, model {expected[k]}"
                  for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    if missing or unexpected or mis_shaped:
        lines = [f"{owner}.from_pretrained: the checkpoint does not match the config "
                 f"(vocab_size={config.vocab_size}, hidden_size={config.hidden_size}, "
                 f"num_hidden_layers={config.num_hidden_layers}, intermediate_size={config.intermediate_size})"]
        for title, names in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped)):
            if names:
                lines.append(f"  {len(names)} {title}: " + ", ".join(names[:20]) + (" …" if len(names) > 20 else ""))
        raise ValueError("\n".join(lines))
    return {k: state[k] for k in expected if k in state}, fresh


def load_pretrained(cls, directory, dtype=None, **config_overrides):
    """``cls.from_pretrained(directory)``: build ``cls`` from ``config.json`` and load the weights."""
    directory = Path(directory)
    owner = cls.__name__
    if not directory.is_dir():
        raise FileNotFoundError(f"{owner}.from_pretrained: {str(directory)!r} is not a directory")
    config = BertConfig.from_json_file(directory / CONFIG_NAME, **config_overrides)
    arrays, fresh = match_state(read_weights(directory), config, cls.head, owner)
    model = cls(config, dtype=dtype, initialize=bool(fresh))  # HF's init only where the file has nothing
    model.load_state_dict(arrays, strict=False)
    if fresh:
        warnings.warn(f"{owner}.from_pretrained: {len(fresh)} tensors not in the checkpoint were newly "
                      f"initialised ({', '.join(fresh[:6])}{' …' if len(fresh) > 6 else ''}); train before use",
                      stacklevel=3)
    model.newly_initialized = fresh
    return model.eval()


def save_pretrained(model, directory) -> None:
    """Write ``model.safetensors`` (without the tied decoder, as HF) and ``config.json``, atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if k not in TIED_NAMES}
    save_safetensors(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
    config = model.config.to_dict()
    config.update(architectures=[type(model).__name__], tie_word_embeddings=True,
                  dtype=str(next(iter(state.values())).dtype))
    from models.text.corpus import atomic_write_text

    atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n")
