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

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from models.bert.config import BertConfig, backbone_shapes, head_shapes
from models.hf_checkpoint import (CONFIG_NAME, INDEX_NAME, WEIGHTS_NAME, checkpoint_folder,  # noqa: F401
                                  load_into, mismatch_report, read_weights, write_checkpoint)

TIED_NAMES = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
BUFFER_SUFFIXES = ("embeddings.position_ids", "embeddings.token_type_ids")
HEAD_ROOTS = ("cls", "classifier", "qa_outputs")
_WITH_POOLER = ("model", "pretraining", "sequence_classification")


@dataclass(frozen=True)
class CheckpointLayout:
    """Where one family of BERT-style encoders keeps its tensors in an HF checkpoint. BERT's successors
    (RoBERTa, ALBERT, ELECTRA) load and save with the rules below and their own layout."""

    prefix: str = "bert"  # the encoder's name under a head (``bert.encoder.layer.0…``)
    backbone_shapes: Callable = backbone_shapes  # (config, add_pooling_layer) -> {name: shape}
    head_shapes: Callable = head_shapes  # (config, head) -> {name: shape}, tied decoder not listed
    tied_names: tuple = TIED_NAMES  # decoder tensors that *are* the word embeddings (HF does not save them)
    head_roots: tuple = HEAD_ROOTS  # first part of the name of every head of the family
    heads_with_pooler: tuple = _WITH_POOLER  # heads whose encoder has a pooler


BERT_LAYOUT = CheckpointLayout()


def expected_shapes(config: BertConfig, head: str, layout: CheckpointLayout = BERT_LAYOUT
                    ) -> tuple[dict[str, tuple], dict[str, tuple], dict[str, tuple]]:
    """(encoder shapes, pooler shapes, head shapes) with the names the class uses in ``state_dict``."""
    prefix = "" if head == "model" else layout.prefix + "."
    with_pooler = head in layout.heads_with_pooler
    encoder = {prefix + k: v for k, v in layout.backbone_shapes(config, add_pooling_layer=with_pooler).items()}
    pooler = {k: encoder.pop(k) for k in list(encoder) if k.startswith(prefix + "pooler.")}
    return encoder, pooler, layout.head_shapes(config, head)


def normalise_names(state: dict, head: str, layout: CheckpointLayout = BERT_LAYOUT,
                    roots=("embeddings", "encoder", "pooler")) -> dict[str, np.ndarray]:
    """Old ``gamma``/``beta`` LayerNorm names → ``weight``/``bias``; the ``bert.`` prefix as ``head`` needs
    (``roots``: the first parts of the encoder's own names)."""
    out = {}
    for name, array in state.items():
        name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        root = name.split(".", 1)[0]
        if head == "model" and root == layout.prefix:
            name = name[len(layout.prefix) + 1:]
        elif head != "model" and root in roots:
            name = f"{layout.prefix}.{name}"
        out[name] = array
    return out


def _skippable(name: str, head: str, layout: CheckpointLayout = BERT_LAYOUT) -> bool:
    """Names HF also skips: buffers, the tied decoder, other classes' heads and poolers."""
    if name.endswith(BUFFER_SUFFIXES) or name in layout.tied_names:
        return True
    root = name.split(".", 1)[0]
    return root in layout.head_roots or (head not in layout.heads_with_pooler
                                         and name.startswith(("pooler.", layout.prefix + ".pooler.")))


def match_state(state: dict, config: BertConfig, head: str, owner: str, layout: CheckpointLayout = BERT_LAYOUT):
    """Check a checkpoint against the class's expected names and shapes.

    Returns (arrays to load, names freshly initialised). Raises ValueError listing every
    missing, unexpected and mis-shaped tensor.
    """
    roots = tuple(dict.fromkeys(k.split(".", 1)[0] for k in layout.backbone_shapes(config, add_pooling_layer=True)))
    state = normalise_names(state, head, layout, roots)
    encoder, pooler, own_head = expected_shapes(config, head, layout)
    expected = {**encoder, **pooler, **own_head}
    fresh = []
    for group in (own_head, pooler):  # wholly absent: newly initialised (HF's rule)
        if group and not any(k in state for k in group):
            fresh += list(group)
    summary = (f"vocab_size={config.vocab_size}, hidden_size={config.hidden_size}, "
               f"num_hidden_layers={config.num_hidden_layers}, intermediate_size={config.intermediate_size}")
    report = mismatch_report(state, expected, f"{owner}.from_pretrained", summary,
                             skippable=lambda name: _skippable(name, head, layout), may_be_absent=fresh)
    if report:
        raise ValueError(report)
    return {k: state[k] for k in expected if k in state}, fresh


def load_pretrained(cls, directory, dtype=None, **config_overrides):
    """``cls.from_pretrained(directory)``: build ``cls`` from ``config.json`` and load the weights."""
    owner = cls.__name__
    directory = checkpoint_folder(directory, f"{owner}.from_pretrained")
    config = cls.config_class.from_json_file(directory / CONFIG_NAME, **config_overrides)
    arrays, fresh = match_state(read_weights(directory, f"{owner}.from_pretrained"), config, cls.head, owner,
                                cls.checkpoint_layout)
    model = cls(config, dtype=dtype, initialize=bool(fresh))  # HF's init only where the file has nothing
    return load_into(model, arrays, fresh, f"{owner}.from_pretrained")


def save_pretrained(model, directory) -> None:
    """Write ``model.safetensors`` (without the tied decoder, as HF) and ``config.json``, atomically."""
    state = {k: v for k, v in model.state_dict().items() if k not in model.checkpoint_layout.tied_names}
    config = model.config.to_dict()
    config.update(architectures=[type(model).__name__], tie_word_embeddings=True,
                  dtype=str(next(iter(state.values())).dtype))
    write_checkpoint(Path(directory), state, config)
