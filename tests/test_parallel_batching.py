"""Parallel-data batching: vocabularies, <s>/</s> encoding, padding, masks, length buckets, seeds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.data.parallel import SentencePair, read_multi30k, reversal_task
from models.data.parallel_batching import (
    ParallelDataset, build_vocabs, char_level, collate, encode_pairs, lowercase_words, synthetic_vocab,
)

MULTI30K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "multi30k"

PAIRS = [SentencePair("A dog runs .", "Ein Hund rennt ."), SentencePair("A cat", "Eine Katze"),
         SentencePair("Two dogs run fast .", "Zwei Hunde rennen schnell .")]


def test_synthetic_vocab_is_the_books():
    v = synthetic_vocab()
    assert len(v) == 29
    assert (v.bos_id, v.eos_id, v.pad_id) == (0, 1, 2)
    assert v.itos[3] == "a" and v.itos[28] == "z"


def test_synthetic_encoding_adds_eos_to_source_and_both_marks_to_target():
    ds = ParallelDataset.synthetic([SentencePair("abc", "cba")])
    assert ds.sources[0].tolist() == [3, 4, 5, 1]          # a b c </s>
    assert ds.targets[0].tolist() == [0, 5, 4, 3, 1]       # <s> c b a </s>
    assert ds.sources[0].dtype == np.int64


def test_vocab_per_language_and_shared():
    src, tgt = build_vocabs(PAIRS, src_tokenize=lowercase_words)
    assert "dog" in src and "dog" not in tgt and "hund" in tgt and "hund" not in src
    assert src.itos[:4] == ("<pad>", "<unk>", "<s>", "</s>")
    # most frequent first: "a" (2), "." (2), "dog" ... in the source
    assert src.itos[4:6] == (".", "a")
    shared, same = build_vocabs(PAIRS, shared=True)
    assert shared is same and "dog" in shared and "hund" in shared
    rare_src, _ = build_vocabs(PAIRS, min_freq=2)
    assert rare_src.itos[4:] == (".", "a")


def test_unknown_words_become_unk_in_validation_data():
    ds = ParallelDataset.build(PAIRS)
    valid = ds.encode([SentencePair("A zebra runs", "Ein Zebra rennt")])
    unk = ds.src_vocab.unk_id
    assert valid.sources[0].tolist() == [ds.src_vocab.stoi["a"], unk, ds.src_vocab.stoi["runs"], ds.src_vocab.eos_id]
    assert valid.src_vocab is ds.src_vocab


def test_batch_padding_lengths_and_masks():
    ds = ParallelDataset.build(PAIRS)
    b = ds.batch([0, 1, 2])
    # sources: 4 + </s>, 2 + </s>, 5 + </s>; targets: <s> + n + </s>
    assert b.src_lengths.tolist() == [5, 3, 6] and b.tgt_lengths.tolist() == [6, 4, 7]
    assert b.src.shape == (3, 6) and b.tgt.shape == (3, 7)
    assert b.src_mask.tolist()[1] == [True] * 3 + [False] * 3
    assert (b.src[~b.src_mask] == ds.src_vocab.pad_id).all()
    assert (b.tgt_in[:, 0] == ds.tgt_vocab.bos_id).all()
    np.testing.assert_array_equal(b.tgt_out[:, :-1], b.tgt_in[:, 1:])  # shifted by one
    # the mask covers y_1..y_n </s> of each row: lengths minus the <s>
    assert b.tgt_mask.sum(1).tolist() == [5, 3, 6] and b.num_target_tokens == 14
    assert (b.tgt_out[b.tgt_mask] != ds.tgt_vocab.pad_id).all()
    assert (b.tgt_out[~b.tgt_mask] == ds.tgt_vocab.pad_id).all()
    assert b.tgt_out[1, 2] == ds.tgt_vocab.eos_id


def test_batches_cover_every_pair_once_and_are_deterministic():
    train, _ = reversal_task(500, 0, seed=1, min_len=3, max_len=12)
    ds = ParallelDataset.synthetic(train)
    first = ds.batches(32, seed=5)
    again = ds.batches(32, seed=5)
    other = ds.batches(32, seed=6)
    idx = np.concatenate([b.index for b in first])
    assert sorted(idx.tolist()) == list(range(500))
    assert all(np.array_equal(a.src, b.src) and np.array_equal(a.index, b.index) for a, b in zip(first, again))
    assert any(not np.array_equal(a.index, b.index) for a, b in zip(first, other))
    # each row really is the pair it says it is
    for b in first[:3]:
        for row, i in enumerate(b.index):
            assert b.src[row, :b.src_lengths[row]].tolist() == ds.sources[i].tolist()
            assert b.tgt[row, :b.tgt_lengths[row]].tolist() == ds.targets[i].tolist()


def test_bucketing_wastes_less_padding_than_random_batches():
    train, _ = reversal_task(600, 0, seed=2, min_len=2, max_len=30)
    ds = ParallelDataset.synthetic(train)

    def padding(batches):
        return sum(int((~b.src_mask).sum()) for b in batches)

    bucketed, shuffled = ds.batches(20, seed=0), ds.batches(20, seed=0, bucket=False)
    assert padding(bucketed) < 0.25 * padding(shuffled)
    ordered = ds.batches(20, shuffle=False, bucket=False)
    assert np.concatenate([b.index for b in ordered]).tolist() == list(range(600))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.text("abc", min_size=1, max_size=8), st.text("abc", min_size=1, max_size=8)),
                min_size=1, max_size=30), st.integers(1, 7), st.integers(0, 99))
def test_any_pairs_round_trip_through_batches(pairs, batch_size, seed):
    ds = ParallelDataset.synthetic([SentencePair(s, t) for s, t in pairs])
    batches = ds.batches(batch_size, seed=seed)
    assert all(len(b) <= batch_size for b in batches)
    seen = {}
    for b in batches:
        for row, i in enumerate(b.index):
            src = ds.src_vocab.decode(b.src[row, :b.src_lengths[row]], skip_specials=True)
            tgt = ds.tgt_vocab.decode(b.tgt_out[row][b.tgt_mask[row]], skip_specials=True)
            seen[int(i)] = ("".join(src), "".join(tgt))
    assert seen == {i: p for i, p in enumerate(pairs)}


def test_drop_last_and_collate():
    ds = ParallelDataset.synthetic([SentencePair("ab", "ba")] * 5)
    assert [len(b) for b in ds.batches(2, drop_last=True)] == [2, 2]
    b = collate(ds.sources, ds.targets, [4, 0], src_pad_id=2, tgt_pad_id=2)
    assert b.index.tolist() == [4, 0] and b.src.shape == (2, 3)


def test_bad_input_gives_clear_errors():
    with pytest.raises(TypeError, match="build_vocabs: pair 0"):
        build_vocabs(["not a pair"])
    with pytest.raises(ValueError, match="build_vocabs: got no sentence pairs"):
        build_vocabs([])
    ds = ParallelDataset.synthetic([SentencePair("ab", "ba")])
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ds.batches(0)
    with pytest.raises(ValueError, match=r"indices must be non-empty and in \[0, 1\)"):
        ds.batch([3])
    with pytest.raises(ValueError, match="encode_pairs: pair 0 .*'A' is not in the vocab"):
        encode_pairs([SentencePair("A", "b")], synthetic_vocab(), synthetic_vocab(), src_tokenize=char_level)
    from models.text import Vocab
    with pytest.raises(ValueError, match=r"lacks the special\(s\) \['<s>', '</s>'\]"):
        ParallelDataset(PAIRS, Vocab(["<pad>", "<unk>", "a"], specials=("<pad>", "<unk>")), synthetic_vocab())


def test_multi30k_validation_split_batches():
    if not MULTI30K.is_dir():
        pytest.skip("../shared/data/multi30k is not available")
    pairs = read_multi30k(MULTI30K, "val")
    assert len(pairs) == 1014
    ds = ParallelDataset.build(pairs, min_freq=2)
    batches = ds.batches(64, seed=0)
    assert sum(len(b) for b in batches) == 1014
    assert ds.src_vocab.itos[4] in (".", "a")  # the most frequent English tokens
    unk_rate = np.mean([(s == ds.src_vocab.unk_id).mean() for s in ds.sources])
    assert 0.0 < unk_rate < 0.2
    # similar lengths in a batch: the mean spread of source lengths is small
    spread = np.mean([b.src_lengths.max() - b.src_lengths.min() for b in batches])
    assert spread < 3
