"""Benchmark: dynamic int8 quantization (quant.quantize_dynamic) vs the float model, same process.

    python -m benchmarks.quantization [--threads 2] [--repeats 7] [--quick]

1. one Linear(768, 768) on a (1024, 768) input: dynamically quantized vs float
   (target: ≤ 1.3× the float Linear's time); torch.ao's dynamic Linear vs torch's float Linear
   is printed for reference (torch's default engine, fbgemm/x86 int8 kernels);
2. an MLP 768-3072-768 (ReLU), batch 64;
3. a TransformerEncoder (d_model 256, 4 heads, 4 layers, ff 1024, seq 128, batch 8): only the
   feed-forward Linears are quantized (attention's projections stay float, as in torch).

Per row: median times (quantized and float timed round-robin, so load changes on a shared
machine hit both alike), their ratio, the ratio of median CPU times (the work done; less
disturbed by other processes), the bytes of the quantized Linear layers over their float32
bytes (weights + scales/zero points + bias; target ≤ 0.26×), the whole model's size ratio and
the output error. Timings on a shared machine are noisy; ratios are the number to read.
Printed, never asserted.
"""
from benchmarks.common import median_time, parse_args, print_table

ARGS = parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from minigrad import nn  # noqa: E402
from quant.model_quantization import compare_models, quantize_dynamic  # noqa: E402


def interleaved(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Median wall seconds (``median_time`` of one call) and median CPU seconds of each function,
    one call of each per round. CPU time (all threads of this process) is the work done, which
    other processes on a shared machine disturb far less than the wall time."""
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    for fn in fns.values():
        median_time(fn, repeats=1, warmup=1)
    for _ in range(repeats):
        for name, fn in fns.items():
            c0 = time.process_time()
            wall[name].append(median_time(fn, repeats=1, warmup=0))
            cpu[name].append(time.process_time() - c0)
    return ({name: statistics.median(t) for name, t in wall.items()},
            {name: statistics.median(t) for name, t in cpu.items()})


def measure(name: str, float_model, x, repeats: int, target: str = "") -> dict:
    """One table row: quantize ``float_model`` dynamically and compare it on input ``x``."""
    quant_model = quantize_dynamic(float_model)
    cmp = compare_models(float_model, quant_model, x)
    xt = minigrad.Tensor(x)

    def run(model):
        return lambda: model(xt)

    with minigrad.no_grad():
        t, cpu = interleaved({"float": run(float_model), "quant": run(quant_model)}, repeats)
    return {"benchmark": name, "float ms": f"{1e3 * t['float']:.2f}", "int8 ms": f"{1e3 * t['quant']:.2f}",
            "time ×": f"{t['quant'] / t['float']:.2f}", "CPU time ×": f"{cpu['quant'] / cpu['float']:.2f}",
            "Linear bytes ×": f"{cmp['linear_ratio']:.4f}",
            "model bytes ×": f"{cmp['size_ratio']:.4f}", "max |err|": f"{cmp['max_abs_error']:.3g}",
            "max |err| / max |y|": f"{cmp['max_abs_error'] / cmp['max_abs_output']:.2%}", "target": target}


def bench_linear(rng, repeats):
    minigrad.manual_seed(0)
    layer = nn.Linear(768, 768)
    x = rng.standard_normal((1024, 768)).astype(np.float32)
    return measure("Linear(768, 768), x (1024, 768)", layer, x, repeats, "time ≤ 1.3×, bytes ≤ 0.26×"), layer, x


def bench_mlp(rng, repeats):
    minigrad.manual_seed(1)
    mlp = nn.Sequential(nn.Linear(768, 3072), nn.ReLU(), nn.Linear(3072, 768))
    x = rng.standard_normal((64, 768)).astype(np.float32)
    return measure("MLP 768-3072-768, batch 64", mlp, x, repeats, "bytes ≤ 0.26×")


def bench_transformer(rng, repeats):
    from minigrad.nn.transformer import TransformerEncoder, TransformerEncoderLayer

    minigrad.manual_seed(2)
    layer = TransformerEncoderLayer(256, 4, dim_feedforward=1024, dropout=0.0)
    encoder = TransformerEncoder(layer, num_layers=4).eval()
    x = rng.standard_normal((128, 8, 256)).astype(np.float32)        # (seq, batch, d_model)
    return measure("TransformerEncoder 4x(d256, h4, ff1024), (128, 8)", encoder, x, repeats,
                   "FF Linears only")


def bench_torch_linear(layer, x, repeats):
    """torch.ao dynamic quantized Linear vs torch's float Linear, same weights (reference)."""
    try:
        import torch
        from torch.ao.quantization import per_channel_dynamic_qconfig
        from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic
    except ImportError:
        return None
    import warnings

    ref = torch.nn.Sequential(torch.nn.Linear(768, 768))
    ref[0].load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_q = torch_quantize_dynamic(ref, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        t, cpu = interleaved({"float": lambda: ref(xt), "quant": lambda: ref_q(xt)}, repeats)
        err = float((ref(xt) - ref_q(xt)).abs().max())
        y_max = float(ref(xt).abs().max())
    return {"benchmark": f"torch.ao dynamic Linear(768, 768) ({torch.backends.quantized.engine}), reference",
            "float ms": f"{1e3 * t['float']:.2f}", "int8 ms": f"{1e3 * t['quant']:.2f}",
            "time ×": f"{t['quant'] / t['float']:.2f}", "CPU time ×": f"{cpu['quant'] / cpu['float']:.2f}",
            "max |err|": f"{err:.3g}",
            "max |err| / max |y|": f"{err / y_max:.2%}"}


def main(args) -> None:
    rng = np.random.default_rng(0)
    row, layer, x = bench_linear(rng, args.repeats)
    t_repeats = max(3, args.repeats // 2)                             # the encoder is the slow one
    rows = [row, bench_mlp(rng, args.repeats), bench_transformer(rng, t_repeats)]
    ref = bench_torch_linear(layer, x, args.repeats)
    if ref is not None:
        rows.append(ref)
    print_table(f"quant.quantize_dynamic (int8 per-channel weights, uint8 per-batch activations) vs float32, "
                f"{args.threads} threads, medians of {args.repeats} interleaved runs ({t_repeats} for the encoder; "
                "shared machine: noisy)",
                rows, ["benchmark", "float ms", "int8 ms", "time ×", "CPU time ×", "Linear bytes ×",
                       "model bytes ×", "max |err|", "max |err| / max |y|", "target"])


if __name__ == "__main__":
    main(ARGS)
