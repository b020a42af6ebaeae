"""BERT's successors: one pre-training step of RoBERTa, ALBERT and ELECTRA, minigrad vs Hugging Face
``transformers`` on torch CPU, same process, same threads.

    python -m benchmarks.bert_family [--threads 2] [--repeats 5] [--quick]

Every model: hidden 256, 4 layers, 4 heads, feed-forward 1024, batch 16 × 128 tokens, 15 % masked,
forward + backward + AdamW step, dropout on (training mode), each family's own vocabulary:

* RoBERTa (V 50,265): ``RobertaForMaskedLM``, masked LM only;
* ALBERT (V 30,000, E 128, one shared layer): ``AlbertForPreTraining``, MLM + sentence order;
* ELECTRA (V 30,522, E 128): generator ¼ as wide + discriminator sharing the embeddings, the generator's
  predictions sampled at the masked positions, loss = MLM + 50 · RTD (HF: its two classes wired the same way).

HF computes the MLM logits at every position (B·T·V); ours only at the masked positions (the labels are
known), as in ``benchmarks.bert``. Peak memory is the step's added resident memory (``benchmarks.common``),
measured before the timing. Target: ratio ≤ 1.0. Printed, never asserted.
"""
from benchmarks.common import compare_row, parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0], default_repeats=5) if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from benchmarks.bert import alternate  # noqa: E402  (ours then torch each round)
from models.bert_pretraining import mask_tokens, parameter_groups  # noqa: E402

H, L, A, I, B, T = 256, 4, 4, 1024, 16, 128


def inputs(vocab: int, cls: int, sep: int, mask_id: int, pad: int, seed: int = 0):
    """[CLS] A [SEP] B [SEP] rows of random ids, 15 % masked, and a sentence-order label per row."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(10, vocab, (B, T))
    ids[:, 0], ids[:, T // 2], ids[:, -1] = cls, sep, sep
    special = np.isin(ids, (cls, sep))
    masked, labels = mask_tokens(ids, special, vocab, mask_id, rng)
    return {"ids": ids, "masked": masked, "labels": labels, "mask": np.ones((B, T), dtype=np.int64),
            "types": (np.arange(T) > T // 2).astype(np.int64)[None].repeat(B, 0), "order": rng.integers(0, 2, B)}


def step(model_fn, optimizer):
    def run():
        optimizer.zero_grad()
        model_fn().backward()
        optimizer.step()

    return run


def roberta(torch, transformers):
    from models.roberta import RobertaConfig, RobertaForMaskedLM

    sizes = dict(vocab_size=50265, hidden_size=H, num_hidden_layers=L, num_attention_heads=A, intermediate_size=I,
                 max_position_embeddings=T + 2, type_vocab_size=1, pad_token_id=1)
    x = inputs(50265, 0, 2, 50264, 1)
    ours_model = RobertaForMaskedLM(RobertaConfig(**sizes), generator=minigrad.Generator(0)).train()
    torch.manual_seed(0)
    ref_model = transformers.RobertaForMaskedLM(transformers.RobertaConfig(**sizes)).train()
    t = {k: torch.from_numpy(v) for k, v in (("input_ids", x["masked"]), ("attention_mask", x["mask"]),
                                              ("labels", x["labels"]))}
    ours = step(lambda: ours_model(x["masked"], x["mask"], labels=x["labels"]).loss,
                minigrad.optim.AdamW(parameter_groups(ours_model, 0.01), lr=1e-4))
    ref = step(lambda: ref_model(**t).loss, torch.optim.AdamW(ref_model.parameters(), lr=1e-4))
    return ours, ref


def albert(torch, transformers):
    from models.albert import AlbertConfig, AlbertForPreTraining

    sizes = dict(vocab_size=30000, embedding_size=128, hidden_size=H, num_hidden_layers=L, num_attention_heads=A,
                 intermediate_size=I, max_position_embeddings=512)
    x = inputs(30000, 2, 3, 4, 0)
    ours_model = AlbertForPreTraining(AlbertConfig(**sizes), generator=minigrad.Generator(0)).train()
    torch.manual_seed(0)
    ref_model = transformers.AlbertForPreTraining(transformers.AlbertConfig(**sizes)).train()
    t = {k: torch.from_numpy(v) for k, v in (("input_ids", x["masked"]), ("attention_mask", x["mask"]),
                                              ("token_type_ids", x["types"]), ("labels", x["labels"]),
                                              ("sentence_order_label", x["order"]))}
    ours = step(lambda: ours_model(x["masked"], x["mask"], x["types"], labels=x["labels"],
                                   sentence_order_label=x["order"]).loss,
                minigrad.optim.AdamW(parameter_groups(ours_model, 0.01), lr=1e-4))
    ref = step(lambda: ref_model(**t).loss, torch.optim.AdamW(ref_model.parameters(), lr=1e-4))
    return ours, ref


def electra(torch, transformers):
    from models.electra import ElectraConfig, ElectraPretrainer, generator_config

    sizes = dict(vocab_size=30522, embedding_size=128, hidden_size=H, num_hidden_layers=L, num_attention_heads=A,
                 intermediate_size=I)
    x = inputs(30522, 101, 102, 103, 0)
    disc_config = ElectraConfig(**sizes)
    gen_config = generator_config(disc_config)
    pair = ElectraPretrainer(gen_config, disc_config, generator=minigrad.Generator(0)).train()
    rng = np.random.default_rng(1)
    batch = {"input_ids": x["masked"], "labels": x["labels"], "original_ids": x["ids"], "attention_mask": x["mask"],
             "token_type_ids": x["types"]}
    ours = step(lambda: pair(batch, rng)[0], minigrad.optim.AdamW(parameter_groups(pair, 0.01), lr=1e-4))

    torch.manual_seed(0)
    hf_disc = transformers.ElectraForPreTraining(transformers.ElectraConfig(**sizes)).train()
    hf_gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(**gen_config.to_dict())).train()
    hf_gen.electra.embeddings = hf_disc.electra.embeddings  # shared, as ours
    hf_gen.generator_lm_head.weight = hf_disc.electra.embeddings.word_embeddings.weight
    params = list({id(p): p for p in [*hf_disc.parameters(), *hf_gen.parameters()]}.values())
    t_masked, t_labels = torch.from_numpy(x["masked"]), torch.from_numpy(x["labels"])
    t_ids, t_mask = torch.from_numpy(x["ids"]), torch.from_numpy(x["mask"])
    chosen = t_labels != -100

    def ref_loss():
        gen = hf_gen(input_ids=t_masked, attention_mask=t_mask, labels=t_labels)
        with torch.no_grad():
            logits = gen.logits[chosen]
            gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-30)))
            replaced = t_ids.clone()
            replaced[chosen] = (logits + gumbel).argmax(-1)
        disc = hf_disc(input_ids=replaced, attention_mask=t_mask, labels=(replaced != t_ids).long())
        return gen.loss + 50.0 * disc.loss

    ref = step(ref_loss, torch.optim.AdamW(params, lr=1e-4))
    return ours, ref


def main(args) -> None:
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    rows = []
    for name, build in (("RoBERTa MLM step", roberta), ("ALBERT MLM+SOP step", albert),
                        ("ELECTRA gen¼+disc RTD step", electra)):
        ours, ref = build(torch, transformers)
        mem_ours, mem_ref = peak_memory_mib(ours), peak_memory_mib(ref)
        t_ours, t_ref = alternate(ours, ref, args.repeats)
        rows.append(compare_row(f"{name} H{H} L{L} b{B} T{T}", t_ours, t_ref, "<= 1.0", mem_ours, mem_ref))
    print_table(f"BERT's successors: minigrad vs transformers {transformers.__version__} on torch {torch.__version__} "
                f"CPU, {args.threads} threads, median of {args.repeats} (shared machine: noisy)", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "peak MiB (mg / torch)", "target"])


if __name__ == "__main__":
    main(ARGS)
