"""GPT-2 benchmark: minigrad vs Hugging Face ``transformers`` on torch CPU, same process, same threads.

    python -m benchmarks.gpt2 [--threads 2] [--repeats 7] [--quick]

1. **Train step** of a small GPT-2 (d 256, 4 layers, 4 heads, T 128, batch 8, vocabulary 50,257:
   most of the work is the tied 256 × 50,257 output layer): LM loss on ``labels = input_ids``,
   backward, AdamW step. Time ratio minigrad / torch (target ≤ 1.0) and peak memory of a step.
2. **Generation**, the same model, a 16-token prompt, 64 new tokens, greedy, batch 1 and batch 8:
   tokens per second of ``models.generation.generate`` and HF's ``generate`` with the key/value
   cache (target ≥ 1.0×), and without it for contrast (each step recomputes the whole sequence).
   Both start from the same weights (HF's, saved and loaded), and the table says whether they
   produced the same tokens.

The tokenizer's throughput vs HF ``GPT2Tokenizer`` and tiktoken: ``python -m benchmarks.tokenizer``.
Printed, never asserted; medians of ``--repeats`` rounds, each timing ours then torch, so load on a
shared machine hits both.
"""
from benchmarks.common import compare_row, fmt_ms, parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None

import tempfile  # noqa: E402

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from benchmarks.bert import alternate  # noqa: E402  (ours then torch each round)
from models.gpt import GPT2LMHeadModel  # noqa: E402

SIZE = dict(vocab_size=50257, n_positions=256, n_embd=256, n_layer=4, n_head=4)


def models(torch, transformers, directory: str):
    """HF's GPT-2 of SIZE (no eos: every run generates all its tokens) and ours on the same weights."""
    torch.manual_seed(0)
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(**SIZE, bos_token_id=None, eos_token_id=None))
    ref.save_pretrained(directory)
    return GPT2LMHeadModel.from_pretrained(directory), ref


def bench_train_step(torch, ours_model, ref_model, repeats: int, B: int = 8, T: int = 128):
    ids = np.random.default_rng(0).integers(0, SIZE["vocab_size"], (B, T))
    t_ids = torch.from_numpy(ids)
    ours_model.train()
    ref_model.train()
    ours_opt = minigrad.optim.AdamW(ours_model.parameters(), lr=1e-4, weight_decay=0.01)
    ref_opt = torch.optim.AdamW(ref_model.parameters(), lr=1e-4, weight_decay=0.01)

    def ours():
        ours_opt.zero_grad()
        ours_model(ids, labels=ids).loss.backward()
        ours_opt.step()

    def ref():
        ref_opt.zero_grad()
        ref_model(t_ids, labels=t_ids).loss.backward()
        ref_opt.step()

    memory = peak_memory_mib(ours), peak_memory_mib(ref)
    return (*alternate(ours, ref, repeats), *memory)


def bench_generation(torch, ours_model, ref_model, repeats: int, batch: int, use_cache: bool, new: int = 64):
    ours_model.eval()
    ref_model.eval()
    prompt = np.random.default_rng(batch).integers(0, SIZE["vocab_size"], (batch, 16))
    t_prompt = torch.from_numpy(prompt)
    mask = torch.ones_like(t_prompt)
    result = {}

    def ours():
        result["ours"] = ours_model.generate(prompt, max_new_tokens=new, use_cache=use_cache)

    def ref():
        with torch.no_grad():
            result["ref"] = ref_model.generate(t_prompt, attention_mask=mask, max_new_tokens=new, do_sample=False,
                                               pad_token_id=0, use_cache=use_cache).numpy()

    t_ours, t_ref = alternate(ours, ref, repeats)
    same = result["ours"].shape == result["ref"].shape and bool((result["ours"] == result["ref"]).all())
    return t_ours, t_ref, batch * new, same


def main(args) -> None:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as directory:
        ours_model, ref_model = models(torch, transformers, directory)
    rows = []  # generation first: training changes the two models' weights slightly differently
    for use_cache in (True, False):
        for batch in (1, 8):
            t_ours, t_ref, tokens, same = bench_generation(torch, ours_model, ref_model, max(3, args.repeats // 2),
                                                           batch, use_cache)
            rows.append({"generate (greedy, 16-token prompt, 64 new)": f"batch {batch}, "
                                                                      f"{'KV cache' if use_cache else 'no cache'}",
                         "minigrad tok/s": f"{tokens / t_ours:,.0f}", "HF tok/s": f"{tokens / t_ref:,.0f}",
                         "minigrad ms": fmt_ms(t_ours), "HF ms": fmt_ms(t_ref),
                         "speed-up": f"{t_ref / t_ours:.2f}x", "target": ">= 1.0x" if use_cache else "",
                         "same tokens": "yes" if same else "NO"})
    generation = rows
    t_ours, t_ref, mem_ours, mem_ref = bench_train_step(torch, ours_model, ref_model, args.repeats)
    rows = [compare_row("GPT-2 train step d256 L4 h4 T128 b8 V50257 (AdamW)", t_ours, t_ref, "<= 1.0",
                        mem_ours, mem_ref)]
    print_table(f"GPT-2 training: minigrad vs transformers on torch {torch.__version__} CPU, {args.threads} threads, "
                f"median of {args.repeats}", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "target", "peak MiB (mg / torch)"])
    print_table("GPT-2 generation: tokens per second (new tokens of the whole batch)", generation, list(generation[0]))


if __name__ == "__main__":
    main(ARGS)
