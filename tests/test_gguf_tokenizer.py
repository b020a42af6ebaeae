"""The tokenizer of a GGUF file (models.text.gguf_tokenizer) on GGUF files written here: a byte-level BPE
trained on the embedded text, llama.cpp's token types (control, user-defined), missing byte symbols,
both pre-tokenizers (``smollm``: digits alone; ``gpt2``) — equal to the ``tokenizers`` library built the
way SmolLM2's ``tokenizer.json`` is — and the ChatML chat format equal to HF's Jinja rendering of the
templates. The real SmolLM2 file is checked in tests/test_smollm2.py."""
from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from models.text.bpe import bytes_to_unicode
from models.text.bpe_train import train_bpe
from models.text.gguf_tokenizer import GGUFTokenizer, chat_format
from quant.gguf import ValueType, write_gguf

CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
USER_DEFINED = "<think>"
DROPPED_BYTES = (0x04, 0xC0, 0xFF)  # SmolLM2's vocabulary has no symbol for these either
# SmolLM2-135M-Instruct's tokenizer.chat_template (data from the model file)
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
PLAIN_CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                "{% endif %}")
ESCAPED_CHATML = SMOLLM2_TEMPLATE.replace("\n", "\\n")  # the newlines written as Jinja escapes


def corpus_lines() -> list[str]:
    from pydoc_data.topics import topics

    return [line for line in "\n".join(topics.values()).split("\n") if line.strip()]


@functools.lru_cache(maxsize=1)
def trained() -> tuple[list[str], list[str]]:
    """(tokens in id order, merges "a b"): GPT-2's pre-tokenizer, so merges join digits (the smollm
    pre-tokenizer must then keep them apart), three control tokens first as in SmolLM2."""
    vocab, merges = train_bpe(corpus_lines()[::7], 900, special_tokens=())
    dropped = {bytes_to_unicode()[b] for b in DROPPED_BYTES}
    assert not any(a in dropped or b in dropped for a, b in merges)
    tokens = CONTROL + [t for t in sorted(vocab, key=vocab.get) if t not in dropped] + [USER_DEFINED]
    return tokens, [f"{a} {b}" for a, b in merges]


def write_tokenizer_gguf(path, pre="smollm", template=SMOLLM2_TEMPLATE, **extra):
    tokens, merges = trained()
    types = [3] * len(CONTROL) + [1] * (len(tokens) - len(CONTROL) - 1) + [4]
    meta = {"general.architecture": "llama", "llama.context_length": 512, "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.merges": merges, "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.padding_token_id": 2,
            "tokenizer.ggml.add_bos_token": False, "tokenizer.chat_template": template, **extra}
    types_of = {"tokenizer.ggml.token_type": (ValueType.ARRAY, ValueType.INT32)}
    write_gguf(path, {}, meta, metadata_types=types_of)
    return path


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory):
    return write_tokenizer_gguf(tmp_path_factory.mktemp("tok") / "tokenizer.gguf")


@pytest.fixture(scope="module")
def ours(gguf_path):
    return GGUFTokenizer.from_gguf(gguf_path)


@functools.lru_cache(maxsize=2)
def reference(pre: str):
    """HF's ``tokenizers`` built as SmolLM2's tokenizer.json (``smollm``) or GPT-2's (``gpt2``)."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import AddedToken, decoders, models, pre_tokenizers

    tokens, merges = trained()
    model = models.BPE({t: i for i, t in enumerate(tokens)}, [tuple(m.split(" ")) for m in merges])
    tok = tokenizers.Tokenizer(model)
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = byte_level if pre == "gpt2" else pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), byte_level])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in CONTROL])
    tok.add_tokens([AddedToken(USER_DEFINED, normalized=False, special=False)])
    return tok


# ----------------------------------------------------------------------------------------------
# Encoding and decoding = HF tokenizers
# ----------------------------------------------------------------------------------------------
EDGE_TEXTS = ["In 2024, 1,234.5 people", "   42", " ½ and ² and ١٢٣", "a  1", "x \n 1", "7  8\t9\n10",
              "<|im_start|>user\nHi 42<|im_end|>", "think: <think>3</think>", "a\x04b \xc0 ok", "émoji 🤗 2🤗",
              "  leading and trailing   ", "\u00a0nbsp 3", "it's 10's", "x" * 5 + "123" * 3]


def test_equals_smollm2_style_tokenizers_on_real_lines(ours):
    ref = reference("smollm")
    lines = corpus_lines()[:3000] + EDGE_TEXTS
    expected = [e.ids for e in ref.encode_batch(lines, add_special_tokens=False)]
    got = [ours.encode(line) for line in lines]
    bad = [line for line, a, b in zip(lines, got, expected) if a != b]
    assert not bad, f"{len(bad)} lines differ, e.g. {bad[:3]}"
    for line, ids in zip(lines, got):
        assert ours.decode(ids) == ref.decode(ids, skip_special_tokens=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(list("ab xyZ.,'\n\t0123456789½²٣é🤗\x04") + ["<|im_end|>", " 12", "  ", "ing"]),
                max_size=30).map("".join))
@example("  3")
@example(" \n7")
def test_equals_tokenizers_on_random_text(text):
    assert _ours_smollm().encode(text) == reference("smollm").encode(text, add_special_tokens=False).ids


@functools.lru_cache(maxsize=2)
def _ours_smollm(pre="smollm"):
    import tempfile
    from pathlib import Path

    return GGUFTokenizer.from_gguf(write_tokenizer_gguf(Path(tempfile.mkdtemp()) / f"{pre}.gguf", pre=pre))


def test_gpt2_pre_tokenizer_equals_byte_level():
    ours, ref = _ours_smollm("gpt2"), reference("gpt2")
    lines = corpus_lines()[:1000] + EDGE_TEXTS
    assert [ours.encode(s) for s in lines] == [e.ids for e in ref.encode_batch(lines, add_special_tokens=False)]
    assert ours.encode("   42") != _ours_smollm().encode("   42")  # the two pre-tokenizers do differ


def test_special_and_user_defined_tokens(ours):
    ids = ours.encode("<|im_start|>user\n<think>hi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2 and ours.vocab[USER_DEFINED] in ids
    assert ours.decode(ids, skip_special_tokens=True) == "user\n<think>hi"  # control dropped, user-defined kept
    assert (ours.bos_token, ours.eos_token, ours.pad_token, ours.unk_token) == \
        ("<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>")
    assert ours.encode("a\x04b") == ours.encode("a") + ours.encode("b")  # a byte without a symbol is dropped
    batch = ours(["2 + 2", "a much longer line of text"], padding=True, return_tensors="np")
    assert batch["input_ids"].shape == batch["attention_mask"].shape and (batch["input_ids"][0, -1] == 2)


def test_add_bos_and_eos_tokens(tmp_path):
    tok = GGUFTokenizer.from_gguf(write_tokenizer_gguf(tmp_path / "b.gguf", **{
        "tokenizer.ggml.add_bos_token": True, "tokenizer.ggml.add_eos_token": True}))
    plain = tok.encode("hi there", add_special_tokens=False)
    assert tok.encode("hi there") == [1] + plain + [2]
    assert tok("a", "b")["input_ids"] == [1] + tok.encode("a", add_special_tokens=False) + [2, 1] + \
        tok.encode("b", add_special_tokens=False) + [2]


# ----------------------------------------------------------------------------------------------
# Chat format = HF's Jinja rendering
# ----------------------------------------------------------------------------------------------
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?\n"}],
    [{"role": "assistant", "content": "{% raw %} <|im_start|> odd"}, {"role": "user", "content": ""}],
]


def jinja_render(template: str, messages, add_generation_prompt: bool) -> str:
    pytest.importorskip("jinja2")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # HF's settings
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt)


@pytest.mark.parametrize("template", [SMOLLM2_TEMPLATE, PLAIN_CHATML, ESCAPED_CHATML])
@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_chat_template_equals_jinja(tmp_path, template, conversation, add_generation_prompt):
    tok = GGUFTokenizer.from_gguf(write_tokenizer_gguf(tmp_path / "c.gguf", template=template))
    text = tok.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt, tokenize=False)
    assert text == jinja_render(template, conversation, add_generation_prompt)
    ids = tok.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt)
    assert ids == tok.encode(text, add_special_tokens=False) and ids[0] == 1  # <|im_start|> as one token


def test_default_system_message_is_read_from_the_template():
    assert chat_format(SMOLLM2_TEMPLATE).default_system == \
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    assert chat_format(PLAIN_CHATML).default_system is None
    assert chat_format(ESCAPED_CHATML).default_system == chat_format(SMOLLM2_TEMPLATE).default_system


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
def test_errors(tmp_path, ours):
    with pytest.raises(ValueError, match="pre-tokenizer 'qwen2' .* is not implemented"):
        GGUFTokenizer.from_gguf(write_tokenizer_gguf(tmp_path / "a.gguf", pre="qwen2"))
    with pytest.raises(ValueError, match="has a 'llama' tokenizer .*only 'gpt2'"):
        GGUFTokenizer.from_gguf(write_tokenizer_gguf(tmp_path / "b.gguf", **{"tokenizer.ggml.model": "llama"}))
    with pytest.raises(ValueError, match=r"bos_token_id must be a token id in \[0, "):
        GGUFTokenizer.from_gguf(write_tokenizer_gguf(tmp_path / "c.gguf", **{"tokenizer.ggml.bos_token_id": 10 ** 6}))
    with pytest.raises(ValueError, match="only ChatML templates"):
        GGUFTokenizer.from_gguf(write_tokenizer_gguf(tmp_path / "d.gguf", template="{{ '[INST] ' + messages[0]"
                                                     "['content'] + ' [/INST]' }}")).apply_chat_template(
            [{"role": "user", "content": "x"}])
    with pytest.raises(ValueError, match="the conversation is empty"):
        ours.apply_chat_template([])
    with pytest.raises(TypeError, match="message 0 must be a dict with str 'role' and 'content'"):
        ours.apply_chat_template([{"role": "user"}])
    with pytest.raises(NotImplementedError, match="the tokenizer lives in its GGUF file"):
        ours.save_pretrained(tmp_path / "saved")
    with pytest.raises(ValueError, match="vocabulary lists tokens more than once"):
        GGUFTokenizer(["a", "b", "a"], [])
    np.testing.assert_equal(len(ours), len(trained()[0]))
