# %% [markdown]
# # Chapter 2 — attention: ask, look up, answer
#
# Without attention a decoder sees the source only through the encoder's last state. With
# attention each output step asks a query, scores every encoder state $\bar h_s$ and reads
#
# $$\alpha_t = \mathrm{softmax}_s\big(\mathrm{score}(q_t, \bar h_s)\big), \qquad c_t = \sum_s \alpha_{ts} \bar h_s .$$
#
# We train the book's `AttnDecoderRNN` on sequence reversal ("abc" → "cba") and look at $\alpha$.
# Run as a script (`python notebooks/ch2_attention.py`) or open as a notebook.

# %%
import importlib.util
import os
from pathlib import Path

import numpy as np

import minigrad
from minigrad import functional as F
from models.data.parallel import reversal_task
from models.data.parallel_batching import ParallelDataset
from models.seq2seq import build_seq2seq, evaluate, plot_attention, train_epoch

OUT = Path(os.environ.get("WALKTHROUGH_OUT", "runs/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0

# %% [markdown]
# ## Attention itself: softmax of scores, then a weighted sum
# Dot-product scores $q^\top k / \sqrt d$; the weights of each query sum to one.

# %%
rng = np.random.default_rng(SEED)
q, k, v = (rng.standard_normal((1, 1, 3, 4)).astype(np.float32) for _ in range(3))  # (B, heads, T, d)
out, weights = F.scaled_dot_product_attention(minigrad.Tensor(q), minigrad.Tensor(k), minigrad.Tensor(v),
                                               return_weights=True)
by_hand = np.exp(q @ k.swapaxes(-1, -2) / 2.0)
by_hand /= by_hand.sum(-1, keepdims=True)
print("weights:\n", weights.data[0, 0].round(3))
assert np.allclose(weights.data, by_hand, atol=1e-6) and np.allclose(out.data, by_hand @ v, atol=1e-6)

# %% [markdown]
# ## Check: equal to PyTorch's `scaled_dot_product_attention`

# %%
if importlib.util.find_spec("torch") is not None:
    import torch

    ref = torch.nn.functional.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)))
    print(f"max |ours - torch| = {np.abs(out.data - ref.numpy()).max():.2e}")
    assert np.allclose(out.data, ref.numpy(), atol=1e-6)
else:
    print("PyTorch is not installed: skipping the check")

# %% [markdown]
# ## The book's seq2seq on the reversal task
# The first output letter is the *last* input letter — hard for one fixed vector, easy to look up.

# %%
train_pairs, valid_pairs = reversal_task(1000, 50, min_len=5, max_len=7, seed=SEED)
train = ParallelDataset.synthetic(train_pairs)
valid = train.encode(valid_pairs)
tv = train.tgt_vocab
model = build_seq2seq("book", len(train.src_vocab), len(tv), hidden_size=96, max_length=8, dropout=0.0,
                      bos_id=tv.bos_id, eos_id=tv.eos_id, pad_id=tv.pad_id, src_pad_id=train.src_vocab.pad_id,
                      seed=SEED)
optimizer = minigrad.optim.Adam(model.parameters(), lr=3e-3)
for epoch in range(1, 5):
    train_epoch(model, train, optimizer, epoch=epoch, seed=SEED, batch_size=32)
    result = evaluate(model, valid)
    print(f"epoch {epoch}: exact match {100 * result['exact_match']:.0f} %")

# %% [markdown]
# ## Where each output letter looks
# Rows are output letters, columns source letters: reversal draws the anti-diagonal.

# %%
out_ids = result["outputs"][0] + [tv.eos_id]
weights = model.attention_for(valid.sources[0], out_ids)  # (output steps, source positions)
plot_attention(OUT / "ch2_attention.png", weights, train.src_vocab.decode(valid.sources[0]),
               tv.decode(np.asarray(out_ids)), title=f"{valid_pairs[0].source} -> reversed")
print("wrote", OUT / "ch2_attention.png")
