"""Engine benchmark: minigrad vs PyTorch CPU in one process, same thread count, medians.

    python -m benchmarks.engine [--threads 2] [--repeats 7]

1. forward + backward of a chain of 100 small (4, 4) ops (per-op overhead);
2. one training step of a 784-512-10 MLP, batch 64, cross-entropy, Adam;
3. forward + backward of a (1024 x 1024) @ (1024 x 1024) matmul.
Targets (ratio minigrad / torch): ≤ 0.7, ≤ 1.1, ≤ 1.05. Printed, never asserted.
"""
from benchmarks.common import compare_row, median_time, parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from minigrad import nn, optim  # noqa: E402


def _chain(y, w):
    """100 small ops cycling mul, add, tanh, scalar mul."""
    for i in range(25):
        y = y * w
        y = y + w
        y = y.tanh()
        y = y * 0.5
    return y.sum()


def bench_chain(torch, repeats):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 4)).astype(np.float32), rng.standard_normal((4, 4)).astype(np.float32)
    xm, wm = minigrad.Tensor(a, requires_grad=True), minigrad.Tensor(b, requires_grad=True)
    xt, wt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)

    def ours():
        _chain(xm, wm).backward()

    def ref():
        _chain(xt, wt).backward()

    return median_time(ours, repeats, inner=20), median_time(ref, repeats, inner=20)


def _cross_entropy_minigrad(logits, target):
    F = minigrad.functional
    if hasattr(F, "cross_entropy"):
        return F.cross_entropy(logits, target)
    logp = logits.log_softmax(-1)
    return -logp.gather(1, target.reshape(-1, 1)).mean()


def bench_mlp(torch, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=64)
    minigrad.manual_seed(0)
    ours_model = nn.Sequential(nn.Linear(784, 512), nn.ReLU() if hasattr(nn, "ReLU") else _Relu(), nn.Linear(512, 10))
    ref_model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    ours_opt = optim.Adam(ours_model.parameters(), lr=1e-3)
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=1e-3)
    xm, ym = minigrad.Tensor(x), minigrad.Tensor(y)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def ours():
        ours_opt.zero_grad()
        _cross_entropy_minigrad(ours_model(xm), ym).backward()
        ours_opt.step()

    def ref():
        ref_opt.zero_grad()
        torch.nn.functional.cross_entropy(ref_model(xt), yt).backward()
        ref_opt.step()

    mem_ours, mem_ref = peak_memory_mib(ours), peak_memory_mib(ref)  # before timing: see peak_memory_mib
    return median_time(ours, repeats, inner=5), median_time(ref, repeats, inner=5), mem_ours, mem_ref


class _Relu(nn.Module):
    def forward(self, x):
        return x.relu()


def bench_matmul(torch, repeats):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1024, 1024)).astype(np.float32), rng.standard_normal((1024, 1024)).astype(np.float32)
    am, bm = minigrad.Tensor(a, requires_grad=True), minigrad.Tensor(b, requires_grad=True)
    at, bt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)

    ones_np = np.ones((1024, 1024), np.float32)
    ones = torch.ones(1024, 1024)

    def ours():
        am.grad = bm.grad = None
        (am @ bm).backward(ones_np)

    def ref():
        at.grad = bt.grad = None
        (at @ bt).backward(ones)

    mem_ours, mem_ref = peak_memory_mib(ours), peak_memory_mib(ref)  # before timing: see peak_memory_mib
    return median_time(ours, repeats), median_time(ref, repeats), mem_ours, mem_ref


def main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    t_ours, t_ref = bench_chain(torch, args.repeats)
    rows.append(compare_row("chain of 100 (4,4) ops, fwd+bwd", t_ours, t_ref, "<= 0.7"))
    t_ours, t_ref, m_ours, m_ref = bench_mlp(torch, args.repeats)
    rows.append(compare_row("MLP 784-512-10 b64 Adam step", t_ours, t_ref, "<= 1.1", m_ours, m_ref))
    t_ours, t_ref, m_ours, m_ref = bench_matmul(torch, args.repeats)
    rows.append(compare_row("matmul 1024^2 fwd+bwd", t_ours, t_ref, "<= 1.05", m_ours, m_ref))
    print_table(f"minigrad engine vs torch {torch.__version__} CPU, {args.threads} threads, "
                f"median of {args.repeats}", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "target", "peak MiB (mg / torch)"])


if __name__ == "__main__":
    main(ARGS)
