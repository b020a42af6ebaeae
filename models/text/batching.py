"""Mini-batches for language models.

Two ways to feed a corpus to a neural LM (book, chapter 1):

* **Token stream + truncated BPTT** (``batchify``/``get_batch``/``lm_windows``, as in PyTorch's
  ``word_language_model`` example): the whole corpus is one long id stream, cut into ``B``
  contiguous rows; windows of ``T`` steps are taken left to right, so row ``b`` of window
  ``k+1`` continues row ``b`` of window ``k`` and the RNN hidden state can be carried over
  (gradients are truncated at window borders).
* **Padded sentences** (``pad_batch``/``bucket_batches``/``sentence_batches``): each sentence
  is a row, padded with ``<pad>`` to the longest in the batch, with its true length; bucketing
  groups sentences of similar length so little compute is spent on padding.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

__all__ = [
    "batchify",
    "get_batch",
    "num_windows",
    "lm_windows",
    "pad_batch",
    "bucket_batches",
    "sentence_batches",
]


def _as_id_array(where: str, ids: object, ndim: int) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != ndim or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{where}: expected a {ndim}-D integer array, got shape {arr.shape} dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_positive(where: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {value!r}")
    return int(value)


def batchify(ids: Sequence[int] | np.ndarray, batch_size: int) -> np.ndarray:
    """Cut a 1-D id stream into ``batch_size`` contiguous rows: ``(N,) -> (B, N // B)``.

    The ``N % B`` trailing ids are dropped. Row ``b`` is ``ids[b*L:(b+1)*L]`` — the transpose of
    PyTorch's ``batchify`` (which is time-major).
    """
    stream = _as_id_array("batchify", ids, 1)
    batch_size = _check_positive("batchify", "batch_size", batch_size)
    length = stream.shape[0] // batch_size
    if length < 2:
        raise ValueError(
            f"batchify: a stream of {stream.shape[0]} ids is too short for batch_size={batch_size} "
            "(each row needs at least 2 ids: an input and its next-token target)"
        )
    return stream[: batch_size * length].reshape(batch_size, length)  # (B, L)


def num_windows(data: np.ndarray, bptt: int) -> int:
    """Number of ``(x, y)`` windows in ``(B, L)`` data: ``ceil((L - 1) / bptt)``."""
    bptt = _check_positive("num_windows", "bptt", bptt)
    return -(-(np.asarray(data).shape[1] - 1) // bptt)


def get_batch(data: np.ndarray, i: int, bptt: int) -> tuple[np.ndarray, np.ndarray]:
    """Window starting at column ``i``: inputs ``x = data[:, i:i+T]``, next-token targets
    ``y = data[:, i+1:i+1+T]`` with ``T = min(bptt, L - 1 - i)``. Both ``(B, T)``."""
    data = _as_id_array("get_batch", data, 2)
    bptt = _check_positive("get_batch", "bptt", bptt)
    length = data.shape[1]
    if not 0 <= i < length - 1:
        raise ValueError(f"get_batch: start i must be in [0, {length - 1}), got {i}")
    t = min(bptt, length - 1 - i)
    return data[:, i:i + t], data[:, i + 1:i + 1 + t]


def lm_windows(data: np.ndarray, bptt: int, *, drop_last: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All truncated-BPTT windows of ``(B, L)`` data, left to right (``drop_last`` skips a
    final window shorter than ``bptt``)."""
    data = _as_id_array("lm_windows", data, 2)
    bptt = _check_positive("lm_windows", "bptt", bptt)
    for i in range(0, data.shape[1] - 1, bptt):
        x, y = get_batch(data, i, bptt)
        if drop_last and x.shape[1] < bptt:
            return
        yield x, y


def pad_batch(
    sequences: Sequence[Sequence[int]],
    pad_id: int,
    *,
    max_len: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad id sequences to a ``(B, T)`` int64 array; returns ``(ids, lengths)``.

    ``T`` is the longest length (or ``max_len``; longer sequences are truncated to it).
    ``lengths[b]`` is the number of real tokens in row ``b``; ``ids[b, lengths[b]:] == pad_id``.
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch: got an empty list of sequences")
    if max_len is not None:
        max_len = _check_positive("pad_batch", "max_len", max_len)
    rows = [_as_id_array(f"pad_batch (sequence {b})", s, 1) for b, s in enumerate(sequences)]
    lengths = np.array([r.shape[0] for r in rows], dtype=np.int64)
    if max_len is not None:
        lengths = np.minimum(lengths, max_len)
    width = int(lengths.max()) if max_len is None else max_len
    out = np.full((len(rows), width), pad_id, dtype=np.int64)  # (B, T)
    for b, (row, n) in enumerate(zip(rows, lengths)):
        out[b, :n] = row[:n]
    return out, lengths


def bucket_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    pool_factor: int = 50,
    drop_last: bool = False,
) -> list[np.ndarray]:
    """Group item indices into batches of similar length (length-bucketed batching).

    With ``shuffle``: permute the items with the seed, cut them into pools of
    ``pool_factor * batch_size``, sort each pool by length (stable), cut into batches and
    permute the batch order — random but low-padding batches, like torchtext's
    ``BucketIterator``. Without ``shuffle``: sort all items by length (stable) and cut.
    """
    lengths = _as_id_array("bucket_batches", lengths, 1)
    batch_size = _check_positive("bucket_batches", "batch_size", batch_size)
    pool_factor = _check_positive("bucket_batches", "pool_factor", pool_factor)
    rng = np.random.default_rng(seed)
    if shuffle:
        order = rng.permutation(lengths.shape[0])
        pool = batch_size * pool_factor
        order = np.concatenate([
            order[s:s + pool][np.argsort(lengths[order[s:s + pool]], kind="stable")]
            for s in range(0, len(order), pool)
        ]) if len(order) else order
    else:
        order = np.argsort(lengths, kind="stable")
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def sentence_batches(
    sequences: Sequence[Sequence[int]],
    batch_size: int,
    pad_id: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    bucket: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Padded sentence batches ``(ids (B, T), lengths (B,), index (B,))``.

    ``index`` gives the positions of the rows in ``sequences``. With ``bucket`` the batches come
    from ``bucket_batches``; otherwise consecutive (optionally seed-permuted) items.
    """
    batch_size = _check_positive("sentence_batches", "batch_size", batch_size)
    n = len(sequences)
    if bucket:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        batches = bucket_batches(lengths, batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last)
    else:
        order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
        batches = [order[s:s + batch_size] for s in range(0, n, batch_size)]
        if drop_last and batches and len(batches[-1]) < batch_size:
            batches.pop()
    for index in batches:
        ids, lens = pad_batch([sequences[i] for i in index], pad_id)
        yield ids, lens, index
