"""Learning a byte-level BPE from a corpus: where GPT-2's 50,000 merges come from.

Byte-pair encoding (Sennrich et al. 2016, after Gage 1994) starts from single symbols, here the 256
bytes, and repeatedly glues together the adjacent pair that occurs most often in the corpus:

1. Cut the text into pre-tokens with the tokenizer's own pattern (GPT-2's by default) and count
   how often each distinct pre-token occurs: merges never cross a pre-token boundary, so the
   corpus is just {pre-token: frequency}. Special tokens are cut out first and not learnt from.
2. Spell every pre-token as its UTF-8 bytes and count each adjacent pair of symbols, weighted by
   the frequency of its pre-token.
3. Merge the most frequent pair everywhere (left to right, without overlap), record it as the next
   line of ``merges.txt`` and its result as the next vocabulary entry; repeat until the vocabulary
   is full or no pair occurs ``min_frequency`` times.

Ties go to the pair whose (first, second) bytes sort first, so training is deterministic and does
not depend on the order of the corpus. Only the pre-tokens that contain the merged pair change, so
after each merge only their pair counts are updated (a pre-token of n symbols is merged at most n-1
times in the whole run), and a heap with lazy deletion finds the next best pair.

The vocabulary follows GPT-2's layout: ids 0-255 the byte symbols (in GPT-2's order), then one id
per merge in merge order, then the special tokens. If two merges spell the same token (``ab c``
after ``a bc``), the second is recorded as a merge but takes no new id, as HF's trainer does.
"""
from __future__ import annotations

import heapq
from collections import Counter

import regex

from models.text.bpe import ENDOFTEXT, GPT2_PATTERN, bytes_to_unicode


def count_pretokens(texts, pattern: str = GPT2_PATTERN, special_tokens=()) -> Counter:
    """{pre-token: frequency} over ``texts`` (an iterable of str), special tokens cut out first."""
    where = "train_bpe"
    if isinstance(texts, str):
        raise TypeError(f"{where}: texts must be an iterable of str (documents or lines), got one str "
                        "(wrap it in a list)")
    splitter = regex.compile(pattern)
    specials = regex.compile("|".join(map(regex.escape, sorted(special_tokens, key=len, reverse=True)))) \
        if special_tokens else None
    counts: Counter = Counter()
    for number, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{where}: text {number} must be a str, got {type(text).__name__}")
        for piece in specials.split(text) if specials else (text,):
            counts.update(splitter.findall(piece))
    return counts


class _PairCounts:
    """Adjacent-pair frequencies over the distinct pre-tokens, updated as pairs are merged."""

    def __init__(self, pretoken_counts: Counter):
        self.words: list[list[bytes]] = []
        self.freqs: list[int] = []
        self.count: Counter = Counter()
        self.where: dict[tuple[bytes, bytes], set[int]] = {}
        for index, (piece, freq) in enumerate(pretoken_counts.items()):
            data = piece.encode("utf-8")
            symbols = [data[i:i + 1] for i in range(len(data))]
            self.words.append(symbols)
            self.freqs.append(freq)
            for pair in zip(symbols, symbols[1:]):
                self.count[pair] += freq
                self.where.setdefault(pair, set()).add(index)

    def merge(self, pair: tuple[bytes, bytes]) -> set[tuple[bytes, bytes]]:
        """Replace ``pair`` by its concatenation in every pre-token; return the pairs whose count changed."""
        first, second = pair
        merged = first + second
        changed = set()
        # Pre-tokens that lost the pair since they were indexed are skipped by the scan below; the
        # counts are sums, so the order of the updates does not matter.
        for index in self.where.pop(pair, ()):
            symbols = self.words[index]
            new = []
            i, n = 0, len(symbols)
            while i < n:
                if i + 1 < n and symbols[i] == first and symbols[i + 1] == second:
                    new.append(merged)
                    i += 2
                else:
                    new.append(symbols[i])
                    i += 1
            if len(new) == n:
                continue
            freq = self.freqs[index]
            for p in zip(symbols, symbols[1:]):
                self.count[p] -= freq
                changed.add(p)
            for p in zip(new, new[1:]):
                self.count[p] += freq
                changed.add(p)
                self.where.setdefault(p, set()).add(index)
            self.words[index] = new
        self.count.pop(pair, None)
        changed.discard(pair)
        return changed


def train_bpe(texts, vocab_size: int, *, min_frequency: int = 2, special_tokens=(ENDOFTEXT,),
              pattern: str = GPT2_PATTERN) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learn a byte-level BPE with at most ``vocab_size`` tokens (bytes + merges + special tokens).

    ``texts``: an iterable of str, documents or lines (keep their newlines if the tokenizer should
    learn them). Returns ``(vocab, merges)`` in byte-level spelling, ready for
    ``GPT2Tokenizer(vocab, merges).save_pretrained(directory)``.
    """
    where = "train_bpe"
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
        raise TypeError(f"{where}: vocab_size must be an int, got {type(vocab_size).__name__}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"{where}: min_frequency must be an int >= 1, got {min_frequency!r}")
    if isinstance(special_tokens, str) or not all(isinstance(t, str) and t for t in special_tokens):
        raise TypeError(f"{where}: special_tokens must be a list of non-empty str, got {special_tokens!r}")
    special_tokens = list(dict.fromkeys(special_tokens))
    symbol_of = bytes_to_unicode()

    def spell(data: bytes) -> str:
        return "".join(symbol_of[b] for b in data)

    vocab = {symbol: index for index, symbol in enumerate(sorted(symbol_of.values()))}
    clashing = [t for t in special_tokens if t in vocab]
    if clashing:
        raise ValueError(f"{where}: special tokens {clashing} are spelled like byte symbols")
    smallest = len(vocab) + len(special_tokens)
    if vocab_size < smallest:
        raise ValueError(f"{where}: vocab_size={vocab_size} is smaller than the 256 byte symbols plus "
                         f"{len(special_tokens)} special tokens; use vocab_size >= {smallest}")
    pairs = _PairCounts(count_pretokens(texts, pattern, special_tokens))
    # Min-heap of (-count, first, second): the most frequent pair first, then the smallest bytes.
    # Entries go stale when a count changes; a popped entry is used only if its count is current.
    heap = [(-c, a, b) for (a, b), c in pairs.count.items() if c >= min_frequency]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while len(vocab) + len(special_tokens) < vocab_size and heap:
        negative_count, first, second = heapq.heappop(heap)
        if pairs.count.get((first, second), 0) != -negative_count:
            continue
        merges.append((spell(first), spell(second)))
        vocab.setdefault(spell(first + second), len(vocab))
        for pair in pairs.merge((first, second)):
            count = pairs.count.get(pair, 0)
            if count >= min_frequency:
                heapq.heappush(heap, (-count, *pair))
    for token in special_tokens:
        vocab.setdefault(token, len(vocab))
    return vocab, merges
