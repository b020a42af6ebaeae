"""RoBERTa's tokenizer (book § 4.4; Liu et al. 2019, § 4.4 "Text Encoding"): GPT-2's byte-level BPE
(``models.text.bpe``) with RoBERTa's special tokens, equal to HF ``RobertaTokenizer`` on the same files.

    tok = RobertaTokenizer.from_pretrained("path/to/roberta")     # vocab.json + merges.txt
    tok("Hello world", "Second text")["input_ids"]                # <s> A </s></s> B </s>

Byte-level BPE needs no unknown token: every string is some sequence of its 256 byte symbols. What
RoBERTa adds is fairseq's layout of a row — ``<s> A </s>`` and, for a pair, ``<s> A </s></s> B </s>``
(two separators between the texts, one token type) — and the special tokens ``<s>`` ``<pad>``
``</s>`` ``<unk>`` (ids 0–3 in roberta-base) and ``<mask>`` (the last id). ``train_roberta_bpe``
learns such a vocabulary from a corpus with the project's BPE trainer.
"""
from __future__ import annotations

import json
from pathlib import Path

from models.text.bpe import GPT2Tokenizer
from models.text.bpe_train import train_bpe
from models.text.corpus import atomic_write_text
from models.text.tokenizer_base import read_json_config, special_token_content

ROBERTA_SPECIAL_NAMES = ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token", "mask_token")
FIRST_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3, as fairseq's dictionary
MASK = "<mask>"  # the last id
SPACE = "\u0120"  # "Ġ", the byte-level symbol of the space


class RobertaTokenizer(GPT2Tokenizer):
    """GPT-2's byte-level BPE with RoBERTa's special tokens and row layout (HF's ``RobertaTokenizer``).

    ``<mask>`` inside a text is matched whole (as every special token), without swallowing the space
    before it (HF's constructor default; roberta-base's own files set ``lstrip``, which is not applied here).
    """

    model_input_names = ("input_ids", "attention_mask")  # one token type: HF returns no token_type_ids

    def __init__(self, vocab, merges, *, bos_token: str = "<s>", eos_token: str = "</s>", sep_token: str = "</s>",
                 cls_token: str = "<s>", unk_token: str = "<unk>", pad_token: str = "<pad>", mask_token: str = MASK,
                 additional_special_tokens=(), **options):
        roberta_only = [t for t in (sep_token, cls_token, mask_token) if t is not None]
        super().__init__(vocab, merges, unk_token=unk_token, bos_token=bos_token, eos_token=eos_token,
                         pad_token=pad_token, additional_special_tokens=[*roberta_only, *additional_special_tokens],
                         **options)
        self.additional_special_tokens = list(additional_special_tokens)  # the caller's extras only
        for name, token in (("sep_token", sep_token), ("cls_token", cls_token), ("mask_token", mask_token)):
            setattr(self, name, token)
            setattr(self, name + "_id", None if token is None else self.vocab[token])
        if self.cls_token_id is None or self.sep_token_id is None:
            raise ValueError("RobertaTokenizer: cls_token and sep_token are needed to lay out a row")

    def _segment(self, text: str) -> list[tuple[int, int, int]]:
        """Byte-level BPE's (id, start, end), with HF's ``trim_offsets``: the spaces (``Ġ``) a token starts or
        ends with are not part of its span — except the prefix space ``add_prefix_space`` put before the text."""
        out = []
        for i, (token_id, start, end) in enumerate(self.bpe.encode_with_offsets(text)):
            token = self.ids_to_tokens[token_id]
            leading, trailing = len(token) - len(token.lstrip(SPACE)), len(token) - len(token.rstrip(SPACE))
            if leading and not (self.add_prefix_space and leading == 1 and (i == 0 or start == 0)):
                start = min(start + leading, end)
            if trailing and end >= trailing:
                end = max(end - trailing, start)
            out.append((token_id, start, end))
        return out

    def _template(self, pair: bool) -> list[tuple]:
        """``<s> A </s>`` or ``<s> A </s></s> B </s>``, every token of type 0."""
        row = [(self.cls_token_id, 0), ("A", 0), (self.sep_token_id, 0)]
        return row + [(self.sep_token_id, 0), ("B", 0), (self.sep_token_id, 0)] if pair else row

    @classmethod
    def from_pretrained(cls, directory, **overrides) -> "RobertaTokenizer":
        """GPT-2's files (``vocab.json`` + ``merges.txt``, or ``tokenizer.json``) and RoBERTa's special tokens
        from ``tokenizer_config.json`` / ``special_tokens_map.json`` when present."""
        where = f"{cls.__name__}.from_pretrained"
        directory = Path(directory)
        config = read_json_config(directory / "tokenizer_config.json", where) if directory.is_dir() else {}
        if directory.is_dir():
            for name, value in read_json_config(directory / "special_tokens_map.json", where).items():
                config.setdefault(name, value)
        for name in ("sep_token", "cls_token", "mask_token"):
            if name in config and name not in overrides:
                overrides[name] = special_token_content(config[name])
        return super().from_pretrained(directory, **overrides)

    def save_pretrained(self, directory) -> tuple[str, ...]:
        """GPT-2's four files, with ``tokenizer_class`` RobertaTokenizer and RoBERTa's special tokens."""
        files = super().save_pretrained(directory)
        directory = Path(directory)
        special = {name: getattr(self, name) for name in ROBERTA_SPECIAL_NAMES if getattr(self, name) is not None}
        config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
        config.update(tokenizer_class="RobertaTokenizer", trim_offsets=True, **special)
        special_map = json.loads((directory / "special_tokens_map.json").read_text(encoding="utf-8"))
        special_map.update(special)
        for name, data in (("tokenizer_config.json", config), ("special_tokens_map.json", special_map)):
            atomic_write_text(directory / name, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return files


def train_roberta_bpe(texts, vocab_size: int, *, min_frequency: int = 2) -> tuple[dict[str, int], list]:
    """A RoBERTa vocabulary learnt from ``texts`` (byte-level BPE, ``models.text.bpe_train``): ``<s>``
    ``<pad>`` ``</s>`` ``<unk>`` take ids 0–3 (so ``<pad>`` = 1, as the model's positions expect), then the
    256 byte symbols and the merges, and ``<mask>`` the last id. Returns ``(vocab, merges)``."""
    specials = FIRST_SPECIALS + (MASK,)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256 + len(specials):
        raise ValueError(f"train_roberta_bpe: vocab_size must be an int >= {256 + len(specials)} (bytes + special "
                         f"tokens), got {vocab_size!r}")
    learnt, merges = train_bpe(texts, vocab_size - len(specials), min_frequency=min_frequency, special_tokens=())
    vocab = {token: i for i, token in enumerate(FIRST_SPECIALS)}
    for token in sorted(learnt, key=learnt.__getitem__):
        vocab[token] = len(vocab)
    vocab[MASK] = len(vocab)
    return vocab, merges


__all__ = ["RobertaTokenizer", "train_roberta_bpe", "ROBERTA_SPECIAL_NAMES"]
