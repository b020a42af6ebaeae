# %% [markdown]
# # Appendix — int8 quantization
#
# A float is stored as an 8-bit integer on a grid, $x \approx s\,(q - z)$ with scale $s$ and zero
# point $z$. A quantized Linear multiplies the integers exactly in int32,
#
# $$y = s_x s_w \,(x_q - z_x)(W_q - z_w)^\top + b,$$
#
# so only the rounding onto the grid loses anything: at most $s/2$ per value. Run as a script
# (`python notebooks/appendix_quantization.py`) or open as a notebook.

# %%
import importlib.util
import os
from pathlib import Path

import numpy as np

import minigrad
from minigrad import nn
from quant import choose_qparams, dequantize, plot_quantization_grid, quantize
from quant.model_quantization import compare_models, quantize_dynamic

OUT = Path(os.environ.get("WALKTHROUGH_OUT", "runs/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0

# %% [markdown]
# ## Round trip: the error is at most half a step

# %%
w = np.random.default_rng(SEED).standard_normal(1000).astype(np.float32)
scale, zero_point = choose_qparams(w.min(), w.max(), "int8", symmetric=True)
q = quantize(w, scale, zero_point, "int8")
error = np.abs(dequantize(q, scale, zero_point) - w).max()
print(f"scale {scale:.4g}, zero point {zero_point}, max error {error:.4g} <= {scale / 2:.4g}")
assert error <= scale / 2 + 1e-7

# %% [markdown]
# ## A whole model: `quantize_dynamic` replaces every Linear

# %%
minigrad.manual_seed(SEED)
mlp = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
x = np.random.default_rng(SEED).standard_normal((128, 64)).astype(np.float32)
mlp_q = quantize_dynamic(mlp)
result = compare_models(mlp, mlp_q, x)
print(f"bytes {result['size_float_bytes']:,} -> {result['size_quant_bytes']:,} ({result['size_ratio']:.2f}x); "
      f"max |float - int8| {result['max_abs_error']:.4f} of outputs up to {result['max_abs_output']:.2f}")

# %% [markdown]
# ## Check: the same outputs as `torch.ao.quantization.quantize_dynamic` (qnnpack) on the same weights

# %%
torch_ok = importlib.util.find_spec("torch") is not None
if torch_ok:
    import torch

    torch_ok = "qnnpack" in torch.backends.quantized.supported_engines
if torch_ok:
    from torch.ao.quantization import per_channel_dynamic_qconfig
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

    torch.backends.quantized.engine = "qnnpack"
    ref = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 10))
    ref.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in mlp.state_dict().items()})
    ref_q = torch_quantize_dynamic(ref, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    with minigrad.no_grad():
        ours = mlp_q(minigrad.Tensor(x)).data
    with torch.no_grad():
        expected = ref_q(torch.from_numpy(x)).numpy()
    diff = np.abs(ours - expected).max()
    print(f"max |ours - torch.ao| = {diff:.2e}")
    assert diff <= 1e-5 * np.abs(expected).max() + 1e-6
else:
    print("PyTorch (with the qnnpack engine) is not installed: skipping the check")

# %%
w0 = mlp[0].weight.data
s0, z0 = choose_qparams(w0.min(), w0.max(), "int8", symmetric=True)
path = plot_quantization_grid(w0, s0, z0, "int8", OUT / "appendix_grid.png", title="layer 0 weights on the int8 grid")
print("wrote", path)
