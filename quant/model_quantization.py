"""Whole-model quantization: dynamic (``quantize_dynamic``), static (``prepare`` → calibration
batches → ``convert``), model size, and a float-vs-quantized comparison.

Book concept (appendix): *dynamic* quantization stores int8 weights and quantizes each
activation batch on the fly from its own min/max (no calibration, as PyTorch's
``torch.ao.quantization.quantize_dynamic``); *static* quantization first runs representative
batches through the model with observers attached, fixes every activation grid from what they
saw, and can then keep the activations in int8 from one layer to the next.

Which layers are quantized: every ``minigrad.nn.Linear``, except the ``out_proj`` of a
``MultiheadAttention``, whose forward reads ``out_proj.weight`` directly instead of calling the
layer (torch leaves it float too: it is a ``NonDynamicallyQuantizableLinear``). Attention
itself, embeddings and LayerNorm stay float.

Copies: by default the input model is left untouched and a ``copy.deepcopy`` of it is
quantized (every Parameter, buffer and submodule duplicated, shared modules stay shared);
``inplace=True`` edits the given model. Quantized models are for inference: they are returned
in ``eval()`` mode with every remaining float parameter frozen (``requires_grad=False``).

(The file is not called ``quant/quantize.py``: importing a submodule of that name would
replace the package attribute ``quant.quantize``, the array-level function.)
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import Callable, Mapping, Sequence

import numpy as np

from minigrad.nn.activation import ReLU
from minigrad.nn.dropout import Dropout
from minigrad.nn.linear import Identity, Linear
from minigrad.nn.module import Module, Sequential
from minigrad.tensor import Tensor, no_grad

from .modules import ObservedLinear, QTensor, QuantizedLinear, QuantizedReLU
from .observers import MinMaxObserver
from .qparams import _qdtype, choose_qparams

try:  # its forward reads out_proj.weight itself, so out_proj must stay a float Linear
    from minigrad.nn.attention import MultiheadAttention as _MHA
except ImportError:  # pragma: no cover - the attention module is part of minigrad
    _MHA = ()

__all__ = ["quantize_dynamic", "prepare", "convert", "model_size_bytes", "compare_models",
           "format_comparison"]

# parents whose Linear children must not be replaced
_KEEP_CHILDREN = tuple(t for t in (_MHA, ObservedLinear) if isinstance(t, type))
# modules between two Linears of a Sequential that int8 can pass through unchanged (eval mode)
_INT8_TRANSPARENT = (ReLU, Identity, Dropout)


# ------------------------------------------------------------------------------------------
# walking the module tree
# ------------------------------------------------------------------------------------------

def _check_module(model, fn: str) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{fn}: expected a minigrad.nn.Module, got {type(model).__name__}")


def _replace(model: Module, match: Callable[[Module], bool], make: Callable[[Module], Module]):
    """Replace every submodule with ``match(m)`` by ``make(m)``, under the same name and position.

    A module shared under several names is replaced once (the replacement stays shared).
    Returns ``(model or its replacement when the root itself matches, number replaced)``.
    """
    if match(model):
        return make(model), 1
    done: dict[int, Module] = {}
    for _, parent in list(model.named_modules()):
        if isinstance(parent, _KEEP_CHILDREN):
            continue
        for name, child in list(parent._modules.items()):
            if child is not None and match(child):
                if id(child) not in done:
                    done[id(child)] = make(child)
                setattr(parent, name, done[id(child)])
    return model, len(done)


def _is_float_linear(m: Module) -> bool:
    return isinstance(m, Linear)


def _for_inference(model: Module) -> Module:
    model.eval()
    model.requires_grad_(False)
    return model


# ------------------------------------------------------------------------------------------
# dynamic quantization
# ------------------------------------------------------------------------------------------

def quantize_dynamic(model: Module, dtype="int8", per_channel: bool = True, inplace: bool = False,
                     act_dtype="uint8") -> Module:
    """Replace every ``nn.Linear`` by a dynamic :class:`QuantizedLinear`.

    As ``torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, torch.qint8)``: weights are
    quantized once (symmetric int8, per output channel by default — torch's
    ``per_channel_dynamic_qconfig``; ``per_channel=False`` is torch's default qconfig);
    activations are quantized at every call from that batch's min/max (asymmetric uint8), the
    product is the exact int32 accumulator, and the output is float. Returns the quantized copy
    (or ``model`` itself with ``inplace=True``; a bare Linear is returned as a QuantizedLinear).
    """
    fn = "quantize_dynamic"
    _check_module(model, fn)
    dt = _qdtype(dtype, fn)
    _qdtype(act_dtype, fn)
    if not inplace:
        model = copy.deepcopy(model)
    model, n = _replace(model, _is_float_linear,
                        lambda lin: QuantizedLinear.from_float(lin, per_channel, dt, act_dtype=act_dtype))
    if n == 0:
        raise ValueError(f"{fn}: the model has no minigrad.nn.Linear layer to quantize ({type(model).__name__})")
    return _for_inference(model)


# ------------------------------------------------------------------------------------------
# static quantization: prepare → calibrate → convert
# ------------------------------------------------------------------------------------------

def _check_observer_factory(observer, fn: str) -> None:
    if not callable(observer):
        raise TypeError(f"{fn}: observer must be an observer class or a zero-argument factory, got {observer!r}")
    probe = observer()
    for attr in ("observe", "calculate_qparams", "clipping_range", "min_val"):
        if not hasattr(probe, attr):
            raise TypeError(f"{fn}: observer() returned a {type(probe).__name__}, which has no {attr!r} "
                            "(expected a quant observer: observe, calculate_qparams, clipping_range, min_val)")
    if getattr(probe, "dtype", None) != np.int8 or getattr(probe, "ch_axis", None) is not None:
        raise ValueError(f"{fn}: static activations are int8 per tensor; observer() must give dtype int8 and "
                         f"ch_axis=None, got {probe!r}")


def prepare(model: Module, observer=MinMaxObserver, inplace: bool = False) -> Module:
    """Static quantization, step 1: wrap every ``nn.Linear`` in an :class:`ObservedLinear`.

    ``observer`` makes one fresh observer per tensor (input and output of each Linear):
    ``MinMaxObserver`` (default), ``MovingAverageMinMaxObserver``, ``HistogramObserver`` or a
    factory such as ``functools.partial(HistogramObserver, bins=512)``; int8, per tensor.
    Then run calibration batches through the returned model (it computes the float result, in
    eval mode) and call :func:`convert`.
    """
    fn = "prepare"
    _check_module(model, fn)
    _check_observer_factory(observer, fn)
    if not inplace:
        model = copy.deepcopy(model)
    model, n = _replace(model, _is_float_linear, lambda lin: ObservedLinear(lin, observer))
    if n == 0:
        raise ValueError(f"{fn}: the model has no minigrad.nn.Linear layer to observe ({type(model).__name__})")
    return model.eval()


def _int8_links(model: Module) -> dict:
    """Where int8 can flow: ``{id(producer): (consumer, relu_between, [(seq, name) between])}``.

    Inside a ``Sequential``, an ObservedLinear followed by only ReLU / Identity / Dropout and
    then another ObservedLinear can hand over int8. Other places (a custom ``forward``, the end
    of a Sequential) get float, because their consumer is unknown.
    """
    links = {}
    for _, seq in model.named_modules():
        if not isinstance(seq, Sequential):
            continue
        items = [(n, m) for n, m in seq._modules.items() if m is not None]
        for i, (_, producer) in enumerate(items):
            if not isinstance(producer, ObservedLinear):
                continue
            j, between = i + 1, []
            while j < len(items) and isinstance(items[j][1], _INT8_TRANSPARENT):
                between.append((seq, items[j][0]))
                j += 1
            if j < len(items) and isinstance(items[j][1], ObservedLinear):
                relu = any(isinstance(s._modules[n], ReLU) for s, n in between)
                links[id(producer)] = (items[j][1], relu, between)
    return links


def _output_qparams(observer, relu: bool) -> tuple[float, int]:
    """int8 grid of a Linear's output. When a ReLU follows, the grid covers only ``[0, max]``:
    ``zero_point = −128 = q_min``, so the requantization clamp is the ReLU (Linear+ReLU fused)
    and no code is spent on negative values that the ReLU would zero anyway."""
    lo, hi = (float(np.asarray(v).reshape(-1)[0]) for v in observer.clipping_range())
    if relu:
        lo, hi = max(lo, 0.0), max(hi, 0.0)
    return choose_qparams(lo, hi, "int8", symmetric=observer.symmetric)


def convert(model: Module, inplace: bool = False, per_channel: bool = True, dtype="int8",
            int32_bias: bool = True) -> Module:
    """Static quantization, step 3: turn every calibrated ``ObservedLinear`` into a static
    :class:`QuantizedLinear`.

    * its input grid is the input observer's qparams (a float input is quantized with it);
    * inside a ``Sequential``, Linear → [ReLU / Identity / Dropout] → Linear passes **int8**:
      the first layer requantizes its int32 accumulator onto its output grid (from its output
      observer; ``[0, max]`` when a ReLU follows), ReLUs become :class:`QuantizedReLU`
      (``max(q, z)``), Dropouts become Identity, and the next layer takes that grid as its
      input grid. Everywhere else a layer returns float (``s_x s_w · acc + b``).
    * the bias is int32 on the accumulator's grid (``int32_bias=False``: float bias, and then
      every layer returns float, since int8 output adds the bias on the accumulator).
    """
    fn = "convert"
    _check_module(model, fn)
    observed = [(name, m) for name, m in model.named_modules() if isinstance(m, ObservedLinear)]
    if not observed:
        raise ValueError(f"{fn}: the model has no ObservedLinear layer; call prepare(model) and run "
                         "calibration batches through the prepared model first")
    for name, m in observed:
        if m.input_observer.min_val is None or m.output_observer.min_val is None:
            raise ValueError(f"{fn}: layer {name or '<root>'!r} saw no calibration data; run calibration "
                             "batches through the prepared model before convert")
    dt = _qdtype(dtype, fn)
    if not inplace:
        model = copy.deepcopy(model)
    links = _int8_links(model) if int32_bias else {}
    output_qparams = {pid: _output_qparams(_by_id(model, pid).output_observer, relu)
                      for pid, (_, relu, _) in links.items()}
    input_qparams = {id(consumer): output_qparams[pid] for pid, (consumer, _, _) in links.items()}
    for consumer, _, between in links.values():
        for seq, name in between:
            if isinstance(seq._modules[name], ReLU):
                setattr(seq, name, QuantizedReLU())
            elif isinstance(seq._modules[name], Dropout):
                setattr(seq, name, Identity())

    def make(m: ObservedLinear) -> QuantizedLinear:
        act = input_qparams.get(id(m)) or m.input_observer.calculate_qparams()
        return QuantizedLinear.from_float(m.linear, per_channel, dt, activation_qparams=act,
                                          output_qparams=output_qparams.get(id(m)), int32_bias=int32_bias)

    model, _ = _replace(model, lambda m: isinstance(m, ObservedLinear), make)
    return _for_inference(model)


def _by_id(model: Module, module_id: int) -> Module:
    return next(m for m in model.modules() if id(m) == module_id)


# ------------------------------------------------------------------------------------------
# size and comparison
# ------------------------------------------------------------------------------------------

def model_size_bytes(model: Module) -> int:
    """Bytes of every parameter and buffer (quantized weights, scales, zero points included),
    each counted once: ``Σ size · itemsize`` — what the model's arrays occupy in memory."""
    _check_module(model, "model_size_bytes")
    seen, total = set(), 0
    for t in (*model.parameters(), *model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            total += t.data.nbytes
    return int(total)


def _linear_bytes(model: Module) -> dict[str, int]:
    """``{name: bytes}`` of each Linear (weight + bias) and QuantizedLinear (:meth:`weight_bytes`)."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, QuantizedLinear):
            out[name] = m.weight_bytes()
        elif isinstance(m, Linear):
            out[name] = m.weight.data.nbytes + (0 if m.bias is None else m.bias.data.nbytes)
    return out


def _batches(inputs, fn: str) -> list:
    """One batch or a list of them, as Tensors."""
    if isinstance(inputs, (Tensor, np.ndarray)):
        inputs = [inputs]
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(b, (Tensor, np.ndarray)) for b in inputs):
        return [b if isinstance(b, Tensor) else Tensor(b) for b in inputs]
    raise TypeError(f"{fn}: inputs must be a Tensor/ndarray batch or a non-empty list of them, "
                    f"got {type(inputs).__name__}")


def _as_array(y, fn: str) -> np.ndarray:
    if isinstance(y, QTensor):
        return y.dequantize().data
    if isinstance(y, Tensor):
        return y.data
    if isinstance(y, np.ndarray):
        return y
    raise TypeError(f"{fn}: the model returned a {type(y).__name__}; expected a Tensor or QTensor")


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def compare_models(float_model: Module, quant_model: Module, inputs, repeats: int = 0) -> dict:
    """Size and output error of a quantized model against its float original.

    Runs both models on ``inputs`` (one batch or a list of batches) under ``no_grad`` and returns
    a dict: ``size_float_bytes``, ``size_quant_bytes``, ``size_ratio`` (``model_size_bytes``),
    ``linear_float_bytes``, ``linear_quant_bytes``, ``linear_ratio`` (only the layers that were
    quantized, matched by name), ``max_abs_error``, ``mean_abs_error``, ``max_abs_output``
    (of the float model, for scale) and, with ``repeats > 0``, ``time_float_s``,
    ``time_quant_s``, ``time_ratio`` (medians of one pass over all batches).
    """
    fn = "compare_models"
    _check_module(float_model, fn)
    _check_module(quant_model, fn)
    batches = _batches(inputs, fn)
    size_f, size_q = model_size_bytes(float_model), model_size_bytes(quant_model)
    lin_f, lin_q = _linear_bytes(float_model), _linear_bytes(quant_model)
    quantized = [n for n, m in quant_model.named_modules() if isinstance(m, QuantizedLinear) and n in lin_f]
    lf, lq = sum(lin_f[n] for n in quantized), sum(lin_q[n] for n in quantized)

    err_max = err_sum = out_max = 0.0
    count = 0
    with no_grad():
        for b in batches:
            y_f = _as_array(float_model(b), fn)
            y_q = _as_array(quant_model(b), fn)
            if y_f.shape != y_q.shape:
                raise ValueError(f"{fn}: output shapes differ: float {y_f.shape} vs quantized {y_q.shape}")
            diff = np.abs(y_f.astype(np.float64) - y_q.astype(np.float64))
            err_max = max(err_max, float(diff.max(initial=0.0)))
            err_sum += float(diff.sum())
            count += diff.size
            out_max = max(out_max, float(np.abs(y_f).max(initial=0.0)))
    result = {
        "size_float_bytes": size_f, "size_quant_bytes": size_q, "size_ratio": size_q / max(size_f, 1),
        "linear_float_bytes": lf, "linear_quant_bytes": lq, "linear_ratio": lq / lf if lf else float("nan"),
        "max_abs_error": err_max, "mean_abs_error": err_sum / max(count, 1), "max_abs_output": out_max,
    }
    if repeats > 0:
        def run(model):
            with no_grad():
                for b in batches:
                    model(b)
        t_f = _median_seconds(lambda: run(float_model), repeats)
        t_q = _median_seconds(lambda: run(quant_model), repeats)
        result.update(time_float_s=t_f, time_quant_s=t_q, time_ratio=t_q / t_f)
    return result


def format_comparison(results: Mapping[str, dict], extra_columns: Sequence[str] = ()) -> str:
    """A Markdown table of :func:`compare_models` results, one row per ``{name: result}``;
    ``extra_columns`` are further keys of the results to show (e.g. an accuracy you added)."""
    timed = any("time_ratio" in r for r in results.values())
    head = ["model", "size MB", "float MB", "size ×", "Linear weights ×", "max |err|", "mean |err|",
            "max |err| / max |y|", *extra_columns]
    if timed:
        head += ["ms", "float ms", "time ×"]
    rows = []
    for name, r in results.items():
        row = [name, f"{r['size_quant_bytes'] / 1e6:.3f}", f"{r['size_float_bytes'] / 1e6:.3f}",
               f"{r['size_ratio']:.3f}", _cell(r["linear_ratio"], ".3f"), f"{r['max_abs_error']:.3g}",
               f"{r['mean_abs_error']:.3g}", f"{r['max_abs_error'] / max(r['max_abs_output'], 1e-30):.2%}"]
        row += [_cell(r.get(c)) for c in extra_columns]
        if timed:
            row += ([f"{1e3 * r['time_quant_s']:.2f}", f"{1e3 * r['time_float_s']:.2f}", f"{r['time_ratio']:.2f}"]
                    if "time_ratio" in r else ["", "", ""])
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


def _cell(value, spec: str = ".4g") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return format(value, spec) if isinstance(value, (float, np.floating)) else str(value)
