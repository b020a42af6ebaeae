"""Quantized models in safetensors files: int8 weights with their scales and zero points (or ggml
blocks), float arrays for the rest, and a JSON description of each quantized layer — no pickle.

    save_quantized(qmodel, "model.safetensors", metadata={"config": json.dumps(config)})
    skeleton = BertForSequenceClassification(config, initialize=False)     # the float architecture
    qmodel = load_quantized("model.safetensors", skeleton)                 # same logits, bit for bit

A file holds every array of ``model.state_dict()`` under its name — a :class:`QuantizedLinear`'s
``weight_q`` (int8), ``weight_scale`` (float32, () or (out,)), ``weight_zero_point``, ``bias`` (float)
or ``bias_q`` (int32), ``input_scale`` … ; a :class:`BlockQuantizedLinear`'s ``weight_blocks`` (uint8)
— each shared array once (a tied weight is stored under its first name). The header's metadata holds
``format``, ``version``, ``layers`` (``{layer name: how it is quantized}``), ``tied`` and the caller's
own string entries. Loading replaces those layers of a float skeleton by quantized ones built from the
stored arrays, loads everything else by name, and checks every name, shape and dtype; a file that is
damaged, or that does not fit the skeleton, is a ``ValueError`` that says what is wrong.
"""

from __future__ import annotations

import json

import numpy as np

from minigrad.nn.linear import Linear
from minigrad.nn.module import Module
from minigrad.serialization import load_metadata
from minigrad.serialization import load as load_arrays
from minigrad.serialization import save as save_arrays

from .block_modules import BlockQuantizedLinear
from .modules import QuantizedLinear

__all__ = ["save_quantized", "load_quantized", "quantized_layers", "FORMAT", "VERSION"]

FORMAT = "quant.quantized_model"
VERSION = "1"
_RESERVED = ("format", "version", "layers", "tied")


def quantized_layers(model: Module) -> dict[str, dict]:
    """``{module name: description}`` of every quantized Linear of ``model``: what ``load_quantized``
    needs beyond the arrays to rebuild it."""
    layers = {}
    for name, m in model.named_modules():
        if isinstance(m, QuantizedLinear):
            layers[name] = {"kind": "int8", "mode": m.mode, "act_dtype": str(np.dtype(m.act_dtype)),
                            "in_features": m.in_features, "out_features": m.out_features,
                            "int32_bias": bool(m.int32_bias), "has_bias": bool(m.has_bias),
                            "quantized_output": bool(m.quantized_output)}
        elif isinstance(m, BlockQuantizedLinear):
            layers[name] = {"kind": "blocks", "ttype": m.ttype.name, "in_features": m.in_features,
                            "out_features": m.out_features, "has_bias": bool(m.has_bias)}
    return layers


def save_quantized(model: Module, path, metadata: dict | None = None) -> None:
    """Write ``model`` (quantized by ``quant``: any mix of quantized and float layers) to ``path``,
    atomically. ``metadata``: extra ``{str: str}`` header entries (e.g. the model's config)."""
    fn = "save_quantized"
    if not isinstance(model, Module):
        raise TypeError(f"{fn}: expected a minigrad.nn.Module, got {type(model).__name__}")
    metadata = dict(metadata or {})
    clash = sorted(set(metadata) & set(_RESERVED))
    if clash:
        raise ValueError(f"{fn}: metadata keys {clash} are reserved for the file's own description")
    arrays, tied, first = {}, {}, {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in first:  # a shared array: stored once
            tied[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
            arrays[name] = tensor.data
    metadata.update(format=FORMAT, version=VERSION, layers=json.dumps(quantized_layers(model), sort_keys=True),
                    tied=json.dumps(tied, sort_keys=True))
    save_arrays(arrays, path, metadata=metadata)


def _read(path, fn: str) -> tuple[dict, dict, dict, dict]:
    try:
        arrays = load_arrays(path)
        header = load_metadata(path)
    except (ValueError, OSError) as err:
        raise ValueError(f"{fn}: cannot read {str(path)!r}: {err}") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{fn}: {str(path)!r} is not a quantized-model file (format {header.get('format')!r}, "
                         f"expected {FORMAT!r}); a float checkpoint loads with from_pretrained / minigrad.load")
    if header.get("version") != VERSION:
        raise ValueError(f"{fn}: {str(path)!r} has version {header.get('version')!r}; this code reads {VERSION!r}")
    try:
        layers, tied = json.loads(header["layers"]), json.loads(header["tied"])
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{fn}: {str(path)!r} has a damaged header ({type(err).__name__}: {err})") from None
    if not isinstance(layers, dict) or not isinstance(tied, dict):
        raise ValueError(f"{fn}: {str(path)!r} has a damaged header (layers/tied are not JSON objects)")
    return arrays, layers, tied, header


def _array(arrays: dict, name: str, fn: str, path) -> np.ndarray:
    if name not in arrays:
        raise ValueError(f"{fn}: {str(path)!r} lacks the array {name!r}")
    return arrays[name]


def _rebuild(name: str, spec: dict, arrays: dict, fn: str, path) -> Module:
    """The quantized layer ``name`` from its description and stored arrays."""
    p = f"{name}." if name else ""
    try:
        n_in, n_out, has_bias = int(spec["in_features"]), int(spec["out_features"]), bool(spec["has_bias"])
        if spec["kind"] == "blocks":
            bias = _array(arrays, p + "bias", fn, path) if has_bias else None
            return BlockQuantizedLinear(n_in, n_out, _array(arrays, p + "weight_blocks", fn, path), spec["ttype"], bias)
        if spec["kind"] != "int8":
            raise ValueError(f"unknown kind {spec['kind']!r}")
        w_q, scale, zp = (_array(arrays, p + k, fn, path) for k in ("weight_q", "weight_scale", "weight_zero_point"))
        act = out = None
        if spec["mode"] == "static":
            act = (float(_array(arrays, p + "input_scale", fn, path)),
                   int(_array(arrays, p + "input_zero_point", fn, path)))
            if spec["quantized_output"]:
                out = (float(_array(arrays, p + "output_scale", fn, path)),
                       int(_array(arrays, p + "output_zero_point", fn, path)))
        bias = None
        if has_bias and spec["int32_bias"]:  # the float bias that rounds to the stored int32 one
            grid = np.float64(act[0]) * np.asarray(scale, np.float64)
            bias = _array(arrays, p + "bias_q", fn, path).astype(np.float64) * grid
        elif has_bias:
            bias = _array(arrays, p + "bias", fn, path)
        layer = QuantizedLinear(n_in, n_out, w_q, scale, zp, bias, activation_qparams=act, output_qparams=out,
                                int32_bias=bool(spec["int32_bias"]), act_dtype=spec["act_dtype"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{fn}: {str(path)!r}: quantized layer {name!r} cannot be rebuilt "
                         f"({type(err).__name__}: {err})") from None
    if has_bias and spec["int32_bias"] and not np.array_equal(layer.bias_q.data, arrays[p + "bias_q"]):
        raise ValueError(f"{fn}: {str(path)!r}: layer {name!r}: its int32 bias does not lie on its scales' grid")
    return layer


def load_quantized(path, model: Module) -> Module:
    """The quantized model stored at ``path``, built on ``model``: a float skeleton of the same
    architecture (its values are overwritten; ``initialize=False`` saves the work). Each layer the
    file names is replaced by its quantized form, then every array is loaded by name (strict: missing,
    unexpected, mis-shaped or wrongly typed arrays are one error). Returns ``model`` in eval mode,
    frozen, as ``quantize_dynamic`` returns its result."""
    from .model_quantization import _for_inference

    fn = "load_quantized"
    if not isinstance(model, Module):
        raise TypeError(f"{fn}: model must be the float skeleton (a minigrad.nn.Module), got {type(model).__name__}")
    arrays, layers, tied, _ = _read(path, fn)
    for name, spec in layers.items():
        parent_name, _, child = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name)
            current = parent._modules[child]
        except (AttributeError, KeyError):
            raise ValueError(f"{fn}: {str(path)!r} quantizes layer {name!r}, which the given "
                             f"{type(model).__name__} does not have (another architecture?)") from None
        if not isinstance(current, (Linear, QuantizedLinear, BlockQuantizedLinear)) or \
                (current.in_features, current.out_features) != (spec.get("in_features"), spec.get("out_features")):
            raise ValueError(f"{fn}: {str(path)!r}: layer {name!r} is {spec.get('in_features')}→"
                             f"{spec.get('out_features')} in the file, the model's is {current!r}")
        setattr(parent, child, _rebuild(name, spec, arrays, fn, path))
    state = dict(arrays)
    for alias, source in tied.items():
        if source not in arrays:
            raise ValueError(f"{fn}: {str(path)!r}: the tied name {alias!r} points to {source!r}, which is absent")
        state[alias] = arrays[source]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = " ".join(str(err).split())  # one line
        raise ValueError(f"{fn}: {str(path)!r} does not fit the given {type(model).__name__}: {detail}") from None
    for m in model.modules():  # loading replaced read-only buffers by copies: keep them read-only
        if isinstance(m, (QuantizedLinear, BlockQuantizedLinear)):
            for buf in m._buffers.values():
                if buf is not None:
                    buf.data.flags.writeable = False
    return _for_inference(model)
