"""Word2Vec benchmark: training speed in words per second, skip-gram and CBOW, same process.

    python -m benchmarks.word2vec [--threads 2] [--repeats 3] [--words 40000]

On the embedded pydoc corpus and on tiny shakespeare (``../shared/data/tinyshakespeare``, when
present), for the first ``--words`` in-vocabulary training words (min count 3, dim 64, window
5, K = 5 negatives, t = 1e-3, batches of 1024 examples, Adam):

* **minigrad, full epoch** — ``Word2Vec.train_epoch``: subsampling, window examples, noise
  draws and the fused ``NegativeSamplingLoss`` + Adam steps;
* the *training steps only* on the same pre-drawn batches, three ways:
  fused ``NegativeSamplingLoss`` (ours), the composite minigrad loss (embedding, sum,
  softplus — the gradcheck reference), and PyTorch (``nn.Embedding`` lookups + the same
  formula, ``torch.optim.Adam``).

Words/s counts corpus words (before subsampling), as word2vec.c does. Medians of ``--repeats``;
the machine may be shared, so expect noise. Ratios are time ratios (ours / torch); not asserted.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.common import median_time, parse_args, print_table


def _words_option() -> int:
    """``--words`` is ours; the other options go to ``benchmarks.common.parse_args``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--words", type=int, default=40_000)
    known, rest = parser.parse_known_args()
    sys.argv[1:] = rest
    return known.words


WORDS = _words_option() if __name__ == "__main__" else 40_000
ARGS = parse_args(__doc__.splitlines()[0], default_repeats=3) if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from models.text import load_default_corpus, load_text, tokenize_sentences  # noqa: E402
from models.word2vec import Word2Vec, negative_sampling_loss_reference  # noqa: E402

SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def _corpora() -> dict[str, list[list[str]]]:
    out = {"pydoc (embedded)": tokenize_sentences(load_default_corpus())}
    if SHAKESPEARE.is_file():
        out["tiny shakespeare"] = tokenize_sentences(load_text(SHAKESPEARE))
    return out


def _first_words(sentences, n: int) -> list[list[str]]:
    """The leading sentences holding about ``n`` words."""
    total, out = 0, []
    for s in sentences:
        if total >= n:
            break
        out.append(s)
        total += len(s)
    return out


def _torch_step(torch, w_in, w_out, optimizer):
    def step(contexts, weights, targets):
        h = (w_in(contexts) * weights.unsqueeze(-1)).sum(1)  # (B, D)
        s = (w_out(targets) * h.unsqueeze(1)).sum(2)  # (B, K+1)
        sign = torch.full_like(s[:1], -1.0)
        sign[0, 0] = 1.0
        loss = torch.nn.functional.softplus(-s * sign).sum() / s.shape[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def bench(sentences, mode: str, words: int, repeats: int, torch) -> dict:
    part = _first_words(sentences, words)
    minigrad.manual_seed(0)
    model = Word2Vec.build(part, 64, min_count=3, mode=mode)
    corpus = model.encode_corpus(part)
    n_words = int(corpus[0].shape[0])
    optimizer = minigrad.optim.Adam(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)

    t_epoch = median_time(lambda: model.train_epoch(corpus, optimizer, rng), repeats, warmup=1)
    batches = list(model.batches(corpus, 1024, np.random.default_rng(1)))

    def fused():
        for ctx, w, tgt in batches:
            loss = model.loss(ctx, w, tgt)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def composite():
        for ctx, w, tgt in batches:
            loss = negative_sampling_loss_reference(model.input_vectors, model.output_vectors, ctx, w, tgt)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    row = {"corpus": "", "mode": mode, "words": f"{n_words:,}", "examples": f"{sum(len(b[2]) for b in batches):,}",
           "epoch words/s": f"{n_words / t_epoch:,.0f}"}
    t_fused = median_time(fused, repeats, warmup=1)
    t_comp = median_time(composite, repeats, warmup=1)
    row["steps: fused words/s"] = f"{n_words / t_fused:,.0f}"
    row["composite words/s"] = f"{n_words / t_comp:,.0f}"
    row["fused/composite"] = f"{t_fused / t_comp:.2f}"
    if torch is not None:
        emb_in = torch.nn.Embedding(len(model.vocab), 64)
        emb_out = torch.nn.Embedding(len(model.vocab), 64)
        step = _torch_step(torch, emb_in, emb_out, torch.optim.Adam([emb_in.weight, emb_out.weight], lr=0.01))
        tb = [(torch.from_numpy(c), torch.from_numpy(w.astype(np.float32)), torch.from_numpy(t)) for c, w, t in batches]
        t_torch = median_time(lambda: [step(*b) for b in tb], repeats, warmup=1)
        row["torch words/s"] = f"{n_words / t_torch:,.0f}"
        row["fused/torch"] = f"{t_fused / t_torch:.2f}"
    return row


def main(args, words: int = WORDS) -> None:
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    rows = []
    for name, sentences in _corpora().items():
        for mode in ("skipgram", "cbow"):
            row = bench(sentences, mode, words, args.repeats, torch)
            row["corpus"] = name
            rows.append(row)
    columns = ["corpus", "mode", "words", "examples", "epoch words/s", "steps: fused words/s", "composite words/s",
               "fused/composite", "torch words/s", "fused/torch"]
    title = (f"Word2Vec training speed (dim 64, window 5, K=5, batch 1024, Adam), {args.threads} threads, "
             f"median of {args.repeats}" + ("" if torch is None else f"; torch {torch.__version__}"))
    print_table(title, rows, columns)
    print("(time ratios < 1: ours faster; 'epoch' includes subsampling, windows and noise sampling)")


if __name__ == "__main__":
    main(ARGS)
