# %% [markdown]
# # Chapter 5 — learning from a few examples: meta-learning (§ 5.1–5.2) and GPT (§ 5.3)
#
# A meta-learner trains on *episodes*: N classes, K labelled support examples each, and queries
# to classify from the support alone. Prototypical Networks (Snell et al. 2017) average each
# class's support vectors into a prototype and pick the nearest:
#
# $$p_c = \frac1K \sum_{i: y_i = c} f(x_i), \qquad
#   p(y = c \mid q) = \mathrm{softmax}_c\big(-\lVert f(q) - p_c\rVert^2\big).$$
#
# A large language model does it without training, from examples in its prompt (in-context
# learning): "play = played . sing = sang . tell = told . click =". Run as a script
# (`python notebooks/ch5_fewshot_and_gpt.py`) or open as a notebook.

# %%
import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np

import minigrad
from models.data.arsc import EpisodeSampler, build_vocab, load_fewshot
from models.meta_learning import (EncoderConfig, PrototypicalConfig, PrototypicalNetwork, encode_episode,
                                  evaluate_tasks, prototypes)
from models.plotting import save_figure, subplots

OUT = Path(os.environ.get("WALKTHROUGH_OUT", "runs/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
SEED = 0

# %% [markdown]
# ## Prototypes are class means

# %%
support = np.random.default_rng(SEED).standard_normal((6, 3)).astype(np.float32)  # 2 classes x 3 shots
labels = np.array([0, 0, 0, 1, 1, 1])
protos = prototypes(minigrad.Tensor(support), labels, 2).data
assert np.allclose(protos, [support[:3].mean(0), support[3:].mean(0)], atol=1e-6)
print(protos.round(3))

# %% [markdown]
# ## Episodes on the embedded synthetic review family
# Each domain has its own sentiment words, so a new domain can only be read from its support set.

# %%
bench = load_fewshot(None, seed=SEED, shots=5)
vocab = build_vocab(bench.train_tasks)
encoder = EncoderConfig(vocab_size=len(vocab), pad_id=vocab.pad_id, embed_dim=64, hidden_size=32,
                        attention_dim=32, attention_hops=8)
model = PrototypicalNetwork(PrototypicalConfig(encoder), seed=SEED)
optimizer = minigrad.optim.Adam(model.parameters(), lr=3e-3)
sampler = EpisodeSampler(bench.train_tasks, 2, 5, 10, seed=SEED, skip_small=True)
test = [encode_episode(t, vocab, 64) for t in bench.test_tasks]
curve = [(0, float(np.mean(list(evaluate_tasks(model, test).values()))))]
for episode in range(1, 121):
    optimizer.zero_grad()
    loss, _ = model.episode_loss(encode_episode(sampler.sample(), vocab, 64))
    loss.backward()
    optimizer.step()
    if episode % 30 == 0:
        curve.append((episode, float(np.mean(list(evaluate_tasks(model, test).values())))))
        print(f"{episode} episodes: accuracy on {len(test)} unseen tasks {100 * curve[-1][1]:.0f} %")

# %% [markdown]
# ## Check: Hugging Face's GPT-2 loads here and gives the same logits

# %%
if importlib.util.find_spec("transformers") is not None and importlib.util.find_spec("torch") is not None:
    import torch
    import transformers

    from models.gpt import GPT2LMHeadModel

    torch.manual_seed(SEED)
    config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=4, bos_token_id=0,
                                     eos_token_id=0)
    ref = transformers.GPT2LMHeadModel(config).eval()
    with tempfile.TemporaryDirectory() as folder:
        ref.save_pretrained(folder)
        ours = GPT2LMHeadModel.from_pretrained(folder).eval()
    ids = np.random.default_rng(SEED).integers(0, 100, (2, 12))
    with minigrad.no_grad():
        logits = ours(ids).logits.data
    diff = np.abs(logits - ref(torch.tensor(ids)).logits.detach().numpy()).max()
    print(f"GPT-2 logits max |ours - HF| = {diff:.2e}")
    assert diff < 1e-4
else:
    print("transformers / PyTorch are not installed: skipping the check")

# %% [markdown]
# ## The book's prompt, answered by a real model (SmolLM2-135M, run here from its GGUF file)

# %%
try:
    from models.llama import LlamaForCausalLM, smollm2_path
    from models.text.gguf_tokenizer import GGUFTokenizer
    from quant.gguf import GGUFFile

    gguf = GGUFFile(smollm2_path())
except FileNotFoundError as err:
    print(err)
else:
    llm, tokenizer = LlamaForCausalLM.from_gguf(gguf), GGUFTokenizer.from_gguf(gguf)
    prompt = "play = played . sing = sang . tell = told . click ="
    ids = tokenizer.encode(prompt)
    out = llm.generate(np.asarray([ids]), max_new_tokens=3, do_sample=False)
    print(prompt, "->", repr(tokenizer.decode(out[0, len(ids):].tolist(), skip_special_tokens=True)))

# %%
fig, ax = subplots(figsize=(5, 3.4))
ax.plot(*zip(*curve), marker="o")
ax.set(xlabel="training episodes", ylabel="accuracy on unseen tasks", ylim=(0.4, 1.0),
       title="Prototypical Networks, 2-way 5-shot")
save_figure(fig, OUT / "ch5_fewshot.png")
print("wrote", OUT / "ch5_fewshot.png")
