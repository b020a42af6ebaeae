"""Shared benchmark plumbing: thread control, median timing, peak memory, table printing.

Import this module *before* NumPy or torch so that ``set_threads`` can still size the BLAS
thread pools (they read their environment variables when loaded)."""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(description: str, default_repeats: int = 7) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=2, help="threads for both NumPy's BLAS and torch")
    parser.add_argument("--repeats", type=int, default=default_repeats, help="timed repeats (median reported)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    set_threads(args.threads)
    return args


def set_threads(n: int) -> None:
    """Give NumPy's BLAS and torch the same number of threads."""
    for var in _THREAD_VARS:
        os.environ[var] = str(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 2, inner: int = 1) -> float:
    """Median wall time of ``fn`` in seconds over ``repeats`` runs (each the mean of ``inner``)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


_M_MMAP_THRESHOLD = -3


def _mallopt(param: int, value: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(param, value))
        libc.malloc_trim(0)  # hand freed heap blocks back, so reuse cannot hide allocations
        return ok
    except (OSError, AttributeError):
        return False


def peak_memory_mib(fn: Callable[[], object]) -> float | None:
    """Peak resident memory added while ``fn`` runs, in MiB — the same measure for NumPy and
    torch: the kernel's high-water mark (VmHWM), reset just before. While measuring, glibc is
    told to serve every block ≥ 64 KiB by mmap, so freed arrays leave RSS instead of being
    reused silently from the heap (which would hide the step's allocations). Measure before
    any timing loop: after many runs glibc's heap state still hides reuse. None where /proc
    or glibc do not allow it."""
    if not _mallopt(_M_MMAP_THRESHOLD, 64 * 1024):
        return None
    try:
        fn()  # warm up under the new threshold (optimizer state etc. already exists)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        base = _status_kib("VmRSS")
        fn()
        return max(0, _status_kib("VmHWM") - base) / 1024
    except OSError:
        return None
    finally:
        _mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)  # back to heap reuse for timing


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print(f"\n{title}")
    print("| " + " | ".join(c.ljust(widths[c]) for c in columns) + " |")
    print("|" + "|".join("-" * (widths[c] + 2) for c in columns) + "|")
    for r in rows:
        print("| " + " | ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) + " |")


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def compare_row(name: str, ours: float, ref: float, target: str = "", mem_ours=None, mem_ref=None) -> dict:
    row = {"benchmark": name, "minigrad ms": fmt_ms(ours), "torch ms": fmt_ms(ref), "ratio": f"{ours / ref:.2f}",
           "target": target}
    if mem_ours is not None or mem_ref is not None:
        row["peak MiB (mg / torch)"] = f"{mem_ours or 0:.1f} / {mem_ref or 0:.1f}"
    return row
