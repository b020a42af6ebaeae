"""ALBERT's tokenizer (book § 4.5): a SentencePiece unigram model (``models.text.sentencepiece``) with
ALBERT's text preparation and special tokens, equal to HF ``AlbertTokenizer`` on the same ``spiece.model``.

    tok = AlbertTokenizer.from_pretrained("path/to/albert")        # spiece.model (+ tokenizer_config.json)
    tok("Hello world", "Second text")["input_ids"]                 # [CLS] A [SEP] B [SEP]

Before SentencePiece sees a text, ALBERT prepares it as HF does: ``\\`\\``` and ``''`` become ``"``; the
text is decomposed (NFKD) and its accents dropped (unless ``keep_accents``); it is lowercased (unless
``do_lower_case=False``). Special tokens written in the text (``[MASK]``) are cut out first and kept
whole; every other stretch is segmented by SentencePiece (its own normalization, ``▁`` for spaces,
Viterbi over the pieces' scores). A row is ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` with token types
0 for A and 1 for B. ``decode`` joins the pieces and turns ``▁`` back into spaces.

Character offsets are not provided: the preparation changes the text (accents, ``\\`\\```), so pieces do
not map back to spans of it; ``return_offsets_mapping=True`` is refused with a clear error.
"""
from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import regex

from models.text.corpus import atomic_write_bytes, atomic_write_text
from models.text.sentencepiece import SPACE_SYMBOL, SentencePieceModel
from models.text.tokenizer_base import BatchTokenizer, read_json_config, special_token_content

MODEL_FILE = "spiece.model"
ALBERT_SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class AlbertTokenizer(BatchTokenizer):
    """SentencePiece with ALBERT's preparation, special tokens and row layout (HF's ``AlbertTokenizer``).

    ``model``: the path of a ``.model`` file, its bytes, or a ``SentencePieceModel``.
    """

    model_input_names = ("input_ids", "attention_mask")  # as HF's: token_type_ids on request
    truncation_rules = "rust"  # HF's AlbertTokenizer is the ``tokenizers`` one

    def __init__(self, model, *, do_lower_case: bool = True, keep_accents: bool = False, bos_token: str = "[CLS]",
                 eos_token: str = "[SEP]", unk_token: str = "<unk>", sep_token: str = "[SEP]", pad_token: str = "<pad>",
                 cls_token: str = "[CLS]", mask_token: str = "[MASK]", model_max_length: int | None = None,
                 padding_side: str = "right", truncation_side: str = "right"):
        where = type(self).__name__
        if isinstance(model, (str, os.PathLike)):
            if not Path(model).is_file():
                raise FileNotFoundError(f"{where}: no SentencePiece model file at {str(model)!r}")
            model = Path(model).read_bytes()
        if isinstance(model, (bytes, bytearray)):
            self.model_bytes = bytes(model)
            model = SentencePieceModel.from_bytes(self.model_bytes, f"{where}: the SentencePiece model")
        elif isinstance(model, SentencePieceModel):
            self.model_bytes = None
        else:
            raise TypeError(f"{where}: model must be a .model path, its bytes or a SentencePieceModel, "
                            f"got {type(model).__name__}")
        self.sp = model
        self.do_lower_case, self.keep_accents = bool(do_lower_case), bool(keep_accents)
        self.ids_to_tokens = list(model.pieces)
        self.vocab = {piece: i for i, piece in enumerate(self.ids_to_tokens)}
        specials = {"bos_token": bos_token, "eos_token": eos_token, "unk_token": unk_token, "sep_token": sep_token,
                    "pad_token": pad_token, "cls_token": cls_token, "mask_token": mask_token}
        missing = {name: t for name, t in specials.items() if t is not None and t not in self.vocab}
        if missing:
            raise ValueError(f"{where}: special tokens {missing} are not pieces of the SentencePiece model "
                             f"({len(self.vocab)} pieces, the first {self.ids_to_tokens[:6]})")
        for name, token in specials.items():
            setattr(self, name, token)
            setattr(self, name + "_id", None if token is None else self.vocab[token])
        if self.cls_token_id is None or self.sep_token_id is None:
            raise ValueError(f"{where}: cls_token and sep_token are needed to lay out a row")
        self.all_special_tokens = list(dict.fromkeys(t for t in specials.values() if t is not None))
        self.all_special_ids = [self.vocab[t] for t in self.all_special_tokens]
        alternatives = sorted(self.all_special_tokens, key=len, reverse=True)  # leftmost-longest, as HF
        self._special_splitter = regex.compile("(" + "|".join(map(regex.escape, alternatives)) + ")")
        self._init_batch_options(model_max_length, padding_side, truncation_side)

    # -- files -----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, directory, **overrides) -> "AlbertTokenizer":
        """``spiece.model`` (or the one ``.model`` file of ``directory``) and, when present,
        ``tokenizer_config.json`` / ``special_tokens_map.json``."""
        where = f"{cls.__name__}.from_pretrained"
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{where}: {str(directory)!r} is not a directory")
        path = directory / MODEL_FILE
        if not path.is_file():
            models = sorted(directory.glob("*.model"))
            if len(models) != 1:
                raise FileNotFoundError(f"{where}: no {MODEL_FILE} in {str(directory)!r} (found "
                                        f"{sorted(p.name for p in directory.iterdir())})")
            path = models[0]
        config = read_json_config(directory / "tokenizer_config.json", where)
        for name, value in read_json_config(directory / "special_tokens_map.json", where).items():
            config.setdefault(name, value)
        keys = ("do_lower_case", "keep_accents", "model_max_length", "padding_side", "truncation_side") \
            + ALBERT_SPECIAL_NAMES
        kwargs = {k: special_token_content(config[k]) if k in ALBERT_SPECIAL_NAMES else config[k]
                  for k in keys if config.get(k) is not None}
        if isinstance(kwargs.get("model_max_length"), float) or kwargs.get("model_max_length", 0) > 10 ** 18:
            kwargs.pop("model_max_length")  # HF's "no limit" (int(1e30))
        kwargs.update(overrides)
        return cls(path, **kwargs)

    def save_pretrained(self, directory) -> tuple[str, ...]:
        """Write ``spiece.model`` (the model's own bytes), ``tokenizer_config.json`` and
        ``special_tokens_map.json``, each atomically."""
        if self.model_bytes is None:
            raise ValueError(f"{type(self).__name__}.save_pretrained: this tokenizer was built from a "
                             "SentencePieceModel object, whose file bytes are unknown; build it from the .model file")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        special = {name: getattr(self, name) for name in ALBERT_SPECIAL_NAMES if getattr(self, name) is not None}
        config = {"tokenizer_class": "AlbertTokenizer", "do_lower_case": self.do_lower_case,
                  "keep_accents": self.keep_accents, "padding_side": self.padding_side,
                  "truncation_side": self.truncation_side, **special}
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        atomic_write_bytes(directory / MODEL_FILE, self.model_bytes)
        for name, data in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
            atomic_write_text(directory / name, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return tuple(str(directory / n) for n in (MODEL_FILE, "tokenizer_config.json", "special_tokens_map.json"))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, do_lower_case={self.do_lower_case}, "
                f"keep_accents={self.keep_accents}, model_max_length={self.model_max_length})")

    # -- encoding --------------------------------------------------------------------------------

    def prepare(self, text: str) -> str:
        """ALBERT's preparation before SentencePiece: quotes, accents, case (HF's normalizer sequence)."""
        text = text.replace("``", '"').replace("''", '"')
        if not self.keep_accents:
            text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        return text.lower() if self.do_lower_case else text

    def _pieces(self, text: str, where: str) -> list[tuple[str, int]]:
        """(piece, id) of ``text``: special tokens written in it kept whole, every other stretch prepared and
        segmented by SentencePiece."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}{where}: text must be a str, got {type(text).__name__}")
        pieces: list[tuple[str, int]] = []
        # split with a group alternates plain text (even indices) and special tokens (odd)
        for index, stretch in enumerate(self._special_splitter.split(text)):
            if index % 2:
                pieces.append((stretch, self.vocab[stretch]))
            elif stretch:
                pieces += self.sp.encode_with_pieces(self.prepare(stretch))
        return pieces

    def _segment_ids(self, text: str) -> list[int]:
        return [i for _, i in self._pieces(text, "")]

    def _segment(self, text: str):
        raise ValueError(f"{type(self).__name__}: return_offsets_mapping is not supported — ALBERT's preparation "
                         "(NFKD, accents, quotes) changes the text, so pieces have no spans in it")

    def _template(self, pair: bool) -> list[tuple]:
        """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]``; B and its ``[SEP]`` are token type 1."""
        row = [(self.cls_token_id, 0), ("A", 0), (self.sep_token_id, 0)]
        return row + [("B", 1), (self.sep_token_id, 1)] if pair else row

    def tokenize(self, text: str) -> list[str]:
        """Pieces: ``"Hello world"`` -> ``["▁hello", "▁world"]``; an unknown piece is the text it covers (as HF's)."""
        return [piece for piece, _ in self._pieces(text, ".tokenize")]

    # -- decoding --------------------------------------------------------------------------------

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Pieces -> text: ``▁`` becomes a space; the first piece's leading space is dropped (HF's Metaspace)."""
        text = "".join(tokens).replace(SPACE_SYMBOL, " ")
        return text[1:] if tokens and tokens[0].startswith(SPACE_SYMBOL) else text

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Ids -> text, as HF's: special tokens written as themselves unless ``skip_special_tokens``."""
        return self.convert_tokens_to_string(self.convert_ids_to_tokens(self._check_ids(ids, "decode"),
                                                                        skip_special_tokens))


__all__ = ["AlbertTokenizer", "MODEL_FILE"]
