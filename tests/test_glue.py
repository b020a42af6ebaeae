"""GLUE task table, readers of the official TSV layout and of the ../shared/data copies, task metrics."""
from __future__ import annotations

from pathlib import Path

import pytest

from models.data.glue import (
    GLUE_TASKS, InputExample, compute_metrics, get_task, glue_tasks_markdown, load_glue,
    load_shared_task, read_cola, read_mrpc, read_sick, read_sst2, read_task_file,
)
from models.metrics import matthews_corrcoef

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _write(path: Path, lines: list[str], bom: bool = False, newline: str = "\n") -> Path:
    path.write_text(("\ufeff" if bom else "") + newline.join(lines) + newline, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- the task table

def test_glue_table_has_the_nine_tasks_with_their_metrics():
    assert list(GLUE_TASKS) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    metrics = {name: t.metrics for name, t in GLUE_TASKS.items()}
    assert metrics["cola"] == ("mcc",) and metrics["stsb"] == ("pearson", "spearman")
    assert set(metrics["mrpc"]) == set(metrics["qqp"]) == {"accuracy", "f1"}
    assert all(metrics[t] == ("accuracy",) for t in ("sst2", "mnli", "qnli", "rte", "wnli"))
    sizes = {name: (t.train_size, t.dev_sizes) for name, t in GLUE_TASKS.items()}
    assert sizes["cola"] == (8551, (1043,)) and sizes["sst2"] == (67349, (872,))
    assert sizes["mnli"] == (392702, (9815, 9832)) and sizes["rte"] == (2490, (277,))
    assert GLUE_TASKS["stsb"].is_regression and GLUE_TASKS["stsb"].num_labels == 1
    assert GLUE_TASKS["mnli"].num_labels == 3 and GLUE_TASKS["mnli"].is_pair
    assert not GLUE_TASKS["sst2"].is_pair


def test_glue_tasks_markdown():
    table = glue_tasks_markdown()
    rows = table.strip().splitlines()
    assert len(rows) == 2 + 9
    assert "| CoLA |" in rows[2] and "8,551" in rows[2] and "Matthews corr." in rows[2]
    assert "9,815 / 9,832" in table and "Pearson / Spearman" in table


def test_get_task_aliases_and_errors():
    assert get_task("SST-2") is GLUE_TASKS["sst2"] and get_task("STS-B") is GLUE_TASKS["stsb"]
    assert get_task("sick_nli").name == "sick-nli"
    with pytest.raises(ValueError, match="unknown task 'glue'"):
        get_task("glue")


# ------------------------------------------------------------------- official GLUE TSV layout

MNLI_TRAIN = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
              "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
MNLI_DEV = MNLI_TRAIN.replace("label1\tgold_label", "label1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
STSB = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"

# task -> (train lines, expected examples (text_a, text_b, label), test lines)
OFFICIAL = {
    "cola": (["gj04\t1\t\tThe sailors rode the breeze.", "gj04\t0\t*\tThe more we study verbs."],
             [("The sailors rode the breeze.", None, 1), ("The more we study verbs.", None, 0)],
             ["index\tsentence", "0\tBill whistled past the house."]),
    "sst2": (["sentence\tlabel", "it 's a charming journey . \t1", "unflinchingly bleak \t0"],
             [("it 's a charming journey . ", None, 1), ("unflinchingly bleak ", None, 0)],
             ["index\tsentence", "0\tuneasy mishmash of styles"]),
    "mrpc": (["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t702876\t702977\tAmrozi \"accused\".\tHe accused.",
              "0\t2108705\t2108831\tYucaipa owned.\tYucaipa bought."],
             [('Amrozi "accused".', "He accused.", 1), ("Yucaipa owned.", "Yucaipa bought.", 0)],
             ["index\t#1 ID\t#2 ID\t#1 String\t#2 String", "0\t1\t2\tA.\tB."]),
    "stsb": ([STSB, "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane takes off.\tAn air plane takes off.\t5.000",
              "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man plays.\tA man sings.\t0.6"],
             [("A plane takes off.", "An air plane takes off.", 5.0), ("A man plays.", "A man sings.", 0.6)],
             [STSB.rsplit("\t", 1)[0], "0\tg\tf\ty\to\ts1\ts2\tA.\tB."]),
    "qqp": (["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "133273\t213221\t213222\tHow?\tWhy?\t0",
             "402555\t536040\t536041\tWho?\tWho is?\t1"],
            [("How?", "Why?", 0), ("Who?", "Who is?", 1)],
            ["id\tquestion1\tquestion2", "0\tA?\tB?"]),
    "mnli": ([MNLI_TRAIN, "0\t31193\t31193n\tgov\t( a )\t( b )\t(ROOT a)\t(ROOT b)\tConceptually cream.\tProduct and geography.\tneutral\tneutral",
              "1\t101457\t101457e\ttel\t( c )\t( d )\t(ROOT c)\t(ROOT d)\tyou know.\tYou lose.\tentailment\tentailment"],
             [("Conceptually cream.", "Product and geography.", 2), ("you know.", "You lose.", 1)],
             ["index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
              "sentence1_parse\tsentence2_parse\tsentence1\tsentence2", "0\t1\t1n\tg\ta\tb\tc\td\tA.\tB."]),
    "qnli": (["index\tquestion\tsentence\tlabel", "0\tWhen?\tIn 1994.\tentailment",
              "1\tWho?\tNobody knows.\tnot_entailment"],
             [("When?", "In 1994.", 0), ("Who?", "Nobody knows.", 1)],
             ["index\tquestion\tsentence", "0\tA?\tB."]),
    "rte": (["index\tsentence1\tsentence2\tlabel", "0\tNo weapons found.\tWeapons found.\tnot_entailment",
             "1\tA place.\tA place exists.\tentailment"],
            [("No weapons found.", "Weapons found.", 1), ("A place.", "A place exists.", 0)],
            ["index\tsentence1\tsentence2", "0\tA.\tB."]),
    "wnli": (["index\tsentence1\tsentence2\tlabel", "0\tI stuck a pin.\tThe pin stuck.\t1",
              "1\tJohn hit Bill.\tJohn was hit.\t0"],
             [("I stuck a pin.", "The pin stuck.", 1), ("John hit Bill.", "John was hit.", 0)],
             ["index\tsentence1\tsentence2", "0\tA.\tB."]),
}


MNLI_DEV_ROWS = [MNLI_DEV,
                 "0\t1\t31193n\tgov\ta\tb\tc\td\tConceptually cream.\tProduct and geography.\t"
                 "neutral\tneutral\tneutral\tneutral\tcontradiction\tneutral",
                 "1\t2\t101457e\ttel\ta\tb\tc\td\tyou know.\tYou lose.\t"
                 "entailment\tentailment\tneutral\tentailment\tentailment\tentailment"]


@pytest.mark.parametrize("task", list(OFFICIAL))
def test_official_glue_layout(tmp_path, task):
    train, expected, test = OFFICIAL[task]
    dev, test_split = ("dev_matched", "test_matched") if task == "mnli" else ("dev", "test")
    _write(tmp_path / "train.tsv", train)
    _write(tmp_path / f"{dev}.tsv", MNLI_DEV_ROWS if task == "mnli" else train)
    _write(tmp_path / f"{test_split}.tsv", test)
    splits = load_glue(tmp_path, task)
    assert set(splits) == {"train", dev, test_split}
    for split in ("train", dev):
        assert [(e.text_a, e.text_b, e.label) for e in splits[split]] == expected
    assert len(splits[test_split]) == 1 and splits[test_split][0].label is None
    assert len({e.guid for e in splits["train"]}) == 2


def test_glue_reader_errors_name_file_and_line(tmp_path):
    path = _write(tmp_path / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment",
                                         "1\ta\tb", "2\ta\tb\tentailment"])
    with pytest.raises(ValueError, match=r"dev.tsv line 3: expected 4 tab-separated columns .* got 3"):
        read_task_file(path, "rte")
    assert len(read_task_file(path, "rte", on_bad_line="skip")) == 2
    path = _write(tmp_path / "bad_label.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tmaybe"])
    with pytest.raises(ValueError, match=r"line 2: unknown label 'maybe' for RTE; expected one of"):
        read_task_file(path, "rte")
    path = _write(tmp_path / "bad_score.tsv", [STSB, "0\tg\tf\ty\to\ts\ts\tA.\tB.\thigh"])
    with pytest.raises(ValueError, match="line 2: score 'high' is not a number"):
        read_task_file(path, "stsb")
    path = _write(tmp_path / "wrong_header.tsv", ["index\tquestion\tlabel", "0\tq\tentailment"])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['sentence'\]"):
        read_task_file(path, "qnli")
    with pytest.raises(FileNotFoundError, match="read_task_file: no such file"):
        read_task_file(tmp_path / "nope.tsv", "rte")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="none of"):
        load_glue(tmp_path / "empty", "wnli")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_glue(tmp_path / "missing", "wnli")


# -------------------------------------------------------------------- formats of ../shared/data

def test_read_sst2_lines(tmp_path):
    path = _write(tmp_path / "stsa.binary.dev", ["0 one long string of cliches .", "1 a gem ."])
    assert read_sst2(path) == [InputExample("one long string of cliches .", None, 0, "stsa.binary.dev-0"),
                               InputExample("a gem .", None, 1, "stsa.binary.dev-1")]
    with pytest.raises(ValueError, match="line 2: unknown label '2'"):
        read_sst2(_write(tmp_path / "bad", ["0 fine .", "2 what ."]))
    with pytest.raises(ValueError, match="line 1: expected 'label sentence'"):
        read_sst2(_write(tmp_path / "bad2", ["1"]))


def test_read_cola_raw(tmp_path):
    path = _write(tmp_path / "in_domain_dev.tsv",
                  ["gj04\t1\t\tThe sailors rode the breeze clear of the rocks.", "gj04\t0\t*\tThey drank the pub."])
    assert [(e.text_a, e.label) for e in read_cola(path)] == [
        ("The sailors rode the breeze clear of the rocks.", 1), ("They drank the pub.", 0)]
    with pytest.raises(ValueError, match="line 2: expected 4 tab-separated columns"):
        read_cola(_write(tmp_path / "bad.tsv", ["gj04\t1\t\tFine.", "gj04\t1\tOops."]))


def test_read_mrpc_with_bom_and_crlf(tmp_path):
    path = _write(tmp_path / "msr-para-val.tsv",
                  ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\tStocks rallied.\tStocks rose.",
                   "0\t3\t4\tThe Fed's survey.\tPrices fell."], bom=True, newline="\r\n")
    assert read_mrpc(path) == [InputExample("Stocks rallied.", "Stocks rose.", 1, "msr-para-val-0"),
                               InputExample("The Fed's survey.", "Prices fell.", 0, "msr-para-val-1")]


def test_read_sick_both_tasks(tmp_path):
    path = _write(tmp_path / "SICK_trial.txt", [
        "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment",
        "4\tThe boys play\tNo boy plays\t3.6\tCONTRADICTION", "24\tA person rides\tA person rides\t5\tENTAILMENT"])
    assert read_sick(path, "nli") == [InputExample("The boys play", "No boy plays", 0, "SICK_trial-4"),
                                      InputExample("A person rides", "A person rides", 1, "SICK_trial-24")]
    assert [e.label for e in read_sick(path, "sts")] == [3.6, 5.0]
    with pytest.raises(ValueError, match="task must be 'nli' or 'sts'"):
        read_sick(path, "qa")


def test_compute_metrics_per_task():
    y_true, y_pred = [1, 0, 1, 1, 0], [1, 0, 0, 1, 1]
    assert compute_metrics("cola", y_true, y_pred) == {"mcc": matthews_corrcoef(y_true, y_pred)}
    # TP = 2, FP = 1, FN = 1: F1 = 4/6; accuracy 3/5
    result = compute_metrics("mrpc", y_true, y_pred)
    assert result["f1"] == pytest.approx(2 / 3) and result["accuracy"] == pytest.approx(0.6)
    result = compute_metrics("stsb", [0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 1.0, 3.0])
    assert result["pearson"] == pytest.approx(0.8) and result["spearman"] == pytest.approx(0.8)


# ----------------------------------------------------------------------------- the real files

@pytest.mark.parametrize("task,sizes,first_labels", [
    ("sst2", {"train": 6920, "dev": 872, "test": 1821}, {"dev": (428, 444)}),
    ("cola", {"train": 8551, "dev": 527, "dev_out_of_domain": 516}, {"train": (2528, 6023)}),
    ("mrpc", {"train": 3576, "dev": 500, "test": 1725}, {"train": (1169, 2407)}),
    ("sick-nli", {"train": 4500, "dev": 500, "test": 4927}, {"test": (720, 1414, 2793)}),
])
def test_real_shared_data(task, sizes, first_labels):
    folder = DATA / {"sick-nli": "sick"}.get(task, task)
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    splits = load_shared_task(task, DATA)
    assert {name: len(examples) for name, examples in splits.items()} == sizes
    for split, counts in first_labels.items():
        labels = [e.label for e in splits[split]]
        assert tuple(labels.count(k) for k in range(len(counts))) == counts
    if get_task(task).is_pair:
        assert all(e.text_b for e in splits["train"])


def test_real_sick_relatedness():
    if not (DATA / "sick").is_dir():
        pytest.skip("sick not present")
    scores = [e.label for e in load_shared_task("sick-sts", DATA / "sick")["dev"]]
    assert len(scores) == 500 and min(scores) >= 1.0 and max(scores) <= 5.0
    assert scores[0] == 3.6


def test_readme_holds_the_current_glue_task_table():
    from pathlib import Path

    from models.data import glue_tasks_markdown

    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert glue_tasks_markdown().strip() in readme.read_text(encoding="utf-8")
