"""Hand-written int8 quantization over NumPy and minigrad.

Array level (pure NumPy, no autograd):

* :mod:`quant.qparams` — scale and zero point, quantize / dequantize (per tensor, per channel);
* :mod:`quant.qgemm` — exact int8 GEMM with int32 accumulation, fixed-point requantization,
  integer-only quantized add;
* :mod:`quant.observers` — calibration observers (min-max, moving average, histogram);
* :mod:`quant.plot` — the quantization grid drawn over a weight histogram;
* :mod:`quant.blocks` — ggml's block formats (Q8_0, Q4_0, Q4_1: one scale per 32 weights);
* :mod:`quant.gguf` — reading and writing GGUF files (memory-mapped).

Model level: :mod:`quant.model_quantization` (``quantize_dynamic``, ``prepare`` / ``convert``),
:mod:`quant.block_modules` (weight-only ggml blocks in a model's Linears) and
:mod:`quant.serialization` (quantized models in safetensors files, no pickle).
"""

from .blocks import TensorType, bits_per_weight, block_layout, dequantize_blocks, quantize_blocks
from .gguf import GGUFError, GGUFFile, write_gguf
from .observers import HistogramObserver, MinMaxObserver, MovingAverageMinMaxObserver
from .plot import plot_quantization_grid, quantization_range
from .qgemm import (
    multiply_by_quantized_multiplier,
    qmatmul,
    quantize_multiplier,
    quantized_add,
    requantize,
    requantize_fixed_point,
)
from .qparams import (
    choose_qparams,
    choose_qparams_per_channel,
    dequantize,
    dequantize_per_channel,
    integer_range,
    quantize,
    quantize_per_channel,
)
from .modules import ObservedLinear, QTensor, QuantizedLinear, QuantizedReLU
from .model_quantization import (compare_models, convert, format_comparison, model_size_bytes,
                                 prepare, quantize_dynamic)
from .block_modules import BlockQuantizedLinear, quantize_weights_blocks
from .serialization import load_quantized, quantized_layers, save_quantized

__all__ = [
    "TensorType",
    "bits_per_weight",
    "block_layout",
    "quantize_blocks",
    "dequantize_blocks",
    "GGUFFile",
    "GGUFError",
    "write_gguf",
    "integer_range",
    "choose_qparams",
    "choose_qparams_per_channel",
    "quantize",
    "dequantize",
    "quantize_per_channel",
    "dequantize_per_channel",
    "qmatmul",
    "quantize_multiplier",
    "multiply_by_quantized_multiplier",
    "requantize",
    "requantize_fixed_point",
    "quantized_add",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "HistogramObserver",
    "quantization_range",
    "plot_quantization_grid",
    "QTensor",
    "QuantizedLinear",
    "QuantizedReLU",
    "ObservedLinear",
    "quantize_dynamic",
    "prepare",
    "convert",
    "model_size_bytes",
    "compare_models",
    "format_comparison",
    "BlockQuantizedLinear",
    "quantize_weights_blocks",
    "save_quantized",
    "load_quantized",
    "quantized_layers",
]
