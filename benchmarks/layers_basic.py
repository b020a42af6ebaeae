"""Basic layers vs PyTorch CPU in one process (same thread count, medians of several repeats).

    python -m benchmarks.layers_basic [--threads 2] [--repeats 7] [--quick]

1. cross-entropy forward + backward on logits (32·35, 10000) — the GRU LM's output layer;
2. cross-entropy forward + backward on logits (4096, 30522) — a BERT-vocabulary batch;
3. LayerNorm forward + backward on (16·128, 256) — one Transformer sub-layer;
4. the embedding backward scatter-add, 32×35 ids into a (10000, 256) table: the engine's
   sort + reduceat, ``np.add.at``, a scipy CSC one-hot product, and torch (fwd + bwd).
Peak memory: the resident high-water mark added by one fwd + bwd (see benchmarks.common); each
step first drops the previous step's gradient, so a layer that needs no (N, V) array besides
the gradient it returns shows ~0 (our fused cross-entropy); torch's log_softmax + nll_loss
shows two more (N, V) arrays.
The machine is shared, so timings are noisy: the table reports medians.
"""
from benchmarks.common import compare_row, fmt_ms, median_time, parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)
from scipy import sparse  # noqa: E402

import minigrad  # noqa: E402
from minigrad.nn.losses import cross_entropy  # noqa: E402
from minigrad.nn.normalization import LayerNorm  # noqa: E402
from minigrad.kernels.embedding import scatter_rows_array  # noqa: E402


def bench_cross_entropy(torch, n, v, repeats):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((n, v)).astype(np.float32)
    target = rng.integers(0, v, n)
    xm, ym = minigrad.Tensor(logits, requires_grad=True), minigrad.Tensor(target)
    xt, yt = torch.tensor(logits, requires_grad=True), torch.from_numpy(target)

    def ours():
        xm.grad = None
        cross_entropy(xm, ym).backward()

    def ref():
        xt.grad = None
        torch.nn.functional.cross_entropy(xt, yt).backward()

    return median_time(ours, repeats), median_time(ref, repeats), peak_memory_mib(ours), peak_memory_mib(ref)


def bench_layer_norm(torch, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16 * 128, 256)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    ours_ln, ref_ln = LayerNorm(256), torch.nn.LayerNorm(256)
    xm, xt, gt = minigrad.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True), torch.from_numpy(g)

    def ours():
        xm.grad = None
        ours_ln.zero_grad()
        ours_ln(xm).backward(g)

    def ref():
        xt.grad = None
        ref_ln.zero_grad()
        ref_ln(xt).backward(gt)

    return median_time(ours, repeats, inner=5), median_time(ref, repeats, inner=5), peak_memory_mib(ours), \
        peak_memory_mib(ref)


def _scatter_add_at(rows, num, ids):
    out = np.zeros((num, rows.shape[1]), dtype=rows.dtype)
    np.add.at(out, ids, rows)
    return out


def _scatter_csc(rows, num, ids):
    """One-hot matrix (num × N) in CSC form — column j holds a 1 at row ids[j] — times rows."""
    n = ids.shape[0]
    onehot = sparse.csc_array((np.ones(n, rows.dtype), ids, np.arange(n + 1)), shape=(num, n))
    return onehot @ rows


def bench_embedding_backward(torch, repeats):
    rng = np.random.default_rng(0)
    num, dim = 10000, 256
    ids = rng.integers(0, num, (32, 35))
    grad = rng.standard_normal((32, 35, dim)).astype(np.float32)
    flat_ids, rows = ids.reshape(-1), grad.reshape(-1, dim)
    expected = _scatter_add_at(rows, num, flat_ids)
    for fn in (scatter_rows_array, _scatter_csc):
        np.testing.assert_allclose(fn(rows, num, flat_ids), expected, rtol=1e-5, atol=1e-5)
    times = {name: median_time(lambda fn=fn: fn(rows, num, flat_ids), repeats, inner=20)
             for name, fn in (("sort + reduceat (engine)", scatter_rows_array), ("np.add.at", _scatter_add_at),
                              ("scipy CSC one-hot @ rows", _scatter_csc))}
    w = minigrad.Tensor(rng.standard_normal((num, dim)).astype(np.float32), requires_grad=True)
    wt = torch.tensor(w.data, requires_grad=True)
    idm, idt, gt = minigrad.Tensor(ids), torch.from_numpy(ids), torch.from_numpy(grad)

    def ours():
        w.grad = None
        minigrad.functional.embedding(idm, w).backward(grad)

    def ref():
        wt.grad = None
        torch.nn.functional.embedding(idt, wt).backward(gt)

    return times, median_time(ours, repeats, inner=20), median_time(ref, repeats, inner=20)


def main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for n, v, label in ((32 * 35, 10000, "cross_entropy (1120, 10000) fwd+bwd"),
                        (4096, 30522, "cross_entropy (4096, 30522) fwd+bwd")):
        t_ours, t_ref, m_ours, m_ref = bench_cross_entropy(torch, n, v, args.repeats)
        rows.append(compare_row(label, t_ours, t_ref, "", m_ours, m_ref))
    t_ours, t_ref, m_ours, m_ref = bench_layer_norm(torch, args.repeats)
    rows.append(compare_row("LayerNorm(256) on (2048, 256) fwd+bwd", t_ours, t_ref, "", m_ours, m_ref))
    scatter, t_ours, t_ref = bench_embedding_backward(torch, args.repeats)
    rows.append(compare_row("Embedding(10000, 256) 32x35 ids fwd+bwd", t_ours, t_ref, ""))
    print_table(f"basic layers: minigrad vs torch {torch.__version__} CPU, {args.threads} threads, "
                f"median of {args.repeats}", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "peak MiB (mg / torch)"])
    print_table("embedding backward scatter-add only (1120 rows of 256 into 10000 rows)",
                [{"method": k, "ms": fmt_ms(v), "vs engine": f"{v / scatter['sort + reduceat (engine)']:.2f}"}
                 for k, v in scatter.items()], ["method", "ms", "vs engine"])


if __name__ == "__main__":
    main(ARGS)
