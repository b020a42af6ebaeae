"""Recipe ``python -m models gpt-pretrain``: pre-train a small GPT-2 as a causal language model (book § 4.3,
§ 5.3) on CPU — the embedded corpus by default, ``--corpus`` for another (e.g. tiny shakespeare).

1. **Text → tokens.** The corpus is cut once: its first 90 % train, the last 10 % validation. A
   byte-level BPE is learnt on the training part (``--vocab-size`` tokens; ``models.text.bpe_train``),
   or GPT-2's own 50,257-token files are used (``--tokenizer gpt2``, or a folder with ``vocab.json``
   + ``merges.txt``).
2. **Windows.** The token stream is cut into windows of ``--block-size`` + 1 tokens; the model reads
   the first T and predicts the last T (``labels = input_ids``, shifted inside the model). Each
   epoch shuffles the training windows with the seed.
3. **Training** with the project's loop (``models.training``): AdamW (no decay on biases and
   LayerNorm), linear warm-up then cosine decay to 10 % of ``--lr``, gradient accumulation, gradient
   clipping, the validation perplexity every ``--eval-every`` steps, checkpoints and ``--resume``.
4. **Afterwards**: text from a validation prompt with every decoding strategy of
   ``models.generation`` (greedy, beam search, temperature, top-k, the book's nucleus sampling
   ``top_p=0.9, top_k=0``), the perplexity curve and a heatmap of the causal attention.

Writes into ``--out``: ``checkpoint.safetensors``, ``model/`` (``config.json``, ``model.safetensors``,
``vocab.json``, ``merges.txt``: HF's ``GPT2LMHeadModel`` / ``GPT2Tokenizer`` open it),
``metrics.json``, ``perplexity.png``, ``attention.png``.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from models.recipes.common import (TEXT_CORPUS, TrainingFlags, add_common_arguments, corpus_name, positive_int,
                                   print_line, report_error, resume_if_asked, train_config, write_metrics)

CHECKPOINT = "checkpoint.safetensors"
TRAINING = TrainingFlags(epochs=3, checkpoint=CHECKPOINT)
GPT2_FILES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "gpt2_bpe"
# options that change the model or the data: a checkpoint only resumes under the same values
_SHAPING = ("corpus", "tokenizer", "vocab_size", "seed", "block_size", "n_embd", "n_layer", "n_head", "dropout",
            "batch_size", "grad_accum", "lr", "weight_decay", "warmup", "clip", "eval_every")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/gpt-pretrain", seed="the BPE ties, initialisation, dropout, "
                         "window order, sampling", corpus=TEXT_CORPUS, training=TRAINING)
    parser.add_argument("--tokenizer", default="train",
                        help="'train' (a BPE learnt on the training text), 'gpt2' (GPT-2's files in "
                             "../shared/data/gpt2_bpe) or a folder with vocab.json + merges.txt")
    parser.add_argument("--vocab-size", type=positive_int, default=1024, help="tokens of a trained BPE")
    parser.add_argument("--block-size", type=positive_int, default=64, help="context length T (n_positions)")
    parser.add_argument("--n-embd", type=positive_int, default=128, help="d_model")
    parser.add_argument("--n-layer", type=positive_int, default=4, help="decoder blocks")
    parser.add_argument("--n-head", type=positive_int, default=4, help="attention heads")
    parser.add_argument("--dropout", type=float, default=0.1, help="resid/embd/attn dropout")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="windows per micro-batch")
    parser.add_argument("--grad-accum", type=positive_int, default=2, help="micro-batches per optimizer step")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.1, help="AdamW weight decay (weights only)")
    parser.add_argument("--warmup", type=int, default=40, help="linear warm-up steps")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="validation every N optimizer steps (default: about 12 points per run)")
    parser.add_argument("--prompt", default=None, help="prompt of the samples (default: a validation line)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=40, help="length of each sample")
    parser.add_argument("--temperature", type=float, default=0.8, help="temperature of the sampled texts")
    parser.add_argument("--top-k", type=int, default=40, help="k of top-k sampling")
    parser.add_argument("--top-p", type=float, default=0.9, help="p of nucleus sampling (with top_k=0, as the book)")
    parser.add_argument("--repetition-penalty", type=float, default=1.2, help="CTRL's penalty in the nucleus sample")


def _check_args(args: argparse.Namespace) -> None:
    where = "gpt-pretrain recipe"
    if args.n_embd % args.n_head:
        raise ValueError(f"{where}: --n-embd {args.n_embd} must be a multiple of --n-head {args.n_head}")
    if not 0.0 <= args.dropout < 1.0:
        raise ValueError(f"{where}: --dropout must be in [0, 1), got {args.dropout}")
    if args.lr <= 0 or args.weight_decay < 0 or args.warmup < 0 or args.clip < 0 or args.eval_every < 0:
        raise ValueError(f"{where}: need --lr > 0 and --weight-decay, --warmup, --clip, --eval-every >= 0")
    if args.temperature <= 0 or args.top_k < 0 or not 0 < args.top_p <= 1 or args.repetition_penalty <= 0:
        raise ValueError(f"{where}: need --temperature > 0, --top-k >= 0, 0 < --top-p <= 1 and "
                         f"--repetition-penalty > 0")
    if args.max_new_tokens >= args.block_size:
        raise ValueError(f"{where}: --max-new-tokens {args.max_new_tokens} leaves no room for a prompt in "
                         f"--block-size {args.block_size} positions")
    if args.tokenizer == "train" and args.vocab_size < 257 + 1:
        raise ValueError(f"{where}: --vocab-size must be at least 258 (256 bytes, <|endoftext|>, one merge)")


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def split_text(text: str) -> tuple[str, str]:
    """First 90 % train, last 10 % validation, cut at a line break so no line is split."""
    cut = text.rfind("\n", 0, int(len(text) * 0.9)) + 1 or int(len(text) * 0.9)
    return text[:cut], text[cut:]


def load_tokenizer(choice: str, train_text: str, vocab_size: int):
    """A BPE learnt on ``train_text``, GPT-2's own files, or a tokenizer folder."""
    from models.text.bpe import GPT2Tokenizer
    from models.text.bpe_train import train_bpe

    if choice == "train":
        vocab, merges = train_bpe([train_text], vocab_size)
        return GPT2Tokenizer(vocab, merges)
    folder = GPT2_FILES if choice == "gpt2" else Path(choice)
    if not folder.is_dir():
        raise FileNotFoundError(f"gpt-pretrain recipe: no tokenizer folder {str(folder)!r} (--tokenizer)")
    return GPT2Tokenizer.from_pretrained(folder)


def windows(stream: np.ndarray, block: int) -> np.ndarray:
    """Non-overlapping windows of block + 1 tokens (the last token of one is the first of the next)."""
    n = (len(stream) - 1) // block
    if n < 1:
        raise ValueError(f"gpt-pretrain recipe: {len(stream)} tokens do not fill one window of --block-size "
                         f"{block} + 1; use a larger corpus or a smaller --block-size")
    starts = np.arange(n) * block
    return stream[starts[:, None] + np.arange(block + 1)]  # (n, T + 1)


class WarmupCosine:
    """lr factor at optimizer step s: s / W during the warm-up, then a cosine from 1 down to ``floor``
    at step S (GPT-3's schedule, Brown et al. 2020 §B):  floor + (1 − floor)(1 + cos(π (s − W)/(S − W)))/2."""

    def __init__(self, warmup: int, total: int, floor: float = 0.1):
        self.warmup, self.total, self.floor = int(warmup), max(int(total), 1), float(floor)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


def lm_loss(model, batch):
    """Mean next-token cross-entropy of a (B, T + 1) batch of windows: position t of the first T tokens
    predicts token t + 1, so every window scores T predictions. Returns (loss, tokens scored)."""
    from minigrad.nn.losses import cross_entropy

    logits = model(batch[:, :-1]).logits  # (B, T, V)
    B, T, V = logits.shape
    return cross_entropy(logits.reshape(B * T, V), batch[:, 1:].reshape(-1)), {"size": float(B * T)}


def validation_loss(model, data: np.ndarray, batch_size: int = 32) -> float:
    """Mean cross-entropy per token over every validation window."""
    total, count = 0.0, 0
    for i in range(0, len(data), batch_size):
        loss, sizes = lm_loss(model, data[i:i + batch_size])
        total += float(loss.data) * sizes["size"]
        count += sizes["size"]
    return total / count


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------
def samples(model, tokenizer, prompt_ids: list[int], args) -> dict[str, str]:
    """One continuation of the prompt per decoding strategy (book § 5.3)."""
    strategies = {
        "greedy": dict(),
        "beam search (4 beams)": dict(num_beams=4, length_penalty=1.0, early_stopping=True),
        f"temperature {args.temperature}": dict(do_sample=True, temperature=args.temperature, top_k=0),
        f"top-k {args.top_k}": dict(do_sample=True, top_k=args.top_k),
        f"nucleus top-p {args.top_p} (top_k=0, repetition penalty {args.repetition_penalty})":
            dict(do_sample=True, top_p=args.top_p, top_k=0, repetition_penalty=args.repetition_penalty),
    }
    ids = np.array([prompt_ids[-(args.block_size - args.max_new_tokens):]])
    out = {}
    for i, (name, options) in enumerate(strategies.items()):
        new = model.generate(ids, max_new_tokens=args.max_new_tokens, eos_token_id=[], seed=args.seed + i,
                             **options)[0, ids.shape[1]:]
        out[name] = tokenizer.decode(new.tolist())
    return out


def plot_perplexity(path: Path, history: dict, title: str) -> None:
    from models.plotting import save_figure, subplots

    fig, ax = subplots(1, 1, figsize=(6.5, 4.2))
    steps = history["steps"]
    ax.plot(steps["step"], np.exp(steps["loss"]), lw=0.6, alpha=0.6, label="train (per step)")
    evals = history["evals"]
    ax.plot([e["step"] for e in evals], [e["valid_ppl"] for e in evals], "o-", label="validation")
    ax.set(xlabel="optimizer step", ylabel="perplexity (log scale)", yscale="log", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def plot_attention(path: Path, model, tokenizer, ids: list[int]) -> None:
    """Head-averaged attention weights of the first and last layer on a validation snippet: zero above
    the diagonal, as the causal mask demands."""
    from models.plotting import save_figure, subplots
    from models.training import evaluating

    with evaluating(model):
        weights = model(np.array([ids]), output_attentions=True).attentions
    labels = [tokenizer.decode([i]).replace("\n", "\\n").replace(" ", "␣") for i in ids]
    layers = sorted({0, len(weights) - 1})
    fig, axes = subplots(1, len(layers), figsize=(6.2 * len(layers), 5.6), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        image = ax.imshow(weights[layer].data[0].mean(axis=0), cmap="viridis", vmin=0)
        ax.set_xticks(range(len(ids)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(ids)), labels, fontsize=7)
        ax.set(title=f"layer {layer + 1}: causal self-attention (mean of heads)", xlabel="key", ylabel="query")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)


def run(args: argparse.Namespace) -> int:
    import minigrad
    from models.gpt import GPT2Config, GPT2LMHeadModel
    from models.training import Trainer, attach_dropout_generator, evaluating, weight_decay_groups

    start = time.perf_counter()
    corpus = corpus_name(args)
    try:  # bad options or a bad corpus file: one clear line, no traceback
        _check_args(args)
        from models.text import load_corpus

        train_text, valid_text = split_text(load_corpus(args.corpus))
        tokenizer = load_tokenizer(args.tokenizer, train_text, args.vocab_size)
        streams = {name: np.array(tokenizer.bpe.encode(text), dtype=np.int64)
                   for name, text in (("train", train_text), ("valid", valid_text))}
        data = {name: windows(stream, args.block_size) for name, stream in streams.items()}
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    print(f"corpus: {corpus} — train {len(train_text):,} / valid {len(valid_text):,} characters; "
          f"{len(tokenizer):,}-token BPE ({args.tokenizer}): train {len(streams['train']):,} / valid "
          f"{len(streams['valid']):,} tokens ({len(train_text) / len(streams['train']):.2f} characters per token)")

    minigrad.manual_seed(args.seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=args.block_size, n_embd=args.n_embd,
                        n_layer=args.n_layer, n_head=args.n_head, resid_pdrop=args.dropout, embd_pdrop=args.dropout,
                        attn_pdrop=args.dropout, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config)
    dropout = minigrad.Generator(args.seed + 1)
    attach_dropout_generator(model, dropout)
    optimizer = minigrad.optim.AdamW(weight_decay_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.95))
    steps_per_epoch = math.ceil(len(data["train"]) / args.batch_size / args.grad_accum)
    total = steps_per_epoch * args.epochs  # the schedule's horizon: --max-steps or a time budget may stop sooner
    schedule = minigrad.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(min(args.warmup, total), total))
    args.eval_every = args.eval_every or max(1, total // 12)
    shuffle = np.random.default_rng(args.seed + 2)

    def batches(epoch: int):
        order = shuffle.permutation(len(data["train"]))
        return [data["train"][order[i:i + args.batch_size]] for i in range(0, len(order), args.batch_size)]

    def evaluate(m) -> dict:
        loss = validation_loss(m, data["valid"])
        return {"valid_loss": loss, "valid_ppl": math.exp(loss)}

    run_config = {k: (str(getattr(args, k)) if k == "corpus" else getattr(args, k)) for k in _SHAPING}
    trainer = Trainer(model, optimizer, lm_loss,
                      train_config(args, TRAINING, grad_accum_steps=args.grad_accum, max_grad_norm=args.clip or None,
                                   eval_every=args.eval_every),
                      scheduler=schedule, evaluate=evaluate, checkpoint_path=args.out / CHECKPOINT,
                      rngs={"dropout": dropout}, epoch_rngs={"shuffle": shuffle}, run_config=run_config,
                      name="gpt-pretrain recipe", log=print_line, size_unit="tokens")
    if not resume_if_asked(trainer, args):
        return 2
    print(f"model: GPT-2, {model.num_parameters():,} parameters (d {args.n_embd}, {args.n_layer} layers, "
          f"{args.n_head} heads, T {args.block_size}); {len(data['train'])} windows, {steps_per_epoch} optimizer "
          f"steps per epoch (batch {args.batch_size} x {args.grad_accum} accumulated)")
    trainer.fit(batches)

    with evaluating(model):
        valid_loss = validation_loss(model, data["valid"])
        prompt = tokenizer.bpe.encode(args.prompt) if args.prompt else streams["valid"][:12].tolist()
        texts = samples(model, tokenizer, prompt, args)
    bits_per_char = valid_loss * len(streams["valid"]) / len(valid_text) / math.log(2)
    print(f"\nvalidation: perplexity {math.exp(valid_loss):,.2f} per token, {bits_per_char:.3f} bits per character")
    print(f"prompt: {tokenizer.decode(prompt)!r}")
    for name, text in texts.items():
        print(f"  [{name}] {text!r}")

    folder = args.out / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    written = [str(args.out / CHECKPOINT), str(folder)]
    if not args.no_plot:
        plot_perplexity(args.out / "perplexity.png", trainer.history, f"GPT-2 pre-training on {Path(corpus).name}")
        plot_attention(args.out / "attention.png", model, tokenizer, streams["valid"][:min(20, args.block_size)].tolist())
        written += [str(args.out / "perplexity.png"), str(args.out / "attention.png")]
    metrics = {"corpus": corpus, "config": run_config, "model": config.to_dict(), "parameters": model.num_parameters(),
               "tokens": {k: int(len(v)) for k, v in streams.items()}, "valid_loss": valid_loss,
               "valid_ppl": math.exp(valid_loss), "valid_bits_per_char": bits_per_char,
               "evals": trainer.history["evals"], "stopped": trainer.stopped, "prompt": tokenizer.decode(prompt),
               "samples": texts, "seconds": round(time.perf_counter() - start, 2)}
    written.insert(0, str(write_metrics(args.out, metrics)))
    print(f"\nwrote {', '.join(written)} ({metrics['seconds']:.1f} s)")
    return 0
