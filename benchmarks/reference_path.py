"""How much slower the plain-ops references are than the fused kernels (``minigrad/kernels/``), per model.

    python -m benchmarks.reference_path [--threads 1] [--repeats 5] [--quick]

The same model and batch, one training step (forward, backward), first on the kernels, then inside
``minigrad.kernels.reference()``. The references are for reading and checking, so they may be slow; this
table says how slow. Printed, never asserted.
"""
from benchmarks.common import parse_args, peak_memory_mib, print_table

ARGS = parse_args(__doc__.splitlines()[0], default_repeats=5) if __name__ == "__main__" else None

import numpy as np  # noqa: E402  (after thread setup)

import minigrad  # noqa: E402
from benchmarks.common import median_time  # noqa: E402
from minigrad import functional as F  # noqa: E402
from minigrad import kernels, nn  # noqa: E402


def _gru_lm():
    """GRU language model: Embedding(10000, 256) → GRU(256, 512) → Linear → cross-entropy; T 35, B 32."""
    rng = np.random.default_rng(0)
    emb, gru, out = nn.Embedding(10000, 256), nn.GRU(256, 512), nn.Linear(512, 10000)
    ids, tgt = rng.integers(0, 10000, (35, 32)), rng.integers(0, 10000, 35 * 32)

    def step():
        h, _ = gru(emb(ids))
        F.cross_entropy(out(h).reshape(-1, 10000), tgt).backward()
    return step


def _transformer_lm():
    """Transformer encoder LM: d 256, 4 heads, 4 layers, ff 1024, causal; B 16, T 128, vocabulary 10000."""
    rng = np.random.default_rng(0)
    emb = nn.Embedding(10000, 256)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True), 4)
    out = nn.Linear(256, 10000)
    ids, tgt = rng.integers(0, 10000, (16, 128)), rng.integers(0, 10000, 16 * 128)

    def step():
        h = enc(emb(ids), is_causal=True, mask=nn.Transformer.generate_square_subsequent_mask(128))
        F.cross_entropy(out(h).reshape(-1, 10000), tgt).backward()
    return step


def _bert_mlm():
    """A small BERT (H 256, 4 layers, 4 heads) masked-LM step, B 16, T 128, vocabulary 30522."""
    from models.bert import BertConfig, BertForMaskedLM

    rng = np.random.default_rng(0)
    config = BertConfig(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=1024, max_position_embeddings=128)
    model = BertForMaskedLM(config, generator=minigrad.Generator(0))
    ids = rng.integers(0, 30522, (16, 128))
    labels = np.where(rng.random((16, 128)) < 0.15, ids, -100)

    def step():
        model(ids, np.ones_like(ids), np.zeros_like(ids), labels=labels)["loss"].backward()
    return step


def _seq2seq_decoder():
    """The book's attention decoder, step by step: GRUCell(256, 256) + additive attention over S 20, B 32, 20 steps."""
    rng = np.random.default_rng(0)
    cell, att = nn.GRUCell(512, 256), nn.AdditiveAttention(256, 256, 256)
    keys = minigrad.Tensor(rng.standard_normal((32, 20, 256)).astype(np.float32), requires_grad=True)
    x = minigrad.Tensor(rng.standard_normal((32, 256)).astype(np.float32))

    def step():
        h, total = minigrad.zeros(32, 256), 0.0
        for _ in range(20):
            context, _ = att(h, keys)
            h = cell(minigrad.cat([x, context], 1), h)
            total = total + h.sum()
        total.backward()
    return step


MODELS = [("GRU LM train step (T35 B32, V10000)", _gru_lm),
          ("Transformer LM train step (d256 4L, B16 T128)", _transformer_lm),
          ("BERT MLM step (H256 4L, B16 T128, V30522)", _bert_mlm),
          ("attention decoder, 20 GRUCell steps (B32 S20)", _seq2seq_decoder)]


def main(args) -> None:
    rows = []
    for name, make in MODELS:
        times, peaks = [], []
        for reference in (False, True):
            with kernels.reference(reference):
                step = make()
                times.append(median_time(step, repeats=args.repeats, warmup=1))
                peaks.append(peak_memory_mib(step))
        peak = "" if None in peaks else f"{peaks[0]:.1f} / {peaks[1]:.1f}"
        rows.append({"model": name, "kernels ms": f"{times[0] * 1e3:,.1f}", "references ms": f"{times[1] * 1e3:,.1f}",
                     "slowdown": f"{times[1] / times[0]:.2f}x", "peak MiB (kernels / references)": peak})
    print_table(f"kernels vs plain-ops references, {args.threads} thread(s), median of {args.repeats}", rows,
                ["model", "kernels ms", "references ms", "slowdown", "peak MiB (kernels / references)"])


if __name__ == "__main__":
    main(ARGS)
