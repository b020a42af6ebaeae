"""Text pipeline: normalisation, tokenisation, sentences, Vocab, corpora, splits, LM batching."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.text import (
    SPECIALS,
    Vocab,
    batchify,
    bucket_batches,
    char_tokenize,
    get_batch,
    lm_windows,
    load_corpus,
    load_default_corpus,
    load_text,
    normalize,
    num_windows,
    pad_batch,
    sentence_batches,
    split_sentences,
    tokenize_sentences,
    train_valid_test_split,
    word_tokenize,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHAKESPEARE = DATA / "tinyshakespeare" / "input.txt"


# -- normalisation and tokenisation ------------------------------------------------------
def test_normalize_hand_cases():
    assert normalize("  Hello,\t\tWORLD \n") == "hello, world"
    assert normalize("ﬁne Ｆｕｌｌ\u00a0width") == "fine full width"   # ligature, full-width, NBSP
    assert normalize("zero\u200bwidth") == "zerowidth"                   # format char dropped
    assert normalize("Café", lowercase=False) == "Café"
    assert normalize("™") == "tm"
    assert normalize("a  b\n\n\n\nc   d\n", keep_newlines=True) == "a b\n\nc d"
    with pytest.raises(TypeError, match="normalize"):
        normalize(b"bytes")
    with pytest.raises(ValueError, match="form"):
        normalize("x", form="NFX")


def test_word_and_char_tokenize():
    assert word_tokenize("Don't panic, world!") == ["Don't", "panic", ",", "world", "!"]
    assert word_tokenize("Wait... a**b -----") == ["Wait", "...", "a", "**", "b", "-----"]
    assert word_tokenize("we know't") == ["we", "know't"]
    assert char_tokenize("ab c") == ["a", "b", " ", "c"]
    with pytest.raises(TypeError, match="word_tokenize"):
        word_tokenize(["a"])


def test_split_sentences():
    text = 'Hello, World!  This is e.g. a test.  "Quoted." Next one?\n\nCode block\nmore\n\nMr. Smith went 3.14 km.'
    assert split_sentences(text) == [
        "Hello, World!", "This is e.g. a test.", '"Quoted."', "Next one?", "Code block more",
        "Mr. Smith went 3.14 km.",
    ]
    assert split_sentences("   ") == []
    assert split_sentences("see e.g.\n\nNext part") == ["see e.g.", "Next part"]   # blank line wins
    assert tokenize_sentences("A b. C d!") == [["a", "b", "."], ["c", "d", "!"]]
    assert tokenize_sentences("Ab. C", level="char") == [list("ab."), ["c"]]
    with pytest.raises(ValueError, match="level"):
        tokenize_sentences("x", level="bpe")


_ALPHABET = st.sampled_from(list("abcXYZ .,!?'-\n\t\u00a0") + ["ﬁ", "Ｆ", "\u200b", "É", "ß", "İ", "ǅ", "™", "①"])
_CORPUS = st.lists(st.text(_ALPHABET, max_size=40), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(_CORPUS)
def test_normalisation_properties(docs):
    """On random small corpora: normalisation is idempotent, leaves single inner spaces only,
    and sentence splitting + word tokenisation lose no non-space character."""
    for doc in docs:
        clean = normalize(doc)
        assert normalize(clean) == clean
        assert clean == clean.strip() and "  " not in clean
        assert all(not ch.isspace() or ch == " " for ch in clean)
        tokens = word_tokenize(clean)
        assert all(t and not any(ch.isspace() for ch in t) for t in tokens)
        assert "".join(tokens) == clean.replace(" ", "")
        assert "".join(char_tokenize(clean)) == clean
        kept = normalize(doc, keep_newlines=True)
        assert normalize(kept, keep_newlines=True) == kept
        sentences = split_sentences(kept)
        assert "".join(sentences).replace(" ", "") == "".join(kept.split())
    sentences = [s for doc in docs for s in tokenize_sentences(doc)]
    vocab = Vocab.build(sentences)
    for s in sentences:
        assert vocab.decode(vocab.encode(s)) == s


# -- Vocab -----------------------------------------------------------------------------------
def test_vocab_order_min_freq_max_size():
    sents = [["b", "a", "c", "a"], ["b", "d", "a"], ["e"]]
    v = Vocab.build(sents)
    assert v.itos == SPECIALS + ("a", "b", "c", "d", "e")     # a:3, b:2, then ties by token
    assert Vocab.build(sents, min_freq=2).itos == SPECIALS + ("a", "b")
    assert Vocab.build(sents, max_size=6).itos == SPECIALS + ("a", "b")
    assert len(v) == 9 and "a" in v and "z" not in v
    assert v.stoi["a"] == 4 and v.itos[4] == "a"
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    with pytest.raises(TypeError):
        v.stoi["new"] = 3  # read-only mapping


def test_vocab_encode_decode():
    v = Vocab.build([["a", "b"]])
    ids = v.encode(["a", "zzz", "b"], add_bos=True, add_eos=True)
    assert ids.dtype == np.int64 and ids.tolist() == [2, 4, 1, 5, 3]
    assert v.decode(ids) == ["<s>", "a", "<unk>", "b", "</s>"]
    assert v.decode(ids, skip_specials=True) == ["a", "<unk>", "b"]
    with pytest.raises(ValueError, match=r"id 9 out of range \[0, 6\)"):
        v.decode([9])
    with pytest.raises(TypeError, match="tokenise"):
        v.encode("a b")
    no_unk = Vocab.build([["a"]], specials=("<pad>",))
    with pytest.raises(ValueError, match="'zzz' is not in the vocab"):
        no_unk.encode(["zzz"])
    with pytest.raises(ValueError, match="has no '<unk>'"):
        _ = no_unk.unk_id


def test_vocab_unknown_special_errors():
    with pytest.raises(ValueError, match=r"unknown special token\(s\) \['<mask>'\]"):
        Vocab.build([["a"]], specials=("<pad>", "<mask>"))
    with pytest.raises(ValueError, match="unknown special '<cls>'"):
        Vocab.build([["a"]]).special_id("<cls>")
    with pytest.raises(ValueError, match="must start with the specials"):
        Vocab(["a", "<pad>"], specials=("<pad>",))
    with pytest.raises(ValueError, match="duplicate token 'a'"):
        Vocab(["<pad>", "a", "a"], specials=("<pad>",))
    with pytest.raises(TypeError, match="got a str at position 0"):
        Vocab.build(["a b c"])
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build([["a"]], min_freq=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocab.build([["a"]], max_size=2)


def test_vocab_save_load_round_trip(tmp_path):
    v = Vocab.build([["über", "a", "a", "日本"]], min_freq=1)
    path = tmp_path / "sub" / "vocab.json"
    v.save(path)
    assert Vocab.load(path) == v
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temp file left behind
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["itos"][: len(SPECIALS)] == list(SPECIALS)


@pytest.mark.parametrize("content, message", [
    ("not json", "not a valid JSON"),
    ('{"format": "other"}', "not a vocab file"),
    ('{"format": "minigrad.vocab", "version": 9, "itos": [], "specials": []}', "unsupported version"),
    ('{"format": "minigrad.vocab", "version": 1, "itos": "abc", "specials": []}', "list fields"),
    ('{"format": "minigrad.vocab", "version": 1, "itos": ["<pad>", "a", "a"], "specials": ["<pad>"]}',
     "duplicate token"),
    ('{"format": "minigrad.vocab", "version": 1, "itos": ["<cls>"], "specials": ["<cls>"]}', "unknown special"),
    ('{"format": "minigrad.vocab", "version": 1, "itos": ["<pad>", 3], "specials": ["<pad>"]}', "must be str"),
])
def test_vocab_load_malformed(tmp_path, content, message):
    path = tmp_path / "v.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        Vocab.load(path)


def test_vocab_load_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="Vocab.load"):
        Vocab.load(tmp_path / "nope.json")


# -- corpora -----------------------------------------------------------------------------------
def test_default_corpus_is_pydoc_topics():
    from pydoc_data.topics import topics

    text = load_default_corpus()
    assert 400_000 < len(text) < 600_000
    first = sorted(topics)[0]
    assert text.startswith(topics[first]) and text == load_corpus(None)


def test_load_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_text(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="directory"):
        load_text(tmp_path)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"not valid UTF-8 \(bad byte 0xe9 at offset 3\)"):
        load_text(tmp_path / "latin1.txt")
    (tmp_path / "empty.txt").write_text(" \n\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbfhello")
    assert load_text(tmp_path / "bom.txt") == "hello"


def test_split_shuffle_is_deterministic_and_partitions():
    items = list(range(103))
    a = train_valid_test_split(items, seed=3)
    assert a == train_valid_test_split(items, seed=3)
    assert a != train_valid_test_split(items, seed=4)
    assert [len(p) for p in a] == [83, 10, 10]
    assert sorted(a[0] + a[1] + a[2]) == items


def test_split_contiguous_chunks():
    items = list(range(100))
    train, valid, test = train_valid_test_split(items, seed=1, mode="contiguous", chunk_size=10)
    assert [len(p) for p in (train, valid, test)] == [80, 10, 10]
    for part in (valid, test):  # one whole chunk each
        assert part == list(range(part[0], part[0] + 10)) and part[0] % 10 == 0
    assert sorted(train + valid + test) == items
    assert train_valid_test_split(items, (0.5, 0.3, 0.2), mode="contiguous") == (
        items[:50], items[50:80], items[80:])
    with pytest.raises(ValueError, match="summing to 1"):
        train_valid_test_split(items, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="chunk_size"):
        train_valid_test_split(items, mode="contiguous", chunk_size=0)
    with pytest.raises(ValueError, match="mode"):
        train_valid_test_split(items, mode="random")


@pytest.mark.skipif(not SHAKESPEARE.exists(), reason="shared data not present")
def test_tiny_shakespeare_pipeline():
    sentences = tokenize_sentences(load_text(SHAKESPEARE))
    assert sentences[0] == ["first", "citizen", ":", "before", "we", "proceed", "any", "further", ",",
                            "hear", "me", "speak", "."]
    assert 10_000 < len(sentences) < 20_000
    assert 200_000 < sum(map(len, sentences)) < 300_000


# -- batching ------------------------------------------------------------------------------------
def test_batchify_and_windows():
    data = batchify(np.arange(23), 3)                     # (B, L) = (3, 7), 2 ids dropped
    assert data.tolist() == [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12, 13], [14, 15, 16, 17, 18, 19, 20]]
    x, y = get_batch(data, 0, 4)
    assert x.tolist() == [[0, 1, 2, 3], [7, 8, 9, 10], [14, 15, 16, 17]]
    assert np.array_equal(y, x + 1)
    windows = list(lm_windows(data, 4))
    assert num_windows(data, 4) == len(windows) == 2 and windows[1][0].shape == (3, 2)
    # the windows tile each row: hidden state can be carried from one to the next
    assert np.array_equal(np.concatenate([x for x, _ in windows], axis=1), data[:, :-1])
    assert np.array_equal(np.concatenate([y for _, y in windows], axis=1), data[:, 1:])
    assert len(list(lm_windows(data, 4, drop_last=True))) == 1
    with pytest.raises(ValueError, match="too short"):
        batchify(np.arange(5), 3)
    with pytest.raises(TypeError, match="integer"):
        batchify(np.zeros(10), 2)
    with pytest.raises(ValueError, match="batch_size"):
        batchify(np.arange(10), 0)
    with pytest.raises(ValueError, match="start i"):
        get_batch(data, 6, 4)


def test_batchify_matches_pytorch_layout():
    """PyTorch's word_language_model batchify is time-major: data.view(B, -1).t()."""
    torch = pytest.importorskip("torch")
    ids = np.arange(50)
    theirs = torch.tensor(ids)[: (50 // 4) * 4].view(4, -1).t().contiguous()   # (L, B)
    ours = batchify(ids, 4)
    assert np.array_equal(ours, theirs.numpy().T)
    i, bptt = 5, 3
    seq = min(bptt, len(theirs) - 1 - i)
    x, y = get_batch(ours, i, bptt)
    assert np.array_equal(x, theirs[i:i + seq].numpy().T) and np.array_equal(y, theirs[i + 1:i + 1 + seq].numpy().T)


def test_pad_batch():
    ids, lengths = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]] and lengths.tolist() == [3, 1, 0]
    ids, lengths = pad_batch([[5, 6, 7], [8]], pad_id=9, max_len=2)
    assert ids.tolist() == [[5, 6], [8, 9]] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError, match="empty list"):
        pad_batch([], 0)
    with pytest.raises(TypeError, match=r"sequence 1"):
        pad_batch([[1], [[1, 2]]], 0)


def test_bucket_batches_deterministic_and_low_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=500)
    batches = bucket_batches(lengths, 16, seed=1)
    assert [b.tolist() for b in batches] == [b.tolist() for b in bucket_batches(lengths, 16, seed=1)]
    assert [b.tolist() for b in batches] != [b.tolist() for b in bucket_batches(lengths, 16, seed=2)]
    assert sorted(np.concatenate(batches).tolist()) == list(range(500))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_padded = sum(len(b) * lengths[b].max() for b in np.array_split(rng.permutation(500), 32))
    assert padded < 0.6 * random_padded
    assert all(len(b) == 16 for b in bucket_batches(lengths, 16, drop_last=True))
    sorted_batches = bucket_batches(lengths, 100, shuffle=False)
    assert np.all(np.diff(lengths[np.concatenate(sorted_batches)]) >= 0)


def test_sentence_batches():
    seqs = [[1] * n for n in (3, 1, 4, 1, 5, 9, 2, 6)]
    out = list(sentence_batches(seqs, 3, pad_id=0, seed=0))
    assert sorted(np.concatenate([idx for _, _, idx in out]).tolist()) == list(range(8))
    for ids, lengths, idx in out:
        assert lengths.tolist() == [len(seqs[i]) for i in idx] and ids.shape == (len(idx), lengths.max())
    plain = list(sentence_batches(seqs, 3, pad_id=0, shuffle=False, bucket=False))
    assert [idx.tolist() for _, _, idx in plain] == [[0, 1, 2], [3, 4, 5], [6, 7]]
