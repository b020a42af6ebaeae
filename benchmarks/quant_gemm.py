"""Benchmark: exact int8 GEMM (quant.qmatmul) vs float32 BLAS matmul vs NumPy's integer matmul.

    python -m benchmarks.quant_gemm [--m 1024 --k 768 --n 768 --repeats 7 --threads N]

Shapes are the issue's (1024×768)·(768×768): a batch of activations times a BERT-base-sized
Linear weight. Activations are quantized per tensor (int8, or uint8 as torch's dynamic
quantization does), weights symmetric int8 per output channel. Also times the steps around the
GEMM: quantizing the activations and requantizing the int32 accumulator. Reports medians and
ratios to the float32 matmul (target: exact int8 GEMM <= 1.3x), and checks bit-exactness.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from benchmarks.common import print_table, set_threads


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--m", type=int, default=1024)
    p.add_argument("--k", type=int, default=768)
    p.add_argument("--n", type=int, default=768)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--int-repeats", type=int, default=3, help="repeats of the slow NumPy integer matmul")
    p.add_argument("--threads", type=int, default=2, help="BLAS threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="3 repeats, 1 of the integer matmul")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.int_repeats = 3, 1
    set_threads(args.threads)
    return args


ARGS = parse_args() if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)

from quant import (  # noqa: E402
    choose_qparams,
    choose_qparams_per_channel,
    qmatmul,
    quantize,
    quantize_per_channel,
    requantize,
)


def interleaved_medians(fns: dict, repeats: int, slow: dict, slow_repeats: int) -> dict:
    """Median ms of each function, timed round-robin so that load changes on a shared machine
    hit all of them alike (``slow`` ones only in the first ``slow_repeats`` rounds)."""
    times = {name: [] for name in (*fns, *slow)}
    for f in (*fns.values(), *slow.values()):
        f()                                                  # warm-up (allocations, BLAS threads)
    for r in range(repeats):
        for name, f in (*fns.items(), *(slow.items() if r < slow_repeats else ())):
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def blas_threads() -> str:
    """The BLAS thread setup, from threadpoolctl if it is installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, os.cpu_count()={os.cpu_count()}"
    return "BLAS: " + ", ".join(f"{p['internal_api']} {p.get('version', '')} ({p['num_threads']} threads)"
                                for p in threadpool_info() if p["user_api"] == "blas")


def run(m: int, k: int, n: int, repeats: int, int_repeats: int, seed: int):
    """Rows ``(operation, median ms, name of its float32 baseline)`` and the medians."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)                  # (M, K) activations
    w = (0.05 * rng.standard_normal((k, n))).astype(np.float32)         # (K, N) = Linear weight.T
    x_long = rng.standard_normal((m, 2048)).astype(np.float32)          # K = 2048: two exact blocks
    w_long = (0.05 * rng.standard_normal((2048, n))).astype(np.float32)

    s_x, z_x = choose_qparams(x.min(), x.max(), "int8")
    s_xu, z_xu = choose_qparams(x.min(), x.max(), "uint8")
    s_w, z_w = choose_qparams_per_channel(w.min(0), w.max(0), "int8", symmetric=True)
    x_q, x_qu = quantize(x, s_x, z_x, "int8"), quantize(x, s_xu, z_xu, "uint8")
    w_q = quantize_per_channel(w, s_w, z_w, axis=1, dtype="int8")       # (K, N)
    s_l, z_l = choose_qparams(x_long.min(), x_long.max(), "int8")
    x_lq = quantize(x_long, s_l, z_l, "int8")
    w_lq = quantize(w_long, 0.2 / 127, 0, "int8")

    def int_matmul(a, za, b, zb):                                       # NumPy's exact integer loop
        return (a.astype(np.int32) - za) @ (b.astype(np.int32) - np.asarray(zb, np.int32))

    acc = qmatmul(x_q, z_x, w_q, z_w)
    checks = [(acc, int_matmul(x_q, z_x, w_q, z_w)),
              (qmatmul(x_qu, z_xu, w_q, z_w), int_matmul(x_qu, z_xu, w_q, z_w)),
              (qmatmul(x_lq, z_l, w_lq, 0), int_matmul(x_lq, z_l, w_lq, 0))]
    if not all(np.array_equal(got, ref) for got, ref in checks):
        raise AssertionError("qmatmul is not bit-exact against NumPy's integer matmul")
    out_scale, out_zp = choose_qparams(-4.0, 4.0, "int8")
    multiplier = s_x * s_w.astype(np.float64) / out_scale               # (N,) per channel

    fast = {
        "float32 matmul (BLAS sgemm)": lambda: x @ w,
        "qmatmul int8 x int8, exact": lambda: qmatmul(x_q, z_x, w_q, z_w),
        "qmatmul uint8 x int8, exact": lambda: qmatmul(x_qu, z_xu, w_q, z_w),
        "qmatmul int8 x int8, float64 BLAS": lambda: qmatmul(x_q, z_x, w_q, z_w, blas_dtype=np.float64),
        "quantize activations (float32 -> int8)": lambda: quantize(x, s_x, z_x, "int8"),
        "requantize int32 -> int8, per tensor": lambda: requantize(acc, float(multiplier[0]), out_zp),
        "requantize int32 -> int8, per channel": lambda: requantize(acc, multiplier, out_zp),
        "float32 matmul, K = 2048": lambda: x_long @ w_long,
        "qmatmul int8 x int8, K = 2048 (2 exact blocks)": lambda: qmatmul(x_lq, z_l, w_lq, 0),
    }
    slow = {"NumPy integer matmul (int32, exact)": lambda: int_matmul(x_q, z_x, w_q, z_w)}
    medians = interleaved_medians(fast, repeats, slow, int_repeats)
    base, base_long = "float32 matmul (BLAS sgemm)", "float32 matmul, K = 2048"
    order = [*list(fast)[:4], *slow, *list(fast)[4:]]
    return [(name, medians[name], base_long if "2048" in name else base) for name in order], medians


def main(args: argparse.Namespace) -> None:
    rows, medians = run(args.m, args.k, args.n, args.repeats, args.int_repeats, args.seed)
    table = [{"operation": name, "median ms": f"{ms:.2f}", "x float32 matmul (same shape)": f"{ms / medians[base]:.2f}"}
             for name, ms, base in rows]
    print_table(f"int8 GEMM: ({args.m}x{args.k}) . ({args.k}x{args.n}), medians of {args.repeats} interleaved runs "
                f"({args.int_repeats} for NumPy's integer matmul); {blas_threads()}; NumPy {np.__version__}. "
                "qmatmul bit-exact vs integer matmul: yes. Target: exact int8 GEMM <= 1.3x float32.",
                table, ["operation", "median ms", "x float32 matmul (same shape)"])


if __name__ == "__main__":
    main(ARGS)
