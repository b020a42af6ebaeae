"""Recipe ``python -m models fewshot``: the book's few-shot experiment (§ 5.3.5), measured on a real model.

The book shows GPT-2 continuing "play = played . sing = sang . … tell = told . click =" with "clicked":
a language model learns a task from a few examples in its prompt, without any training (in-context
learning, Brown et al. 2020). Here SmolLM2-135M-Instruct answers, greedily, the past tense of each of
148 English verbs (76 irregular, 72 regular, listed below) from prompts with 0, 1, 2, 4, 8 and 16
examples, drawn with ``--seed`` from the other verbs (each query's examples for k shots are the first k
of one seeded order, so the 8 examples include the 4). The answer is the continuation up to the first
" ." (or line end, or " ="), compared exactly. A second task of the same form — country = capital, 77
countries — shows the effect is not specific to verbs.

    python -m models fewshot                         # 1,350 prompts; a few minutes on 2 cores
    python -m models fewshot --limit 20 --shots 0 4  # a quick look

Writes into ``--out`` (default runs/fewshot): ``metrics.json`` (accuracy by task, kind and shots, a few
wrong answers), ``predictions.json`` (every prompt's answer) and ``accuracy.png``.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from models.recipes.common import add_common_arguments, positive_int, print_line, report_error, write_metrics
from models.recipes.generate import add_model_arguments, load_model

SHOTS = (0, 1, 2, 4, 8, 16)
# Simple past tenses with one standard form (no learnt/learned, dreamt/dreamed, hung/hanged).
IRREGULAR = (
    ("begin", "began"), ("bite", "bit"), ("bleed", "bled"), ("blow", "blew"), ("break", "broke"),
    ("bring", "brought"), ("build", "built"), ("buy", "bought"), ("catch", "caught"), ("choose", "chose"),
    ("come", "came"), ("creep", "crept"), ("cut", "cut"), ("dig", "dug"), ("do", "did"), ("draw", "drew"),
    ("drink", "drank"), ("drive", "drove"), ("eat", "ate"), ("fall", "fell"), ("feed", "fed"), ("feel", "felt"),
    ("fight", "fought"), ("find", "found"), ("fly", "flew"), ("forget", "forgot"), ("forgive", "forgave"),
    ("freeze", "froze"), ("get", "got"), ("give", "gave"), ("go", "went"), ("grow", "grew"), ("have", "had"),
    ("hear", "heard"), ("hide", "hid"), ("hit", "hit"), ("hold", "held"), ("keep", "kept"), ("know", "knew"),
    ("lead", "led"), ("leave", "left"), ("lend", "lent"), ("lose", "lost"), ("make", "made"), ("mean", "meant"),
    ("meet", "met"), ("pay", "paid"), ("put", "put"), ("ride", "rode"), ("ring", "rang"), ("rise", "rose"),
    ("run", "ran"), ("say", "said"), ("see", "saw"), ("seek", "sought"), ("sell", "sold"), ("send", "sent"),
    ("shake", "shook"), ("shoot", "shot"), ("sing", "sang"), ("sink", "sank"), ("sit", "sat"), ("sleep", "slept"),
    ("speak", "spoke"), ("spend", "spent"), ("stand", "stood"), ("steal", "stole"), ("swim", "swam"),
    ("take", "took"), ("teach", "taught"), ("tell", "told"), ("think", "thought"), ("throw", "threw"),
    ("wear", "wore"), ("win", "won"), ("write", "wrote"),
)
REGULAR = (
    ("answer", "answered"), ("arrive", "arrived"), ("ask", "asked"), ("believe", "believed"), ("call", "called"),
    ("carry", "carried"), ("change", "changed"), ("clean", "cleaned"), ("click", "clicked"), ("climb", "climbed"),
    ("close", "closed"), ("cook", "cooked"), ("count", "counted"), ("cry", "cried"), ("dance", "danced"),
    ("decide", "decided"), ("drop", "dropped"), ("enjoy", "enjoyed"), ("explain", "explained"), ("finish", "finished"),
    ("fix", "fixed"), ("follow", "followed"), ("help", "helped"), ("hope", "hoped"), ("hug", "hugged"),
    ("join", "joined"), ("jump", "jumped"), ("kick", "kicked"), ("kiss", "kissed"), ("laugh", "laughed"),
    ("like", "liked"), ("listen", "listened"), ("live", "lived"), ("look", "looked"), ("love", "loved"),
    ("marry", "married"), ("miss", "missed"), ("move", "moved"), ("need", "needed"), ("open", "opened"),
    ("order", "ordered"), ("paint", "painted"), ("pick", "picked"), ("plan", "planned"), ("play", "played"),
    ("print", "printed"), ("pull", "pulled"), ("push", "pushed"), ("rain", "rained"), ("remember", "remembered"),
    ("save", "saved"), ("score", "scored"), ("share", "shared"), ("shop", "shopped"), ("smile", "smiled"),
    ("start", "started"), ("stop", "stopped"), ("study", "studied"), ("talk", "talked"), ("try", "tried"),
    ("turn", "turned"), ("type", "typed"), ("use", "used"), ("visit", "visited"), ("wait", "waited"),
    ("walk", "walked"), ("want", "wanted"), ("wash", "washed"), ("watch", "watched"), ("wish", "wished"),
    ("work", "worked"), ("worry", "worried"),
)
CAPITALS = (
    ("Afghanistan", "Kabul"), ("Algeria", "Algiers"), ("Argentina", "Buenos Aires"), ("Armenia", "Yerevan"),
    ("Australia", "Canberra"), ("Austria", "Vienna"), ("Bangladesh", "Dhaka"), ("Belgium", "Brussels"),
    ("Bulgaria", "Sofia"), ("Cambodia", "Phnom Penh"), ("Canada", "Ottawa"), ("Chile", "Santiago"),
    ("China", "Beijing"), ("Croatia", "Zagreb"), ("Cuba", "Havana"), ("Denmark", "Copenhagen"), ("Ecuador", "Quito"),
    ("Egypt", "Cairo"), ("Estonia", "Tallinn"), ("Ethiopia", "Addis Ababa"), ("Finland", "Helsinki"),
    ("France", "Paris"), ("Georgia", "Tbilisi"), ("Germany", "Berlin"), ("Ghana", "Accra"), ("Greece", "Athens"),
    ("Hungary", "Budapest"), ("Iceland", "Reykjavik"), ("India", "New Delhi"), ("Indonesia", "Jakarta"),
    ("Iran", "Tehran"), ("Iraq", "Baghdad"), ("Ireland", "Dublin"), ("Italy", "Rome"), ("Jamaica", "Kingston"),
    ("Japan", "Tokyo"), ("Jordan", "Amman"), ("Kenya", "Nairobi"), ("Latvia", "Riga"), ("Lebanon", "Beirut"),
    ("Libya", "Tripoli"), ("Lithuania", "Vilnius"), ("Malaysia", "Kuala Lumpur"), ("Mexico", "Mexico City"),
    ("Mongolia", "Ulaanbaatar"), ("Morocco", "Rabat"), ("Nepal", "Kathmandu"), ("Netherlands", "Amsterdam"),
    ("New Zealand", "Wellington"), ("Nigeria", "Abuja"), ("North Korea", "Pyongyang"), ("Norway", "Oslo"),
    ("Pakistan", "Islamabad"), ("Peru", "Lima"), ("Philippines", "Manila"), ("Poland", "Warsaw"),
    ("Portugal", "Lisbon"), ("Qatar", "Doha"), ("Romania", "Bucharest"), ("Russia", "Moscow"),
    ("Saudi Arabia", "Riyadh"), ("Senegal", "Dakar"), ("Serbia", "Belgrade"), ("Slovakia", "Bratislava"),
    ("South Korea", "Seoul"), ("Spain", "Madrid"), ("Sweden", "Stockholm"), ("Switzerland", "Bern"),
    ("Syria", "Damascus"), ("Thailand", "Bangkok"), ("Tunisia", "Tunis"), ("Turkey", "Ankara"),
    ("Uganda", "Kampala"), ("United Kingdom", "London"), ("Uruguay", "Montevideo"), ("Vietnam", "Hanoi"),
    ("Zimbabwe", "Harare"),
)
KINDS = {"past tense": ("irregular", "regular"), "capital": ("capital",)}


@dataclass
class Item:
    query: str
    answer: str
    kind: str  # "irregular", "regular" or "capital"


def tasks() -> dict[str, list[Item]]:
    """The two tasks: past tenses (irregular and regular together) and capitals."""
    return {"past tense": [Item(a, b, "irregular") for a, b in IRREGULAR] + [Item(a, b, "regular") for a, b in REGULAR],
            "capital": [Item(a, b, "capital") for a, b in CAPITALS]}


def few_shot_prompt(examples: list[Item], query: str) -> str:
    """The book's form: "play = played . sing = sang . click =" (k = 0: just "click =")."""
    return "".join(f"{e.query} = {e.answer} . " for e in examples) + f"{query} ="


def build_prompts(items: list[Item], shots, seed: int, task: str) -> list[dict]:
    """One prompt per (query, k): the examples are the first k of a seeded order of the other items."""
    import numpy as np

    prompts = []
    for index, item in enumerate(items):
        rng = np.random.default_rng([seed, index, len(task)])
        others = [items[j] for j in rng.permutation(len(items)) if j != index]
        for k in shots:
            prompts.append({"task": task, "kind": item.kind, "shots": k, "query": item.query, "answer": item.answer,
                            "prompt": few_shot_prompt(others[:k], item.query)})
    return prompts


def parse_answer(continuation: str) -> str:
    """The answer in a continuation: up to the first " .", line end or " =", stripped (and a final ".")."""
    text = continuation.split("\n", 1)[0]
    for stop in (" .", " ="):
        text = text.split(stop, 1)[0]
    return text.strip().removesuffix(".").strip()


def answer_all(model, tokenizer, prompts: list[dict], batch_size: int, max_new_tokens: int) -> None:
    """Greedy answers for every prompt (left-padded batches of prompts with the same k), in place."""
    from models.progress import progress_bar

    # a row stops at " ." or a line end (its answer is complete) or at an end-of-text token
    stops = [tokenizer.convert_tokens_to_ids(t) for t in ("Ġ.", "Ċ")] + [tokenizer.eos_token_id,
                                                                       tokenizer.unk_token_id]
    order = sorted(range(len(prompts)), key=lambda i: (prompts[i]["shots"], len(prompts[i]["prompt"])))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in progress_bar(batches, desc="prompts", unit="batch"):
        enc = tokenizer([prompts[i]["prompt"] for i in batch], padding=True, padding_side="left", return_tensors="np")
        out = model.generate(enc["input_ids"], enc["attention_mask"], max_new_tokens=max_new_tokens,
                             eos_token_id=stops)
        for i, row in zip(batch, out[:, enc["input_ids"].shape[1]:]):
            text = tokenizer.decode(row.tolist(), skip_special_tokens=True)
            prompts[i]["prediction"] = parse_answer(text)
            prompts[i]["correct"] = prompts[i]["prediction"] == prompts[i]["answer"]


def accuracy_table(prompts: list[dict], shots) -> dict:
    """{task: {kind or "all": {k: accuracy}}}."""
    table = {}
    for task, kinds in KINDS.items():
        rows = [p for p in prompts if p["task"] == task]
        if not rows:
            continue
        table[task] = {}
        for kind in (("all",) + kinds if len(kinds) > 1 else kinds):
            chosen = [p for p in rows if kind in ("all", p["kind"])]
            table[task][kind] = {k: sum(p["correct"] for p in chosen if p["shots"] == k) /
                                 max(1, sum(p["shots"] == k for p in chosen)) for k in shots}
    return table


def format_table(table: dict, shots) -> str:
    columns = [(task, kind) for task, kinds in table.items() for kind in kinds]
    head = "| shots | " + " | ".join(f"{task} ({kind})" if kind != task else task for task, kind in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    for k in shots:
        lines.append(f"| {k} | " + " | ".join(f"{100 * table[t][kind][k]:.1f} %" for t, kind in columns) + " |")
    return "\n".join(lines)


def plot(path, table: dict, shots, model_name: str) -> None:
    from models.plotting import save_figure, subplots

    fig, ax = subplots(figsize=(6.4, 4.2))
    x = range(len(shots))
    styles = {"all": "-o", "irregular": "--s", "regular": "--^", "capital": "-D"}
    for task, kinds in table.items():
        for kind, accuracy in kinds.items():
            label = f"{task}: {kind}" if kind != "capital" else "country → capital"
            ax.plot(x, [100 * accuracy[k] for k in shots], styles.get(kind, "-o"), label=label)
    ax.set_xticks(list(x), [str(k) for k in shots])
    ax.set_xlabel("examples in the prompt (k)")
    ax.set_ylabel("exact-match accuracy, greedy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"in-context learning, {model_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser, out="runs/fewshot", seed="which examples each prompt shows")
    add_model_arguments(parser)
    parser.add_argument("--shots", type=int, nargs="+", default=list(SHOTS),
                        help=f"numbers of examples in the prompt (default: {' '.join(map(str, SHOTS))})")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="at most this many queries per task, a seeded sample (default: all 148 verbs and 77 "
                             "countries)")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="prompts per forward pass (default: 16)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=6,
                        help="tokens generated per answer at most (default: 6)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    try:
        if any(k < 0 or k > 32 for k in args.shots):
            raise ValueError(f"fewshot: --shots must lie in 0..32, got {args.shots}")
        shots = sorted(set(args.shots))
        model, tokenizer = load_model(args)
    except (FileNotFoundError, ValueError) as err:
        return report_error(err)
    prompts = []
    for task, items in tasks().items():
        if args.limit is not None and args.limit < len(items):
            rng = np.random.default_rng(args.seed)
            items = [items[i] for i in sorted(rng.choice(len(items), args.limit, replace=False))]
        prompts += build_prompts(items, shots, args.seed, task)
    name = Path(model.gguf.path).name.split(".")[0]  # "SmolLM2-135M-Instruct" (the metadata's name is cryptic)
    print_line(f"fewshot: {len(prompts)} prompts ({', '.join(f'{t}: {len(i)}' for t, i in tasks().items())} "
               f"queries before --limit), shots {shots}, {name}")
    print_line(f"  e.g. {prompts[min(len(prompts) - 1, 3)]['prompt']!r}")
    start = time.perf_counter()
    answer_all(model, tokenizer, prompts, args.batch_size, args.max_new_tokens)
    seconds = time.perf_counter() - start
    table = accuracy_table(prompts, shots)
    print_line(format_table(table, shots))
    print_line(f"({seconds:.0f} s, greedy answers scored exactly)")
    wrong = {task: [f"{p['prompt'].rsplit(' . ', 1)[-1]} {p['prediction']!r} (expected {p['answer']!r}, k={p['shots']})"
                    for p in prompts if p["task"] == task and not p["correct"] and p["shots"] == max(shots)][:8]
             for task in table}
    args.out.mkdir(parents=True, exist_ok=True)
    from models.text import atomic_write_text

    atomic_write_text(args.out / "predictions.json", json.dumps(prompts, indent=1, ensure_ascii=False) + "\n")
    write_metrics(args.out, {"model": name, "shots": shots, "seed": args.seed, "prompts": len(prompts),
                             "accuracy": {t: {kind: {str(k): v for k, v in acc.items()} for kind, acc in kinds.items()}
                                          for t, kinds in table.items()},
                             "queries": {t: sum(1 for p in prompts if p["task"] == t) // len(shots) for t in table},
                             "wrong_at_most_shots": wrong, "seconds": round(seconds, 1),
                             "items": {t: [asdict(i) for i in items] for t, items in tasks().items()}})
    if not args.no_plot:
        plot(args.out / "accuracy.png", table, shots, name)
    print_line(f"wrote {args.out / 'metrics.json'}, {args.out / 'predictions.json'}"
               + ("" if args.no_plot else f" and {args.out / 'accuracy.png'}"))
    return 0
