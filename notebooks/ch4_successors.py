# %% [markdown]
# # Chapter 4 — BERT's successors (§§ 4.3–4.9)
#
# The same encoder block, with other choices around it: GPT keeps the decoder (causal mask),
# RoBERTa trains BERT longer without NSP, ALBERT shares one layer across all L and factorises the
# embeddings,
#
# $$\underbrace{V \cdot H}_{\text{BERT}} \;\to\; \underbrace{V \cdot E + E \cdot H}_{\text{ALBERT}}, \qquad E \ll H,$$
#
# ELECTRA learns from every token by spotting replacements, DistilBERT is distilled to half the
# depth, and BigBird and the Reformer make attention linear in the length $n$ instead of $O(n^2)$
# (block-sparse: $O(n \cdot b)$ for blocks of $b$; LSH buckets: $O(n \cdot c)$ for chunks of $c$).
# Run as a script (`python notebooks/ch4_successors.py`) or open as a notebook.

# %%
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

import minigrad
from models.albert import AlbertConfig, parameter_breakdown
from models.bert import BertConfig
from models.bert.config import count_parameters
from models.plotting import save_figure, subplots
from models.recipes.long_attention import alternate, attention_step

OUT = Path(os.environ.get("WALKTHROUGH_OUT", "runs/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0

# %% [markdown]
# ## ALBERT's two savings, counted from the shapes (no weights allocated)

# %%
print(f"BERT-base   {count_parameters(BertConfig()):>12,} parameters")
for name, count in parameter_breakdown(AlbertConfig()).items():
    print(f"  ALBERT-base {name:<28} {count:>12,}")

# %% [markdown]
# ## Check: Hugging Face's RoBERTa loads here and gives the same logits
# RoBERTa numbers positions from `padding_idx + 1`; the check covers that detail.

# %%
if importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("torch") is not None:
    import torch
    import transformers

    from models.roberta import RobertaForMaskedLM

    sizes = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=40, pad_token_id=1, type_vocab_size=1)
    torch.manual_seed(SEED)
    ref = transformers.RobertaForMaskedLM(transformers.RobertaConfig(**sizes)).eval()
    with tempfile.TemporaryDirectory() as folder:
        ref.save_pretrained(folder)
        ours = RobertaForMaskedLM.from_pretrained(folder).eval()
    ids = np.random.default_rng(SEED).integers(3, 100, (2, 10))
    ids[1, 7:] = 1  # padding
    mask = (ids != 1).astype(np.int64)
    with minigrad.no_grad():
        logits = ours(ids, attention_mask=mask).logits.data
    expected = ref(torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.detach().numpy()
    diff = np.abs(logits - expected)[mask.astype(bool)].max()
    print(f"RoBERTa logits max |ours - HF| = {diff:.2e}")
    assert diff < 1e-4
else:
    print("transformers / PyTorch are not installed: skipping the check")

# %% [markdown]
# ## Dense vs block-sparse vs LSH attention as the sequence grows
# One layer's attention (2 heads of 64), forward, median of 3 runs taken in turns.

# %%
lengths = [512, 1024, 2048, 4096]  # BigBird needs (5 + 2·3) blocks of 64 and more
times = {kind: [] for kind in ("dense", "bigbird", "lsh")}
for n in lengths:
    medians = alternate([attention_step(kind, n, backward=False, seed=SEED, heads=2) for kind in times], repeats=3)
    for kind, t in zip(times, medians):
        times[kind].append(1000 * t)
    print(f"n={n:5d}: " + "  ".join(f"{kind} {times[kind][-1]:6.1f} ms" for kind in times))

# %%
fig, ax = subplots(figsize=(5, 3.4))
for kind, ys in times.items():
    ax.plot(lengths, ys, marker="o", label=kind)
ax.set(xlabel="sequence length n", ylabel="ms (log)", xscale="log", yscale="log", title="attention cost")
ax.legend()
save_figure(fig, OUT / "ch4_long_attention.png")
print("wrote", OUT / "ch4_long_attention.png")
