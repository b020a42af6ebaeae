"""Transformer translation benchmark: minigrad vs torch.nn.Transformer, same config, same weights.

    python -m benchmarks.translation [--threads 2] [--repeats 5] [--quick]

1. one training step of ``models.transformer.TransformerTranslator`` (d_model 256, 4 heads,
   3 + 3 layers, ff 1024, batch 32, source and target length 20, vocabularies 8000, tied output,
   dropout 0): embeddings·√d + sinusoidal positions, encoder, causal decoder, label-smoothed
   cross-entropy (ε 0.1, padding ignored), backward, Adam — against the same model written with
   ``torch.nn.Transformer`` and loaded with our weights (the first losses must agree);
2. greedy decoding of the 32 sentences (24 new tokens each): tokens per second with the
   key/value cache (one new position per step) and without it (full recomputation each step),
   and torch's ``nn.Transformer`` without a cache (it has none).
Target: train-step time ratio ≤ 1.3. Printed, never asserted. The machine is shared: medians.
"""
from benchmarks.common import compare_row, median_time, parse_args, print_table

ARGS = parse_args(__doc__.splitlines()[0], default_repeats=5) if __name__ == "__main__" else None

import math  # noqa: E402

import numpy as np  # noqa: E402

import minigrad  # noqa: E402
from models.transformer import TransformerConfig, TransformerTranslator  # noqa: E402

B, S, T, V, D, H, L, FF = 32, 20, 20, 8000, 256, 4, 3, 1024
PAD, BOS, EOS = 0, 1, 2
NEW_TOKENS = 24


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    src = rng.integers(3, V, (B, S))
    tgt = np.concatenate([np.full((B, 1), BOS), rng.integers(3, V, (B, T)), np.full((B, 1), EOS)], axis=1)
    # a little padding, as in real batches: the last 4 rows are 3 tokens shorter
    src[-4:, -3:] = PAD
    tgt[-4:, -3:] = PAD
    return src, tgt


def _ours():
    config = TransformerConfig(V, V, d_model=D, nhead=H, num_encoder_layers=L, num_decoder_layers=L,
                               dim_feedforward=FF, dropout=0.0, label_smoothing=0.1, pad_id=PAD, bos_id=BOS,
                               eos_id=EOS)
    return TransformerTranslator(config, seed=0)


def _torch_model(torch, ours: TransformerTranslator):
    """The same network in torch, with our weights."""
    nn = torch.nn

    class TorchTranslator(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_embed = nn.Embedding(V, D, padding_idx=PAD)
            self.tgt_embed = nn.Embedding(V, D, padding_idx=PAD)
            self.transformer = nn.Transformer(D, H, L, L, FF, 0.0, batch_first=True)
            self.out_bias = nn.Parameter(torch.zeros(V))
            self.register_buffer("pe", torch.from_numpy(ours.pos.pe.data[:64].copy()))

        def embed(self, table, ids):
            return table(ids) * math.sqrt(D) + self.pe[:ids.shape[1]]

        def forward(self, src, tgt_in):
            pad = src == PAD
            mask = nn.Transformer.generate_square_subsequent_mask(tgt_in.shape[1])
            h = self.transformer(self.embed(self.src_embed, src), self.embed(self.tgt_embed, tgt_in), tgt_mask=mask,
                                 tgt_is_causal=True, src_key_padding_mask=pad, memory_key_padding_mask=pad)
            return h @ self.tgt_embed.weight.T + self.out_bias  # tied output projection

        def loss(self, src, tgt):
            logits = self(src, tgt[:, :-1])
            return nn.functional.cross_entropy(logits.reshape(-1, V), tgt[:, 1:].reshape(-1), ignore_index=PAD,
                                               label_smoothing=0.1)

    ref = TorchTranslator()
    state = {k: torch.from_numpy(np.array(v.data)) for k, v in ours.state_dict(keep_vars=True).items()}
    ref.load_state_dict(state, strict=False)
    return ref


def bench_train_step(torch, repeats: int):
    src, tgt = _data()
    ours = _ours()
    ref = _torch_model(torch, ours)
    opt = minigrad.optim.Adam(ours.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    topt = torch.optim.Adam(ref.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    tsrc, ttgt = torch.from_numpy(src), torch.from_numpy(tgt)
    losses = []

    def step_ours():
        loss = ours.loss(src, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(("ours", loss.item()))

    def step_ref():
        loss = ref.loss(tsrc, ttgt)
        topt.zero_grad()
        loss.backward()
        topt.step()
        losses.append(("torch", loss.item()))

    step_ours()
    step_ref()
    first = (losses[0][1], losses[1][1])
    t_ours = median_time(step_ours, repeats=repeats, warmup=1)
    t_ref = median_time(step_ref, repeats=repeats, warmup=1)
    return t_ours, t_ref, first


def bench_decoding(torch, repeats: int):
    src, _ = _data(1)
    ours = _ours().eval()
    ref = _torch_model(torch, ours).eval()
    tsrc = torch.from_numpy(src)
    counts = {}

    def greedy(use_cache):
        def run():
            out = ours.greedy_decode(src, max_len=NEW_TOKENS, use_cache=use_cache)
            counts[use_cache] = sum(map(len, out))
            return out
        return run

    def torch_greedy():
        with torch.no_grad():
            pad = tsrc == PAD
            memory = ref.transformer.encoder(ref.embed(ref.src_embed, tsrc), src_key_padding_mask=pad)
            ys = torch.full((B, 1), BOS, dtype=torch.long)
            for _ in range(NEW_TOKENS):
                mask = torch.nn.Transformer.generate_square_subsequent_mask(ys.shape[1])
                h = ref.transformer.decoder(ref.embed(ref.tgt_embed, ys), memory, tgt_mask=mask, tgt_is_causal=True,
                                            memory_key_padding_mask=pad)
                logits = h[:, -1] @ ref.tgt_embed.weight.T + ref.out_bias
                ys = torch.cat([ys, logits.argmax(-1, keepdim=True)], dim=1)
        return ys

    same = greedy(True)() == greedy(False)()
    with torch.no_grad():
        agree = torch_greedy()[:, 1:].numpy().tolist()
    ours_rows = ours.greedy_decode(src, max_len=NEW_TOKENS)
    torch_same = all(r == a[:len(r)] for r, a in zip(ours_rows, agree))
    t_cache = median_time(greedy(True), repeats=repeats, warmup=1)
    t_full = median_time(greedy(False), repeats=repeats, warmup=1)
    t_torch = median_time(torch_greedy, repeats=repeats, warmup=1)
    return t_cache, t_full, t_torch, counts[True], counts[False], same, torch_same


def main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t_ours, t_ref, (l_ours, l_ref) = bench_train_step(torch, args.repeats)
    rows = [compare_row(f"train step d{D} h{H} {L}+{L}L ff{FF} b{B} len{S} V{V}", t_ours, t_ref, "<= 1.3")]
    print_table(f"Transformer translation train step: minigrad vs torch {torch.__version__} CPU, "
                f"{args.threads} threads, median of {args.repeats} (shared machine: noisy)", rows,
                ["benchmark", "minigrad ms", "torch ms", "ratio", "target"])
    print(f"first-step loss: minigrad {l_ours:.6f}, torch {l_ref:.6f} (same weights; |diff| {abs(l_ours - l_ref):.2e})")

    t_cache, t_full, t_torch, n_cache, n_full, same, torch_same = bench_decoding(torch, args.repeats)
    drows = [
        {"decoder": "minigrad, key/value cache", "ms": f"{t_cache * 1e3:.1f}", "tokens/s": f"{n_cache / t_cache:,.0f}",
         "vs no cache": f"{t_full / t_cache:.2f}x"},
        {"decoder": "minigrad, no cache (recompute prefix)", "ms": f"{t_full * 1e3:.1f}",
         "tokens/s": f"{n_full / t_full:,.0f}", "vs no cache": "1.00x"},
        {"decoder": "torch nn.Transformer, no cache", "ms": f"{t_torch * 1e3:.1f}",
         "tokens/s": f"{B * NEW_TOKENS / t_torch:,.0f}", "vs no cache": f"{t_full / t_torch:.2f}x"},
    ]
    print_table(f"Greedy decoding, batch {B}, source length {S}, up to {NEW_TOKENS} new tokens, median of "
                f"{args.repeats}", drows, ["decoder", "ms", "tokens/s", "vs no cache"])
    print(f"cached tokens == uncached tokens: {same}; minigrad tokens == torch tokens: {torch_same}")


if __name__ == "__main__":
    main(ARGS)
