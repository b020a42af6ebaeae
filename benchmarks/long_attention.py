"""Long-sequence attention (book §§ 4.8–4.9): minigrad vs PyTorch / Hugging Face, same process, same threads.

    python -m benchmarks.long_attention          # quick (< 2 min on a quiet 2-core machine): n ≤ 2,048, 1 repeat
    python -m benchmarks.long_attention --full   # the issue's: n = 512 … 16,384, 3 repeats (≈ 10–15 min)
        [--threads 1] [--repeats R] [--max-length N] [--sections curves,bigbird-book,reformer-book,reversible]

The default is a quick run: curves to n = 2,048 (peak memory at the longest only), the book's BigBird table
at 32, 128 and 512 tokens, the Reformer table at its two ends, the reversible stack of 1, 2 and 4 layers at
n = 2,048; one repeat. ``--full`` runs everything below.

1. ``curves`` — (a) the attention alone (q, k, v given; batch 1, 12 heads of 64), forward + backward,
   n = 512 … 16,384: ours dense, BigBird block-sparse (block 64, 3 random blocks) and Reformer LSH (chunks of
   64, 2·n/64 buckets, 1 round, hashing included), and torch's SDPA; (b) the self-attention layer, projections
   included (hidden 768), ours vs Hugging Face's on torch: ``BertSelfAttention`` (SDPA),
   ``BigBirdBlockSparseAttention``, ``LSHSelfAttention``. Median times, ours and torch in turns; peak RSS of
   one forward + backward, each in a fresh process (``benchmarks.common.peak_memory_mib``). Our dense attention
   stops at 4,096 (its (n, n) weights and their gradient: 12·n²·8 bytes), torch's SDPA at 8,192 (time), HF's
   BigBird at 8,192 (transformers 5 fills a dense (heads, n, n) matrix of probabilities even in block-sparse
   mode). Then the targets: at n = 4,096 block-sparse ≥ 4× faster than dense attention and ≤ ¼ of its peak
   memory; time(16,384) / time(4,096) ≤ 4.5 for BigBird and LSH; ours / HF ≤ 1.0; and the crossover lengths.
2. ``bigbird-book`` — the book's § 4.8 table re-measured: a BigBird and a same-size RoBERTa (BERT-base size,
   random weights; BigBird's default block 64 / 3 random blocks, so up to 704 tokens it falls back to full
   attention, as HF), forward, batch 1, 32 … 512 tokens — ours and HF's, beside the book's seconds.
3. ``reformer-book`` — the book's § 4.9 table: a Reformer the size of google/reformer-crime-and-punishment
   (6 layers local/LSH, hidden 256, 2 heads of 64, axial positions (512, 1024), buckets [64, 128], random
   weights) at 2,048 tokens per batch, (32, 64) … (1, 2048), forward — ours and HF's, beside the book's.
4. ``reversible`` — peak memory of forward + backward through 1 … 12 Reformer layers (n = 8,192), reversible
   and with stored activations (target: 12 reversible layers ≤ 1.3× one layer).

Printed, never asserted. On a busy machine use ``--threads 1``: medians of ``--repeats``, ours and torch alternating.
malloc reuses freed memory for both (``models.recipes.long_attention.reuse_freed_memory``: fresh pages fault
slowly on virtual machines); ``--default-malloc`` measures with glibc's default.
"""
import argparse

from benchmarks.common import compare_row, peak_memory_mib, print_table, set_threads

SECTIONS = ("curves", "bigbird-book", "reformer-book", "reversible")


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for both NumPy's BLAS and torch")
    parser.add_argument("--full", action="store_true",
                        help="the issue's measurement: n up to 16,384, 3 repeats, every book row, 1-12 reversible layers")
    parser.add_argument("--quick", action="store_true", help="the default (kept for scripts that pass it)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats, median (default: 1; --full: 3)")
    parser.add_argument("--max-length", type=int, default=None,
                        help="longest n of the cost curves (default: 2048; --full: 16384)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--default-malloc", action="store_true",
                        help="keep glibc's default (large arrays mmapped afresh); see long_attention.reuse_freed_memory")
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)  # internal: LIB:KIND:N in a fresh process
    args = parser.parse_args()
    if args.full and args.quick:
        parser.error("--full and --quick exclude each other")
    args.repeats = args.repeats or (3 if args.full else 1)
    args.max_length = args.max_length or (16384 if args.full else 2048)
    args.sections = [s for s in args.sections.split(",") if s]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; choose from {SECTIONS}")
    set_threads(args.threads)
    return args


ARGS = _arguments() if __name__ == "__main__" else None

import json  # noqa: E402  (after thread setup)
import subprocess  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from models.recipes.long_attention import (alternate, attention_step, crossover, reuse_freed_memory,  # noqa: E402
                                          reversible_memory)

LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
OURS_DENSE_MAX, TORCH_DENSE_MAX, HF_BIGBIRD_MAX = 4096, 8192, 8192
BOOK_BIGBIRD = {32: (0.0861, 0.0467), 512: (0.4765, 0.445)}  # § 4.8: seconds, (BigBird, RoBERTa)
BOOK_REFORMER = {(32, 64): 0.82, (1, 2048): 1.52}  # § 4.9: seconds at 2,048 tokens per batch


# ----------------------------------------------------------------------------------------------
# 1. cost curves
# ----------------------------------------------------------------------------------------------
def torch_step(torch, kind: str, n: int, level: str, seed: int = 0):
    """Forward + backward of Σ u ⊙ y on torch: ``level="attention"`` — torch's SDPA on q, k, v (dense only);
    ``"layer"`` — HF's self-attention layer of ``kind`` on hidden states (B, n, 768)."""
    import transformers
    from transformers.models.bert.modeling_bert import BertSelfAttention
    from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention, BigBirdModel
    from transformers.models.reformer.modeling_reformer import LSHSelfAttention

    from models.reformer import default_num_buckets

    torch.manual_seed(seed)
    if level == "attention":
        q, k, v = (torch.randn(1, 12, n, 64, requires_grad=True) for _ in range(3))
        u = torch.randn(1, 12, n, 64)

        def step():
            for t in (q, k, v):
                t.grad = None
            (torch.nn.functional.scaled_dot_product_attention(q, k, v) * u).sum().backward()
        return step
    x = torch.randn(1, n, 768, requires_grad=True)
    u = torch.randn(1, n, 768)
    if kind == "dense":
        config = transformers.BertConfig(hidden_size=768, num_attention_heads=12, attention_probs_dropout_prob=0.0)
        config._attn_implementation = "sdpa"
        layer = BertSelfAttention(config).train()

        def forward():
            return layer(x)[0]
    elif kind == "bigbird":
        config = transformers.BigBirdConfig(hidden_size=768, num_attention_heads=12, block_size=64, num_random_blocks=3,
                                            max_position_embeddings=max(n, 4096))
        layer = BigBirdBlockSparseAttention(config, seed=0).train()
        blocked, band, from_mask, to_mask = BigBirdModel.create_masks_for_block_sparse_attn(torch.ones(1, n), 64)

        def forward():
            return layer(x, band, from_mask, to_mask, blocked, blocked)[0]
    else:
        config = transformers.ReformerConfig(hidden_size=768, num_attention_heads=12, attention_head_size=64,
                                             lsh_attn_chunk_length=64, num_hashes=1, max_position_embeddings=max(n, 4096),
                                             num_buckets=default_num_buckets(n, 64, max(n, 4096)),
                                             lsh_attention_probs_dropout_prob=0.0)
        layer = LSHSelfAttention(config).train()

        def forward():
            return layer(x).hidden_states

    def step():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        (forward() * u).sum().backward()
    return step


def peak_mib_fresh_process(spec: str, threads: int):
    """Peak RSS added by one forward + backward (``benchmarks.common.peak_memory_mib``), in a fresh interpreter:
    in this long-lived process the heap kept by earlier steps — ours and torch's — would hide allocations."""
    done = subprocess.run([sys.executable, "-m", "benchmarks.long_attention", "--threads", str(threads),
                           "--memory-of", spec], capture_output=True, text=True, timeout=3600)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return None


def _step(torch, spec: str):
    lib, kind, n, level = spec.split(":")
    if lib == "ours":
        return attention_step(kind, int(n), backward=True, level=level)
    return torch_step(torch, kind, int(n), level)


def measure_memory(torch, spec: str) -> None:
    print(json.dumps(peak_memory_mib(_step(torch, spec))))


def _mib(value) -> str:
    return "—" if value is None else f"{value:.1f}"


def section_curves(torch, repeats: int, max_length: int, threads: int, full: bool) -> None:
    lengths = [n for n in LENGTHS if n <= max_length]
    memory_at = set(lengths) if full else {lengths[-1]}  # each peak is a fresh interpreter (~5 s): quick, one length
    # (a) the attention alone, q, k, v given: ours dense / block-sparse / LSH, torch's SDPA
    rows, ours_times, ours_mem = [], {k: {} for k in ("dense", "bigbird", "lsh")}, {}
    for n in lengths:
        specs = [f"ours:{k}:{n}:attention" for k in ("dense", "bigbird", "lsh") if k != "dense" or n <= OURS_DENSE_MAX]
        if n <= TORCH_DENSE_MAX:
            specs.append(f"torch:dense:{n}:attention")
        memory = {spec: peak_mib_fresh_process(spec, threads) for spec in specs} if n in memory_at else {}
        times = alternate([_step(torch, spec) for spec in specs], repeats)
        for spec, t in zip(specs, times):
            lib, kind = spec.split(":")[:2]
            if lib == "ours":
                ours_times[kind][n], ours_mem[kind, n] = t, memory.get(spec)
            rows.append({"n": n, "attention": f"{'ours' if lib == 'ours' else 'torch SDPA'} {kind}",
                         "fwd+bwd ms": f"{t * 1e3:.1f}", "peak MiB": _mib(memory.get(spec))})
            print(rows[-1], flush=True)
        if n > OURS_DENSE_MAX:
            rows.append({"n": n, "attention": "ours dense", "fwd+bwd ms": "not run",
                         "peak MiB": f"needs ≥ {2 * 12 * n * n * 4 / 2 ** 30:.1f} GiB"})
    print_table("attention alone (q, k, v given), forward + backward, batch 1, 12 heads × 64", rows, list(rows[0]))
    # (b) the self-attention layer, projections included: ours vs Hugging Face's on torch
    rows = []
    for n in lengths:
        for kind in ("dense", "bigbird", "lsh"):
            ours = f"ours:{kind}:{n}:layer" if kind != "dense" or n <= OURS_DENSE_MAX else None
            longest = {"dense": TORCH_DENSE_MAX, "bigbird": HF_BIGBIRD_MAX}.get(kind, n)  # O(n²) time / memory in torch
            ref = f"torch:{kind}:{n}:layer" if n <= longest else None
            specs = [s for s in (ours, ref) if s]
            memory = {s: peak_mib_fresh_process(s, threads) for s in specs} if n in memory_at & {4096, 16384} else {}
            t = dict(zip(specs, alternate([_step(torch, s) for s in specs], repeats)))
            name = f"{kind} layer n={n}"
            if ours and ref:
                row = compare_row(name, t[ours], t[ref], "≤ 1.0" if kind != "dense" else "",
                                  memory.get(ours), memory.get(ref))
            else:
                row = {"benchmark": name, "minigrad ms": f"{t[ours] * 1e3:.1f}" if ours else "not run",
                       "torch ms": f"{t[ref] * 1e3:.1f}" if ref else "not run: O(n²) in torch / HF 5.x"}
                if memory:
                    row["peak MiB (mg / torch)"] = f"{_mib(memory.get(ours))} / {_mib(memory.get(ref))}"
            rows.append(row)
            print(row, flush=True)
    print_table("one self-attention layer (projections + attention), forward + backward: ours vs HF on torch", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "target", "peak MiB (mg / torch)"])
    summary = []
    dense, sparse = ours_times["dense"], ours_times["bigbird"]
    if 4096 in dense and 4096 in sparse:
        summary.append({"check": "n=4096: block-sparse vs dense attention, speed-up",
                        "value": f"{dense[4096] / sparse[4096]:.1f}×", "target": "≥ 4×"})
        if ours_mem.get(("bigbird", 4096)) and ours_mem.get(("dense", 4096)):
            summary.append({"check": "n=4096: block-sparse / dense peak memory", "target": "≤ 0.25",
                            "value": f"{ours_mem['bigbird', 4096] / ours_mem['dense', 4096]:.2f}"})
    for kind in ("bigbird", "lsh"):
        times = ours_times[kind]
        if 16384 in times and 4096 in times:
            summary.append({"check": f"{kind}: time(16384) / time(4096)", "value": f"{times[16384] / times[4096]:.2f}",
                            "target": "≤ 4.5"})
        summary.append({"check": f"{kind}: crossover with dense attention (fwd+bwd)", "target": "",
                        "value": crossover(sorted(times), dense, times)})
    print_table("targets", summary, ["check", "value", "target"])


# ----------------------------------------------------------------------------------------------
# 2. the book's BigBird table
# ----------------------------------------------------------------------------------------------
def section_bigbird_book(torch, repeats: int, full: bool) -> None:
    import transformers

    from models.bert import BertConfig, BertModel
    from models.bigbird import BigBirdConfig, BigBirdModel

    ours_bigbird = BigBirdModel(BigBirdConfig(), generator=minigrad.Generator(0)).eval()
    ours_roberta = BertModel(BertConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1),
                             generator=minigrad.Generator(0)).eval()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_bigbird = transformers.BigBirdModel(transformers.BigBirdConfig()).eval()
        hf_roberta = transformers.RobertaModel(transformers.RobertaConfig(max_position_embeddings=514,  # roberta-base's
                                                                            type_vocab_size=1)).eval()
    rows = []
    for n in (32, 64, 128, 256, 512) if full else (32, 128, 512):
        ids = np.random.default_rng(n).integers(5, 50000, (1, n))
        t_ids = torch.from_numpy(ids)

        def ours(model):
            def run():
                with minigrad.no_grad():
                    model(ids)
            return run

        def hf(model):
            def run():
                with torch.no_grad():
                    model(input_ids=t_ids)
            return run
        t = alternate([ours(ours_bigbird), ours(ours_roberta), hf(hf_bigbird), hf(hf_roberta)], repeats)
        book = BOOK_BIGBIRD.get(n, ("—", "—"))
        rows.append({"tokens": n, "BigBird ours s": f"{t[0]:.4f}", "RoBERTa ours s": f"{t[1]:.4f}",
                     "BigBird HF s": f"{t[2]:.4f}", "RoBERTa HF s": f"{t[3]:.4f}",
                     "BigBird / RoBERTa ours, HF": f"{t[0] / t[1]:.2f}, {t[2] / t[3]:.2f}",
                     "book BigBird s": book[0], "book RoBERTa s": book[1]})
        print(rows[-1], flush=True)
    print_table("book § 4.8: BigBird vs a same-size RoBERTa, forward, batch 1 (base size, random weights)", rows,
                list(rows[0]))


# ----------------------------------------------------------------------------------------------
# 3. the book's Reformer table
# ----------------------------------------------------------------------------------------------
CRIME_AND_PUNISHMENT = dict(attn_layers=["local", "lsh", "local", "lsh", "local", "lsh"], hidden_size=256,
                            num_attention_heads=2, attention_head_size=64, feed_forward_size=512,
                            axial_pos_shape=[512, 1024], axial_pos_embds_dim=[64, 192], num_buckets=[64, 128],
                            num_hashes=1, lsh_attn_chunk_length=64, local_attn_chunk_length=64, vocab_size=320,
                            max_position_embeddings=524288, is_decoder=True)


def section_reformer_book(torch, repeats: int, full: bool) -> None:
    import transformers

    from models.reformer import ReformerConfig, ReformerModelWithLMHead

    ours_model = ReformerModelWithLMHead(ReformerConfig(**CRIME_AND_PUNISHMENT), generator=minigrad.Generator(0)).eval()
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_model = transformers.ReformerModelWithLMHead(transformers.ReformerConfig(**CRIME_AND_PUNISHMENT)).eval()
    rows = []
    shapes = ((32, 64), (16, 128), (8, 256), (4, 512), (2, 1024), (1, 2048)) if full else ((32, 64), (1, 2048))
    for batch, n in shapes:
        ids = np.random.default_rng(n).integers(0, 320, (batch, n))
        t_ids = torch.from_numpy(ids)

        def ours():
            with minigrad.no_grad():
                ours_model(ids)

        def hf():
            with torch.no_grad():
                hf_model(input_ids=t_ids)
        t_ours, t_hf = alternate([ours, hf], repeats)
        rows.append({"(batch, length)": f"({batch}, {n})", "ours s": f"{t_ours:.3f}", "HF s": f"{t_hf:.3f}",
                     "ratio": f"{t_ours / t_hf:.2f}", "book s": BOOK_REFORMER.get((batch, n), "—")})
        print(rows[-1], flush=True)
    print_table("book § 4.9: Reformer at 2,048 tokens per batch, forward (crime-and-punishment size, random weights)",
                rows, list(rows[0]))


# ----------------------------------------------------------------------------------------------
# 4. reversible layers
# ----------------------------------------------------------------------------------------------
def section_reversible(full: bool) -> None:
    n, layers = (8192, [1, 2, 4, 8, 12]) if full else (2048, [1, 2, 4])
    rows = reversible_memory(layers, n)
    base = rows[0]
    table = [{"layers": r["layers"], "reversible MiB": f"{r['reversible MiB']:.1f}",
              "× 1 layer": f"{r['reversible MiB'] / base['reversible MiB']:.2f}",
              "stored MiB": f"{r['stored MiB']:.1f}", "× 1 layer ": f"{r['stored MiB'] / base['stored MiB']:.2f}",
              "reversible s": f"{r['reversible s']:.2f}", "stored s": f"{r['stored s']:.2f}",
              "of which gradients MiB": f"{r['gradients MiB']:.1f}"} for r in rows]
    print_table(f"Reformer encoder forward + backward, n = {n}: peak NumPy memory (target: 12 layers ≤ 1.3× one)"
                + ("" if full else "; --full: 1-12 layers at n = 8,192"),
                table, list(table[0]))


def main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    if args.memory_of:  # a fresh process, glibc's default malloc: peak_memory_mib's own setting
        return measure_memory(torch, args.memory_of)
    reused = False if args.default_malloc else reuse_freed_memory()
    print(f"{'full' if args.full else 'quick (--full: the issue lengths)'} run; "
          f"threads: {args.threads}, repeats: {args.repeats}, malloc: "
          + ("reusing freed memory (ours and torch alike)" if reused else "glibc's default"))
    if "curves" in args.sections:
        section_curves(torch, args.repeats, args.max_length, args.threads, args.full)
    if "bigbird-book" in args.sections:
        section_bigbird_book(torch, args.repeats, args.full)
    if "reformer-book" in args.sections:
        section_reformer_book(torch, args.repeats, args.full)
    if "reversible" in args.sections:
        section_reversible(args.full)


if __name__ == "__main__":
    main(ARGS)
