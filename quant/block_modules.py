"""Weight-only block quantization of a model's Linear layers: ggml's Q8_0 / Q4_0 / Q4_1 formats
(``quant.blocks``) applied to a minigrad model, as llama.cpp applies them to a GGUF file.

Book concept (appendix): int8 quantization gives a weight matrix one scale (per tensor) or one scale
per output row (per channel). A block format gives every 32 consecutive weights of a row their own
float16 scale (and, for Q4_1, offset), so an outlier coarsens only its own block:

    W ≈ dequantize_blocks(blocks)      (out, in), the rows cut into blocks of 32 along ``in``
    y = x Ŵᵀ + b                       float activations, float arithmetic

Only the weights are quantized — activations stay float, as in llama.cpp's CPU matmuls, which expand
the blocks on the fly; here the layer expands its blocks to float32 at every call, so the weights
stay compressed in memory (8.5 bits per weight for Q8_0, 5 for Q4_1, 4.5 for Q4_0) and the time of a
call is the float matmul's plus the expansion's. Inference only.
"""

from __future__ import annotations

import copy

import numpy as np

from minigrad.nn.linear import Linear
from minigrad.nn.module import Module
from minigrad.tensor import Tensor, is_grad_enabled

from .blocks import (TensorType, bits_per_weight, block_layout, byte_shape, dequantize_blocks, quantize_blocks,
                     tensor_type)

__all__ = ["BlockQuantizedLinear", "quantize_weights_blocks", "BLOCK_TYPES"]

BLOCK_TYPES = (TensorType.Q8_0, TensorType.Q4_0, TensorType.Q4_1)


def _block_type(ttype, fn: str) -> TensorType:
    t = tensor_type(ttype, fn)
    if t not in BLOCK_TYPES:
        raise ValueError(f"{fn}: ttype must be one of {', '.join(b.name for b in BLOCK_TYPES)}, got {t.name}")
    return t


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, order="C", copy=True)
    array.flags.writeable = False
    return array


class BlockQuantizedLinear(Module):
    """``y = x Ŵᵀ + b`` with Ŵ stored as ggml blocks (``weight_blocks``, uint8) and a float ``bias``.

    Build it with :meth:`from_float`. ``in_features`` must be a multiple of 32 (one block)."""

    def __init__(self, in_features: int, out_features: int, weight_blocks: np.ndarray, ttype, bias=None):
        super().__init__()
        fn = "BlockQuantizedLinear"
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.ttype = _block_type(ttype, fn)
        raw = np.asarray(weight_blocks)
        shape = byte_shape((self.out_features, self.in_features), self.ttype)
        if raw.dtype != np.uint8 or raw.shape != shape:
            raise ValueError(f"{fn}: weight_blocks must be uint8 of shape {shape} ({self.ttype.name} blocks of a "
                             f"({out_features}, {in_features}) weight), got {raw.dtype} {raw.shape}")
        self.register_buffer("weight_blocks", _frozen(raw))
        if bias is not None:
            b = np.asarray(getattr(bias, "data", bias))
            if b.shape != (self.out_features,) or b.dtype.kind != "f":
                raise ValueError(f"{fn}: bias must be a float array of shape ({out_features},), "
                                 f"got {b.dtype} {b.shape}")
            self.register_buffer("bias", _frozen(b))
        self.has_bias = bias is not None

    @classmethod
    def from_float(cls, linear: Linear, ttype="Q8_0") -> "BlockQuantizedLinear":
        """Quantize a float ``minigrad.nn.Linear``'s weight to ``ttype`` blocks (bit-equal to ``gguf``)."""
        fn = "BlockQuantizedLinear.from_float"
        if not isinstance(linear, Linear):
            raise TypeError(f"{fn}: expected a minigrad.nn.Linear, got {type(linear).__name__}")
        t = _block_type(ttype, fn)
        block = block_layout(t)[0]
        if linear.in_features % block:
            raise ValueError(f"{fn}: in_features={linear.in_features} is not a multiple of {block}, the {t.name} "
                             "block size (blocks run along each weight row)")
        bias = None if linear.bias is None else linear.bias.data
        return cls(linear.in_features, linear.out_features, quantize_blocks(linear.weight.data, t), t, bias)

    def dequantized_weight(self) -> np.ndarray:
        """Ŵ (out, in) float32: the weights the layer multiplies by."""
        return dequantize_blocks(self.weight_blocks.data, self.ttype, (self.out_features, self.in_features))

    def forward(self, x):
        fn = "BlockQuantizedLinear.forward"
        if isinstance(x, np.ndarray):
            x = Tensor(x)
        if not isinstance(x, Tensor):
            raise TypeError(f"{fn}: expected a Tensor or ndarray, got {type(x).__name__}")
        if x.requires_grad and is_grad_enabled():
            raise RuntimeError(f"{fn}: quantized layers are inference-only; call the model under minigrad.no_grad()")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{fn}: expected input of shape (..., {self.in_features}), got {x.shape}")
        w = self.dequantized_weight()  # (out, in) float32, expanded for this call only
        y = np.matmul(x.data, w.T.astype(x.dtype, copy=False))  # (..., out)
        if self.has_bias:
            y += self.bias.data.astype(x.dtype, copy=False)
        return Tensor(y)

    def weight_bytes(self) -> int:
        """Bytes of the stored layer: the blocks (scales included) and the bias."""
        return int(self.weight_blocks.data.nbytes + (self.bias.data.nbytes if self.has_bias else 0))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, weight={self.ttype.name} "
                f"({bits_per_weight(self.ttype):g} bits/weight), bias={self.has_bias}")


def quantize_weights_blocks(model: Module, ttype="Q8_0", inplace: bool = False) -> Module:
    """Replace every ``nn.Linear`` whose ``in_features`` is a multiple of 32 by a
    :class:`BlockQuantizedLinear` (others stay float; a model with none is an error). Returns the
    quantized copy (``inplace=True``: ``model`` itself) in eval mode, frozen."""
    from .model_quantization import _check_module, _for_inference, _replace

    fn = "quantize_weights_blocks"
    _check_module(model, fn)
    t = _block_type(ttype, fn)
    block = block_layout(t)[0]
    if not inplace:
        model = copy.deepcopy(model)
    model, n = _replace(model, lambda m: isinstance(m, Linear) and m.in_features % block == 0,
                        lambda lin: BlockQuantizedLinear.from_float(lin, t))
    if n == 0:
        raise ValueError(f"{fn}: the model has no minigrad.nn.Linear with in_features a multiple of {block}")
    return _for_inference(model)
