"""Recipe ``python -m models chat``: talk to SmolLM2-135M-Instruct, in NumPy, in its own chat format.

    python -m models chat                                   # type a message, Enter; /reset, /quit
    printf 'Hi!\\nWhat is 2 + 2?\\n' | python -m models chat  # or pipe the turns in

Each turn the whole conversation is written in ChatML (``<|im_start|>role\\n…<|im_end|>``, what HF's
``apply_chat_template`` gives from the file's template, the model's default system message first) and
the reply is generated until the model closes its turn with ``<|im_end|>``, printed as it comes. By
default it samples as SmolLM2's authors suggest (temperature 0.2, top-p 0.9; ``--seed``: the same
conversation gives the same replies); ``--greedy`` takes the most likely token. When the conversation
no longer fits the context, the oldest turns are dropped.
"""
from __future__ import annotations

import argparse
import sys

from models.recipes.common import report_error
from models.recipes.generate import TextStreamer, add_decoding_arguments, add_model_arguments, decoding_options, \
    load_model

COMMANDS = "/reset starts a new conversation, /quit (or end of input) leaves"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--system", default=None, help="the system message (default: the model's own)")
    add_model_arguments(parser)
    add_decoding_arguments(parser, max_new_tokens=256, do_sample=True, temperature=0.2, top_p=0.9)


def fit_context(tokenizer, messages: list[dict], room: int) -> tuple[list[int], list[dict]]:
    """The prompt ids of ``messages`` (assistant turn opened), dropping the oldest exchanges (a system
    message stays) until they fit ``room`` tokens; returns (ids, messages kept)."""
    kept = list(messages)
    while True:
        ids = tokenizer.apply_chat_template(kept, add_generation_prompt=True)
        turns = [i for i, m in enumerate(kept) if m["role"] != "system"]
        if len(ids) <= room or len(turns) <= 1:
            return ids, kept
        del kept[turns[0]]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    try:
        model, tokenizer = load_model(args)
        options = decoding_options(args)
        if options["num_beams"] != 1 or options["num_return_sequences"] != 1:
            raise ValueError("chat: one reply a turn, streamed: --num-beams and --num-return-sequences must be 1")
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    system = [{"role": "system", "content": args.system}] if args.system else []
    messages = list(system)
    interactive = sys.stdin.isatty()
    print(f"SmolLM2-135M-Instruct ({model.num_parameters():,} parameters, {args.weights} weights). {COMMANDS}.",
          flush=True)
    turn = 0
    while True:
        if interactive:
            print("\nyou> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() == "/quit":
            return 0
        text = line.rstrip("\n")
        if text.strip() == "/reset":
            messages = list(system)
            print("[conversation reset]", flush=True)
            continue
        if not text.strip():
            continue
        if not interactive:
            print(f"\nyou> {text}")
        messages.append({"role": "user", "content": text})
        room = model.max_positions - args.max_new_tokens
        ids, messages = fit_context(tokenizer, messages, room)
        if len(ids) > room:
            messages.pop()
            print(f"[that message alone is {len(ids)} tokens; the context holds {room} besides the reply]")
            continue
        print("model> ", end="", flush=True)
        streamer = TextStreamer(tokenizer)
        turn += 1
        model.generate(np.asarray([ids]), streamer=streamer, eos_token_id=[end_of_turn],
                       **{**options, "seed": args.seed + turn})
        reply = streamer.end()
        print(flush=True)
        messages.append({"role": "assistant", "content": reply})
