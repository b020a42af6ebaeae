"""Dataset readers of the book: GLUE and its ../shared/data copies (ch. 4), SQuAD (ch. 4),
parallel corpora and the synthetic seq2seq tasks (ch. 2-3). Readers only: tokenisation,
batching and QA windowing live with the models."""
from models.data.glue import (
    GLUE_TASKS,
    SICK_TASKS,
    InputExample,
    TaskSpec,
    compute_metrics,
    get_task,
    glue_tasks_markdown,
    load_glue,
    load_shared_task,
    read_cola,
    read_mrpc,
    read_sick,
    read_sst2,
    read_task_file,
)
from models.data.parallel import (
    SYNTHETIC_VOCAB,
    SentencePair,
    copy_task,
    read_lines,
    read_multi30k,
    read_parallel,
    reversal_task,
    sort_task,
)
from models.data.squad import (
    SquadAnswer,
    SquadExample,
    load_squad_json,
    read_squad,
    split_by_article,
    squad_version,
)

__all__ = [
    "GLUE_TASKS", "SICK_TASKS", "InputExample", "TaskSpec", "compute_metrics", "get_task",
    "glue_tasks_markdown", "load_glue", "load_shared_task", "read_cola", "read_mrpc", "read_sick",
    "read_sst2", "read_task_file",
    "SYNTHETIC_VOCAB", "SentencePair", "copy_task", "read_lines", "read_multi30k", "read_parallel",
    "reversal_task", "sort_task",
    "SquadAnswer", "SquadExample", "load_squad_json", "read_squad", "split_by_article",
    "squad_version",
]
