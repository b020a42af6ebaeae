"""The batch call every tokenizer here shares: ``tokenizer(texts, pairs, padding=..., truncation=...)``.

A tokenizer only has to say how one text becomes token ids with character spans, and where its
special tokens go. This module does the rest the same way for WordPiece (BERT,
``models.text.wordpiece``) and byte-level BPE (GPT-2, ``models.text.bpe``), following Hugging
Face's ``PreTrainedTokenizerBase``: special tokens placed by a template, truncation of one sequence
or of a pair, padding on the left or the right, ``attention_mask``, ``token_type_ids``,
``special_tokens_mask``, offsets, NumPy arrays, and the ``BatchEncoding`` that holds them.

A subclass of ``BatchTokenizer`` provides

* ``_segment(text) -> [(id, start, end), ...]``: one text, no special tokens around it (and, if
  ids alone can be found faster, ``_segment_ids(text) -> [id, ...]``);
* ``_template(pair) -> [(item, type_id), ...]``: the layout of a row, where ``item`` is ``"A"``
  (the first text), ``"B"`` (the second) or the id of a special token, e.g. BERT's
  ``[CLS] A [SEP] B [SEP]``;
* the attributes ``vocab`` ({token: id}), ``ids_to_tokens`` (list), ``unk_token_id``,
  ``pad_token_id`` (either may be None) and ``all_special_ids``,

and calls ``_init_batch_options`` from its ``__init__``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
# HF writes int(1e30) as model_max_length when a checkpoint sets no limit.
NO_LIMIT = 10 ** 18


class BatchEncoding(dict):
    """The tokenizer's output: a dict (``enc["input_ids"]``) that also allows ``enc.input_ids``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class BatchTokenizer:
    """HF's ``__call__`` / ``encode`` / ``truncate_sequences`` and id look-ups, on top of ``_segment``."""

    # Keys returned when return_token_type_ids / return_attention_mask are left at None (HF's rule).
    model_input_names: tuple[str, ...] = ("input_ids", "token_type_ids", "attention_mask")
    # Whose truncation to follow where HF's two implementations differ (see truncated_lengths):
    # "python" (HF's python tokenizers, BERT's reference) or "rust" (the ``tokenizers`` library,
    # the only GPT-2 tokenizer of transformers 5).
    truncation_rules = "python"

    def _init_batch_options(self, model_max_length, padding_side: str, truncation_side: str) -> None:
        name = type(self).__name__
        if model_max_length is not None and (isinstance(model_max_length, bool)
                                             or not isinstance(model_max_length, int) or model_max_length < 1):
            raise ValueError(f"{name}: model_max_length must be a positive int or None, got {model_max_length!r}")
        self.model_max_length = None if model_max_length is None or model_max_length > NO_LIMIT \
            else model_max_length
        self.padding_side = check_side(name, "padding_side", padding_side)
        self.truncation_side = check_side(name, "truncation_side", truncation_side)

    # -- to be provided by the tokenizer ---------------------------------------------------------

    def _segment(self, text: str) -> list[tuple[int, int, int]]:
        raise NotImplementedError

    def _segment_ids(self, text: str) -> list[int]:
        return [i for i, _, _ in self._segment(text)]

    def _template(self, pair: bool) -> list[tuple]:
        """No special tokens: ``A`` alone, or ``A B`` with type ids 0 and 1."""
        return [("A", 0), ("B", 1)] if pair else [("A", 0)]

    # -- tokens and ids --------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def convert_tokens_to_ids(self, tokens):
        """Token(s) -> id(s); tokens outside the vocabulary map to the unknown token's id."""
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
            raise TypeError(f"{type(self).__name__}.convert_tokens_to_ids: expected a str or a list of str, "
                            f"got {type(tokens).__name__}")
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """Id(s) -> token(s); ``skip_special_tokens`` drops the special tokens."""
        single = isinstance(ids, (int, np.integer)) and not isinstance(ids, bool)
        ids = self._check_ids(ids, "convert_ids_to_tokens")
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        tokens = [self.ids_to_tokens[i] for i in ids if i not in skip]
        return tokens[0] if single else tokens

    def _check_ids(self, ids, where: str) -> list[int]:
        """``ids`` as a list of Python ints, each in ``[0, vocab size)``; clear errors otherwise."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            ids = [ids]
        array = np.asarray(ids) if isinstance(ids, (list, tuple, np.ndarray)) else None
        if array is None or (array.size and array.dtype.kind not in "iu") or array.ndim != 1:
            shape = getattr(array, "shape", None)
            raise TypeError(f"{type(self).__name__}.{where}: expected an int or a 1-D sequence of ints, got "
                            f"{type(ids).__name__} with shape {shape} and dtype {getattr(array, 'dtype', None)}")
        bad = array[(array < 0) | (array >= len(self.vocab))]
        if bad.size:
            raise ValueError(f"{type(self).__name__}.{where}: ids must lie in [0, {len(self.vocab)}), "
                             f"got {bad[:5].tolist()}")
        return array.astype(np.int64).tolist()

    def batch_decode(self, sequences, **kwargs) -> list[str]:
        return [self.decode(ids, **kwargs) for ids in sequences]

    # -- encoding --------------------------------------------------------------------------------

    def encode(self, text: str, text_pair: str | None = None, **kwargs) -> list[int]:
        """``input_ids`` of one sentence or one pair (same options as ``__call__``)."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.encode: expects one str (use __call__ for batches), "
                            f"got {type(text).__name__}")
        return self(text, text_pair, **kwargs)["input_ids"]

    def __call__(self, text, text_pair=None, *, add_special_tokens: bool = True, padding=False,
                 truncation=None, max_length: int | None = None, pad_to_multiple_of: int | None = None,
                 padding_side: str | None = None, return_tensors: str | None = None,
                 return_token_type_ids: bool | None = None, return_attention_mask: bool | None = None,
                 return_offsets_mapping: bool = False, return_special_tokens_mask: bool = False,
                 return_length: bool = False) -> BatchEncoding:
        """Encode a sentence, a pair, or a batch of either (``text`` a list, or a list of pairs).

        Truncation removes tokens until ``len(input_ids) <= max_length``: ``longest_first`` takes
        from the longer segment (ties: see ``truncated_lengths``), ``only_first`` /
        ``only_second`` from one segment. Padding adds the pad token with attention mask 0 up to
        the longest row or to ``max_length``. ``return_token_type_ids`` / ``return_attention_mask``
        left at None follow ``model_input_names``.
        """
        where = f"{type(self).__name__}.__call__"
        batched, pairs = as_batch(text, text_pair, where)
        padding, truncation, max_length = self._strategies(padding, truncation, max_length, pad_to_multiple_of)
        side = check_side(where, "padding_side", padding_side or self.padding_side)
        if return_tensors not in (None, "np"):
            raise ValueError(f"{where}: return_tensors must be None or 'np', got {return_tensors!r}")
        if padding != "do_not_pad" and self.pad_token_id is None:
            raise ValueError(f"{where}: padding={padding!r} needs a pad token and this tokenizer has none; "
                             f"create it with pad_token=... (for GPT-2 usually the eos_token)")
        rows = [self._encode_row(a, b, add_special_tokens, truncation, max_length, return_offsets_mapping)
                for a, b in pairs]
        self._pad(rows, padding, max_length, pad_to_multiple_of, side)
        with_types = "token_type_ids" in self.model_input_names if return_token_type_ids is None \
            else return_token_type_ids
        with_mask = "attention_mask" in self.model_input_names if return_attention_mask is None \
            else return_attention_mask
        keys = ["input_ids"] + ["token_type_ids"] * bool(with_types) + ["attention_mask"] * bool(with_mask) \
            + ["special_tokens_mask"] * bool(return_special_tokens_mask) \
            + ["offset_mapping"] * bool(return_offsets_mapping)
        out = {key: [row[key] for row in rows] for key in keys}
        if return_length:
            out["length"] = [len(row["input_ids"]) for row in rows]
        if return_tensors == "np":
            lengths = {len(row["input_ids"]) for row in rows}
            if len(lengths) > 1:
                raise ValueError(f"{where}: return_tensors='np' needs equal lengths, got "
                                 f"lengths {sorted(lengths)}; pass padding=True or padding='max_length'")
            out = {k: np.asarray(v, dtype=np.int64).reshape(len(rows), -1, 2) if k == "offset_mapping"
                   else np.asarray(v, dtype=np.int64) for k, v in out.items()}
        elif not batched:
            out = {k: v[0] for k, v in out.items()}
        return BatchEncoding(out)

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of):
        """HF's rules: ``True`` means longest; max_length alone turns on ``longest_first``."""
        where = f"{type(self).__name__}.__call__"
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 0):
            raise ValueError(f"{where}: max_length must be a non-negative int, got {max_length!r}")
        if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of < 1):
            raise ValueError(f"{where}: pad_to_multiple_of must be a positive int, got {pad_to_multiple_of!r}")
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"
        padding = {True: "longest", False: "do_not_pad", None: "do_not_pad"}.get(padding, padding)
        if padding not in PADDING_STRATEGIES:
            raise ValueError(f"{where}: padding must be True, False or one of {PADDING_STRATEGIES}, got {padding!r}")
        truncation = {True: "longest_first", False: "do_not_truncate", None: "do_not_truncate"}.get(
            truncation, truncation)
        if truncation not in TRUNCATION_STRATEGIES:
            raise ValueError(f"{where}: unknown truncation strategy {truncation!r}; expected "
                             f"True, False or one of {TRUNCATION_STRATEGIES}")
        if max_length is None and (padding == "max_length" or truncation != "do_not_truncate"):
            if self.model_max_length is None:
                raise ValueError(f"{where}: padding={padding!r} / truncation={truncation!r} "
                                 "need max_length (the tokenizer has no model_max_length)")
            max_length = self.model_max_length
        if (truncation != "do_not_truncate" and padding != "do_not_pad" and pad_to_multiple_of
                and max_length % pad_to_multiple_of):
            raise ValueError(f"{where}: truncation length {max_length} is not a multiple of "
                             f"pad_to_multiple_of={pad_to_multiple_of}")
        return padding, truncation, max_length

    def _encode_row(self, text, pair, add_special_tokens, truncation, max_length, with_offsets=True) -> dict:
        # Each segment as two columns, ids and (start, end) spans; the spans only when asked for.
        segments = []
        for part in (text, pair) if pair is not None else (text,):
            if with_offsets:
                tokens = self._segment(part)
                segments.append(([i for i, _, _ in tokens], [(a, b) for _, a, b in tokens]))
            else:
                segments.append((self._segment_ids(part), None))
        template = self._template(pair is not None) if add_special_tokens \
            else [("A", 0), ("B", 1)][:len(segments)]
        n_special = sum(not isinstance(item, str) for item, _ in template)
        lengths = [len(ids) for ids, _ in segments]
        excess = sum(lengths) + n_special - (max_length or 0)
        if truncation != "do_not_truncate" and excess > 0:
            kept = truncated_lengths(lengths[0], lengths[1] if pair is not None else None, excess, truncation,
                                     max_length, owner=type(self).__name__, rules=self.truncation_rules)
            side = self.truncation_side
            segments = [(keep(ids, n, side), None if spans is None else keep(spans, n, side))
                        for (ids, spans), n in zip(segments, kept)]
        ids, types, special, offsets = [], [], [], []
        for item, type_id in template:
            if isinstance(item, str):
                segment_ids, spans = segments[0 if item == "A" else 1]
                ids += segment_ids
                offsets += spans or ()
                special += [0] * len(segment_ids)
                types += [type_id] * len(segment_ids)
            else:
                ids.append(item)
                offsets.append((0, 0))
                special.append(1)
                types.append(type_id)
        row = {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids),
               "special_tokens_mask": special}
        if with_offsets:
            row["offset_mapping"] = offsets
        return row

    def _pad(self, rows, padding, max_length, multiple, side) -> None:
        if padding == "do_not_pad" or not rows:
            return
        target = max(len(r["input_ids"]) for r in rows) if padding == "longest" else max_length
        if multiple and target % multiple:
            target += multiple - target % multiple
        fill = {"input_ids": self.pad_token_id, "token_type_ids": 0, "attention_mask": 0,
                "special_tokens_mask": 1, "offset_mapping": (0, 0)}
        for row in rows:
            missing = target - len(row["input_ids"])
            if missing > 0:
                for key, value in fill.items():
                    if key not in row:
                        continue
                    pad = [value] * missing
                    row[key] = row[key] + pad if side == "right" else pad + row[key]

    def truncate_sequences(self, ids, pair_ids=None, num_tokens_to_remove: int = 0,
                           truncation_strategy: str = "longest_first"):
        """Remove ``num_tokens_to_remove`` ids (HF's ``truncate_sequences``); returns (ids, pair_ids)."""
        if truncation_strategy is True:
            truncation_strategy = "longest_first"
        if truncation_strategy not in TRUNCATION_STRATEGIES:
            raise ValueError(f"{type(self).__name__}.truncate_sequences: unknown truncation strategy "
                             f"{truncation_strategy!r}; expected one of {TRUNCATION_STRATEGIES}")
        if truncation_strategy == "do_not_truncate" or num_tokens_to_remove <= 0:
            return list(ids), None if pair_ids is None else list(pair_ids)
        keep_a, keep_b = truncated_lengths(len(ids), None if pair_ids is None else len(pair_ids),
                                           num_tokens_to_remove, truncation_strategy, None,
                                           owner=type(self).__name__, rules=self.truncation_rules)
        return (keep(list(ids), keep_a, self.truncation_side),
                None if pair_ids is None else keep(list(pair_ids), keep_b, self.truncation_side))


def truncated_lengths(len_a: int, len_b: int | None, excess: int, strategy: str, max_length,
                      owner: str = "BertTokenizer", rules: str = "python") -> tuple:
    """How many tokens of segments A and B survive removing ``excess`` tokens.

    ``longest_first`` (HF's rule): first take from the longer segment until both are equal, then
    split the rest evenly. HF's python tokenizers take an odd token left over from B; with
    ``rules="rust"`` (HF's ``tokenizers``) it comes from the segment that was shorter, A on a tie,
    and a budget of 0 tokens empties every segment whatever the strategy.
    """
    where = f"{owner} truncation ({strategy}, max_length={max_length})"
    if rules == "rust" and excess == len_a + (len_b or 0):
        return 0, None if len_b is None else 0
    if len_b is None:
        if strategy == "only_second":
            raise ValueError(f"{where}: only_second needs a pair of sequences, got a single sequence")
        if excess > len_a:
            raise ValueError(f"{where}: cannot remove {excess} tokens from a sequence of {len_a}; "
                             "max_length is shorter than the special tokens")
        return len_a - excess, None
    if strategy in ("only_first", "only_second"):
        length = len_a if strategy == "only_first" else len_b
        if excess >= length:
            name = "first" if strategy == "only_first" else "second"
            raise ValueError(f"{where}: the {name} sequence has {length} tokens but {excess} must be "
                             f"removed; it cannot be truncated enough (use 'longest_first' or a larger max_length)")
        return (len_a - excess, len_b) if strategy == "only_first" else (len_a, len_b - excess)
    if excess > len_a + len_b:
        raise ValueError(f"{where}: cannot remove {excess} tokens from a pair of {len_a} + {len_b}; "
                         "max_length is shorter than the special tokens")
    first = min(abs(len_a - len_b), excess)  # make the two segments equally long
    rest = excess - first                     # then remove from both
    odd_to_b = rules == "python" or len_a > len_b
    from_a, from_b = (rest // 2, rest - rest // 2) if odd_to_b else (rest - rest // 2, rest // 2)
    if len_a > len_b:
        return len_a - first - from_a, len_b - from_b
    return len_a - from_a, len_b - first - from_b


def keep(seq: list, count: int, side: str) -> list:
    """The ``count`` items kept when truncating on ``side``."""
    return seq[:count] if side == "right" else seq[len(seq) - count:]


def check_side(where: str, name: str, side: str) -> str:
    if side not in ("right", "left"):
        raise ValueError(f"{where}: {name} must be 'right' or 'left', got {side!r}")
    return side


def as_batch(text, text_pair, where: str) -> tuple[bool, list[tuple[str, str | None]]]:
    """Normalise the accepted input forms to (is_batch, [(a, b or None), ...])."""
    if isinstance(text, str):
        if text_pair is not None and not isinstance(text_pair, str):
            raise TypeError(f"{where}: text is a str, so text_pair must be a str or None, "
                            f"got {type(text_pair).__name__}")
        return False, [(text, text_pair)]
    if not isinstance(text, (list, tuple)):
        raise TypeError(f"{where}: text must be a str, a list of str or a list of (str, str) pairs, "
                        f"got {type(text).__name__}")
    if text_pair is None:
        pairs = [tuple(t) if isinstance(t, (list, tuple)) else (t, None) for t in text]
    else:
        if not isinstance(text_pair, (list, tuple)) or len(text_pair) != len(text):
            raise ValueError(f"{where}: text_pair must be a list as long as text ({len(text)}), got "
                             f"{type(text_pair).__name__} of length {getattr(text_pair, '__len__', lambda: '?')()}")
        pairs = list(zip(text, text_pair))
    for i, pair in enumerate(pairs):
        if len(pair) != 2 or not isinstance(pair[0], str) or not (pair[1] is None or isinstance(pair[1], str)):
            raise TypeError(f"{where}: batch item {i} must be a str or a (str, str) pair, got {pair!r:.80}")
    return True, pairs


def clean_up_tokenization(text: str) -> str:
    """Undo the spaces that tokenisation put before punctuation and English clitics (HF's rules)."""
    for spaced, glued in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                          (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(spaced, glued)
    return text


def read_json_config(path: Path, where: str) -> dict:
    """A JSON object from ``path``, or {} when the file is absent (optional HF config files)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: {str(path)!r} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: {str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


def special_token_content(value):
    """A special token as written in HF's config files: a str or a serialised ``AddedToken``."""
    return value.get("content") if isinstance(value, dict) else value
