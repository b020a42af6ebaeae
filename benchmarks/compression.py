"""Benchmark: making BERT small (book § 4.7 and appendix § A.4) — a distilled 3-layer student against its
6-layer teacher, and int8 against float32 — minigrad and PyTorch in one process, same thread count.

    python -m benchmarks.compression [--threads 1] [--repeats 7] [--quick]

The classifier has MiniLM's shape (all-MiniLM-L6-v2: vocab 30522, H 384, 12 heads, I 1536, 6 layers;
random weights: time does not depend on their values), a batch of 32 sentences of 16-48 tokens
(padded to 48), evaluation forward without gradients.

1. Student (3 layers, ``models.distillation.student_from_teacher``) vs teacher (6 layers): ours and
   HF's (``DistilBertForSequenceClassification`` vs ``BertForSequenceClassification``, same weights).
   Target: ≤ 0.55× the teacher's time (half the layers; embeddings and head do not shrink).
2. ``quant.quantize_dynamic`` (int8 per channel, every Linear) vs float32, ours; torch.ao's
   ``quantize_dynamic`` of HF's model for reference (fbgemm, torch's default x86 engine, and qnnpack,
   whose uint8 activations are ours). Honest note: our exact int8 GEMM runs through float32 BLAS in
   provably exact blocks (``quant/qgemm.py``), so int8 saves memory, not time; torch has int8 kernels.
3. Bytes: int8 Linear layers (weights + scales + zero points + bias) over float32 (target ≤ 0.27×),
   Q8_0 and Q4_1 block weights, and the whole model (the word-embedding table stays float32).

Per timing row: medians of ``--repeats`` interleaved runs (each model one call per round, so load on a
shared machine hits them alike) and peak memory added by one forward. Printed, never asserted.
"""
from benchmarks.common import parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None

import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from models.bert import BertConfig, BertForSequenceClassification  # noqa: E402
from models.distillation import student_from_teacher  # noqa: E402
from quant import QuantizedLinear, quantize_dynamic  # noqa: E402
from quant.block_modules import BlockQuantizedLinear, quantize_weights_blocks  # noqa: E402

MINILM = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
              max_position_embeddings=512, num_labels=2)


def batch(B: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(16, 49, B)
    T = int(lengths.max())
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1000, 30000, (B, T)) * mask
    ids[:, 0] = 101
    return ids, mask


def interleaved(fns: dict, repeats: int) -> dict:
    """Median wall seconds of one call of each function, one call of each per round."""
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def ours_forward(model, ids, mask):
    def run():
        with minigrad.no_grad():
            return model(ids, attention_mask=mask).logits
    return run


def torch_forward(torch, model, ids, mask):
    t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)

    def run():
        with torch.no_grad():
            return model(input_ids=t_ids, attention_mask=t_mask).logits
    return run


def hf_models(torch, teacher, student):
    """HF's teacher and student holding our weights (saved and loaded through safetensors)."""
    try:
        import transformers
    except ImportError:
        return None
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars would break the tables
    with tempfile.TemporaryDirectory() as tmp:
        teacher.save_pretrained(f"{tmp}/teacher")
        student.save_pretrained(f"{tmp}/student")
        hf_teacher = transformers.BertForSequenceClassification.from_pretrained(f"{tmp}/teacher",
                                                                                local_files_only=True).eval()
        hf_student = transformers.DistilBertForSequenceClassification.from_pretrained(f"{tmp}/student",
                                                                                      local_files_only=True).eval()
    return hf_teacher, hf_student


def row(name, t, ref=None, mem=None, target=""):
    out = {"benchmark": name, "ms": f"{1e3 * t:.1f}", "target": target}
    if ref is not None:
        out["× of the first"] = f"{t / ref:.3f}"
    if mem is not None:
        out["peak MiB"] = f"{mem:.1f}"
    return out


def bench_distillation(torch, hf, teacher, student, ids, mask, repeats):
    fns = {"ours teacher": ours_forward(teacher, ids, mask), "ours student": ours_forward(student, ids, mask)}
    if hf is not None:
        fns["torch teacher"] = torch_forward(torch, hf[0], ids, mask)
        fns["torch student"] = torch_forward(torch, hf[1], ids, mask)
    mem = {name: peak_memory_mib(fn) for name, fn in fns.items()}
    t = interleaved(fns, repeats)
    rows = [row("minigrad: teacher, 6 layers (MiniLM)", t["ours teacher"], t["ours teacher"], mem["ours teacher"]),
            row("minigrad: student, 3 layers (DistilBERT from layers 0, 2, 4)", t["ours student"], t["ours teacher"],
                mem["ours student"], "≤ 0.55×")]
    if hf is not None:
        rows += [row("torch (HF): BertForSequenceClassification, 6 layers", t["torch teacher"], t["torch teacher"],
                     mem["torch teacher"]),
                 row("torch (HF): DistilBertForSequenceClassification, 3 layers", t["torch student"],
                     t["torch teacher"], mem["torch student"]),
                 row("minigrad / torch, teacher", t["ours teacher"], t["torch teacher"]),
                 row("minigrad / torch, student", t["ours student"], t["torch student"])]
    return rows


def bench_int8(torch, hf, teacher, ids, mask, repeats):
    q = quantize_dynamic(teacher)
    fns = {"float": ours_forward(teacher, ids, mask), "int8": ours_forward(q, ids, mask)}
    rows_extra = []
    if hf is not None:
        from torch.ao.quantization import per_channel_dynamic_qconfig
        from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

        fns["torch float"] = torch_forward(torch, hf[0], ids, mask)
        engine = torch.backends.quantized.engine
        for eng in [e for e in ("fbgemm", "qnnpack") if e in torch.backends.quantized.supported_engines]:
            torch.backends.quantized.engine = eng
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tq = torch_quantize_dynamic(hf[0], {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
                t = interleaved({"float": fns["torch float"], "int8": torch_forward(torch, tq, ids, mask)}, repeats)
            rows_extra.append(row(f"torch.ao dynamic int8 ({eng}), reference: torch float → int8", t["int8"],
                                  t["float"]))
        torch.backends.quantized.engine = engine
    t = interleaved({"float": fns["float"], "int8": fns["int8"]}, repeats)
    mem_f, mem_q = peak_memory_mib(fns["float"]), peak_memory_mib(fns["int8"])
    return [row("minigrad float32 classifier", t["float"], t["float"], mem_f),
            row("minigrad dynamic int8 (every Linear, per channel)", t["int8"], t["float"], mem_q,
                "report (int8 GEMM via exact float32 BLAS blocks)"), *rows_extra]


def linear_bytes(model) -> tuple[int, int]:
    """(bytes of the quantized Linear layers, bytes the same layers take in float32)."""
    quantized = float_bytes = 0
    for _, m in model.named_modules():
        if isinstance(m, (QuantizedLinear, BlockQuantizedLinear)):
            quantized += m.weight_bytes()
            float_bytes += 4 * (m.in_features * m.out_features + m.out_features)
    return quantized, float_bytes


def bench_bytes(teacher):
    from quant.model_quantization import model_size_bytes

    total = model_size_bytes(teacher)
    rows = []
    for name, model, target in (("dynamic int8, per channel", quantize_dynamic(teacher), "≤ 0.27×"),
                                ("dynamic int8, per tensor", quantize_dynamic(teacher, per_channel=False),
                                 "≤ 0.27×"),
                                ("Q8_0 blocks (8.5 bits/weight)", quantize_weights_blocks(teacher, "Q8_0"), ""),
                                ("Q4_1 blocks (5 bits/weight)", quantize_weights_blocks(teacher, "Q4_1"), "")):
        q, f = linear_bytes(model)
        size = model_size_bytes(model)
        rows.append({"scheme": name, "Linear MB": f"{q / 1e6:.2f}", "float32 Linear MB": f"{f / 1e6:.2f}",
                     "Linear bytes ×": f"{q / f:.4f}", "model MB": f"{size / 1e6:.2f}",
                     "float32 model MB": f"{total / 1e6:.2f}", "model bytes ×": f"{size / total:.4f}",
                     "target": target})
    return rows


def main(args) -> None:
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    teacher = BertForSequenceClassification(BertConfig(**MINILM), generator=minigrad.Generator(0)).eval()
    student = student_from_teacher(teacher)
    ids, mask = batch()
    hf = hf_models(torch, teacher, student) if torch is not None else None
    common = (f"MiniLM-shaped classifier, batch 32 × ≤ {ids.shape[1]} tokens, eval forward; {args.threads} "
              f"thread(s), medians of {args.repeats} interleaved runs")
    print_table(f"1. distilled student vs teacher ({common})", bench_distillation(torch, hf, teacher, student, ids,
                                                                                  mask, args.repeats),
                ["benchmark", "ms", "× of the first", "peak MiB", "target"])
    print_table(f"2. dynamic int8 vs float32 ({common})", bench_int8(torch, hf, teacher, ids, mask, args.repeats),
                ["benchmark", "ms", "× of the first", "peak MiB", "target"])
    print_table("3. bytes of the quantized Linear layers (weights + scales/zero points + bias) and of the model",
                bench_bytes(teacher), ["scheme", "Linear MB", "float32 Linear MB", "Linear bytes ×", "model MB",
                                       "float32 model MB", "model bytes ×", "target"])


if __name__ == "__main__":
    main(ARGS)
