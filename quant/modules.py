"""Quantized layers over minigrad: ``QuantizedLinear``, ``QuantizedReLU``, the int8 ``QTensor``
that flows between them, and ``ObservedLinear`` (the calibration wrapper of static quantization).

Book concept (appendix, "dynamic vs static quantization"). A Linear layer ``y = x Wᵀ + b`` is
rewritten on integers:

    W ≈ s_w (W_q − z_w)            int8 weights, per tensor or per output channel, once
    x ≈ s_x (x_q − z_x)            activations: from each batch (dynamic) or calibrated (static)
    acc = (x_q − z_x)(W_q − z_w)ᵀ   the exact int32 accumulator (quant.qmatmul)

and the result leaves the layer either as floats or as int8:

    y   = s_x s_w · acc + b                                     float output
    y_q = z_y + M · (acc + b_q),   M = s_x s_w / s_y,           int8 output (static only)
          b_q = round(b / (s_x s_w))                            int32 bias on the accumulator's grid

``M`` is applied in fixed point (``quant.requantize_fixed_point``), so an int8 → int8 layer needs
no float arithmetic (Jacob et al. 2018, "Quantization and Training of Neural Networks for
Efficient Integer-Arithmetic-Only Inference", section 2). These modules are for inference:
there is no backward pass through integer rounding.
"""

from __future__ import annotations

import numpy as np

from minigrad.nn.linear import Linear
from minigrad.nn.module import Module
from minigrad.tensor import Tensor, is_grad_enabled

from .qgemm import qmatmul, quantize_multiplier, requantize, requantize_fixed_point
from .qparams import (
    _QDTYPES,
    _qdtype,
    choose_qparams,
    choose_qparams_per_channel,
    dequantize,
    dequantize_per_channel,
    integer_range,
    quantize,
    quantize_per_channel,
)

__all__ = ["QTensor", "QuantizedLinear", "QuantizedReLU", "ObservedLinear"]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ------------------------------------------------------------------------------------------
# QTensor: int8 values with their grid
# ------------------------------------------------------------------------------------------

class QTensor:
    """An 8-bit tensor with its grid: ``x ≈ scale · (q − zero_point)`` (per tensor).

    What statically quantized layers pass to each other (torch's quantized tensor, minus the
    operator overloading). ``float_dtype`` is the float dtype the values came from, restored by
    :meth:`dequantize`.
    """

    __slots__ = ("q", "scale", "zero_point", "float_dtype")

    def __init__(self, q: np.ndarray, scale: float, zero_point: int, float_dtype=np.float32):
        if not isinstance(q, np.ndarray) or q.dtype not in _QDTYPES.values():
            got = f"dtype {q.dtype}" if isinstance(q, np.ndarray) else type(q).__name__
            raise TypeError(f"QTensor: q must be an int8 or uint8 ndarray, got {got}")
        q_min, q_max = integer_range(q.dtype)
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"QTensor: scale must be finite and > 0, got {scale!r}")
        if not (isinstance(zero_point, (int, np.integer)) and q_min <= zero_point <= q_max):
            raise ValueError(f"QTensor: zero_point must be an integer in [{q_min}, {q_max}], got {zero_point!r}")
        self.q, self.scale, self.zero_point = q, float(scale), int(zero_point)
        self.float_dtype = np.dtype(float_dtype)

    @property
    def shape(self) -> tuple:
        return self.q.shape

    @property
    def dtype(self) -> np.dtype:
        return self.q.dtype

    @property
    def ndim(self) -> int:
        return self.q.ndim

    def dequantize(self) -> Tensor:
        """Back to floats: ``scale · (q − zero_point)`` as a minigrad Tensor."""
        return Tensor(dequantize(self.q, self.scale, self.zero_point).astype(self.float_dtype, copy=False))

    def __repr__(self) -> str:
        return (f"QTensor(shape={self.shape}, dtype={self.dtype}, scale={self.scale:.6g}, "
                f"zero_point={self.zero_point})")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def _qparams_arg(value, fn: str, name: str) -> tuple[float, int]:
    """``(scale, zero_point)`` for int8 activations, from a pair or an observer."""
    if hasattr(value, "calculate_qparams"):
        if getattr(value, "dtype", None) != np.int8 or getattr(value, "ch_axis", None) is not None:
            raise ValueError(f"{fn}: {name} observer must be per tensor (ch_axis=None) with dtype int8, "
                             f"got {value!r}")
        value = value.calculate_qparams()
    try:
        scale, zero_point = value
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be a (scale, zero_point) pair or an observer, got {value!r}") from None
    scale = float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"{fn}: {name} scale must be finite and > 0, got {scale!r}")
    if not isinstance(zero_point, (int, np.integer)) or not -128 <= zero_point <= 127:
        raise ValueError(f"{fn}: {name} zero_point must be an integer in [-128, 127] (int8), got {zero_point!r}")
    return float(np.float32(scale)), int(zero_point)


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only array: buffers are replaced, never edited, so the derived cache stays valid."""
    array = np.array(array, order="C", copy=True)     # never freeze the caller's array
    array.flags.writeable = False
    return array


def _quantize_weight(w: np.ndarray, per_channel: bool, dtype: np.dtype):
    """int8 weights: symmetric (z_w = 0, torch's default weight observer) for int8, affine for uint8.

        s_w = max|W| / 127.5,  W_q = clamp(round(W / s_w))      (per output row when per_channel)
    """
    symmetric = dtype == np.int8
    if per_channel:
        lo, hi = w.min(axis=1, initial=0.0), w.max(axis=1, initial=0.0)         # (N,)
        scale, zero_point = choose_qparams_per_channel(lo, hi, dtype, symmetric=symmetric)
        w_q = quantize_per_channel(w, scale, zero_point, axis=0, dtype=dtype)  # (N, K)
    else:
        scale, zero_point = choose_qparams(w.min(initial=0.0), w.max(initial=0.0), dtype, symmetric=symmetric)
        w_q = quantize(w, scale, zero_point, dtype)
        scale, zero_point = np.float32(scale), np.int64(zero_point)
    # zero points of an 8-bit grid are 8-bit values: store them in the weight's dtype
    return w_q, np.asarray(scale, np.float32), np.asarray(zero_point).astype(dtype)


# ------------------------------------------------------------------------------------------
# QuantizedLinear
# ------------------------------------------------------------------------------------------

class QuantizedLinear(Module):
    """``y = x Wᵀ + b`` with int8 weights and an exact int32 accumulator (see the module docstring).

    Build it with :meth:`from_float`. Two modes:

    * **dynamic** (no ``activation_qparams``; ``torch.ao.quantization.quantize_dynamic``): each
      call takes the batch's min/max, quantizes the activations per tensor (asymmetric uint8
      by default, as torch), runs ``qmatmul`` and dequantizes with ``s_x · s_w``, adding the
      float bias. Nothing to calibrate; the extra work per call is the batch's min/max and
      quantizing it.
    * **static** (``activation_qparams`` from calibration): activations use the fixed int8 grid
      ``(s_x, z_x)``; the bias is stored as int32 on the accumulator's grid ``s_x · s_w``; with
      ``output_qparams`` the layer returns int8 (a :class:`QTensor`) by fixed-point
      requantization, so consecutive quantized layers pass int8 to each other.

    Input: a float ``Tensor``/ndarray ``(..., in_features)`` or a :class:`QTensor` (its int8
    values are used directly). Output: a Tensor in the input's float dtype, or a QTensor.
    Inference only: an input that requires grad, in grad mode, is a RuntimeError.

    Stored arrays (read-only buffers, in ``state_dict``): ``weight_q`` (out, in) int8,
    ``weight_scale`` / ``weight_zero_point`` ((out,) per channel, () per tensor), ``bias`` float
    or ``bias_q`` int32, and for static mode ``input_scale``/``input_zero_point`` and optionally
    ``output_scale``/``output_zero_point``.
    """

    def __init__(self, in_features: int, out_features: int, weight_q: np.ndarray, weight_scale,
                 weight_zero_point, bias=None, *, activation_qparams=None, output_qparams=None,
                 int32_bias: bool | None = None, act_dtype="uint8"):
        super().__init__()
        fn = "QuantizedLinear"
        self.in_features, self.out_features = int(in_features), int(out_features)
        w_q = np.asarray(weight_q)
        if w_q.dtype not in _QDTYPES.values() or w_q.shape != (self.out_features, self.in_features):
            raise ValueError(f"{fn}: weight_q must be int8/uint8 of shape ({out_features}, {in_features}), "
                             f"got {w_q.dtype} {w_q.shape}")
        scale = np.asarray(weight_scale, np.float32)
        zp = np.asarray(weight_zero_point)
        if scale.shape not in ((), (self.out_features,)) or zp.shape != scale.shape:
            raise ValueError(f"{fn}: weight_scale and weight_zero_point must both have shape () or "
                             f"({out_features},), got {scale.shape} and {zp.shape}")
        self.per_channel = scale.ndim == 1
        self.mode = "dynamic" if activation_qparams is None else "static"
        if int32_bias is None:
            int32_bias = self.mode == "static"
        if self.mode == "dynamic" and (int32_bias or output_qparams is not None):
            raise ValueError(f"{fn}: int32 bias and int8 output need a fixed activation scale; "
                             "pass activation_qparams (static mode) or use int32_bias=False, output_qparams=None")
        if output_qparams is not None and not int32_bias:
            raise ValueError(f"{fn}: an int8 output adds the bias on the int32 accumulator; int32_bias must be True")
        self.act_dtype = _qdtype(act_dtype if self.mode == "dynamic" else "int8", fn)
        self.int32_bias = bool(int32_bias) and bias is not None

        self.register_buffer("weight_q", _frozen(w_q))
        self.register_buffer("weight_scale", _frozen(scale))
        self.register_buffer("weight_zero_point", _frozen(zp.astype(w_q.dtype)))
        if self.mode == "static":
            s_x, z_x = _qparams_arg(activation_qparams, fn, "activation_qparams")
            self.register_buffer("input_scale", _frozen(np.asarray(s_x, np.float32)))
            self.register_buffer("input_zero_point", _frozen(np.asarray(z_x, np.int8)))
            if output_qparams is not None:
                s_y, z_y = _qparams_arg(output_qparams, fn, "output_qparams")
                self.register_buffer("output_scale", _frozen(np.asarray(s_y, np.float32)))
                self.register_buffer("output_zero_point", _frozen(np.asarray(z_y, np.int8)))
        self.quantized_output = output_qparams is not None
        if bias is not None:
            b = np.asarray(getattr(bias, "data", bias))
            if b.shape != (self.out_features,) or b.dtype.kind != "f":
                raise ValueError(f"{fn}: bias must be a float array of shape ({out_features},), "
                                 f"got {b.dtype} {b.shape}")
            if self.int32_bias:
                self.register_buffer("bias_q", _frozen(self._bias_to_int32(b)))
            else:
                self.register_buffer("bias", _frozen(b))
        self.has_bias = bias is not None

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_float(cls, linear: Linear, per_channel: bool = True, dtype="int8", activation_qparams=None, *,
                   output_qparams=None, int32_bias: bool | None = None, act_dtype="uint8") -> "QuantizedLinear":
        """Quantize a float ``minigrad.nn.Linear``.

        Args:
            per_channel: one grid per output row of W (better: a row of small weights keeps a fine
                grid) or one for the whole matrix.
            dtype: weight dtype — ``'int8'`` (symmetric, ``z_w = 0``, as torch) or ``'uint8'``
                (affine, ``z_w ≠ 0``).
            activation_qparams: ``None`` → dynamic mode; a ``(scale, zero_point)`` int8 pair or a
                calibrated per-tensor observer → static mode.
            output_qparams: static mode only: return int8 (a QTensor) on this grid.
            int32_bias: store the bias as ``round(b / (s_x s_w))`` int32 (default: True for
                static, False for dynamic, where ``s_x`` changes with every batch).
            act_dtype: dynamic mode: ``'uint8'`` (torch's choice) or ``'int8'`` activations.
        """
        fn = "QuantizedLinear.from_float"
        if not isinstance(linear, Linear):
            raise TypeError(f"{fn}: expected a minigrad.nn.Linear, got {type(linear).__name__}")
        w = linear.weight.data
        w_q, scale, zp = _quantize_weight(w, bool(per_channel), _qdtype(dtype, fn))
        bias = None if linear.bias is None else linear.bias.data
        return cls(linear.in_features, linear.out_features, w_q, scale, zp, bias,
                   activation_qparams=activation_qparams, output_qparams=output_qparams,
                   int32_bias=int32_bias, act_dtype=act_dtype)

    def _bias_to_int32(self, b: np.ndarray) -> np.ndarray:
        """``b_q = round(b / (s_x · s_w))``: the bias on the accumulator's grid (zero point 0)."""
        grid = np.float64(self.input_scale.data) * self.weight_scale.data.astype(np.float64)
        b_q = np.rint(b.astype(np.float64) / grid)
        if np.abs(b_q).max(initial=0) > INT32_MAX:
            raise ValueError(f"QuantizedLinear: bias / (input_scale · weight_scale) overflows int32 "
                             f"(max |b_q| = {np.abs(b_q).max():.3g}); use int32_bias=False")
        return b_q.astype(np.int32)

    # -- derived constants, recomputed whenever a buffer array is replaced ------------------
    def _derived(self) -> dict:
        arrays = tuple(t.data for t in self._buffers.values() if t is not None)
        cache = self.__dict__.get("_cache")
        if cache is None or len(cache[0]) != len(arrays) or any(a is not b for a, b in zip(cache[0], arrays)):
            cache = (arrays, self._compute_derived())
            object.__setattr__(self, "_cache", cache)
        return cache[1]

    def _compute_derived(self) -> dict:
        w_q, zp = self.weight_q.data, self.weight_zero_point.data
        d = {
            "w_t": w_q.T,                                                    # (K, N) view, qmatmul's b
            "col_sums": w_q.sum(axis=1, dtype=np.int64),                     # (N,) Σ_k W_q[n, k]
            # a scalar zero point takes qmatmul's cheaper path (symmetric weights: all zeros)
            "w_zp": int(zp.flat[0]) if zp.size and np.all(zp == zp.flat[0]) else zp,
        }
        if self.mode == "static":
            d["out_scale"] = (np.float64(self.input_scale.data) * self.weight_scale.data).astype(np.float32)
            if self.quantized_output:
                m = np.float64(self.input_scale.data) * self.weight_scale.data.astype(np.float64)
                d["multiplier"] = quantize_multiplier(m / np.float64(self.output_scale.data))
        return d

    # -- forward ---------------------------------------------------------------------------------
    def _check_input(self, x):
        fn = "QuantizedLinear.forward"
        if isinstance(x, np.ndarray):
            x = Tensor(x)
        if isinstance(x, Tensor):
            if x.requires_grad and is_grad_enabled():
                raise RuntimeError(f"{fn}: quantized layers are inference-only (no gradient through rounding); "
                                   "call the model under minigrad.no_grad() or pass x.detach()")
            if x.dtype.kind != "f":
                raise TypeError(f"{fn}: expected a floating-point input, got dtype {x.dtype}")
        elif not isinstance(x, QTensor):
            raise TypeError(f"{fn}: expected a Tensor, ndarray or QTensor, got {type(x).__name__}")
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{fn}: expected input of shape (..., {self.in_features}), got {x.shape}")
        return x

    def forward(self, x):
        x = self._check_input(x)
        d = self._derived()
        if isinstance(x, QTensor):
            q, z_x, s_x, float_dtype = self._onto_input_grid(x)
        elif self.mode == "dynamic":
            q, z_x, s_x = self._quantize_batch(x.data)
            float_dtype = x.dtype
        else:
            s_x, z_x = float(self.input_scale.data), int(self.input_zero_point.data)
            q = quantize(x.data, s_x, z_x, "int8")          # values outside the calibrated range clamp
            float_dtype = x.dtype
        if q.size == 0:
            acc = np.zeros(q.shape[:-1] + (self.out_features,), np.int32)
        else:
            acc = qmatmul(q, z_x, d["w_t"], d["w_zp"], b_col_sums=d["col_sums"])   # (..., N) int32
        if self.quantized_output:
            return self._requantize(acc, d, float_dtype)
        return Tensor(self._dequantize(acc, s_x, d).astype(float_dtype, copy=False))

    def _quantize_batch(self, x: np.ndarray):
        """Dynamic mode: per-tensor asymmetric grid from this batch's min/max, then quantize."""
        if x.size == 0:
            return np.zeros(x.shape, self.act_dtype), 0, 1.0
        lo, hi = x.min(), x.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError("QuantizedLinear.forward: input contains NaN or inf; it cannot be quantized")
        s_x, z_x = choose_qparams(lo, hi, self.act_dtype)
        return quantize(x, s_x, z_x, self.act_dtype), z_x, s_x

    def _onto_input_grid(self, x: QTensor):
        """A QTensor is used as it is, except in static mode when its grid differs from the
        calibrated one: then it is moved onto that grid in integers,
        ``q' = z_in + round((s / s_in)(q − z))`` (quant.requantize), so the int32 bias stays valid."""
        if self.mode == "dynamic":
            return x.q, x.zero_point, x.scale, x.float_dtype
        s_in, z_in = float(self.input_scale.data), int(self.input_zero_point.data)
        if x.q.dtype == np.int8 and np.float32(x.scale) == np.float32(s_in) and x.zero_point == z_in:
            return x.q, z_in, s_in, x.float_dtype
        centred = x.q.astype(np.int32) - np.int32(x.zero_point)
        return requantize(centred, x.scale / s_in, z_in, "int8"), z_in, s_in, x.float_dtype

    def _dequantize(self, acc: np.ndarray, s_x: float, d: dict) -> np.ndarray:
        """Float output ``y = s_x s_w · acc + b`` (or ``s_x s_w · (acc + b_q)`` with an int32 bias)."""
        if self.mode == "static":
            scale = d["out_scale"]
        else:
            scale = (np.float64(s_x) * self.weight_scale.data).astype(np.float32)
        # two passes over the (M, N) output: the int32 → float32 cast happens inside the ufunc
        if self.int32_bias:
            y = np.add(acc, self.bias_q.data, dtype=np.float32)
            y *= scale
        else:
            y = np.multiply(acc, scale, dtype=np.float32)
            if self.has_bias:
                y += self.bias.data
        return y

    def _requantize(self, acc: np.ndarray, d: dict, float_dtype) -> QTensor:
        """int8 output ``y_q = z_y + M · (acc + b_q)`` in fixed point; saturating int32 bias add."""
        if self.int32_bias:
            acc = np.clip(acc.astype(np.int64) + self.bias_q.data, INT32_MIN, INT32_MAX).astype(np.int32)
        z_y = int(self.output_zero_point.data)
        q = requantize_fixed_point(acc, *d["multiplier"], z_y, "int8")
        return QTensor(q, float(self.output_scale.data), z_y, float_dtype)

    # -- inspection --------------------------------------------------------------------------
    def dequantized_weight(self) -> np.ndarray:
        """``s_w (W_q − z_w)`` (out, in), float32: the weights the layer actually uses."""
        w_q, s, z = self.weight_q.data, self.weight_scale.data, self.weight_zero_point.data
        if self.per_channel:
            return dequantize_per_channel(w_q, s, z, axis=0)
        return dequantize(w_q, s, z)

    def weight_bytes(self) -> int:
        """Bytes of the stored layer: int8 weights + their scales and zero points + bias."""
        names = ("weight_q", "weight_scale", "weight_zero_point", "bias", "bias_q")
        return int(sum(self._buffers[n].data.nbytes for n in names if self._buffers.get(n) is not None))

    def extra_repr(self) -> str:
        scheme = "per_channel" if self.per_channel else "per_tensor"
        scheme += "_symmetric" if self.weight_q.dtype == np.int8 else "_affine"
        text = (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight={self.weight_q.dtype} {scheme}, bias={'int32' if self.int32_bias else self.has_bias}")
        if self.mode == "dynamic":
            return text + f", mode=dynamic (activations {self.act_dtype} per batch)"
        text += (f", mode=static (input scale={float(self.input_scale.data):.4g}, "
                 f"zero_point={int(self.input_zero_point.data)})")
        if self.quantized_output:
            text += (f", output=int8 (scale={float(self.output_scale.data):.4g}, "
                     f"zero_point={int(self.output_zero_point.data)})")
        return text


# ------------------------------------------------------------------------------------------
# QuantizedReLU
# ------------------------------------------------------------------------------------------

class QuantizedReLU(Module):
    """ReLU on the integer grid: ``relu(s (q − z)) = s (max(q, z) − z)``, so ``q ↦ max(q, z)``.

    The grid is unchanged (same scale and zero point). Float Tensors get the ordinary ReLU.
    When the previous layer's output grid starts at 0 (``z = q_min``, a fused Linear+ReLU), the
    requantization clamp has already done the work and this is the identity.
    """

    def forward(self, x):
        if isinstance(x, QTensor):
            floor = np.asarray(x.zero_point, dtype=x.q.dtype)
            return QTensor(np.maximum(x.q, floor), x.scale, x.zero_point, x.float_dtype)
        if isinstance(x, Tensor):
            return x.relu()
        raise TypeError(f"QuantizedReLU.forward: expected a Tensor or QTensor, got {type(x).__name__}")


# ------------------------------------------------------------------------------------------
# ObservedLinear: calibration wrapper
# ------------------------------------------------------------------------------------------

class ObservedLinear(Module):
    """Static quantization, step 1 (``prepare``): a float Linear with two observers.

    ``forward`` records the range of the input and of the output, then returns the float result
    unchanged, so calibration batches run the original model. ``convert`` turns it into a
    static :class:`QuantizedLinear` with the observers' qparams.
    """

    def __init__(self, linear: Linear, observer):
        super().__init__()
        if not isinstance(linear, Linear):
            raise TypeError(f"ObservedLinear: expected a minigrad.nn.Linear, got {type(linear).__name__}")
        self.linear = linear
        self.input_observer = observer()
        self.output_observer = observer()

    def forward(self, x):
        self.input_observer.observe(x)
        y = self.linear(x)
        self.output_observer.observe(y)
        return y

    def extra_repr(self) -> str:
        def seen(obs):
            if getattr(obs, "min_val", None) is None:
                return "no data"
            return f"[{float(obs.min_val.min()):.4g}, {float(obs.max_val.max()):.4g}]"
        return (f"observer={type(self.input_observer).__name__}, input {seen(self.input_observer)}, "
                f"output {seen(self.output_observer)}")
