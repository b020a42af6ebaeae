"""N-gram benchmark: ``models.ngram.NGramLM`` vs ``nltk.lm`` on tiny shakespeare, same process.

    python -m benchmarks.ngram [--corpus PATH] [--repeats 3] [--kn-sentences 10]

Both models get the same input: the corpus tokenised once by ``models.text.tokenize_sentences``
(not timed), split by contiguous chunks of 50 sentences into 90 % train / 10 % valid (seed 0),
padded with ``<s> <s> ... </s>``, the same vocabulary (every training word, ``</s>``, ``<unk>``).
nltk is fed the padded sentences' everygrams (orders 1..3, as ``padded_everygram_pipeline``
does), our model counts all orders 1..3 too.

Timed (median of ``--repeats``), for n = 3:

* Laplace — fit on the full train split + perplexity of the full valid split;
* Kneser–Ney (interpolated) — fit on the full train split + perplexity of the first
  ``--kn-sentences`` valid sentences: ``nltk.lm.KneserNeyInterpolated`` recomputes continuation
  counts by scanning every trigram context for each scored word (~0.1 s per word here), so the
  full valid split (~28k tokens) would take close to an hour. Our full-split time is printed too.

Perplexities are printed for reference; they differ slightly because the conventions differ:
nltk treats ``<s>`` as out-of-vocabulary in contexts (mapping it to ``<unk>``, so contexts with
``<unk>`` share counts with sentence starts), its KN uses a fixed discount 0.1 and no uniform
floor at the unigram level, ours estimates ``D`` from count-of-counts. Target: ≥ 20× faster.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import median_time, print_table

DEFAULT_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
ORDER = 3


def _prepare(path: Path):
    from models.text import load_text, tokenize_sentences, train_valid_test_split

    sentences = tokenize_sentences(load_text(path))
    train, valid, _ = train_valid_test_split(sentences, (0.9, 0.1, 0.0), seed=0, mode="contiguous", chunk_size=50)
    return train, valid


def _nltk_runner(cls_name: str, train, valid, vocab_words):
    """A closure that fits an nltk model and returns its perplexity on ``valid``."""
    from nltk import lm
    from nltk.util import everygrams, ngrams

    def pad(s):
        return ["<s>"] * (ORDER - 1) + list(s) + ["</s>"]

    valid_ngrams = [g for s in valid for g in ngrams(pad(s), ORDER)]

    def run() -> float:
        vocab = lm.Vocabulary(vocab_words, unk_cutoff=1, unk_label="<unk>")
        model = getattr(lm, cls_name)(ORDER, vocabulary=vocab)
        model.fit([everygrams(pad(s), max_len=ORDER) for s in train])
        return model.perplexity(valid_ngrams)

    return run, len(valid_ngrams)


def _ours_runner(smoothing: str, train, valid):
    from models.ngram import NGramLM

    def run() -> float:
        return NGramLM(ORDER, smoothing).fit(train).perplexity(valid)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="UTF-8 text (default: tiny shakespeare)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median reported)")
    parser.add_argument("--kn-sentences", type=int, default=10, help="valid sentences scored by KN (nltk is slow)")
    args = parser.parse_args()
    try:
        import nltk  # noqa: F401
    except ImportError:
        print("nltk is not installed: pip install nltk")
        return 1
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus}")
        return 1
    from models.ngram import NGramLM

    train, valid = _prepare(args.corpus)
    words = [w for w in NGramLM(ORDER, "laplace").fit(train).vocab.itos if w not in ("<s>", "<unk>")]
    kn_valid = valid[: args.kn_sentences]
    print(f"corpus {args.corpus.name}: train {len(train)} sentences / {sum(map(len, train))} tokens, "
          f"valid {len(valid)} / {sum(map(len, valid))}, |V| = {len(words) + 1}, n = {ORDER}, "
          f"median of {args.repeats}")
    cases = [
        ("Laplace: fit + ppl (full valid)", "laplace", "Laplace", valid),
        (f"Kneser-Ney: fit + ppl ({len(kn_valid)} valid sentences)", "kneser_ney", "KneserNeyInterpolated", kn_valid),
    ]
    rows = []
    for name, ours_name, nltk_name, text in cases:
        ours = _ours_runner(ours_name, train, text)
        ref, n_events = _nltk_runner(nltk_name, train, text, words)
        ppl: dict[str, float] = {}
        t_ours = median_time(lambda: ppl.__setitem__("ours", ours()), repeats=args.repeats, warmup=1)
        t_ref = median_time(lambda: ppl.__setitem__("nltk", ref()), repeats=args.repeats, warmup=0)
        rows.append({
            "benchmark": name, "tokens scored": n_events,
            "ours s": f"{t_ours:.3f}", "nltk s": f"{t_ref:.2f}", "speed-up": f"{t_ref / t_ours:.0f}x",
            "ppl ours / nltk": f"{ppl['ours']:.1f} / {ppl['nltk']:.1f}", "target": ">= 20x",
        })
    start = time.perf_counter()
    full_kn = _ours_runner("kneser_ney", train, valid)()
    rows.append({"benchmark": "Kneser-Ney: fit + ppl (full valid), ours only",
                 "tokens scored": sum(len(s) + 1 for s in valid),
                 "ours s": f"{time.perf_counter() - start:.3f}", "nltk s": "-", "speed-up": "-",
                 "ppl ours / nltk": f"{full_kn:.1f} / -", "target": ""})
    print_table("N-gram LM, n = 3: models.ngram vs nltk.lm (same process, same tokens)", rows,
                ["benchmark", "tokens scored", "ours s", "nltk s", "speed-up", "ppl ours / nltk", "target"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
