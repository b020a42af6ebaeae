"""Recipe ``python -m models long-attention``: the cost of attention on long sequences (book §§ 4.8–4.9), measured.

Full attention costs O(n²) in time and memory; BigBird's block-sparse attention and the Reformer's LSH
attention cost O(n). For n = 512 … 16,384 (one sequence, 12 heads of 64) this times the attention of one
layer — queries, keys and values given — forward, and forward + backward, for

* ``dense``   — softmax(QKᵀ/√d)V with the (n, n) weights formed (``minigrad.functional.scaled_dot_product_attention``);
* ``bigbird`` — BigBird-ITC block-sparse attention (``minigrad.kernels.block_sparse``): block 64, 3 random blocks;
* ``lsh``     — the Reformer's shared-QK LSH attention (``minigrad.kernels.lsh``), hashing included: chunks of
  64, 2·n/64 buckets, 1 hashing round,

with the peak NumPy memory of forward + backward (``tracemalloc``: every array NumPy allocates). It reports
each method's growth from n to 4n (linear: ≈ 4; quadratic: ≈ 16) and the *crossover*: the shortest length
at which a sparse method is faster than dense attention. Dense attention stops at ``--dense-max`` (its
weights and their gradient take 12·n²·8 bytes: 25.8 GB at n = 16,384). The methods are timed in turns, so a
busy machine slows them alike, with malloc reusing freed memory (``reuse_freed_memory``; ``--default-malloc``
to measure without). Then the peak memory of forward + backward through a 1- to 12-layer Reformer
encoder, reversible and not (``ReformerEncoder.reversible``), n = 8,192: reversible, only the parameters'
gradients grow with depth.

Writes ``metrics.json``, ``cost_time.png``, ``cost_memory.png`` and ``reversible_memory.png`` into ``--out``.
``python -m benchmarks.long_attention`` times the same against PyTorch and Hugging Face's layers.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import tracemalloc

import numpy as np

from models.recipes.common import add_common_arguments, positive_int, print_line, report_error

KINDS = ("dense", "bigbird", "lsh")
LABELS = {"dense": "dense", "bigbird": "BigBird block-sparse", "lsh": "Reformer LSH"}


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers, got {text!r}")
    return sorted(set(values))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lengths", type=_int_list, default=[512, 1024, 2048, 4096, 8192, 16384],
                        help="sequence lengths n (default: 512,1024,2048,4096,8192,16384)")
    parser.add_argument("--dense-max", type=positive_int, default=4096,
                        help="longest n for dense attention (default: 4096; 8192 needs ~8 GB)")
    parser.add_argument("--heads", type=positive_int, default=12, help="attention heads (default: 12)")
    parser.add_argument("--head-dim", type=positive_int, default=64, help="width of a head (default: 64)")
    parser.add_argument("--block-size", type=positive_int, default=64, help="BigBird block size (default: 64)")
    parser.add_argument("--random-blocks", type=int, default=3, help="BigBird random blocks per row (default: 3)")
    parser.add_argument("--chunk-length", type=positive_int, default=64, help="LSH chunk length (default: 64)")
    parser.add_argument("--num-hashes", type=positive_int, default=1, help="LSH hashing rounds (default: 1)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per point, median (default: 3)")
    parser.add_argument("--layers", type=_int_list, default=[1, 2, 4, 8, 12],
                        help="Reformer depths for the reversible-memory curve (default: 1,2,4,8,12)")
    parser.add_argument("--reversible-length", type=positive_int, default=8192,
                        help="sequence length of the reversible-memory curve (default: 8192)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default of mmapping every large array afresh (see reuse_freed_memory)")
    add_common_arguments(parser, out="runs/long-attention", seed="the weights, inputs, random blocks and rotations")


# ----------------------------------------------------------------------------------------------
# The layers measured (shared with benchmarks/long_attention.py)
# ----------------------------------------------------------------------------------------------
def reuse_freed_memory() -> bool:
    """Let glibc's malloc reuse freed memory for large arrays (``mallopt``: no mmap, no trimming below 2 GiB).

    By default glibc gives every allocation above 32 MiB its own fresh mmap, and each page of it faults on
    first touch. On a virtual machine that can cost microseconds a page — a fresh 200 MB copy took 1.3 s here,
    a reused one 0.09 s — which makes long sequences look slower than linear although the arithmetic is
    linear. The same process setting applies to NumPy and torch alike. False where glibc is not available."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))
    except (OSError, AttributeError):
        return False


# ----------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------
def attention_layer(kind: str, n: int, heads: int = 12, head_dim: int = 64, block_size: int = 64,
                    random_blocks: int = 3, chunk_length: int = 64, num_hashes: int = 1, seed: int = 0):
    """One of our self-attention layers for length ``n`` as ``forward(hidden (B, n, H)) -> (B, n, H)``, and the
    layer (its parameters)."""
    import minigrad
    from models.bert import BertConfig
    from models.bert.modeling import BertSelfAttention
    from models.bigbird import BigBirdConfig, BigBirdSelfAttention, BlockSparseInputs
    from models.reformer import LSHSelfAttention, ReformerConfig, default_num_buckets

    H = heads * head_dim
    minigrad.manual_seed(seed)
    if kind == "dense":
        layer = BertSelfAttention(BertConfig(hidden_size=H, num_attention_heads=heads, attention_probs_dropout_prob=0.0))
        return (lambda x: layer(x, None)[0]), layer
    if kind == "bigbird":
        config = BigBirdConfig(hidden_size=H, num_attention_heads=heads, block_size=block_size,
                               num_random_blocks=random_blocks, attention_probs_dropout_prob=0.0)
        layer = BigBirdSelfAttention(config, layer_index=seed)
        inputs = BlockSparseInputs(None, "seeded")
        return (lambda x: layer(x, inputs)[0]), layer
    if kind == "lsh":
        config = ReformerConfig(hidden_size=H, num_attention_heads=heads, attention_head_size=head_dim,
                                lsh_attn_chunk_length=chunk_length, num_hashes=num_hashes, axial_pos_embds=False,
                                num_buckets=default_num_buckets(n, chunk_length, max(n, 4096)),
                                max_position_embeddings=max(n, 4096))
        layer = LSHSelfAttention(config)
        return (lambda x: layer(x, None, {})), layer
    raise ValueError(f"attention_layer: kind must be one of {KINDS}, got {kind!r}")


def attention_step(kind: str, n: int, backward: bool, seed: int = 0, batch: int = 1, level: str = "attention",
                   **sizes):
    """A function running one attention once on fixed random inputs: forward, or forward + backward of Σ u ⊙ y.

    ``level="attention"``: q, k, v (B, heads, n, d) given (LSH: q = k, hashed in the step); ``"layer"``: one of
    our self-attention layers, projections included, on hidden states (B, n, heads·d)."""
    import minigrad
    from minigrad import functional as F
    from minigrad.kernels.block_sparse import block_sparse_attention
    from minigrad.kernels.lsh import hash_buckets, lsh_attention, rotation_size
    from models.bigbird import random_block_plan
    from models.reformer import default_num_buckets

    heads, d = sizes.get("heads", 12), sizes.get("head_dim", 64)
    rng = np.random.default_rng(seed)
    if level == "layer":
        forward, layer = attention_layer(kind, n, seed=seed, **sizes)
        inputs = [rng.standard_normal((batch, n, heads * d)).astype(np.float32)]
        params = list(layer.parameters())
    elif level == "attention":
        inputs = [rng.standard_normal((batch, heads, n, d)).astype(np.float32) for _ in range(3 if kind != "lsh" else 2)]
        params = []
        bs, chunk = sizes.get("block_size", 64), sizes.get("chunk_length", 64)
        if kind == "dense":
            def forward(q, k, v):
                return F.scaled_dot_product_attention(q, k, v)
        elif kind == "bigbird":
            plan = random_block_plan(n // bs, sizes.get("random_blocks", 3), heads, minigrad.Generator(seed))

            def forward(q, k, v):
                return block_sparse_attention(q, k, v, plan, bs)
        elif kind == "lsh":
            buckets_n = default_num_buckets(n, chunk, max(n, 4096))
            R = rng.standard_normal((heads, d, sizes.get("num_hashes", 1), rotation_size(buckets_n))).astype(np.float32)

            def forward(qk, v):
                return lsh_attention(qk, v, hash_buckets(qk.data, R, buckets_n), chunk)
        else:
            raise ValueError(f"attention_step: kind must be one of {KINDS}, got {kind!r}")
    else:
        raise ValueError(f"attention_step: level must be 'attention' or 'layer', got {level!r}")
    u = None

    def step():
        nonlocal u
        for p in params:
            p.grad = None
        if not backward:
            with minigrad.no_grad():
                return forward(*(minigrad.Tensor(a) for a in inputs))
        ts = [minigrad.Tensor(a, requires_grad=True) for a in inputs]
        out = forward(*ts)
        if u is None:
            u = rng.standard_normal(out.shape).astype(np.float32)
        (out * u).sum().backward()
        return ts[0].grad

    return step


def alternate(fns: list, repeats: int, warmup: int = 1) -> list[float]:
    """Median seconds of each function, run in turns (a busy machine slows all of them alike)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_numpy_mib(fn) -> float:
    """The most NumPy memory in use at once while ``fn`` runs, above what was in use before (MiB)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return (tracemalloc.get_traced_memory()[1] - before) / 2 ** 20
    finally:
        tracemalloc.stop()


def dense_gib(n: int, heads: int) -> float:
    """What dense forward + backward holds at least: the weights P and their gradient, (heads, n, n) float32 each."""
    return 2 * heads * n * n * 4 / 2 ** 30


def crossover(lengths: list[int], dense: dict, sparse: dict) -> str:
    """The length where ``sparse`` becomes faster than ``dense`` (log-linear between measured points)."""
    common = [n for n in lengths if n in dense and n in sparse]
    if not common:
        return "not measured"
    ratio = [math.log(sparse[n] / dense[n]) for n in common]
    if ratio[0] < 0:
        return f"< {common[0]} (already faster at the shortest length)"
    for (n0, r0), (n1, r1) in zip(zip(common, ratio), zip(common[1:], ratio[1:])):
        if r1 < 0:
            t = r0 / (r0 - r1)
            return f"≈ {round(math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0))))}"
    return f"> {common[-1]} (slower at every measured length)"


def reversible_memory(layers: list[int], n: int, seed: int = 0, repeats: int = 1) -> list[dict]:
    """Peak NumPy MiB and time of forward + backward through a Reformer encoder of each depth, reversible and not
    (hidden 256, 4 heads of 64, feed-forward 1024, local and LSH layers alternating, chunks of 64)."""
    import minigrad
    from models.reformer import ReformerConfig, ReformerModel, default_num_buckets

    rows = []
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 320, (1, n))
    for L in layers:
        config = ReformerConfig(attn_layers=tuple(("local", "lsh")[i % 2] for i in range(L)), hidden_size=256,
                                num_attention_heads=4, attention_head_size=64, feed_forward_size=1024,
                                axial_pos_shape=(64, max(1, n // 64)), axial_pos_embds_dim=(64, 192),
                                num_buckets=default_num_buckets(n, 64, n), max_position_embeddings=n,
                                hidden_dropout_prob=0.0, local_attention_probs_dropout_prob=0.0)
        model = ReformerModel(config, generator=minigrad.Generator(seed)).train()
        u = rng.standard_normal((1, n, 512)).astype(np.float32)
        row = {"layers": L, "gradients MiB": sum(p.data.nbytes for p in model.parameters()) / 2 ** 20}
        for reversible in (True, False):
            model.encoder.reversible = reversible

            def step():
                model.zero_grad()
                (model(ids).last_hidden_state * u).sum().backward()
            key = "reversible" if reversible else "stored"
            row[f"{key} MiB"] = peak_numpy_mib(step)
            row[f"{key} s"] = median_seconds(step, repeats, warmup=0)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# The recipe
# ----------------------------------------------------------------------------------------------
def _check(args) -> None:
    if args.random_blocks < 0:
        raise ValueError(f"--random-blocks must be >= 0, got {args.random_blocks}")
    for n in args.lengths:
        if n % args.block_size or n % args.chunk_length:
            raise ValueError(f"--lengths: {n} is not a multiple of --block-size {args.block_size} and "
                             f"--chunk-length {args.chunk_length}")
        if n // args.block_size < args.random_blocks + 5:
            raise ValueError(f"--lengths: {n} tokens are {n // args.block_size} blocks; BigBird's layout with "
                             f"{args.random_blocks} random blocks needs at least {args.random_blocks + 5}")
    if args.reversible_length % 64:
        raise ValueError(f"--reversible-length must be a multiple of the chunk length 64, got {args.reversible_length}")


def run(args) -> int:
    try:
        _check(args)
    except ValueError as err:
        return report_error(err)
    sizes = dict(heads=args.heads, head_dim=args.head_dim, block_size=args.block_size,
                 random_blocks=args.random_blocks, chunk_length=args.chunk_length, num_hashes=args.num_hashes)
    reused = False if args.default_malloc else reuse_freed_memory()
    print_line(f"attention of one layer (q, k, v given), batch 1, {args.heads} heads of {args.head_dim}; BigBird block "
               f"{args.block_size}, {args.random_blocks} random blocks; LSH chunks of {args.chunk_length}, "
               f"{args.num_hashes} hash round(s); median of {args.repeats}; malloc "
               + ("reusing freed memory" if reused else "glibc's default (large arrays mmapped afresh)"))
    curves = {kind: {"forward s": {}, "forward+backward s": {}, "peak MiB": {}} for kind in KINDS}
    print_line(f"| {'n':>6} | {'method':<20} | {'forward s':>9} | {'fwd+bwd s':>9} | {'peak MiB':>9} |")
    for n in args.lengths:
        kinds = [k for k in KINDS if k != "dense" or n <= args.dense_max]
        forward = [attention_step(k, n, backward=False, seed=args.seed, **sizes) for k in kinds]
        both = [attention_step(k, n, backward=True, seed=args.seed, **sizes) for k in kinds]
        for kind, step in zip(kinds, both):
            curves[kind]["peak MiB"][n] = peak_numpy_mib(step)
        times = alternate(forward + both, args.repeats)
        for kind, t_fwd, t_both in zip(kinds, times[:len(kinds)], times[len(kinds):]):
            c = curves[kind]
            c["forward s"][n], c["forward+backward s"][n] = t_fwd, t_both
            print_line(f"| {n:>6} | {LABELS[kind]:<20} | {t_fwd:>9.3f} | {t_both:>9.3f} | {c['peak MiB'][n]:>9.1f} |")
        if "dense" not in kinds:
            print_line(f"| {n:>6} | {LABELS['dense']:<20} | not run: needs ≥ {dense_gib(n, args.heads):.1f} GiB "
                       f"(--dense-max {args.dense_max}) |")
    summary = _summary(args.lengths, curves)
    for line in summary["lines"]:
        print_line(line)
    print_line(f"peak NumPy memory of forward + backward through a Reformer encoder (n = {args.reversible_length}):")
    depth = reversible_memory(args.layers, args.reversible_length, args.seed)
    for row in depth:
        print_line(f"  {row['layers']:>2} layers: reversible {row['reversible MiB']:8.1f} MiB ({row['reversible s']:.2f} s)"
                   f", stored activations {row['stored MiB']:8.1f} MiB ({row['stored s']:.2f} s); of which the "
                   f"parameters' gradients {row['gradients MiB']:.1f} MiB")
    if len(depth) > 1:
        print_line(f"  {depth[-1]['layers']} reversible layers take {depth[-1]['reversible MiB'] / depth[0]['reversible MiB']:.2f}× "
                   f"the memory of {depth[0]['layers']}; without reversibility "
                   f"{depth[-1]['stored MiB'] / depth[0]['stored MiB']:.2f}×")
    args.out.mkdir(parents=True, exist_ok=True)
    metrics = {"settings": {**sizes, "lengths": args.lengths, "dense_max": args.dense_max, "repeats": args.repeats,
                            "seed": args.seed, "reversible_length": args.reversible_length, "malloc_reuse": reused},
               "curves": {k: {m: {str(n): v for n, v in c.items()} for m, c in curves[k].items()} for k in KINDS},
               "crossover": summary["crossover"], "growth": summary["growth"], "reversible_memory": depth}
    from models.text.corpus import atomic_write_text

    atomic_write_text(args.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if not args.no_plot:
        _plots(args, curves, depth)
    print_line(f"wrote {args.out / 'metrics.json'}" + ("" if args.no_plot else " and the PNGs"))
    return 0


def _summary(lengths: list[int], curves: dict) -> dict:
    lines, cross, growth = [], {}, {}
    both = {k: curves[k]["forward+backward s"] for k in KINDS}
    for kind in ("bigbird", "lsh"):
        cross[kind] = crossover(lengths, both["dense"], both[kind])
        lines.append(f"crossover, forward + backward: {LABELS[kind]} is faster than dense from n {cross[kind]}")
    for kind in KINDS:
        times = both[kind]
        steps = [(n, 4 * n) for n in lengths if 4 * n in times and n in times]
        growth[kind] = {f"{a}->{b}": times[b] / times[a] for a, b in steps}
        if steps:
            text = ", ".join(f"{a}→{b}: ×{times[b] / times[a]:.2f}" for a, b in steps)
            lines.append(f"time growth for 4× the length, {LABELS[kind]}: {text}")
    dense, sparse = both["dense"], both["bigbird"]
    for n in (n for n in lengths if n in dense and n in sparse):
        mem = curves["bigbird"]["peak MiB"][n] / curves["dense"]["peak MiB"][n]
        lines.append(f"n = {n}: BigBird {dense[n] / sparse[n]:.1f}× faster than dense, {mem:.2f}× its memory; "
                     f"LSH {dense[n] / both['lsh'][n]:.1f}× faster, "
                     f"{curves['lsh']['peak MiB'][n] / curves['dense']['peak MiB'][n]:.2f}× its memory")
    return {"lines": lines, "crossover": cross, "growth": growth}


def _plots(args, curves: dict, depth: list[dict]) -> None:
    from models.plotting import save_figure, subplots

    fig, axes = subplots(1, 2, figsize=(11, 4.2))
    for ax, measure in zip(axes, ("forward s", "forward+backward s")):
        for kind in KINDS:
            points = sorted(curves[kind][measure].items())
            if points:
                ax.plot(*zip(*points), "o-", label=LABELS[kind])
        ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="seconds",
               title=f"attention, 12 heads of 64: {measure.replace(' s', '')}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out / "cost_time.png")
    fig, ax = subplots(figsize=(6, 4.2))
    for kind in KINDS:
        points = sorted(curves[kind]["peak MiB"].items())
        if points:
            ax.plot(*zip(*points), "o-", label=LABELS[kind])
    ax.set(xscale="log", yscale="log", xlabel="sequence length n", ylabel="peak MiB (forward + backward)",
           title="attention: peak NumPy memory")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out / "cost_memory.png")
    fig, ax = subplots(figsize=(6, 4.2))
    L = [r["layers"] for r in depth]
    ax.plot(L, [r["reversible MiB"] for r in depth], "o-", label="reversible layers")
    ax.plot(L, [r["stored MiB"] for r in depth], "s-", label="activations stored")
    ax.set(xlabel="Reformer layers", ylabel="peak MiB (forward + backward)",
           title=f"reversible residual layers, n = {args.reversible_length}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out / "reversible_memory.png")
