"""The book map: one row per section of 『안녕, 트랜스포머』 — what it is, the code, the recipe, the test
that checks it and the reference it is checked against. The README's "Book map" table is generated
from ``BOOK_MAP`` (``book_map_markdown``); ``tests/test_book_map.py`` checks that the README holds
exactly this text, that every file and recipe named exists, and that each test named really imports
the reference package it claims. After editing the table:

    python -m models.book_map --readme README.md     # rewrite the README's table in place
"""
from __future__ import annotations

import dataclasses
import sys


@dataclasses.dataclass(frozen=True)
class Section:
    section: str  # the book's section
    what: str
    code: tuple[str, ...]  # files or folders, from the repository root
    recipe: str | None  # python -m models <recipe>
    tests: tuple[str, ...]
    references: tuple[str, ...]  # keys of REFERENCES, or free text (a book number, exact math)


# reference shown in the table -> the module its tests import (pytest.importorskip) to compare with it
REFERENCES = {
    "PyTorch": "torch", "HF transformers": "transformers", "NLTK": "nltk", "sacrebleu": "sacrebleu",
    "scikit-learn": "sklearn", "SciPy": "scipy", "sentencepiece": "sentencepiece", "tiktoken": "tiktoken",
    "gguf": "gguf", "HF tokenizers": "tokenizers",
}

BOOK_MAP: tuple[Section, ...] = (
    Section("1.1-1.2", "N-gram language models, every smoothing", ("models/ngram.py",), "ngram",
            ("tests/test_ngram.py",), ("NLTK",)),
    Section("1.3", "Word2Vec: skip-gram / CBOW, negative sampling", ("models/word2vec.py",), "word2vec",
            ("tests/test_word2vec.py",), ("gradient check", "hand-computed losses")),
    Section("1.3", "feed-forward neural LM (Bengio 2003)", ("models/nplm.py",), "nplm",
            ("tests/test_nplm.py",), ("its equation in NumPy", "the N-gram events")),
    Section("1.4", "RNN / GRU language model, truncated BPTT", ("models/rnn_lm.py", "minigrad/nn/rnn.py"),
            "gru-lm", ("tests/test_rnn.py", "tests/test_rnn_lm.py"), ("PyTorch",)),
    Section("1.5", "sentence generation: greedy, temperature, top-k, nucleus", ("models/decoding.py",), "gru-lm",
            ("tests/test_decoding.py",), ("exact distributions",)),
    Section("2", "seq2seq with attention (book, Bahdanau, Luong)", ("models/seq2seq.py",), "seq2seq",
            ("tests/test_seq2seq.py", "tests/test_attention.py"), ("PyTorch",)),
    Section("2", "beam search", ("models/beam_search.py",), "seq2seq", ("tests/test_beam_search.py",),
            ("known best answers",)),
    Section("3", "the Transformer: multi-head attention, KV cache, Noam schedule", ("models/transformer.py",),
            "transformer", ("tests/test_transformer.py", "tests/test_transformer_translation.py"), ("PyTorch",)),
    Section("3", "BLEU and the other metrics", ("models/metrics/",), "transformer", ("tests/test_metrics.py",),
            ("sacrebleu", "NLTK", "scikit-learn", "SciPy")),
    Section("3.3", "why the Transformer: n-gram vs GRU vs GPT in bits per character",
            ("models/recipes/why_transformer.py",), "why-transformer", ("tests/test_gpt2.py",), ("HF transformers",)),
    Section("4.1", "WordPiece tokenizer and its trainer", ("models/text/wordpiece.py",), "embed",
            ("tests/test_wordpiece.py",), ("HF transformers",)),
    Section("4.2", "BERT (HF names, from_pretrained / save_pretrained), MiniLM embeddings", ("models/bert/",),
            "embed", ("tests/test_bert.py",), ("HF transformers", "PyTorch")),
    Section("4.2.6", "BERT pre-training data and MLM + NSP", ("models/bert_pretraining.py",
            "models/pretraining_data.py"), "bert-pretrain", ("tests/test_bert_pretraining.py",
            "tests/test_pretraining_data.py"), ("scikit-learn", "Google's masking rules")),
    Section("4.3", "GPT / GPT-2 decoder and generation", ("models/gpt/", "models/generation.py"), "gpt-pretrain",
            ("tests/test_gpt2.py", "tests/test_generation.py"), ("HF transformers", "PyTorch")),
    Section("4.3", "byte-level BPE tokenizer and trainer", ("models/text/bpe.py",), "gpt-pretrain",
            ("tests/test_bpe.py",), ("HF transformers", "tiktoken", "HF tokenizers")),
    Section("4.4", "RoBERTa", ("models/roberta.py",), "roberta-pretrain", ("tests/test_roberta.py",),
            ("HF transformers",)),
    Section("4.5", "ALBERT and its SentencePiece tokenizer", ("models/albert.py", "models/text/sentencepiece.py"),
            "albert-pretrain", ("tests/test_albert.py", "tests/test_sentencepiece.py"),
            ("HF transformers", "sentencepiece")),
    Section("4.6", "ELECTRA: generator + discriminator", ("models/electra.py",), "electra-pretrain",
            ("tests/test_electra.py",), ("HF transformers",)),
    Section("4.7", "DistilBERT and knowledge distillation", ("models/distilbert.py", "models/distillation.py"),
            "distill", ("tests/test_distilbert.py", "tests/test_distillation.py"), ("HF transformers", "PyTorch")),
    Section("4.8", "BigBird block-sparse attention", ("models/bigbird.py", "minigrad/kernels/block_sparse.py"),
            "long-attention", ("tests/test_bigbird.py", "tests/test_long_attention_kernels.py"),
            ("HF transformers",)),
    Section("4.9", "Reformer: LSH attention, reversible layers", ("models/reformer.py", "minigrad/kernels/lsh.py"),
            "long-attention", ("tests/test_reformer.py", "tests/test_long_attention_kernels.py"),
            ("HF transformers",)),
    Section("4.10", "fine-tuning on GLUE / SICK, the task table", ("models/finetune.py", "models/data/glue.py"),
            "finetune", ("tests/test_finetune.py", "tests/test_glue.py"), ("the official GLUE layout",)),
    Section("4.10", "extractive QA on SQuAD 2.0", ("models/qa.py", "models/data/squad.py"), "finetune",
            ("tests/test_qa.py", "tests/test_squad_data.py"), ("the official SQuAD v2.0 rules",)),
    Section("5.1-5.2", "meta-learning: Induction Network, Prototypical Networks, MAML",
            ("models/meta_learning/", "models/data/arsc.py"), "fewshot-reviews",
            ("tests/test_meta_learning.py", "tests/test_arsc.py"), ("PyTorch",)),
    Section("5.3", "in-context learning with SmolLM2 (a Llama from its GGUF file)",
            ("models/llama.py", "models/text/gguf_tokenizer.py"), "fewshot",
            ("tests/test_llama.py", "tests/test_smollm2.py"), ("HF transformers", "gguf")),
    Section("appendix", "int8 quantization: dynamic, static, exact int8 GEMM", ("quant/",), "quantize",
            ("tests/test_quant_math.py", "tests/test_quant_modules.py", "tests/test_quant_observers.py"),
            ("PyTorch",)),
    Section("appendix", "GGUF files and ggml block formats", ("quant/gguf.py", "quant/blocks.py"), "generate",
            ("tests/test_gguf.py",), ("gguf",)),
)

BEGIN = "<!-- book map: generated from models/book_map.py (python -m models.book_map --readme README.md) -->"
END = "<!-- end of the book map -->"


def _code(paths) -> str:
    return ", ".join(f"`{p}`" for p in paths)


def book_map_markdown(rows=BOOK_MAP) -> str:
    """The README's book map: a lead line and one table row per section."""
    lines = ["**Book map.** Each section of the book, its code, the recipe that runs it "
             "(`python -m models <recipe>`), the tests that check it and what they compare with. "
             "`python -m models demo` stops at every chapter; `notebooks/` holds one walkthrough per chapter "
             "(a `# %%`-cell file: open it as a notebook with jupytext / VS Code, or run it as a script).", "",
             "| § | what it is | code | recipe | tests | checked against |", "|---|---|---|---|---|---|"]
    for r in rows:
        tests = ", ".join(f"`{t.removeprefix('tests/')}`" for t in r.tests)
        lines.append(f"| {r.section} | {r.what} | {_code(r.code)} | {f'`{r.recipe}`' if r.recipe else ''} | "
                     f"{tests} | {', '.join(r.references)} |")
    return "\n".join(lines)


def readme_section(text: str) -> str | None:
    """The generated part of a README text (between the markers), or None when the markers are missing."""
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def with_book_map(text: str) -> str:
    """``text`` (a README) with the part between the markers replaced by ``book_map_markdown()``."""
    if readme_section(text) is None:
        raise ValueError(f"with_book_map: the README has no {BEGIN!r} ... {END!r} markers")
    head, rest = text.split(BEGIN, 1)
    return f"{head}{BEGIN}\n\n{book_map_markdown()}\n\n{END}{rest.split(END, 1)[1]}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["--readme"] and len(argv) == 2:
        from pathlib import Path

        from models.text import atomic_write_text

        path = Path(argv[1])
        atomic_write_text(path, with_book_map(path.read_text(encoding="utf-8")))
        print(f"wrote the book map into {path}")
        return 0
    if argv:
        print("usage: python -m models.book_map [--readme README.md]", file=sys.stderr)
        return 2
    print(book_map_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
