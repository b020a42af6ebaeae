"""GRU language-model benchmark: minigrad vs PyTorch CPU in one process, same threads, medians.

    python -m benchmarks.rnn [--threads 2] [--repeats 7] [--quick] [--profile]

1. one training step of the book's GRU language model (ch. 1): Embedding(10000, 256) →
   GRU(256, 512) → Linear(512, 10000) → cross-entropy, Adam; seq 35, batch 32 (1120 tokens).
   Run with the fused ``cross_entropy`` (when ``minigrad.nn.losses`` has it) and with
   log_softmax + gather, to show what the fused loss buys. Target ratio ≤ 1.3.
2. the GRU layer alone, forward + backward (where the recurrence's own cost shows).
Ours and torch's steps alternate during timing (the machine may be shared), medians reported.
Both models start from the same weights (torch's, loaded through ``load_state_dict``), and the
first losses are checked to agree. ``--profile`` prints cProfile's top entries of our step.
Timings are printed, never asserted.
"""
import sys

_PROFILE = "--profile" in sys.argv
if _PROFILE:
    sys.argv.remove("--profile")

from benchmarks.common import compare_row, parse_args, peak_memory_mib, print_table  # noqa: E402

ARGS = parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from minigrad import nn, optim  # noqa: E402
from minigrad.nn.rnn import GRU  # noqa: E402

VOCAB, EMBED, HIDDEN, SEQ, BATCH = 10000, 256, 512, 35, 32


def _fused_cross_entropy():
    """The fused softmax + cross-entropy of ``minigrad.nn.losses``, or None before it exists."""
    try:
        from minigrad.nn.losses import cross_entropy
    except ImportError:
        return None
    return cross_entropy


def _unfused_cross_entropy(logits, target):
    """mean_i −log softmax(logits_i)[target_i], from log_softmax and gather (two (N, V) arrays)."""
    logp = logits.log_softmax(-1)  # (N, V)
    return -logp.gather(1, target.reshape(-1, 1)).mean()


class MinigradLM(nn.Module):
    """Embedding → GRU → Linear: logits for the next token at every position (T·B, V).

    The GRU output is flattened to (T·B, H) before the decoder (both models do it): the engine's
    MatMul backward turns a (T, B, H) @ (H, V) product into a (T, H, V) batch of weight
    gradients before summing them (716 MB here), see the report."""

    def __init__(self):
        super().__init__()
        from minigrad.nn.sparse import Embedding

        self.embedding = Embedding(VOCAB, EMBED)
        self.gru = GRU(EMBED, HIDDEN)
        self.decoder = nn.Linear(HIDDEN, VOCAB)

    def forward(self, ids):
        out, _ = self.gru(self.embedding(ids))  # (T, B, H)
        return self.decoder(out.reshape(-1, HIDDEN))  # (T·B, V): one 2-D matmul each way


def _torch_lm(torch):
    class TorchLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCAB, EMBED)
            self.gru = torch.nn.GRU(EMBED, HIDDEN)
            self.decoder = torch.nn.Linear(HIDDEN, VOCAB)

        def forward(self, ids):
            out, _ = self.gru(self.embedding(ids))
            return self.decoder(out.reshape(-1, HIDDEN))

    return TorchLM()


def _batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(SEQ + 1, BATCH))
    return ids[:-1], ids[1:]  # inputs and next-token targets, (T, B)


def make_lm_steps(torch, loss_fn):
    """(our step, torch's step): zero_grad, forward, loss, backward, Adam step."""
    torch.manual_seed(0)
    ref = _torch_lm(torch)
    ours = MinigradLM()
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    ours_opt, ref_opt = optim.Adam(ours.parameters(), lr=1e-3), torch.optim.Adam(ref.parameters(), lr=1e-3)
    x, y = _batch()
    xm, ym = minigrad.Tensor(x), minigrad.Tensor(y.reshape(-1))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.reshape(-1))
    losses = {}

    def ours_step():
        ours_opt.zero_grad()
        loss = loss_fn(ours(xm).reshape(-1, VOCAB), ym)
        loss.backward()
        ours_opt.step()
        losses.setdefault("ours", loss.item())

    def ref_step():
        ref_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(xt).reshape(-1, VOCAB), yt)
        loss.backward()
        ref_opt.step()
        losses.setdefault("torch", loss.item())

    return ours_step, ref_step, losses


def make_gru_steps(torch):
    """Forward + backward of the GRU(256, 512) layer alone on a (35, 32, 256) input."""
    torch.manual_seed(0)
    ref = torch.nn.GRU(EMBED, HIDDEN)
    ours = GRU(EMBED, HIDDEN)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((SEQ, BATCH, EMBED)).astype(np.float32)
    xm, xt = minigrad.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    w = np.random.default_rng(1).standard_normal((SEQ, BATCH, HIDDEN)).astype(np.float32)
    wm, wt = minigrad.Tensor(w), torch.from_numpy(w)

    def ours_step():
        ours.zero_grad()
        xm.grad = None
        (ours(xm)[0] * wm).sum().backward()

    def ref_step():
        ref.zero_grad()
        xt.grad = None
        (ref(xt)[0] * wt).sum().backward()

    return ours_step, ref_step


def interleaved_medians(ours, ref, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """Median times of ``ours`` and ``ref`` measured alternately (ours, ref, ours, …), so that a
    change of load on a shared machine hits both sides alike."""
    for _ in range(warmup):
        ours(), ref()
    times = ([], [])
    for _ in range(repeats):
        for fn, bucket in zip((ours, ref), times):
            start = time.perf_counter()
            fn()
            bucket.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def profile(step, n: int = 5, top: int = 20) -> None:
    import cProfile
    import pstats

    step()
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        step()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    # the small layer first: its peak memory is not measurable after the LM's large steps
    ours, ref = make_gru_steps(torch)
    t_ours, t_ref = interleaved_medians(ours, ref, args.repeats, warmup=2)
    rows.append(compare_row("GRU(256, 512) layer fwd+bwd", t_ours, t_ref, "", peak_memory_mib(ours),
                            peak_memory_mib(ref)))
    fused = _fused_cross_entropy()
    variants = [("fused cross_entropy", fused)] if fused is not None else []
    variants.append(("log_softmax + gather", _unfused_cross_entropy))
    for label, loss_fn in variants:
        ours, ref, losses = make_lm_steps(torch, loss_fn)
        ours(), ref()
        if abs(losses["ours"] - losses["torch"]) > 1e-3 * abs(losses["torch"]):
            raise RuntimeError(f"first losses differ: minigrad {losses['ours']} vs torch {losses['torch']}")
        t_ours, t_ref = interleaved_medians(ours, ref, args.repeats)
        rows.append(compare_row(f"GRU LM train step, {label}", t_ours, t_ref, "<= 1.3",
                                peak_memory_mib(ours), peak_memory_mib(ref)))
    print_table(f"GRU LM (vocab {VOCAB}, emb {EMBED}, hidden {HIDDEN}, seq {SEQ}, batch {BATCH}) vs torch "
                f"{torch.__version__} CPU, {args.threads} threads, median of {args.repeats}", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "target", "peak MiB (mg / torch)"])
    if _PROFILE:
        print("\ncProfile of our LM train step (5 steps, sorted by own time):")
        profile(make_lm_steps(torch, variants[0][1])[0])


if __name__ == "__main__":
    main(ARGS)
