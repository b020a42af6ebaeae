"""Learning a WordPiece vocabulary from a corpus: where BERT's 30,522 tokens come from (chapter 4).

Start from single characters and repeatedly glue together the adjacent pair of symbols that most
improves a unigram language model of the corpus (Schuster & Nakajima 2012, "Japanese and Korean
voice search"; the criterion as taught in Hugging Face's NLP course, chapter 6). Merging ``a`` and
``b`` into ``ab`` changes the log-likelihood by roughly ``log p(ab) - log p(a) - log p(b)``, so the
pair to merge is the one with the highest

    score(a, b) = freq(a b) / (freq(a) * freq(b))

where ``freq(a b)`` counts the adjacent occurrences and ``freq(a)`` all occurrences of a symbol,
each weighted by how often its word occurs. Unlike BPE's raw pair frequency, this prefers pairs
whose parts rarely appear apart: ``##g ##s`` beats the frequent ``##u ##g`` when ``##s`` is almost
always preceded by ``##g``. (Hugging Face's ``tokenizers`` WordPieceTrainer actually runs BPE's
frequency criterion with a ``##`` prefix; this module implements the likelihood criterion.)

Words come from BERT's basic step (``models.text.wordpiece.BasicTokenizer``); a symbol that does not
start a word carries the ``##`` prefix, exactly as the WordPiece tokenizer will look it up, so every
word of the training text can be tokenized without ``[UNK]``.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict

from models.text.wordpiece import BasicTokenizer

PREFIX = "##"
DEFAULT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def count_words(corpus_lines, lowercase: bool = True, strip_accents: bool | None = None,
                tokenize_chinese_chars: bool = True, max_chars_per_word: int = 100) -> Counter:
    """Word frequencies after BERT's basic step (words too long for WordPiece are left out)."""
    if isinstance(corpus_lines, str):
        raise TypeError("train_wordpiece: corpus_lines must be an iterable of str lines, got one str "
                        "(wrap it in a list, or pass text.splitlines())")
    basic = BasicTokenizer(do_lower_case=lowercase, strip_accents=strip_accents,
                           tokenize_chinese_chars=tokenize_chinese_chars)
    counts: Counter = Counter()
    for number, line in enumerate(corpus_lines):
        if not isinstance(line, str):
            raise TypeError(f"train_wordpiece: corpus line {number} must be a str, got {type(line).__name__}")
        counts.update(word for word in basic.tokenize(line) if len(word) <= max_chars_per_word)
    return counts


def merge_symbols(a: str, b: str) -> str:
    """``("hu", "##g") -> "hug"``, ``("##u", "##g") -> "##ug"``: the glued piece keeps a's prefix."""
    return a + (b[len(PREFIX):] if b.startswith(PREFIX) else b)


class _PairStatistics:
    """Symbol and adjacent-pair frequencies over the corpus, updated incrementally after each merge."""

    def __init__(self, word_counts: Counter):
        # Sorted so that the bookkeeping (and every tie) is independent of the corpus order.
        self.words = [[[w[0]] + [PREFIX + c for c in w[1:]], f] for w, f in sorted(word_counts.items())]
        self.symbol_freq: Counter = Counter()
        self.pair_freq: Counter = Counter()
        self.pair_words: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.symbol_pairs: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for index, (symbols, freq) in enumerate(self.words):
            self._apply(symbols, freq, index)

    def _apply(self, symbols, freq, index) -> None:
        for symbol in symbols:
            self.symbol_freq[symbol] += freq
        for pair in zip(symbols, symbols[1:]):
            self.pair_freq[pair] += freq
            self.pair_words[pair].add(index)
            self.symbol_pairs[pair[0]].add(pair)
            self.symbol_pairs[pair[1]].add(pair)

    def score(self, pair) -> float:
        """freq(a b) / (freq(a) * freq(b))."""
        return self.pair_freq[pair] / (self.symbol_freq[pair[0]] * self.symbol_freq[pair[1]])

    def merge(self, pair, merged: str) -> set[tuple[str, str]]:
        """Replace every adjacent ``pair`` by ``merged``; return the pairs whose score changed."""
        symbol_delta: Counter = Counter()
        pair_delta: Counter = Counter()
        for index in sorted(self.pair_words.pop(pair, ())):
            symbols, freq = self.words[index]
            new = _merge_in_word(symbols, pair, merged)
            symbol_delta.update({s: -freq * n for s, n in Counter(symbols).items()})
            symbol_delta.update({s: freq * n for s, n in Counter(new).items()})
            old_pairs, new_pairs = Counter(zip(symbols, symbols[1:])), Counter(zip(new, new[1:]))
            pair_delta.update({p: -freq * n for p, n in old_pairs.items()})
            pair_delta.update({p: freq * n for p, n in new_pairs.items()})
            for p in old_pairs.keys() - new_pairs.keys():
                self.pair_words[p].discard(index)
            for p in new_pairs:
                self.pair_words[p].add(index)
            self.words[index][0] = new
        for symbol, delta in symbol_delta.items():
            self.symbol_freq[symbol] += delta
        for p, delta in pair_delta.items():
            self.pair_freq[p] += delta
            if self.pair_freq[p] <= 0:
                del self.pair_freq[p]
                self.pair_words.pop(p, None)
                self.symbol_pairs[p[0]].discard(p)
                self.symbol_pairs[p[1]].discard(p)
            else:
                self.symbol_pairs[p[0]].add(p)
                self.symbol_pairs[p[1]].add(p)
        changed = {p for p, delta in pair_delta.items() if delta and p in self.pair_freq}
        for symbol, delta in symbol_delta.items():
            if delta:  # every pair containing a symbol whose count moved has a new score
                changed |= self.symbol_pairs[symbol]
        return changed


def _merge_in_word(symbols: list[str], pair, merged: str) -> list[str]:
    """Left-to-right, non-overlapping replacement of ``pair`` inside one word."""
    out = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == pair[0] and symbols[i + 1] == pair[1]:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def train_wordpiece(corpus_lines, vocab_size: int, min_frequency: int = 2,
                    special_tokens=DEFAULT_SPECIAL_TOKENS, lowercase: bool = True,
                    strip_accents: bool | None = None, tokenize_chinese_chars: bool = True) -> list[str]:
    """Learn a WordPiece vocabulary of at most ``vocab_size`` tokens from ``corpus_lines``.

    Returns the tokens in id order: ``special_tokens``, then the alphabet (sorted), then one new
    piece per merge in the order the merges were chosen. Merges only consider pairs seen at least
    ``min_frequency`` times; training stops early when no such pair is left. Deterministic: ties in
    score go to the lexicographically smallest pair, and the corpus order does not matter.
    Save with ``BertTokenizer(vocab_list, do_lower_case=lowercase).save_pretrained(dir)``.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"train_wordpiece: vocab_size must be a positive int, got {vocab_size!r}")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"train_wordpiece: min_frequency must be an int >= 1, got {min_frequency!r}")
    if isinstance(special_tokens, str) or not all(isinstance(t, str) and t for t in special_tokens):
        raise TypeError(f"train_wordpiece: special_tokens must be a list of non-empty str, got {special_tokens!r}")
    word_counts = count_words(corpus_lines, lowercase, strip_accents, tokenize_chinese_chars)
    if not word_counts:
        raise ValueError("train_wordpiece: the corpus holds no words to learn from")

    stats = _PairStatistics(word_counts)
    vocab = list(dict.fromkeys(special_tokens))
    vocab += sorted(set(stats.symbol_freq) - set(vocab))
    if vocab_size < len(vocab):
        raise ValueError(f"train_wordpiece: vocab_size={vocab_size} is smaller than the "
                         f"{len(special_tokens)} special tokens plus the {len(vocab) - len(special_tokens)} "
                         f"characters of the corpus alphabet; use vocab_size >= {len(vocab)}")
    known = set(vocab)
    # Max-heap of (-score, a, b); stale entries are skipped when popped (lazy deletion).
    heap = [(-stats.score(p), *p) for p, f in stats.pair_freq.items() if f >= min_frequency]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        negative_score, a, b = heapq.heappop(heap)
        pair = (a, b)
        if stats.pair_freq.get(pair, 0) < min_frequency or stats.score(pair) != -negative_score:
            continue
        merged = merge_symbols(a, b)
        if merged not in known:  # two merge paths can spell the same piece
            vocab.append(merged)
            known.add(merged)
        for p in stats.merge(pair, merged):
            if stats.pair_freq.get(p, 0) >= min_frequency:
                heapq.heappush(heap, (-stats.score(p), *p))
    return vocab
