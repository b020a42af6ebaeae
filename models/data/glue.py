"""GLUE benchmark tasks and sentence(-pair) classification readers (book § 4.10, §§ 4.2.9-4.2.10).

GLUE (Wang et al. 2019, "GLUE: A Multi-Task Benchmark and Analysis Platform for Natural Language
Understanding") is nine English tasks; a fine-tuned BERT classifies one sentence or a pair
``[CLS] text_a [SEP] text_b [SEP]``. ``GLUE_TASKS`` lists each task's columns, labels, metric and
size; ``read_task_file`` reads the official GLUE TSV files (``train.tsv``, ``dev.tsv``,
``test.tsv``; MNLI ``dev_matched.tsv`` / ``dev_mismatched.tsv``), and the ``read_*`` functions read
the formats of the copies in ``../shared/data`` (SST-2 ``label sentence`` lines, raw CoLA TSV,
MRPC TSV with a byte-order mark, SICK pairs).

Every reader returns :class:`InputExample` objects whose ``label`` is the index into the task's
label list (an int), a float for regression tasks (STS-B, SICK relatedness), or None for unlabelled
test files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, Union

from models.metrics.classification import (accuracy, f1_score, matthews_corrcoef, pearson,
                                           spearman)

PathLike = Union[str, Path]


@dataclass(frozen=True)
class InputExample:
    """One sentence (``text_b`` None) or sentence pair with its label and an id."""

    text_a: str
    text_b: str | None = None
    label: int | float | None = None
    guid: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """How to read and score one task: TSV columns (by header name), labels, metrics, sizes."""

    name: str
    title: str
    description: str
    text_columns: tuple[str, ...]  # one column (single sentence) or two (pair)
    label_column: str
    labels: tuple[str, ...] | None  # None: regression (the label is a float)
    metrics: tuple[str, ...]
    train_size: int
    dev_sizes: tuple[int, ...]  # one per dev file
    dev_files: tuple[str, ...] = ("dev.tsv",)
    columns: tuple[str, ...] | None = None  # implied header of header-less files (CoLA)
    id_column: str | None = None  # a column holding the example id, if any

    @property
    def is_regression(self) -> bool:
        return self.labels is None

    @property
    def num_labels(self) -> int:
        """Output size of the classifier head (1 for regression, as in HF)."""
        return 1 if self.labels is None else len(self.labels)

    @property
    def is_pair(self) -> bool:
        return len(self.text_columns) == 2


_COLA_COLUMNS = ("source", "label", "original_mark", "sentence")
_NLI3 = ("contradiction", "entailment", "neutral")
_NLI2 = ("entailment", "not_entailment")

# Sizes: the official GLUE release (train / dev examples); the test labels are not public.
GLUE_TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("cola", "CoLA", "grammatical acceptability of one sentence", ("sentence",), "label",
             ("0", "1"), ("mcc",), 8551, (1043,), columns=_COLA_COLUMNS),
    TaskSpec("sst2", "SST-2", "sentiment of a movie-review sentence", ("sentence",), "label",
             ("0", "1"), ("accuracy",), 67349, (872,)),
    TaskSpec("mrpc", "MRPC", "are two news sentences paraphrases?", ("#1 String", "#2 String"),
             "Quality", ("0", "1"), ("f1", "accuracy"), 3668, (408,)),
    TaskSpec("stsb", "STS-B", "semantic similarity of a pair, 0-5", ("sentence1", "sentence2"),
             "score", None, ("pearson", "spearman"), 5749, (1500,)),
    TaskSpec("qqp", "QQP", "are two Quora questions duplicates?", ("question1", "question2"),
             "is_duplicate", ("0", "1"), ("accuracy", "f1"), 363846, (40430,), id_column="id"),
    TaskSpec("mnli", "MNLI", "entailment / neutral / contradiction (matched, mismatched)",
             ("sentence1", "sentence2"), "gold_label", _NLI3, ("accuracy",), 392702, (9815, 9832),
             dev_files=("dev_matched.tsv", "dev_mismatched.tsv"), id_column="pairID"),
    TaskSpec("qnli", "QNLI", "does the sentence answer the question?", ("question", "sentence"),
             "label", _NLI2, ("accuracy",), 104743, (5463,)),
    TaskSpec("rte", "RTE", "does sentence 1 entail sentence 2?", ("sentence1", "sentence2"),
             "label", _NLI2, ("accuracy",), 2490, (277,)),
    TaskSpec("wnli", "WNLI", "pronoun resolution as entailment (Winograd)",
             ("sentence1", "sentence2"), "label", ("0", "1"), ("accuracy",), 635, (71,)),
)}

# The SICK copies in ../shared/data (Marelli et al. 2014): one file, two tasks.
SICK_TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("sick-nli", "SICK-E", "entailment / neutral / contradiction",
             ("sentence_A", "sentence_B"), "entailment_judgment",
             ("CONTRADICTION", "ENTAILMENT", "NEUTRAL"), ("accuracy",), 4500, (500,),
             id_column="pair_ID"),
    TaskSpec("sick-sts", "SICK-R", "relatedness of a pair, 1-5", ("sentence_A", "sentence_B"),
             "relatedness_score", None, ("pearson", "spearman"), 4500, (500,), id_column="pair_ID"),
)}

METRIC_NAMES = {"mcc": "Matthews corr.", "accuracy": "accuracy", "f1": "F1",
                "pearson": "Pearson", "spearman": "Spearman"}


def get_task(task: str | TaskSpec) -> TaskSpec:
    """A task by name ("cola", "SST-2", "sts-b", "sick-nli", ...) or the spec itself."""
    if isinstance(task, TaskSpec):
        return task
    if not isinstance(task, str):
        raise TypeError(f"get_task: task must be a name or a TaskSpec, got {type(task).__name__}")
    key = task.lower().replace("_", "-")
    key = key if key in SICK_TASKS else key.replace("-", "")
    spec = GLUE_TASKS.get(key) or SICK_TASKS.get(key)
    if spec is None:
        raise ValueError(f"get_task: unknown task {task!r}; known: "
                         f"{sorted(GLUE_TASKS) + sorted(SICK_TASKS)}")
    return spec


def glue_tasks_markdown() -> str:
    """The GLUE task table (book § 4.10) as GitHub markdown, for the docs."""
    lines = ["| Task | What is predicted | Input | Labels | Train | Dev | Metric |",
             "|---|---|---|---|---:|---:|---|"]
    for t in GLUE_TASKS.values():
        labels = "regression" if t.labels is None else " / ".join(t.labels)
        dev = " / ".join(f"{n:,}" for n in t.dev_sizes)
        metric = " / ".join(METRIC_NAMES[m] for m in t.metrics)
        kind = "pair" if t.is_pair else "single sentence"
        lines.append(f"| {t.title} | {t.description} | {kind} | {labels} | {t.train_size:,} "
                     f"| {dev} | {metric} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ TSV reading

def _check_file(path: PathLike, func: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{func}: no such file: {path}")
    if not path.is_file():
        raise ValueError(f"{func}: expected a file, got a directory: {path}")
    return path


def _read_lines(path: Path, func: str) -> list[tuple[int, str]]:
    """(1-based line number, line) for non-blank lines; UTF-8, a leading BOM and CR/LF removed."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{func}: {path} is not UTF-8 text ({exc})") from None
    # split on \n only: str.splitlines would also break on \x1c, \x85, ... inside sentences
    return [(i, line.rstrip("\r")) for i, line in enumerate(text.split("\n"), start=1)
            if line.strip()]


def _parse_label(raw: str, spec: TaskSpec, where: str, func: str) -> int | float:
    if spec.labels is None:
        try:
            score = float(raw)
        except ValueError:
            raise ValueError(f"{func}: {where}: score {raw!r} is not a number") from None
        if not math.isfinite(score):  # float() reads 'nan' and 'inf': a label no metric or loss survives
            raise ValueError(f"{func}: {where}: score {raw!r} is not a finite number")
        return score
    try:
        return spec.labels.index(raw)
    except ValueError:
        raise ValueError(f"{func}: {where}: unknown label {raw!r} for {spec.title}; "
                         f"expected one of {list(spec.labels)}") from None


def read_task_file(path: PathLike, task: str | TaskSpec, on_bad_line: str = "error") -> list[InputExample]:
    """Read one TSV file of a task in the official GLUE layout (also SICK and MRPC copies).

    The columns are found by the header (CoLA's train/dev files have none: source, label, mark,
    sentence). A file whose header lacks the label column is a test file: labels are None.
    Every line must have as many tab-separated fields as the header; ``on_bad_line="skip"`` drops
    such lines instead of raising.
    """
    func = "read_task_file"
    spec = get_task(task)
    if on_bad_line not in ("error", "skip"):
        raise ValueError(f"{func}: on_bad_line must be 'error' or 'skip', got {on_bad_line!r}")
    path = _check_file(path, func)
    rows = [(n, line.split("\t")) for n, line in _read_lines(path, func)]
    if not rows:
        raise ValueError(f"{func}: {path} is empty")
    first = rows[0][1]
    if spec.columns is not None and spec.label_column not in first and first != ["index", *spec.text_columns]:
        header = list(spec.columns)  # header-less file (CoLA train/dev)
    else:
        header, rows = first, rows[1:]
    missing = [c for c in spec.text_columns if c not in header]
    if missing:
        raise ValueError(f"{func}: {path}: header {header} lacks column(s) {missing} "
                         f"needed for {spec.title}")
    text_idx = [header.index(c) for c in spec.text_columns]
    label_idx = header.index(spec.label_column) if spec.label_column in header else None
    id_idx = header.index(spec.id_column) if spec.id_column in header else None
    examples = []
    for n, fields in rows:
        where = f"{path.name} line {n}"
        if len(fields) != len(header):
            if on_bad_line == "skip":
                continue
            raise ValueError(f"{func}: {where}: expected {len(header)} tab-separated columns "
                             f"({', '.join(header)}), got {len(fields)}")
        texts = [fields[i] for i in text_idx]
        label = None if label_idx is None else _parse_label(fields[label_idx], spec, where, func)
        guid = f"{path.stem}-{fields[id_idx] if id_idx is not None else len(examples)}"
        examples.append(InputExample(texts[0], texts[1] if len(texts) > 1 else None, label, guid))
    return examples


def load_glue(data_dir: PathLike, task: str | TaskSpec) -> dict[str, list[InputExample]]:
    """All splits present in an official GLUE task folder: ``{"train": [...], "dev": [...], ...}``.

    Split names are the file stems (MNLI: ``dev_matched``, ``dev_mismatched``, ``test_matched``...).
    """
    func = "load_glue"
    spec = get_task(task)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{func}: no such folder: {data_dir}")
    names = ["train.tsv", *spec.dev_files, *(f.replace("dev", "test") for f in spec.dev_files)]
    splits = {Path(f).stem: read_task_file(data_dir / f, spec) for f in names if (data_dir / f).is_file()}
    if not splits:
        raise FileNotFoundError(f"{func}: none of {names} found in {data_dir}")
    return splits


# ---------------------------------------------------------------- formats of the ../shared/data copies

def read_sst2(path: PathLike) -> list[InputExample]:
    """SST-2 as ``label sentence`` lines (harvardnlp ``stsa.binary.*``; label 0 = negative, 1 = positive)."""
    func = "read_sst2"
    path = _check_file(path, func)
    examples = []
    for n, line in _read_lines(path, func):
        label, sep, sentence = line.partition(" ")
        if not sep or not sentence.strip():
            raise ValueError(f"{func}: {path.name} line {n}: expected 'label sentence', got {line[:60]!r}")
        if label not in ("0", "1"):
            raise ValueError(f"{func}: {path.name} line {n}: unknown label {label!r}; expected '0' or '1'")
        examples.append(InputExample(sentence.strip(), None, int(label), f"{path.name}-{len(examples)}"))
    return examples


def read_cola(path: PathLike) -> list[InputExample]:
    """CoLA raw TSV without header: source, label (0/1), original mark, sentence."""
    return read_task_file(path, "cola")


def read_mrpc(path: PathLike) -> list[InputExample]:
    """MRPC TSV (a BOM, then the header Quality, #1 ID, #2 ID, #1 String, #2 String)."""
    return read_task_file(path, "mrpc")


def read_sick(path: PathLike, task: str = "nli") -> list[InputExample]:
    """SICK pairs: ``task="nli"`` labels the entailment judgment, ``"sts"`` the 1-5 relatedness."""
    if task not in ("nli", "sts"):
        raise ValueError(f"read_sick: task must be 'nli' or 'sts', got {task!r}")
    return read_task_file(path, SICK_TASKS[f"sick-{task}"])


# file names of each copy in ../shared/data, split -> file
SHARED_DATA_FILES: dict[str, tuple[str, dict[str, str]]] = {
    "sst2": ("sst2", {"train": "stsa.binary.train", "dev": "stsa.binary.dev",
                      "test": "stsa.binary.test"}),
    "cola": ("cola", {"train": "in_domain_train.tsv", "dev": "in_domain_dev.tsv",
                      "dev_out_of_domain": "out_of_domain_dev.tsv"}),
    "mrpc": ("mrpc", {"train": "msr-para-train.tsv", "dev": "msr-para-val.tsv",
                      "test": "msr-para-test.tsv"}),
    "sick-nli": ("sick", {"train": "SICK_train.txt", "dev": "SICK_trial.txt",
                          "test": "SICK_test_annotated.txt"}),
    "sick-sts": ("sick", {"train": "SICK_train.txt", "dev": "SICK_trial.txt",
                          "test": "SICK_test_annotated.txt"}),
}


def load_shared_task(task: str, data_dir: PathLike) -> dict[str, list[InputExample]]:
    """Every split of a task from the ``../shared/data`` layout.

    ``data_dir`` is either the data root (holding ``sst2/``, ``cola/``, ...) or the task's folder.
    """
    func = "load_shared_task"
    if task not in SHARED_DATA_FILES:
        raise ValueError(f"{func}: unknown task {task!r}; expected one of {sorted(SHARED_DATA_FILES)}")
    folder, files = SHARED_DATA_FILES[task]
    data_dir = Path(data_dir)
    if (data_dir / folder).is_dir():
        data_dir = data_dir / folder
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{func}: no such folder: {data_dir}")
    readers = {"sst2": read_sst2, "cola": read_cola, "mrpc": read_mrpc,
               "sick-nli": lambda p: read_sick(p, "nli"), "sick-sts": lambda p: read_sick(p, "sts")}
    return {split: readers[task](data_dir / name) for split, name in files.items()}


# ----------------------------------------------------------------------------------- task metrics

def compute_metrics(task: str | TaskSpec, y_true: Sequence, y_pred: Sequence) -> dict[str, float]:
    """The task's metrics (``{"mcc": ...}``, ``{"f1": ..., "accuracy": ...}``, ...).

    Classification: label indices (positive class = 1 for F1). Regression: the scores.
    """
    spec = get_task(task)
    functions = {"mcc": matthews_corrcoef, "accuracy": accuracy, "f1": f1_score,
                 "pearson": pearson, "spearman": spearman}
    return {name: float(functions[name](y_true, y_pred)) for name in spec.metrics}
