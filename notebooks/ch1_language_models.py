# %% [markdown]
# # Chapter 1 — language models
#
# A language model gives a sentence a probability by the chain rule,
#
# $$P(w_1 \dots w_T) = \prod_t P(w_t \mid w_1 \dots w_{t-1}),$$
#
# and an **N-gram** model keeps only the last $n-1$ words of the history (§ 1.1–1.2).
# Counting is all it takes; smoothing gives unseen n-grams some probability. A **recurrent**
# LM (§ 1.4) summarises the whole history in a state $h_t = \mathrm{GRU}(E[w_t], h_{t-1})$.
#
# This file is a notebook (open it with Jupyter + jupytext or VS Code) and a plain script:
# `python notebooks/ch1_language_models.py`. Figures go to `runs/notebooks/`.

# %%
import importlib.util
import os
from pathlib import Path

import numpy as np

import minigrad
from models.ngram import NGramLM
from models.plotting import save_figure, subplots
from models.text import load_default_corpus, tokenize_sentences, train_valid_test_split

OUT = Path(os.environ.get("WALKTHROUGH_OUT", "runs/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0

# %% [markdown]
# ## N-gram models on the embedded corpus
# The corpus is CPython's own documentation (it ships with Python: no download). We keep the
# first 3,000 sentences and split them in contiguous chunks, as the `ngram` recipe does.

# %%
sentences = tokenize_sentences(load_default_corpus())[:3000]
train, valid, _ = train_valid_test_split(sentences, seed=SEED, mode="contiguous", chunk_size=20)
orders = [1, 2, 3, 4]
ppl = {s: [NGramLM(n, s, min_count=2).fit(train).perplexity(valid) for n in orders]
       for s in ("laplace", "kneser_ney")}
for s, row in ppl.items():
    print(f"{s:>10}: " + "  ".join(f"n={n} {p:7.1f}" for n, p in zip(orders, row)))
kn3 = NGramLM(3, "kneser_ney", min_count=2).fit(train)
print("sampled:", " ".join(kn3.generate(20, seed=SEED, skip_unk=True)))

# %% [markdown]
# ## Check: the maximum-likelihood estimate equals NLTK's
# $P_{ML}(w \mid h) = c(h, w) / c(h)$ — the same counts must give NLTK's `nltk.lm.MLE` scores.

# %%
tiny = [["a", "b", "a", "c"], ["a", "b", "b"], ["c", "a", "b"]]
ours = NGramLM(2, "mle", min_count=1).fit(tiny)
if importlib.util.find_spec("nltk") is not None:
    from nltk.lm import MLE
    from nltk.lm.preprocessing import padded_everygram_pipeline

    ref = MLE(2)
    ref.fit(*padded_everygram_pipeline(2, tiny))
    for h, w in (("a", "b"), ("b", "a"), ("a", "c")):
        print(f"P({w}|{h}): ours {ours.prob(w, (h,)):.4f}  NLTK {ref.score(w, [h]):.4f}")
        assert abs(ours.prob(w, (h,)) - ref.score(w, [h])) < 1e-12
else:
    print("NLTK is not installed (pip install nltk): skipping the check")

# %% [markdown]
# ## A GRU language model
# Embedding → GRU → softmax, trained with truncated back-propagation through time. A few dozen
# windows already beat the unigram model; `python -m models gru-lm` trains it properly.

# %%
from models.rnn_lm import RNNLM, TruncatedBPTT, bptt_windows, evaluate, generate, token_stream
from models.text import Vocab, batchify
from models.training import TrainConfig, Trainer

vocab = Vocab.build(train, min_freq=2)
data = batchify(token_stream(train, vocab), 16)  # (B, L)
minigrad.manual_seed(SEED)
model = RNNLM(len(vocab), 32, 64)
loss = TruncatedBPTT()
trainer = Trainer(model, minigrad.optim.Adam(model.parameters(), lr=3e-3), loss,
                  TrainConfig(epochs=5, max_grad_norm=1.0, max_steps=60), state={"hidden": loss}, log=None,
                  progress=False, size_unit="tokens")
trainer.fit(lambda epoch: bptt_windows(data, 35))
print(f"GRU LM validation perplexity {np.exp(evaluate(model, token_stream(valid, vocab), vocab.pad_id)):.1f} "
      f"vs unigram {ppl['laplace'][0]:.1f}")
print("sampled:", " ".join(generate(model, vocab, max_tokens=15, temperature=0.8, rng=SEED)))

# %% [markdown]
# ## Check: our GRU equals `torch.nn.GRU` on the same weights

# %%
if importlib.util.find_spec("torch") is not None:
    import torch

    gru = minigrad.nn.GRU(8, 16, batch_first=True)
    ref = torch.nn.GRU(8, 16, batch_first=True)
    ref.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in gru.state_dict().items()})
    x = np.random.default_rng(SEED).standard_normal((2, 5, 8)).astype(np.float32)
    out, _ = gru(minigrad.Tensor(x))
    diff = np.abs(out.data - ref(torch.tensor(x))[0].detach().numpy()).max()
    print(f"GRU output max |ours - torch| = {diff:.2e}")
    assert diff < 1e-5
else:
    print("PyTorch is not installed: skipping the check")

# %%
fig, ax = subplots(figsize=(5, 3.4))
for s, row in ppl.items():
    ax.plot(orders, row, marker="o", label=s)
ax.set(xlabel="n", ylabel="validation perplexity", yscale="log", title="N-gram LMs by order")
ax.legend()
save_figure(fig, OUT / "ch1_perplexity.png")
print("wrote", OUT / "ch1_perplexity.png")
