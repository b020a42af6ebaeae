# %% [markdown]
# # Chapter 3 — the Transformer
#
# Attention is all there is (Vaswani et al. 2017): heads of
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\Big(\frac{QK^\top}{\sqrt{d_k}} + M\Big)V,$$
#
# sinusoidal positions $PE_{(p, 2i)} = \sin(p / 10000^{2i/d})$, residual blocks with LayerNorm, a
# causal mask $M$ in the decoder, and at decoding time a key/value cache so each new token costs one
# position. Run as a script (`python notebooks/ch3_transformer.py`) or open as a notebook.

# %%
import importlib.util
import os
import time
from pathlib import Path

import numpy as np

import minigrad
from models.data.parallel import reversal_task
from models.data.parallel_batching import ParallelDataset
from models.plotting import save_figure, subplots
from models.transformer import TransformerConfig, TransformerTranslator, check_cached_decoding, make_optimizer

OUT = Path(os.environ.get("WALKTHROUGH_OUT", "runs/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0

# %% [markdown]
# ## Check: `MultiheadAttention` equals `torch.nn.MultiheadAttention` on the same weights

# %%
mha = minigrad.nn.MultiheadAttention(16, 4, batch_first=True)
x = np.random.default_rng(SEED).standard_normal((2, 5, 16)).astype(np.float32)
causal = np.triu(np.ones((5, 5), dtype=bool), 1)  # True where a key is ignored (torch's convention)
ours, _ = mha(minigrad.Tensor(x), minigrad.Tensor(x), minigrad.Tensor(x), attn_mask=causal)
if importlib.util.find_spec("torch") is not None:
    import torch

    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    ref.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in mha.state_dict().items()})
    t = torch.tensor(x)
    expected = ref(t, t, t, attn_mask=torch.tensor(causal))[0].detach().numpy()
    print(f"max |ours - torch| = {np.abs(ours.data - expected).max():.2e}")
    assert np.allclose(ours.data, expected, atol=1e-5)
else:
    print("PyTorch is not installed: skipping the check")

# %% [markdown]
# ## A small translator learns a little of the reversal task
# Adam with β = (0.9, 0.98) and the Noam warm-up, label smoothing 0.1 (§ 5.3–5.4 of the paper).

# %%
pairs, valid_pairs = reversal_task(512, 16, min_len=5, max_len=7, seed=SEED)
data = ParallelDataset.synthetic(pairs)
tv = data.tgt_vocab
config = TransformerConfig(len(data.src_vocab), len(tv), d_model=32, nhead=4, num_encoder_layers=2,
                           num_decoder_layers=2, dim_feedforward=64, dropout=0.0, max_len=32,
                           pad_id=tv.pad_id, bos_id=tv.bos_id, eos_id=tv.eos_id)
model = TransformerTranslator(config, seed=SEED)
optimizer, schedule = make_optimizer(model, warmup_steps=10)
rng = np.random.default_rng(SEED)
losses = []
for step in range(40):
    batch = data.batch(rng.choice(len(data), 32, replace=False))
    optimizer.zero_grad()
    loss = model.loss(batch.src, batch.tgt)
    loss.backward()
    optimizer.step()
    schedule.step()
    losses.append(loss.item())
print(f"label-smoothed loss {losses[0]:.3f} -> {losses[-1]:.3f}")

# %% [markdown]
# ## Cached decoding gives exactly the tokens of full recomputation

# %%
model.eval()
src = data.encode(valid_pairs).batch(np.arange(len(valid_pairs))).src
for use_cache in (True, False):
    tic = time.perf_counter()
    model.translate(src, use_cache=use_cache)
    print(f"use_cache={use_cache}: {1000 * (time.perf_counter() - tic):.0f} ms")
assert check_cached_decoding(model, src)
print("cached == uncached:", True)

# %%
fig, (ax, ax2) = subplots(1, 2, figsize=(10, 3.4))
ax.plot(losses)
ax.set(xlabel="step", ylabel="loss", title="training loss")
from minigrad.nn.positional import sinusoidal_table

ax2.imshow(sinusoidal_table(32, 32), aspect="auto", cmap="RdBu")  # (position, dimension)
ax2.set(xlabel="dimension", ylabel="position", title="sinusoidal positional encoding")
fig.tight_layout()
save_figure(fig, OUT / "ch3_transformer.png")
print("wrote", OUT / "ch3_transformer.png")
