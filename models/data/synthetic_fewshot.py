"""An embedded few-shot sentiment family with ARSC's interface, for runs without ``--data`` (CI, demos).

Each synthetic domain has its own product nouns and its own positive and negative words
(pseudo-words built from syllables, so no two domains share one), next to generic sentiment
words (``great``, ``broken``) and filler words that all domains share. A review mixes filler,
one or two nouns and a few sentiment words of its class; most sentiment words are the domain's
own, so a learner does well on a new domain only if it reads the support set, which is the
point of meta-learning. Like ARSC's thresholds, every domain gives three tasks ``t2``, ``t4``,
``t5``, here with growing noise: the chance that a sentiment word has the other polarity.

:func:`synthetic_fewshot` returns a :class:`FewShotBenchmark` like ``load_arsc``: training pools
(train domains x thresholds) and fixed dev / test tasks (held-out domains x thresholds, with
``shots`` support examples per class and balanced queries). The same seed gives the same texts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data.arsc import CLASS_NAMES, THRESHOLDS, Episode, FewShotBenchmark, FewShotTask

GENERIC_POSITIVE = ("great", "excellent", "love", "perfect", "recommend", "happy", "best", "sturdy")
GENERIC_NEGATIVE = ("poor", "broken", "awful", "waste", "returned", "disappointed", "worst", "flimsy")
FILLER = ("the", "it", "this", "i", "was", "and", "for", "with", "my", "after", "one", "day", "very",
          "really", "but", "so", "bought", "use", "got", "just", "we", "our", "again", "months")
NOISE = {"t2": 0.05, "t4": 0.1, "t5": 0.2}  # chance that a sentiment word has the other polarity
DOMAIN_WORD_SHARE = 0.75  # share of sentiment words that are the domain's own
_SYLLABLES = ("ba", "ko", "ri", "mu", "te", "lo", "sa", "vi", "ne", "du", "pa", "zo", "fi", "gu",
              "re", "ta", "mi", "no", "ka", "se")


@dataclass(frozen=True)
class SyntheticDomain:
    name: str
    nouns: tuple[str, ...]
    positive: tuple[str, ...]
    negative: tuple[str, ...]


def make_domains(count: int, rng: np.random.Generator, *, nouns: int = 4,
                 words_per_polarity: int = 4) -> list[SyntheticDomain]:
    """``count`` domains with distinct pseudo-words (three syllables each)."""
    needed = count * (nouns + 2 * words_per_polarity)
    if needed > len(_SYLLABLES) ** 3 // 2:  # keep rejection sampling quick
        raise ValueError(f"make_domains: {count} domains need {needed} pseudo-words, too many")
    words: list[str] = []
    seen = set(GENERIC_POSITIVE + GENERIC_NEGATIVE + FILLER)  # a pseudo-word is never a shared word
    while len(words) < needed:
        word = "".join(rng.choice(_SYLLABLES, size=3))
        if word not in seen:
            seen.add(word)
            words.append(word)
    size = nouns + 2 * words_per_polarity
    domains = []
    for d in range(count):
        chunk = words[d * size:(d + 1) * size]
        domains.append(SyntheticDomain(f"domain{d:02d}", tuple(chunk[:nouns]),
                                       tuple(chunk[nouns:nouns + words_per_polarity]),
                                       tuple(chunk[nouns + words_per_polarity:])))
    return domains


def synthetic_review(domain: SyntheticDomain, positive: bool, noise: float,
                     rng: np.random.Generator) -> str:
    """One review: 3-6 filler words, 1-2 nouns, 3-6 sentiment words, shuffled."""
    words = list(rng.choice(FILLER, size=rng.integers(3, 7)))
    words += list(rng.choice(domain.nouns, size=rng.integers(1, 3)))
    for _ in range(rng.integers(3, 7)):
        polarity = positive != (rng.random() < noise)
        own = rng.random() < DOMAIN_WORD_SHARE
        pool = (domain.positive if own else GENERIC_POSITIVE) if polarity else \
            (domain.negative if own else GENERIC_NEGATIVE)
        words.append(str(rng.choice(pool)))
    rng.shuffle(words)
    return " ".join(words)


def _reviews(domain, threshold, per_class, rng) -> tuple[list[str], list[int]]:
    """``per_class`` distinct reviews of each class (negatives first), labels 0 / 1."""
    texts, labels, seen = [], [], set()
    for label in (0, 1):
        made = 0
        while made < per_class:
            text = synthetic_review(domain, bool(label), NOISE[threshold], rng)
            if text not in seen:  # distinct texts, as in the deduplicated ARSC pools
                seen.add(text)
                texts.append(text)
                labels.append(label)
                made += 1
    return texts, labels


def _fixed_task(name, domain, threshold, shots, queries, rng) -> Episode:
    texts, labels = _reviews(domain, threshold, shots + queries, rng)
    per_class = shots + queries
    support = [c * per_class + i for c in (0, 1) for i in range(shots)]
    query = [c * per_class + shots + i for c in (0, 1) for i in range(queries)]

    def frozen(values):
        array = np.array(values, dtype=np.int64)
        array.setflags(write=False)
        return array

    return Episode(name, CLASS_NAMES, tuple(texts[i] for i in support), frozen([labels[i] for i in support]),
                   frozen(support), tuple(texts[i] for i in query), frozen([labels[i] for i in query]),
                   frozen(query))


def synthetic_fewshot(seed: int = 0, *, n_train_domains: int = 12, n_dev_domains: int = 2,
                      n_test_domains: int = 4, train_per_class: int = 60, queries_per_class: int = 50,
                      shots: int = 5) -> FewShotBenchmark:
    """The synthetic benchmark: train pools per domain x threshold, fixed dev / test tasks."""
    for name, value in (("n_train_domains", n_train_domains), ("n_dev_domains", n_dev_domains),
                        ("n_test_domains", n_test_domains), ("train_per_class", train_per_class),
                        ("queries_per_class", queries_per_class), ("shots", shots)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"synthetic_fewshot: {name} must be an int >= 1, got {value!r}")
    rng = np.random.default_rng(seed)
    domains = make_domains(n_train_domains + n_dev_domains + n_test_domains, rng)
    train_domains = domains[:n_train_domains]
    dev_domains = domains[n_train_domains:n_train_domains + n_dev_domains]
    test_domains = domains[n_train_domains + n_dev_domains:]
    train = []
    for domain in train_domains:
        for threshold in THRESHOLDS:
            texts, labels = _reviews(domain, threshold, train_per_class, rng)
            train.append(FewShotTask(f"{domain.name}.{threshold}", CLASS_NAMES, texts, labels,
                                     (f"synthetic seed {seed}",)))
    dev = tuple(_fixed_task(f"{d.name}.{t}", d, t, shots, queries_per_class, rng)
                for d in dev_domains for t in THRESHOLDS)
    test = tuple(_fixed_task(f"{d.name}.{t}", d, t, shots, queries_per_class, rng)
                 for d in test_domains for t in THRESHOLDS)
    return FewShotBenchmark(f"synthetic-fewshot-{seed}", tuple(train), dev, test)
