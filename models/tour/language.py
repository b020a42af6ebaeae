"""The tour's stops for chapters 1-3: N-grams, a GRU LM, attention seq2seq, the Transformer.

Every stop trains on the embedded data (CPython's documentation text, the synthetic reversal task)
for a few seconds, so the numbers are a glimpse: the recipe named in each stop's report runs it in full.
"""
from __future__ import annotations

import math
import time

import numpy as np

from models.tour import StopResult, TourContext

CORPUS_SENTENCES = 6000  # the first sentences of the embedded corpus: enough to show the effect, quick


def _corpus_split(ctx: TourContext, level: str = "word"):
    """Chapter 1's split (contiguous chunks of 20 sentences) of the start of the embedded corpus."""
    from models.text import load_default_corpus, tokenize_sentences, train_valid_test_split

    sentences = tokenize_sentences(load_default_corpus(), level=level)[:CORPUS_SENTENCES]
    return train_valid_test_split(sentences, seed=ctx.seed, mode="contiguous", chunk_size=20)


# ---------------------------------------------------------------------------------------------- § 1
def ngram(ctx: TourContext) -> StopResult:
    """Perplexity by order for add-one and Kneser-Ney smoothing, and a sentence sampled from the best."""
    from models.ngram import NGramLM

    train, valid, _ = _corpus_split(ctx)
    orders = (1, 2, 3, 4)
    table = {s: {n: NGramLM(n, s, min_count=2).fit(train) for n in orders} for s in ("laplace", "kneser_ney")}
    ppl = {s: {n: lm.perplexity(valid) for n, lm in row.items()} for s, row in table.items()}
    best_n = min(orders, key=lambda n: ppl["kneser_ney"][n])
    sentence = " ".join(table["kneser_ney"][best_n].generate(25, seed=ctx.seed, skip_unk=True))
    lines = ["| smoothing | " + " | ".join(f"n={n}" for n in orders) + " |", "|---|" + "---:|" * len(orders)]
    lines += [f"| {label} | " + " | ".join(f"{ppl[s][n]:,.1f}" for n in orders) + " |"
              for s, label in (("laplace", "Laplace (add-1)"), ("kneser_ney", "Kneser-Ney"))]
    lines = [f"Validation perplexity on {sum(map(len, valid)):,} words of the embedded corpus "
             f"(trained on {sum(map(len, train)):,}):", "", *lines, "",
             f"Sampled from Kneser-Ney n={best_n}: `{sentence}`", "",
             "Full run: `python -m models ngram` (every smoothing, n = 1..5)."]
    figures = []
    path = ctx.figure("ngram_perplexity.png")
    if path is not None:
        from models.plotting import save_figure, subplots

        fig, ax = subplots(figsize=(5, 3.4))
        for s, label in (("laplace", "Laplace (add-1)"), ("kneser_ney", "Kneser-Ney")):
            ax.plot(orders, [ppl[s][n] for n in orders], marker="o", label=label)
        ax.set(xlabel="n (order)", ylabel="validation perplexity (log)", yscale="log", xticks=orders,
               title="N-gram LMs: longer contexts need smoothing")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
        fig.tight_layout()
        save_figure(fig, path)
        figures.append((path, "N-gram perplexity by order"))
    kn = " / ".join(f"{ppl['kneser_ney'][n]:.0f}" for n in orders)
    summary = (f"N-gram: Kneser-Ney perplexity {kn} "
               f"(n=1..4); \"{' '.join(sentence.split()[:10])} ...\"")
    return StopResult(summary, lines, figures)


# ---------------------------------------------------------------------------------------------- § 1.4
def gru_lm(ctx: TourContext, windows: int = 120) -> StopResult:
    """A word-level GRU LM trained on a fixed number of truncated-BPTT windows (a few seconds; a step
    count, not a time budget, so the numbers are the same on every machine), against the unigram model."""
    import minigrad
    from models.ngram import NGramLM
    from models.rnn_lm import RNNLM, bptt_windows, evaluate, generate, token_stream
    from models.text import Vocab, batchify
    from models.rnn_lm import TruncatedBPTT
    from models.training import TrainConfig, Trainer

    train, valid, _ = _corpus_split(ctx)
    vocab = Vocab.build(train, min_freq=2)
    stream, valid_stream = token_stream(train, vocab), token_stream(valid, vocab)
    data = batchify(stream, 16)  # (B, L)
    minigrad.manual_seed(ctx.seed)
    model = RNNLM(len(vocab), 64, 128, cell="gru")
    optimizer = minigrad.optim.Adam(model.parameters(), lr=3e-3)
    loss = TruncatedBPTT()
    trainer = Trainer(model, optimizer, loss, TrainConfig(epochs=100, max_grad_norm=1.0, max_steps=windows),
                      state={"hidden": loss}, log=None, size_unit="tokens", progress=False)
    trainer.fit(lambda epoch: bptt_windows(data, 35))
    valid_ppl = math.exp(evaluate(model, valid_stream, vocab.pad_id))
    unigram = NGramLM(1, "laplace", min_count=2).fit(train).perplexity(valid)
    text = " ".join(generate(model, vocab, max_tokens=25, temperature=0.8, rng=ctx.seed))
    steps = trainer.global_step
    lines = [f"Embedding 64 → GRU 128 → softmax over {len(vocab):,} words, "
             f"{sum(p.data.size for p in model.parameters()):,} parameters, {steps} truncated-BPTT windows of "
             f"16 x 35 words: validation perplexity **{valid_ppl:,.1f}** vs the unigram model's "
             f"{unigram:,.1f}.", "", f"Sampled (temperature 0.8): `{text}`", "",
             "Full run: `python -m models gru-lm` (5 epochs: 34.7 on the whole corpus)."]
    summary = (f"GRU LM: perplexity {valid_ppl:.0f} after {steps} windows (unigram {unigram:.0f}); "
               f"\"{' '.join(text.split()[:8])} ...\"")
    return StopResult(summary, lines)


# ---------------------------------------------------------------------------------------------- § 2
def seq2seq(ctx: TourContext, epochs: int = 5) -> StopResult:
    """The book's AttnDecoderRNN learns to reverse strings; the attention heatmap is an anti-diagonal."""
    import minigrad
    from models.data.parallel import reversal_task
    from models.data.parallel_batching import ParallelDataset
    from models.seq2seq import build_seq2seq, evaluate, plot_attention, train_epoch

    train_pairs, valid_pairs = reversal_task(1500, 100, min_len=6, max_len=8, seed=ctx.seed)
    train = ParallelDataset.synthetic(train_pairs)
    valid = train.encode(valid_pairs)
    tv = train.tgt_vocab
    max_length = int(max(train.src_lengths.max(), valid.src_lengths.max()))
    model = build_seq2seq("book", len(train.src_vocab), len(tv), hidden_size=128, max_length=max_length,
                          dropout=0.0, bos_id=tv.bos_id, eos_id=tv.eos_id, pad_id=tv.pad_id,
                          src_pad_id=train.src_vocab.pad_id, seed=ctx.seed)
    optimizer = minigrad.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(1, epochs + 1):
        train_epoch(model, train, optimizer, epoch=epoch, seed=ctx.seed, batch_size=32)
    result = evaluate(model, valid)
    source = valid_pairs[0].source
    output = "".join(tv.decode(np.asarray(result["outputs"][0], dtype=np.int64), skip_specials=True))
    lines = [f"GRU encoder-decoder with the book's attention decoder (AttnDecoderRNN), hidden 128, {epochs} epochs "
             f"on 1,500 "
             f"strings of 6-8 letters: exact match **{100 * result['exact_match']:.0f} %** on 100 held-out "
             f"strings (token accuracy {100 * result['token_accuracy']:.0f} %).", "",
             f"`{source}` → `{output}` (reference `{valid_pairs[0].target}`).", "",
             "Output letter t looks at source letter S - t: the heatmap's anti-diagonal is the attention "
             "learning the alignment. Full run: `python -m models seq2seq --compare` (every decoder, 8 epochs)."]
    figures = []
    path = ctx.figure("seq2seq_attention.png")
    if path is not None:
        out_ids = result["outputs"][0] + [tv.eos_id]
        weights = model.attention_for(valid.sources[0], out_ids)
        plot_attention(path, weights, train.src_vocab.decode(valid.sources[0]), tv.decode(np.asarray(out_ids)),
                       title=f"{source} -> {output}")
        figures.append((path, "seq2seq attention on the reversal task"))
    summary = (f"seq2seq + attention: reversal exact match {100 * result['exact_match']:.0f} % after {epochs} "
               f"epochs; {source} -> {output}")
    return StopResult(summary, lines, figures)


# ---------------------------------------------------------------------------------------------- § 3
def transformer(ctx: TourContext, steps: int = 30) -> StopResult:
    """A small Transformer: training steps on the reversal task, then cached vs uncached greedy decoding."""
    import minigrad
    from models.data.parallel import reversal_task
    from models.data.parallel_batching import ParallelDataset
    from models.transformer import TransformerConfig, TransformerTranslator, make_optimizer

    train_pairs, valid_pairs = reversal_task(512, 16, min_len=6, max_len=8, seed=ctx.seed)
    data = ParallelDataset.synthetic(train_pairs)
    valid = data.encode(valid_pairs)
    tv = data.tgt_vocab
    config = TransformerConfig(len(data.src_vocab), len(tv), d_model=64, nhead=4, num_encoder_layers=2,
                               num_decoder_layers=2, dim_feedforward=128, dropout=0.0, max_len=32,
                               pad_id=tv.pad_id, bos_id=tv.bos_id, eos_id=tv.eos_id)
    model = TransformerTranslator(config, seed=ctx.seed)
    optimizer, schedule = make_optimizer(model, warmup_steps=10, factor=1.0)
    rng = np.random.default_rng(ctx.seed)
    losses = []
    for _ in range(steps):
        batch = data.batch(rng.choice(len(data), 32, replace=False))
        optimizer.zero_grad()
        loss = model.loss(batch.src, batch.tgt)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    src = valid.batch(np.arange(len(valid))).src
    with minigrad.no_grad():
        tic = time.perf_counter()
        cached = model.translate(src, use_cache=True)
        t_cached = time.perf_counter() - tic
        tic = time.perf_counter()
        uncached = model.translate(src, use_cache=False)
        t_uncached = time.perf_counter() - tic
    same = cached == uncached
    params = sum(p.data.size for p in model.parameters())
    lines = [f"Encoder-decoder Transformer (d_model 64, 4 heads, 2 + 2 layers, {params:,} parameters), Adam with "
             f"the Noam schedule: label-smoothed loss {losses[0]:.2f} → {losses[-1]:.2f} in {steps} steps.", "",
             f"Greedy decoding of {len(valid)} sources with the key/value cache gives "
             f"{'exactly the same tokens as' if same else 'DIFFERENT tokens from'} recomputing every step "
             f"({t_cached * 1000:.0f} ms vs {t_uncached * 1000:.0f} ms).", "",
             "Full run: `python -m models transformer` (the reversal task learned; `--data` for Multi30k)."]
    summary = (f"Transformer: loss {losses[0]:.2f} -> {losses[-1]:.2f} in {steps} steps; cached decoding "
               f"{'=' if same else '!='} uncached ({t_cached * 1000:.0f} vs {t_uncached * 1000:.0f} ms)")
    return StopResult(summary, lines)
