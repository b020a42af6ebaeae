"""Transformer encoder language-model train step: minigrad vs PyTorch CPU in one process.

    python -m benchmarks.transformer [--threads 2] [--repeats 7] [--dropout 0.0] [--profile] [--cpu-time]

Model: Embedding(10000, 256) + sinusoidal positions → TransformerEncoder(d_model 256, 4 heads,
4 layers, feed-forward 1024, causal mask, batch_first) → Linear(256, 10000) → cross-entropy;
one Adam step. Same initial weights in both (torch's state_dict loaded into minigrad).
2. batch 16, seq 128 (compute-bound);  3. batch 1, seq 16 (overhead-bound).
Targets (ratio minigrad / torch): ≤ 1.3 and ≤ 1.0. Printed, never asserted.
``--profile`` prints the top cProfile entries of the minigrad step for each size.
"""
import argparse
import statistics
import sys
import time

from benchmarks.common import compare_row, median_time, peak_memory_mib, print_table, set_threads

VOCAB, D_MODEL, HEADS, LAYERS, FF = 10000, 256, 4, 4, 1024
CASES = (("(2) LM step b16 x seq128", 16, 128, "<= 1.3"), ("(3) LM step b1 x seq16", 1, 16, "<= 1.0"))


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout of every layer (0 = deterministic)")
    parser.add_argument("--profile", action="store_true", help="cProfile the minigrad step")
    parser.add_argument("--only", type=int, choices=(2, 3), help="run one benchmark")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with process CPU time instead of wall time (steadier on a shared machine; "
                             "use with --threads 1, where no thread spins)")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    set_threads(args.threads)
    return args


ARGS = _parse() if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from minigrad import nn, optim  # noqa: E402
from minigrad.nn.losses import cross_entropy  # noqa: E402
from minigrad.nn.positional import SinusoidalPositionalEncoding, sinusoidal_table  # noqa: E402
from minigrad.nn.sparse import Embedding  # noqa: E402
from minigrad.nn.transformer import Transformer, TransformerEncoder, TransformerEncoderLayer  # noqa: E402


class EncoderLM(nn.Module):
    """Decoder-only LM built from encoder layers with a causal mask (GPT-style)."""

    def __init__(self, dropout: float, max_len: int = 512):
        super().__init__()
        self.embed = Embedding(VOCAB, D_MODEL)
        self.pos = SinusoidalPositionalEncoding(D_MODEL, max_len, dropout=dropout, batch_first=True)
        layer = TransformerEncoderLayer(D_MODEL, HEADS, FF, dropout=dropout, batch_first=True)
        self.encoder = TransformerEncoder(layer, LAYERS)
        self.head = nn.Linear(D_MODEL, VOCAB)

    def forward(self, ids):
        L = ids.shape[1]
        x = self.pos(self.embed(ids))  # (B, L, d)
        h = self.encoder(x, mask=Transformer.generate_square_subsequent_mask(L), is_causal=True)
        return self.head(h.reshape(-1, D_MODEL))  # (B·L, V)


def _torch_model(torch, dropout: float, max_len: int = 512):
    class TorchLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, D_MODEL)
            self.register_buffer("pe", torch.from_numpy(sinusoidal_table(max_len, D_MODEL).astype(np.float32)),
                                 persistent=False)
            self.drop = torch.nn.Dropout(dropout)
            layer = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, dropout=dropout, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = torch.nn.Linear(D_MODEL, VOCAB)

        def forward(self, ids):
            L = ids.shape[1]
            x = self.drop(self.embed(ids) + self.pe[:L])
            mask = torch.nn.Transformer.generate_square_subsequent_mask(L)
            h = self.encoder(x, mask=mask, is_causal=True)
            return self.head(h.reshape(-1, D_MODEL))

    return TorchLM()


def make_steps(torch, batch: int, seq: int, dropout: float):
    torch.manual_seed(0)
    ref = _torch_model(torch, dropout)
    ours = EncoderLM(dropout)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(batch, seq))
    targets = rng.integers(0, VOCAB, size=(batch * seq,))
    ours_opt, ref_opt = optim.Adam(ours.parameters(), lr=1e-4), torch.optim.Adam(ref.parameters(), lr=1e-4)
    ids_m, tgt_m = minigrad.Tensor(ids), minigrad.Tensor(targets)
    ids_t, tgt_t = torch.from_numpy(ids), torch.from_numpy(targets)

    def ours_step():
        ours_opt.zero_grad()
        loss = cross_entropy(ours(ids_m), tgt_m)
        loss.backward()
        ours_opt.step()
        return loss.item()

    def ref_step():
        ref_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(ids_t), tgt_t)
        loss.backward()
        ref_opt.step()
        return loss.item()

    return ours_step, ref_step


def median_cpu_time(fn, repeats: int, warmup: int = 2, inner: int = 1) -> float:
    """Like ``median_time`` but with the process's CPU time: other workers on a shared machine
    slow the wall clock, not this process's own CPU seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(inner):
            fn()
        times.append((time.process_time() - start) / inner)
    return statistics.median(times)


def _profile(step, title: str, cpu_time: bool, top: int = 18) -> None:
    import cProfile
    import pstats

    step()
    prof = cProfile.Profile(time.process_time) if cpu_time else cProfile.Profile()
    prof.enable()
    for _ in range(3):
        step()
    prof.disable()
    print(f"\ncProfile, minigrad {title} (3 steps), by total time:")
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(top)


def main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    for name, batch, seq, target in CASES:
        if args.only is not None and not name.startswith(f"({args.only})"):
            continue
        ours_step, ref_step = make_steps(torch, batch, seq, args.dropout)
        l_ours, l_ref = ours_step(), ref_step()  # same weights and data: the first losses agree
        if args.dropout == 0.0 and abs(l_ours - l_ref) > 1e-3 * abs(l_ref):
            print(f"warning: first losses differ: minigrad {l_ours:.6f}, torch {l_ref:.6f}")
        inner = 1 if batch > 1 else 10
        timer = median_cpu_time if args.cpu_time else median_time
        t_ours = timer(ours_step, args.repeats, inner=inner)
        t_ref = timer(ref_step, args.repeats, inner=inner)
        rows.append(compare_row(name, t_ours, t_ref, target, peak_memory_mib(ours_step), peak_memory_mib(ref_step)))
        if args.profile:
            _profile(ours_step, name, args.cpu_time)
    print_table(f"Transformer encoder LM train step (V={VOCAB}, d={D_MODEL}, {HEADS} heads, {LAYERS} layers, "
                f"ff {FF}, dropout {args.dropout}, Adam): minigrad vs torch {torch.__version__} CPU, "
                f"{args.threads} threads, median of {args.repeats}{' (CPU time)' if args.cpu_time else ''}", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "target", "peak MiB (mg / torch)"])


if __name__ == "__main__":
    main(ARGS)
