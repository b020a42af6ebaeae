"""GPT-2 tokenizer benchmark: ``models.text.bpe`` vs HF ``GPT2Tokenizer`` and tiktoken, same process.

    python -m benchmarks.tokenizer [--threads 2] [--repeats 7] [--quick] [--corpus PATH]

All three read the same files (``../shared/data/gpt2_bpe``; tiktoken's ``Encoding`` is built from
them locally, nothing is downloaded) and encode tiny shakespeare (1.1 MB):

* **encode, one string** — the whole text in one call (``tokenizer.encode(text)``);
* **encode, empty word cache** — the same, the cache of pre-token ids cleared before each run
  (ours and HF cache them; tiktoken has no such cache);
* **encode, batch of lines** — its ~40k non-empty lines in one call (``tokenizer(lines)``; HF
  spreads a batch over ``--threads`` Rust threads, tiktoken's ``encode_batch`` too; ours is one
  Python thread);
* **decode** — the ids of the whole text back to the string;
* **train 3,000 merges** — ``train_bpe`` vs HF ``tokenizers``' ``ByteLevelBPETokenizer`` trainer
  (Rust, multi-threaded) on the same text, vocabulary 256 + 3,000 + 1.

MB/s counts the UTF-8 bytes of the text (for decode, of the text produced). Medians of ``--repeats``
runs; the machine may be shared, so expect noise. Printed, never asserted.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from benchmarks.common import median_time, parse_args, print_table

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _corpus_option() -> Path:
    """``--corpus`` is ours; the other options go to ``benchmarks.common.parse_args``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--corpus", type=Path, default=ROOT / "tinyshakespeare" / "input.txt")
    known, rest = parser.parse_known_args()
    sys.argv[1:] = rest
    return known.corpus


CORPUS = _corpus_option() if __name__ == "__main__" else ROOT / "tinyshakespeare" / "input.txt"
ARGS = parse_args(__doc__.splitlines()[0]) if __name__ == "__main__" else None
if ARGS is not None:  # before tokenizers starts its thread pool
    os.environ["RAYON_NUM_THREADS"] = str(ARGS.threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if ARGS.threads > 1 else "false"


def _load(directory: Path) -> dict:
    """{name: (tokenizer, seconds to load)} for ours, HF and tiktoken (the last two if installed)."""
    from models.text.bpe import ENDOFTEXT, GPT2Tokenizer

    loaded = {}
    start = time.perf_counter()
    loaded["ours"] = (GPT2Tokenizer.from_pretrained(directory), time.perf_counter() - start)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        start = time.perf_counter()
        hf = transformers.GPT2Tokenizer.from_pretrained(str(directory), local_files_only=True)
        loaded["HF"] = (hf, time.perf_counter() - start)
    except ImportError:
        pass
    try:
        import tiktoken
        from tiktoken.load import data_gym_to_mergeable_bpe_ranks
        from tiktoken_ext.openai_public import r50k_pat_str

        os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read the local files, write no cache
        start = time.perf_counter()
        ranks = data_gym_to_mergeable_bpe_ranks(str(directory / "merges.txt"), str(directory / "vocab.json"))
        encoding = tiktoken.Encoding("gpt2-local", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                                     special_tokens={ENDOFTEXT: 50256})
        loaded["tiktoken"] = (encoding, time.perf_counter() - start)
    except ImportError:
        pass
    return loaded


def _tasks(name: str, tokenizer, text: str, lines: list[str], ids: list[int], threads: int) -> dict:
    """{task: function} for one tokenizer; each returns ids or text."""
    if name == "tiktoken":
        return {"encode, one string": lambda: tokenizer.encode(text, allowed_special="all"),
                "encode, batch of lines": lambda: tokenizer.encode_batch(lines, num_threads=threads,
                                                                         allowed_special="all"),
                "decode": lambda: tokenizer.decode(ids)}
    if name == "HF":
        clear = tokenizer.backend_tokenizer.model._clear_cache
    else:
        clear = tokenizer.bpe._cache.clear
    return {"encode, one string": lambda: tokenizer.encode(text),
            "encode, empty word cache": lambda: (clear(), tokenizer.encode(text))[1],
            "encode, batch of lines": lambda: tokenizer(lines)["input_ids"],
            "decode": lambda: tokenizer.decode(ids)}


def _train_rows(text: str, repeats: int) -> dict[str, float]:
    from models.text.bpe import ENDOFTEXT
    from models.text.bpe_train import train_bpe

    size = 256 + 3000 + 1
    times = {"ours": median_time(lambda: train_bpe([text], size), repeats, warmup=0)}
    try:
        from tokenizers import ByteLevelBPETokenizer

        def hf_train():
            ByteLevelBPETokenizer().train_from_iterator([text], vocab_size=size, min_frequency=2,
                                                        special_tokens=[ENDOFTEXT], show_progress=False)

        times["HF"] = median_time(hf_train, repeats, warmup=0)
    except ImportError:
        pass
    return times


def main(args, corpus: Path = CORPUS) -> int:
    directory = ROOT / "gpt2_bpe"
    if not (directory / "vocab.json").is_file() or not corpus.is_file():
        print(f"needs {directory}/vocab.json + merges.txt and the corpus {corpus}")
        return 1
    text = corpus.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    megabytes = len(text.encode("utf-8")) / 1e6
    line_megabytes = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    loaded = _load(directory)
    ours = loaded["ours"][0]
    ids = ours.encode(text)
    names = list(loaded)
    results: dict[str, dict[str, float]] = {}
    for name, (tokenizer, _) in loaded.items():
        for task, fn in _tasks(name, tokenizer, text, lines, ids, args.threads).items():
            size = line_megabytes if "lines" in task else megabytes
            results.setdefault(task, {})[name] = size / median_time(fn, args.repeats, warmup=1)
    for name in names[1:]:  # the same ids, or the table would compare different work
        same = _tasks(name, loaded[name][0], text, lines, ids, 1)["encode, one string"]() == ids
        print(f"{name}: ids {'equal to' if same else 'DIFFERENT FROM'} ours on the whole text")
    rows = []
    for task, speeds in results.items():
        row = {"task": task, **{f"{n} MB/s": f"{speeds[n]:.2f}" if n in speeds else "-" for n in names}}
        for other in names[1:]:
            row[f"ours / {other}"] = f"{speeds['ours'] / speeds[other]:.2f}" if other in speeds else "-"
        rows.append(row)
    train = _train_rows(text, max(1, args.repeats // 3))
    row = {"task": "train 3,000 merges", **{f"{n} MB/s": f"{megabytes / train[n]:.2f}" if n in train else "-"
                                             for n in names}}
    if "HF" in train:
        row["ours / HF"] = f"{train['HF'] / train['ours']:.2f}"
    rows.append(row)
    rows.append({"task": "load vocab.json + merges.txt (s)", **{f"{n} MB/s": f"{t:.3f} s" for n, (_, t) in
                                                                 loaded.items()}})
    columns = ["task"] + [f"{n} MB/s" for n in names] + [f"ours / {n}" for n in names[1:]]
    print_table(f"GPT-2 tokenizer on {corpus.name} ({megabytes:.2f} MB, {len(ids):,} tokens, "
                f"{len(lines):,} lines), {args.threads} threads for HF / tiktoken batches, "
                f"median of {args.repeats}", rows, columns)
    print("(ratios > 1: ours faster; ours runs in one Python thread)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(ARGS))
