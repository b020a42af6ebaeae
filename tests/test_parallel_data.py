"""Parallel corpus reader (plain / gzip, alignment check, length filter), Multi30k, synthetic tasks."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.data.parallel import (
    SYNTHETIC_VOCAB, SentencePair, copy_task, read_lines, read_multi30k, read_parallel,
    reversal_task, sort_task,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MULTI30K = DATA / "multi30k"


def _write(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_read_parallel_plain_and_gzip(tmp_path):
    src = _write(tmp_path / "train.en.gz", "A dog runs.\nTwo men talk .\r\nÜber café\n")
    tgt = _write(tmp_path / "train.de", "Ein Hund rennt.\nZwei Männer reden .\r\nÜber Café\n")
    assert read_parallel(src, tgt) == [SentencePair("A dog runs.", "Ein Hund rennt."),
                                       SentencePair("Two men talk .", "Zwei Männer reden ."),
                                       SentencePair("Über café", "Über Café")]
    # whitespace tokens: "Two men talk ." has 4, the others 3 and 2
    assert [p.source for p in read_parallel(src, tgt, max_len=3)] == ["A dog runs.", "Über café"]
    assert [p.source for p in read_parallel(src, tgt, max_len=2, tokenize=list)] == []


def test_read_lines_keeps_alignment_details(tmp_path):
    path = _write(tmp_path / "x.txt", "a\n\nb\x85c\nlast")  # \x85 is not a line break here
    assert read_lines(path) == ["a", "", "b\x85c", "last"]
    src = _write(tmp_path / "s.txt", "a\n\nb\n")
    tgt = _write(tmp_path / "t.txt", "x\ny\n\n")
    assert read_parallel(src, tgt) == [SentencePair("a", "x")]  # empty sides dropped
    assert len(read_parallel(src, tgt, skip_empty=False)) == 3


def test_read_parallel_errors(tmp_path):
    src = _write(tmp_path / "val.en", "one\ntwo\nthree\n")
    tgt = _write(tmp_path / "val.de", "eins\nzwei\n")
    with pytest.raises(ValueError, match=r"not aligned: .*val.en has 3 lines but .*val.de has 2"):
        read_parallel(src, tgt)
    with pytest.raises(FileNotFoundError, match="read_lines: no such file"):
        read_parallel(tmp_path / "missing.en", tgt)
    _write(tmp_path / "latin1.txt", "x")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="is not UTF-8"):
        read_lines(tmp_path / "latin1.txt")
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(ValueError, match="not a readable gzip"):
        read_lines(tmp_path / "broken.gz")
    with pytest.raises(ValueError, match="max_len must be None or an int >= 1"):
        read_parallel(src, src, max_len=0)


def test_real_multi30k_counts():
    if not MULTI30K.is_dir():
        pytest.skip(f"{MULTI30K} not present")
    sizes = {split: len(read_multi30k(MULTI30K, split)) for split in ("train", "val", "test_2016_flickr")}
    assert sizes == {"train": 29000, "val": 1014, "test_2016_flickr": 1000}
    val = read_multi30k(MULTI30K, "val", source_lang="de", target_lang="en")
    assert val[0].target == "A group of men are loading cotton onto a truck"
    short = read_multi30k(MULTI30K, "val", max_len=10)
    assert 0 < len(short) < 1014
    assert all(len(p.source.split()) <= 10 and len(p.target.split()) <= 10 for p in short)
    with pytest.raises(ValueError, match="split must be one of"):
        read_multi30k(MULTI30K, "test")


def test_reversal_task_is_the_books():
    train, valid = reversal_task(seed=0)
    assert len(train) == 3000 and len(valid) == 300
    letters = set(SYNTHETIC_VOCAB[3:])
    assert SYNTHETIC_VOCAB[:3] == ("<s>", "</s>", "<pad>") and len(letters) == 26
    for pair in train + valid:
        assert 10 <= len(pair.source) <= 12 and set(pair.source) <= letters
        assert pair.target == pair.source[::-1]
    lengths = {len(p.source) for p in train}
    assert lengths == {10, 11, 12}
    assert reversal_task(seed=0) == (train, valid)
    assert reversal_task(seed=1)[0] != train
    # a Generator works as the seed too
    assert reversal_task(seed=np.random.default_rng(0)) == (train, valid)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), min_len=st.integers(1, 6), extra=st.integers(0, 4),
       n=st.integers(0, 20))
def test_synthetic_tasks_properties(seed, min_len, extra, n):
    max_len = min_len + extra
    for task, rule in ((copy_task, lambda s: s), (sort_task, lambda s: "".join(sorted(s))),
                       (reversal_task, lambda s: s[::-1])):
        train, valid = task(num_train=n, num_valid=3, min_len=min_len, max_len=max_len, seed=seed)
        assert len(train) == n and len(valid) == 3
        assert all(min_len <= len(p.source) <= max_len and p.target == rule(p.source) for p in train + valid)
    # the same seed gives the same sources for every task (only the rule differs)
    assert [p.source for p in copy_task(n, 3, min_len, max_len, seed)[0]] == \
        [p.source for p in sort_task(n, 3, min_len, max_len, seed)[0]]


def test_synthetic_task_errors():
    with pytest.raises(ValueError, match=r"reversal_task: max_len \(3\) must be >= min_len \(5\)"):
        reversal_task(min_len=5, max_len=3)
    with pytest.raises(ValueError, match="num_train must be an int >= 0"):
        copy_task(num_train=-1)
    with pytest.raises(ValueError, match="min_len must be an int >= 1"):
        sort_task(min_len=0)
