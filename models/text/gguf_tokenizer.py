"""The tokenizer a GGUF file carries (llama.cpp's ``tokenizer.*`` metadata): byte-level BPE with the
model's vocabulary, its special tokens and its chat format — SmolLM2's tokenizer without any other file.

What the metadata holds, and what becomes of it here:

* ``tokenizer.ggml.model`` — ``"gpt2"``: GPT-2's byte-level BPE (``models.text.bpe``), the kind read
  here (``"llama"``, SentencePiece, is not);
* ``tokenizer.ggml.tokens`` / ``merges`` — the vocabulary in id order and the merges ``"a b"``, best first;
* ``tokenizer.ggml.token_type`` — 1 normal, 3 *control* (``<|im_start|>``: a special token, matched
  whole in the text, dropped by ``skip_special_tokens``), 4 *user-defined* (matched whole, kept);
* ``tokenizer.ggml.pre`` — the pre-tokenizer, i.e. which regex splits the text before BPE;
* ``bos/eos/unknown/padding_token_id``, ``add_bos_token``, ``add_eos_token``, ``add_space_prefix``;
* ``tokenizer.chat_template`` — the Jinja template of the chat format.

**SmolLM2's pre-tokenizer, ``smollm``,** puts every number character on its own, then splits the
rest with GPT-2's regex: llama.cpp applies the two regexes ``\\p{N}`` and GPT-2's one after the other,
and SmolLM2's own ``tokenizer.json`` is ``Digits(individual_digits=True)`` then ``ByteLevel``. So
"2024" is four tokens. One regex does both here (``SMOLLM_PATTERN``): a lone ``\\p{N}`` first, and
GPT-2's whitespace rule ``\\s+(?!\\S)`` made to treat a number like the end of the text, since the
number cuts the text there. (transformers' GGUF loader ignores ``pre`` = smollm and splits as GPT-2;
the two differ only next to numbers: "   42" is ["ĠĠĠ", "4", "2"] in SmolLM2's tokenizer and here,
["ĠĠ", "Ġ", "4", "2"] there; " ½" is ["Ġ", "Â½"] here, ["ĠÂ", "½"] there.)

**The chat format** is ChatML: each message is ``<|im_start|>{role}\\n{content}<|im_end|>\\n``, and
``add_generation_prompt`` opens the assistant's turn, ``<|im_start|>assistant\\n``. SmolLM2's template
also puts a default system message first when the conversation does not start with one. The template
is not run as Jinja: ``chat_format`` recognises the ChatML templates and their default system message
(SmolLM2's, Qwen's), and ``apply_chat_template`` writes the same text HF's Jinja rendering gives.
"""
from __future__ import annotations

import re
from collections import Counter

from models.text.bpe import GPT2_PATTERN, ByteLevelBPE, GPT2Tokenizer, bytes_to_unicode

__all__ = ["GGUFTokenizer", "SMOLLM_PATTERN", "PRE_TOKENIZERS", "ChatFormat", "chat_format"]

# \p{N} alone; otherwise GPT-2's alternatives, with \s+(?!\S) ("whitespace not followed by a
# non-space") read as "not followed by a non-space that is not a number": a number ends the span
# GPT-2's regex runs on, as the end of the text does. ' ?\p{N}+' can no longer match and is gone.
SMOLLM_PATTERN = r"""\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"""
PRE_TOKENIZERS = {"gpt2": GPT2_PATTERN, "default": GPT2_PATTERN, "smollm": SMOLLM_PATTERN}
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4  # llama.cpp's token types


class ChatFormat:
    """ChatML, with an optional default system message (what ``chat_format`` reads off a template)."""

    def __init__(self, default_system: str | None = None):
        self.default_system = default_system

    def render(self, messages, add_generation_prompt: bool = False) -> str:
        """The conversation as text: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message."""
        parts = []
        if self.default_system is not None and messages and messages[0]["role"] != "system":
            parts.append(f"<|im_start|>system\n{self.default_system}<|im_end|>\n")
        parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        return "".join(parts)


# One message of ChatML as templates write it: spaces inside {{ }}, the quote style and the newline (a
# real one, or the escape \n inside a Jinja string) vary.
_Q, _NL, _PLUS = r"""['"]""", r"(?:\n|\\n)", r"\s*\+\s*"
_CHATML_MESSAGE = re.compile(
    rf"\{{\{{-?\s*{_Q}<\|im_start\|>{_Q}{_PLUS}message\[{_Q}role{_Q}\]{_PLUS}{_Q}{_NL}{_Q}{_PLUS}"
    rf"message\[{_Q}content{_Q}\]{_PLUS}{_Q}<\|im_end\|>(?:{_Q}{_PLUS}{_Q})?{_NL}{_Q}")
_DEFAULT_SYSTEM = re.compile(
    rf"\{{%-?\s*if loop\.first and messages\[0\]\[{_Q}role{_Q}\]\s*!=\s*{_Q}system{_Q}\s*-?%\}}\s*"
    rf"\{{\{{-?\s*{_Q}<\|im_start\|>system{_NL}(.*?)<\|im_end\|>{_NL}{_Q}\s*-?\}}\}}\s*\{{%-?\s*endif", re.S)


def chat_format(template: str | None) -> ChatFormat:
    """The ChatML format of a chat template (``tokenizer.chat_template``), with its default system
    message if it has one. Other templates (tools, other markers) are refused with a clear error."""
    if not isinstance(template, str) or not template:
        raise ValueError("chat_format: this tokenizer has no chat template (tokenizer.chat_template)")
    if not _CHATML_MESSAGE.search(template) or "add_generation_prompt" not in template:
        raise ValueError("chat_format: only ChatML templates (<|im_start|>role\\n…<|im_end|>) are rendered here; "
                         f"got {template[:120]!r}…")
    found = _DEFAULT_SYSTEM.search(template)
    return ChatFormat(found.group(1).replace("\\n", "\n") if found else None)


class GGUFTokenizer(GPT2Tokenizer):
    """Byte-level BPE from a GGUF file's metadata, equal to the model's own tokenizer.

        tok = GGUFTokenizer.from_gguf(path)                          # or a quant.GGUFFile
        tok("play = played .")["input_ids"]
        tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True)

    ``tokens`` / ``merges`` / ``token_types`` as the metadata stores them; ``pre`` the pre-tokenizer
    name (``PRE_TOKENIZERS``); the token ids name the special tokens. Control tokens are special,
    user-defined tokens are matched whole but kept by ``decode(skip_special_tokens=True)``.
    Everything else — batches, padding, truncation, offsets, ``decode`` — is ``GPT2Tokenizer``'s.
    Bytes the vocabulary has no symbol for (SmolLM2 has none for some control bytes and for 0xC0,
    0xC1, 0xF5…0xFF, which UTF-8 never uses) are dropped, as by HF's tokenizer.
    """

    def __init__(self, tokens, merges, token_types=None, *, pre: str = "gpt2", bos_token_id: int | None = None,
                 eos_token_id: int | None = None, unk_token_id: int | None = None, pad_token_id: int | None = None,
                 add_bos_token: bool = False, add_eos_token: bool = False, add_space_prefix: bool = False,
                 chat_template: str | None = None, padding_side: str = "right", truncation_side: str = "right",
                 model_max_length: int | None = None):
        where = type(self).__name__
        if pre not in PRE_TOKENIZERS:
            raise ValueError(f"{where}: pre-tokenizer {pre!r} (tokenizer.ggml.pre) is not implemented; "
                             f"known: {sorted(PRE_TOKENIZERS)}")
        tokens = list(tokens)
        types = [NORMAL] * len(tokens) if token_types is None else [int(t) for t in token_types]
        if len(types) != len(tokens):
            raise ValueError(f"{where}: {len(types)} token types for {len(tokens)} tokens")
        # HF's rule: a token spelled outside the byte alphabet is respelled as the symbols of its UTF-8
        # bytes; a control token so spelled is a mislabel and is not made special.
        alphabet = set(bytes_to_unicode().values())
        spelled = [t if set(t) <= alphabet else "".join(bytes_to_unicode()[b] for b in t.encode("utf-8"))
                   for t in tokens]
        vocab = {t: i for i, t in enumerate(spelled)}
        if len(vocab) != len(spelled):
            repeats = [t for t, n in Counter(spelled).items() if n > 1]
            raise ValueError(f"{where}: the vocabulary lists tokens more than once: {repeats[:5]}")

        def name(token_id, what):
            if token_id is None:
                return None
            if isinstance(token_id, bool) or not isinstance(token_id, int) or not 0 <= token_id < len(tokens):
                raise ValueError(f"{where}: {what} must be a token id in [0, {len(tokens)}), got {token_id!r}")
            return spelled[token_id]

        control = [spelled[i] for i, t in enumerate(types) if t == CONTROL and set(tokens[i]) <= alphabet]
        specials = {"unk_token": name(unk_token_id, "unk_token_id"), "bos_token": name(bos_token_id, "bos_token_id"),
                    "eos_token": name(eos_token_id, "eos_token_id"), "pad_token": name(pad_token_id, "pad_token_id")}
        super().__init__(vocab, merges, **specials, additional_special_tokens=control,
                         add_prefix_space=add_space_prefix, padding_side=padding_side,
                         truncation_side=truncation_side, model_max_length=model_max_length,
                         pattern=PRE_TOKENIZERS[pre], missing_bytes="drop")
        # a user-defined token is matched whole where HF finds it in the vocabulary as written (byte alphabet)
        self.user_defined_tokens = [t for t, kind in zip(tokens, types) if kind == USER_DEFINED and set(t) <= alphabet]
        if self.user_defined_tokens:  # matched whole like the special ones, but not special
            self.bpe = ByteLevelBPE(vocab, self.bpe.merges, self.bpe.pattern,
                                    self.all_special_tokens + self.user_defined_tokens,
                                    add_prefix_space=add_space_prefix, missing_bytes="drop")
        self.pre, self.token_types = pre, types
        self.add_bos_token, self.add_eos_token = bool(add_bos_token), bool(add_eos_token)
        self.chat_template = chat_template
        self._chat_format = None

    @classmethod
    def from_gguf(cls, gguf, **overrides) -> "GGUFTokenizer":
        """Build the tokenizer from a GGUF file (a path or an open ``quant.GGUFFile``)."""
        from quant.gguf import GGUFFile

        gguf = gguf if isinstance(gguf, GGUFFile) else GGUFFile(gguf)
        meta, where = gguf.metadata, f"GGUFTokenizer.from_gguf: {str(gguf.path)!r}"
        kind = meta.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ValueError(f"{where} has a {kind!r} tokenizer (tokenizer.ggml.model); only 'gpt2' (byte-level "
                             "BPE) is read here")
        for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
            if key not in meta:
                raise ValueError(f"{where} has no {key!r}")

        def token_id(key):
            value = meta.get(f"tokenizer.ggml.{key}")
            return None if value is None else int(value)

        kwargs = dict(token_types=meta.get("tokenizer.ggml.token_type"), pre=meta.get("tokenizer.ggml.pre", "gpt2"),
                      bos_token_id=token_id("bos_token_id"), eos_token_id=token_id("eos_token_id"),
                      unk_token_id=token_id("unknown_token_id"), pad_token_id=token_id("padding_token_id"),
                      add_bos_token=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
                      add_eos_token=bool(meta.get("tokenizer.ggml.add_eos_token", False)),
                      add_space_prefix=bool(meta.get("tokenizer.ggml.add_space_prefix", False)),
                      chat_template=meta.get("tokenizer.chat_template"),
                      model_max_length=meta.get(f"{meta.get('general.architecture')}.context_length"))
        kwargs.update(overrides)
        return cls(meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"], **kwargs)

    def save_pretrained(self, directory):
        raise NotImplementedError("GGUFTokenizer.save_pretrained: HF's vocab.json + merges.txt cannot say the "
                                  f"pre-tokenizer {self.pre!r}; the tokenizer lives in its GGUF file")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, merges={len(self.bpe.merges)}, pre={self.pre!r}, "
                f"special={len(self.all_special_tokens)}, chat_template={self.chat_template is not None})")

    def _template(self, pair: bool) -> list[tuple]:
        """``[bos] A [eos]`` (and ``[bos] B [eos]`` for a pair) as ``add_bos_token`` / ``add_eos_token`` say."""
        rows = []
        for item, type_id in (("A", 0), ("B", 1))[:1 + pair]:
            rows += [(self.bos_token_id, type_id)] * self.add_bos_token + [(item, type_id)]
            rows += [(self.eos_token_id, type_id)] * self.add_eos_token
        return rows

    # -- chat ------------------------------------------------------------------------------------

    def apply_chat_template(self, conversation, add_generation_prompt: bool = False, tokenize: bool = True):
        """A conversation ``[{"role": …, "content": …}, …]`` in the model's chat format: its ids
        (``tokenize=True``; no other special tokens added) or its text — HF's ``apply_chat_template``
        with ``return_dict=False``."""
        where = f"{type(self).__name__}.apply_chat_template"
        if not isinstance(conversation, (list, tuple)):
            raise TypeError(f"{where}: conversation must be a list of {{'role', 'content'}} dicts, got "
                            f"{type(conversation).__name__}")
        if not conversation:
            raise ValueError(f"{where}: the conversation is empty; give at least one message")
        for i, message in enumerate(conversation):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                    or not isinstance(message.get("content"), str):
                raise TypeError(f"{where}: message {i} must be a dict with str 'role' and 'content', "
                                f"got {message!r:.80}")
        if self._chat_format is None:
            self._chat_format = chat_format(self.chat_template)
        text = self._chat_format.render(conversation, add_generation_prompt)
        return self.encode(text, add_special_tokens=False) if tokenize else text
