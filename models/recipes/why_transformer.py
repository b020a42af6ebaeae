"""Recipe ``python -m models why-transformer``: "why Transformer" (book § 3.3) on one table — three language
models of the same characters, each given the same wall-clock training time, scored in bits per character.

* **Kneser–Ney n-gram** (``models.ngram``): counts, for orders 2 … ``--max-order``; the best order on
  the held-out text is reported (counting takes seconds: the budget never binds).
* **GRU LM** (``models.rnn_lm``, book § 1.4): the state h_t carries the whole history, but one step
  at a time — T sequential steps per window, each a small matrix product.
* **GPT** (``models.gpt``, § 4.3): masked self-attention sees the last ``--block-size`` characters
  directly and computes all T positions of a window at once, in large matrix products.

The text is one character stream (tiny shakespeare by default): its first 90 % train, the last 10 %
held out. Every model predicts every held-out character from the ones before it; the GPT reads the
held-out text in windows that overlap by half, so each character has at least T/2 characters of
context. bits per character = −(1/N) Σ log₂ P(c_i | c_<i).

Both neural models stop at ``--time-budget`` (default 10 minutes each, evaluations included; a run
stopped early resumes with ``--resume`` and the budget counts both sessions). Writes
``metrics.json``, ``bits_per_char.png`` (held-out bits per character against training time) and the
checkpoints ``gru/`` and ``gpt/`` into ``--out``.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from models.recipes.common import (TrainingFlags, add_common_arguments, positive_int, print_line, report_error,
                                   write_metrics)

SHAKESPEARE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
TRAINING = TrainingFlags(epochs=1000, epochs_help="default: 1000, so that the time budget ends each run",
                         checkpoint="gru/checkpoint.safetensors and gpt/checkpoint.safetensors", time_budget=600.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/why-transformer", seed="initialisation, dropout, window order",
                         corpus=f"UTF-8 text file (default: {SHAKESPEARE})", training=TRAINING)
    parser.add_argument("--max-order", type=positive_int, default=8, help="largest n-gram order tried")
    parser.add_argument("--block-size", type=positive_int, default=128, help="GPT context and GRU BPTT window T")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="windows (GPT) / rows (GRU) per step")
    parser.add_argument("--gru-hidden", type=positive_int, default=512, help="GRU state size")
    parser.add_argument("--gpt-embd", type=positive_int, default=128,
                        help="GPT d_model (128: about the GRU's parameter count)")
    parser.add_argument("--gpt-layers", type=positive_int, default=4, help="GPT blocks")
    parser.add_argument("--gpt-heads", type=positive_int, default=4, help="GPT attention heads")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of both (Adam / AdamW)")
    parser.add_argument("--eval-every", type=positive_int, default=100, help="held-out evaluation every N steps")
    parser.add_argument("--eval-chars", type=positive_int, default=20_000,
                        help="held-out characters scored at each evaluation of the curves (all at the end)")


def char_streams(text: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The characters as ids (alphabet of the training part; held-out characters outside it get the id of
    the rarest training character — tiny shakespeare has none), first 90 % / last 10 %."""
    cut = int(len(text) * 0.9)
    train, held_out = text[:cut], text[cut:]
    alphabet = sorted(set(train))
    index = {c: i for i, c in enumerate(alphabet)}
    counts = {c: train.count(c) for c in alphabet}
    rare = index[min(counts, key=counts.get)]
    def encode(part: str) -> np.ndarray:
        return np.array([index.get(c, rare) for c in part], dtype=np.int64)

    return encode(train), encode(held_out), alphabet


def ngram_bits(train: np.ndarray, held_out: np.ndarray, max_order: int) -> dict[int, float]:
    """Bits per character of Kneser–Ney models of each order, each text one 'sentence' of characters."""
    from models.ngram import NGramLM

    train_tokens, held_tokens = [[str(i) for i in train]], [[str(i) for i in held_out]]
    out = {}
    for order in range(2, max_order + 1):
        model = NGramLM(order, "kneser_ney").fit(train_tokens)
        # perplexity over the N characters plus the end of the text: per character, as N ≫ 1
        out[order] = math.log2(model.perplexity(held_tokens)) * (len(held_out) + 1) / len(held_out)
    return out


def gpt_bits(model, stream: np.ndarray, block: int, batch_size: int = 32) -> float:
    """Bits per character of the GPT on ``stream`` (every character after the first): windows of block + 1
    characters every block/2; the first window scores all its positions, the others their second half,
    so every character is predicted from at least block/2 characters before it."""
    from models.training import evaluating

    stride = max(1, block // 2)
    last = max(0, len(stream) - block - 1)
    starts = sorted(set(range(0, last + 1, stride)) | {last})
    total, scored, done = 0.0, 0, 1  # done: stream[:done] is scored already (the first character is never)
    with evaluating(model):
        for i in range(0, len(starts), batch_size):
            group = starts[i:i + batch_size]
            batch = np.stack([stream[s:s + block + 1] for s in group])  # (b, T + 1); shorter streams: b = 1
            z = model(batch[:, :-1]).logits.data.astype(np.float64)  # (b, T, V)
            lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)  # (b, T)
            nll = lse - np.take_along_axis(z, batch[:, 1:, None], axis=-1)[..., 0]  # −log P(next), (b, T)
            for row, s in enumerate(group):
                first = max(done - s - 1, 0)  # position first predicts stream[s + first + 1], the first new one
                total += float(nll[row, first:].sum())
                scored += nll.shape[1] - first
                done = max(done, s + batch.shape[1])
    return total / scored / math.log(2)


def run(args: argparse.Namespace) -> int:
    import minigrad
    from models.gpt import GPT2Config, GPT2LMHeadModel
    from models.recipes.gpt_pretrain import WarmupCosine, lm_loss, windows
    from models.rnn_lm import RNNLM, TruncatedBPTT, bptt_windows, evaluate
    from models.text import batchify, load_text
    from models.training import Trainer, TrainConfig, attach_dropout_generator, weight_decay_groups

    start = time.perf_counter()
    path = args.corpus or SHAKESPEARE
    try:
        if not Path(path).is_file():
            raise FileNotFoundError(f"why-transformer recipe: no corpus at {str(path)!r} (tiny shakespeare is in "
                                    f"../shared/data/tinyshakespeare; or pass --corpus)")
        train, held_out, alphabet = char_streams(load_text(path))
        if len(held_out) < args.block_size + 2 or len(train) < 4 * args.block_size * args.batch_size:
            raise ValueError(f"why-transformer recipe: the corpus ({len(train) + len(held_out):,} characters) is too "
                             f"small for --block-size {args.block_size} and --batch-size {args.batch_size}")
        if args.gpt_embd % args.gpt_heads:
            raise ValueError("why-transformer recipe: --gpt-embd must be a multiple of --gpt-heads")
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    V, T, budget = len(alphabet), args.block_size, args.time_budget
    held_out = held_out[:1 + (len(held_out) - 1) // 16 * 16]  # 16 GRU evaluation rows, no padding
    curve_part = held_out[:1 + min(len(held_out) - 1, args.eval_chars) // 16 * 16]  # the curves, each evaluation
    print_line(f"corpus: {path} — {len(train):,} training / {len(held_out):,} held-out characters, alphabet of "
               f"{V}; each neural model trains for {budget or 0:.0f} s")

    t0 = time.perf_counter()
    ngram = ngram_bits(train, held_out, args.max_order)
    best_order = min(ngram, key=ngram.get)
    ngram_seconds = time.perf_counter() - t0
    print_line("Kneser-Ney n-gram, bits per character by order: "
               + ", ".join(f"{n}: {b:.3f}" for n, b in ngram.items()) + f" ({ngram_seconds:.0f} s for all)")

    results, curves = {}, {}
    settings = {"epochs": args.epochs, "time_budget": budget, "max_steps": args.max_steps, "max_grad_norm": 1.0,
                "eval_every": args.eval_every}

    def fit_model(name: str, model, optimizer, loss_fn, batches, bits, scheduler=None, **streams):
        out = args.out / name
        clock = {"start": time.perf_counter(), "base": 0.0}

        def held_out_bits(m) -> dict:  # on the first --eval-chars characters: the curve
            return {"bits_per_char": bits(m, curve_part), "seconds": clock["base"] + time.perf_counter() - clock["start"]}

        trainer = Trainer(model, optimizer, loss_fn, TrainConfig(**settings), scheduler=scheduler,
                          evaluate=held_out_bits, checkpoint_path=out / "checkpoint.safetensors",
                          run_config={"corpus": str(path), "seed": args.seed, "block_size": T,
                                      "batch_size": args.batch_size, "lr": args.lr, "model": name}, name=name,
                          log=print_line, size_unit="characters", **streams)
        if args.resume and (out / "checkpoint.safetensors").is_file():
            trainer.resume()
            clock["base"] = trainer.elapsed
        clock["start"] = time.perf_counter()
        trainer.fit(batches)
        final = {"bits_per_char": bits(model, held_out)}  # all the held-out text, after the budget
        results[name] = {"bits_per_char": final["bits_per_char"], "steps": trainer.global_step,
                         "seconds": round(trainer.elapsed, 1), "parameters": sum(p.data.size for p in model.parameters()),
                         "characters_seen": trainer.global_step * args.batch_size * T, "stopped": trainer.stopped}
        curves[name] = [(e["seconds"], e["bits_per_char"]) for e in trainer.history["evals"]]
        print_line(f"{name}: {final['bits_per_char']:.3f} bits per character after {trainer.global_step:,} steps, "
                   f"{trainer.elapsed:.0f} s")

    # the GRU LM: truncated BPTT over 32 parallel rows of the stream
    minigrad.manual_seed(args.seed)
    gru = RNNLM(V, 64, args.gru_hidden, 1, cell="gru", dropout=0.1)
    data = batchify(train, args.batch_size)
    bptt = TruncatedBPTT()
    try:
        fit_model("gru", gru, minigrad.optim.Adam(gru.parameters(), lr=args.lr), bptt, lambda epoch: bptt_windows(data, T),
              lambda m, part: evaluate(m, part, pad_id=-100, rows=16, bptt=256) / math.log(2),
              rngs={"minigrad": minigrad.default_generator}, state={"hidden": bptt})
        # the GPT: shuffled windows, AdamW, a warm-up of 20 steps, then a cosine over a fixed horizon of 10,000
        # steps (the budget decides how far along it a run gets: in 10 minutes the rate stays near its peak)
        minigrad.manual_seed(args.seed)
        config = GPT2Config(vocab_size=V, n_positions=T, n_embd=args.gpt_embd, n_layer=args.gpt_layers,
                            n_head=args.gpt_heads, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
                            bos_token_id=None, eos_token_id=None)
        gpt = GPT2LMHeadModel(config)
        dropout = minigrad.Generator(args.seed + 1)
        attach_dropout_generator(gpt, dropout)
        optimizer = minigrad.optim.AdamW(weight_decay_groups(gpt, 0.1), lr=args.lr, betas=(0.9, 0.95))
        schedule = minigrad.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(20, 10_000))
        train_windows, shuffle = windows(train, T), np.random.default_rng(args.seed + 2)

        def gpt_batches(epoch: int):
            order = shuffle.permutation(len(train_windows))
            return [train_windows[order[i:i + args.batch_size]] for i in range(0, len(order), args.batch_size)]

        fit_model("gpt", gpt, optimizer, lm_loss, gpt_batches, lambda m, part: gpt_bits(m, part, T), scheduler=schedule,
              rngs={"dropout": dropout}, epoch_rngs={"shuffle": shuffle})
    except ValueError as err:  # a checkpoint made with other options
        return report_error(err)

    rows = [("Kneser-Ney n-gram", f"order {best_order}", ngram[best_order], round(ngram_seconds, 1)),
            ("GRU LM", f"1 layer, {args.gru_hidden} units, BPTT {T}", results["gru"]["bits_per_char"],
             results["gru"]["seconds"]),
            ("GPT", f"{args.gpt_layers} layers, d {args.gpt_embd}, {args.gpt_heads} heads, T {T}",
             results["gpt"]["bits_per_char"], results["gpt"]["seconds"])]
    table = ["| model | size | held-out bits per character | training seconds |", "|---|---|---|---|"]
    table += [f"| {name} | {size} | {bits:.3f} | {seconds:,.0f} |" for name, size, bits, seconds in rows]
    print_line("\n" + "\n".join(table))
    if not args.no_plot:
        from models.plotting import save_figure, subplots

        fig, ax = subplots(1, 1, figsize=(6.5, 4.2))
        for name, points in curves.items():
            if points:
                ax.plot(*zip(*points), "o-", ms=3, label={"gru": "GRU LM", "gpt": "GPT"}[name])
        ax.axhline(ngram[best_order], ls="--", color="gray", label=f"Kneser-Ney {best_order}-gram")
        ax.set(xlabel="training time (s)", ylabel="held-out bits per character",
               title=f"why Transformer: {Path(path).name}, same time budget")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, args.out / "bits_per_char.png")
    metrics = {"corpus": str(path), "alphabet": len(alphabet), "characters": {"train": len(train),
               "held_out": len(held_out)}, "time_budget": budget, "ngram_bits_per_char": ngram,
               "ngram_best_order": best_order, "models": results, "curves": curves, "table": table,
               "seconds": round(time.perf_counter() - start, 1)}
    print_line(f"wrote {write_metrics(args.out, metrics)} ({metrics['seconds']:.0f} s)")
    return 0
