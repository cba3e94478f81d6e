"""Where each task's items come from: procedural generators, VeRL parquet files, the hub, or
local jsonl files in a dataset's original layout (clusters often have no hub access).

Every source returns the three splits (`train`, `validation`, `test`) as frames in
`esforget.tasks.ROW_SCHEMA`. Procedural sources are seeded and deduplicated across splits,
so the same config always writes the same bytes.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl

from esforget.tasks import choice, countdown, direct_answer, make_frame, prose_cloze
from esforget.tasks.math_answer import last_boxed

SPLITS = ("train", "validation", "test")

MATH_INSTRUCTION = ' Let\'s think step by step and output the final answer after "####".'
"""Suffix the authors append to GSM8K, MATH and OlympiadBench questions."""


def build_splits(source: dict, sizes: dict, seed: int) -> dict[str, pl.DataFrame]:
    kind = source["kind"]
    if kind == "countdown_generator":
        return _countdown_generator(source, sizes, seed)
    if kind == "arith_choice_generator":
        return _arith_choice_generator(source, sizes, seed)
    if kind == "arith_direct_generator":
        return _arith_direct_generator(source, sizes, seed)
    if kind == "prose_cloze_generator":
        return _prose_cloze_generator(source, sizes, seed)
    if kind == "verl_parquet":
        return _verl_parquet(source, sizes, seed)
    if kind == "hub":
        return _hub(source, sizes, seed)
    if kind == "local_jsonl":
        return _local_jsonl(source, sizes, seed)
    raise ValueError(f"unknown task source kind {kind!r}")


def _split_unique(make_item, key, sizes: dict, seed: int, what: str) -> dict[str, list[dict]]:
    """Draw distinct items (by `key`) until every split is full; fail clearly if impossible."""
    rng = random.Random(seed)
    wanted = sum(sizes[s] for s in SPLITS)
    seen, items, attempts = set(), [], 0
    while len(items) < wanted:
        attempts += 1
        if attempts > 50 * wanted + 10_000:
            raise ValueError(
                f"{what}: only {len(items)} distinct items found but the splits ask for {wanted}; "
                "widen the generator's ranges or shrink the splits"
            )
        item = make_item(rng)
        if key(item) not in seen:
            seen.add(key(item))
            items.append(item)
    out, start = {}, 0
    for split in SPLITS:
        out[split] = items[start : start + sizes[split]]
        start += sizes[split]
    return out


def _numbered(splits: dict[str, list], row) -> dict[str, pl.DataFrame]:
    """Each split's items as a frame, `row(item)` giving an item's prompt, ground truth and
    info, its id the split and its place in it (`train-0`, …)."""
    return {
        split: make_frame([{"id": f"{split}-{i}", **row(item)} for i, item in enumerate(items)])
        for split, items in splits.items()
    }


def _countdown_generator(source: dict, sizes: dict, seed: int) -> dict[str, pl.DataFrame]:
    low, high = source["number_range"]

    def make(rng):
        numbers, target = countdown.random_puzzle(
            rng, source["count"], low, high, source["ops"], source["target_range"]
        )
        return numbers, target

    def key(item):  # the order matters: the canonical answer keeps the given order
        return tuple(item[0]), item[1]

    splits = _split_unique(make, key, sizes, seed, "countdown_generator")

    def row(item):
        numbers, target = item
        return {
            "prompt": countdown.prompt(numbers, target, source["prompt_style"]),
            "ground_truth": str(target),
            "info": {"numbers": numbers, "reference": countdown.solve(numbers, target)},
        }

    return _numbered(splits, row)


def _arith_choice_generator(source: dict, sizes: dict, seed: int) -> dict[str, pl.DataFrame]:
    low, high = source["operand_range"]

    def make(rng):
        return choice.arithmetic_item(rng, low, high, source["ops"])

    def key(item):
        question, options, _ = item
        return question, tuple(options)

    splits = _split_unique(make, key, sizes, seed, "arith_choice_generator")

    def row(item):
        question, options, answer = item
        return {
            "prompt": choice.format_prompt(question, options, source["instruction"]),
            "ground_truth": str(answer),
            "info": {"question": question, "options": options},
        }

    return _numbered(splits, row)


def _arith_direct_generator(source: dict, sizes: dict, seed: int) -> dict[str, pl.DataFrame]:
    low, high = source["operand_range"]

    def make(rng):
        return direct_answer.random_item(rng, low, high, source["ops"])

    def key(item):
        return item[:3]

    splits = _split_unique(make, key, sizes, seed, "arith_direct_generator")

    def row(item):
        a, op, b, value = item
        return {
            "prompt": direct_answer.question(a, op, b, source["instruction"]),
            "ground_truth": str(value),
            "info": {"operands": [a, b], "op": op},
        }

    return _numbered(splits, row)


def _prose_cloze_generator(source: dict, sizes: dict, seed: int) -> dict[str, pl.DataFrame]:
    def make(rng):
        return prose_cloze.random_item(rng, source["context_sentences"])

    def key(item):  # one item per passage and continuation, whatever its wrong options
        context, options, right, _ = item
        return context, options[right - 1]

    splits = _split_unique(make, key, sizes, seed, "prose_cloze_generator")

    def row(item):
        context, options, right, topic = item
        return {
            "prompt": choice.format_prompt(context, options, source["instruction"]),
            "ground_truth": str(right),
            # question/options also feed the log-likelihood probe (esforget.evaluate.likelihood)
            "info": {"topic": topic, "question": context, "options": options},
        }

    return _numbered(splits, row)


# --- the authors' splits (VeRL layout) -------------------------------------------------------


def _verl_parquet(source: dict, sizes: dict, seed: int) -> dict[str, pl.DataFrame]:
    """`<path>/train.parquet` and `<path>/test.parquet` as in `shared/paper-data/<task>/`.

    The authors have no separate validation split: they validate on the test set, which is
    what their "peak validation accuracy" means, so `validation` is the test split here.
    """
    root = Path(source["path"])
    frames = {split: _read_verl(root / f"{split}.parquet") for split in ("train", "test")}
    frames["validation"] = frames["test"]
    return {split: _limit(frames[split], sizes.get(split), seed) for split in SPLITS}


def _read_verl(path: Path) -> pl.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"missing task file: {path}")
    raw = pl.read_parquet(path)
    missing = {"prompt", "reward_model", "extra_info"} - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: not in VeRL layout, missing columns {sorted(missing)}")
    rows = []
    for i, record in enumerate(raw.iter_rows(named=True)):
        user = [m["content"] for m in record["prompt"] if m["role"] == "user"][-1]
        truth = record["reward_model"]["ground_truth"]
        extra = record["extra_info"] or {}
        if "numbers" in extra:  # Countdown: score against the target, keep the reference
            info = {"numbers": list(extra["numbers"]), "reference": truth}
            truth = str(extra["target"])
        else:
            info = {k: v for k, v in extra.items() if k in ("index", "unique_id")}
        rows.append({"id": str(i), "prompt": user, "ground_truth": truth, "info": info})
    return make_frame(rows)


def _limit(frame: pl.DataFrame, size: int | None, seed: int) -> pl.DataFrame:
    if size is None or size >= frame.height:
        return frame
    return frame.sample(n=size, seed=seed, shuffle=False)


# --- the hub, through `datasets` (needs network; not exercised on the offline CI) -----------


def _hub(source: dict, sizes: dict, seed: int) -> dict[str, pl.DataFrame]:
    import datasets  # heavy import, only for hub sources

    loader = HUB_LOADERS[source["loader"]]
    converted: dict[str, pl.DataFrame] = {}  # a hub split named by several of ours is read once
    frames = {}
    for split in SPLITS:
        name = source["splits"][split]
        if name not in converted:
            ds = datasets.load_dataset(
                source["dataset"], source.get("config"), data_files=source.get("data_files"), split=name
            )
            converted[name] = make_frame(loader(ds, source))
        frames[split] = _limit(converted[name], sizes.get(split), seed)
    return frames


# --- the same loaders over local jsonl files --------------------------------------------------


def _local_jsonl(source: dict, sizes: dict, seed: int) -> dict[str, pl.DataFrame]:
    """`<path>/<file>` per split, one JSON object per line, in the dataset's original layout
    (e.g. HellaSwag's `hellaswag_val.jsonl`: `ind`, `ctx_a`, `ctx_b`, `endings`, `label` as an
    int, …), prepared by the loader the hub path uses, so both give the same rows."""
    loader = HUB_LOADERS[source["loader"]]
    converted: dict[str, pl.DataFrame] = {}
    frames = {}
    for split in SPLITS:
        name = source["splits"][split]
        if name not in converted:
            converted[name] = make_frame(loader(read_jsonl(Path(source["path"]) / name), source))
        frames[split] = _limit(converted[name], sizes.get(split), seed)
    return frames


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"missing task file: {path}")
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not JSON ({err})") from None
    return records


def _math_rows(question: str, final_answer: Callable[[dict], str]) -> Callable[[object, dict], list[dict]]:
    """The loader of a math dataset: each record's `question` field with the answer instruction,
    and its final answer, from the record, as ground truth."""

    def rows(ds, source) -> list[dict]:
        return [
            {
                "id": str(i),
                "prompt": r[question] + MATH_INSTRUCTION,
                "ground_truth": final_answer(r),
                "info": {"index": i},
            }
            for i, r in enumerate(ds)
        ]

    return rows


def _countdown_rows(ds, source) -> list[dict]:
    rows = []
    for i, r in enumerate(ds):
        numbers, target = list(r["nums"]), int(r["target"])
        rows.append(
            {
                "id": str(i),
                "prompt": countdown.prompt(numbers, target, source.get("prompt_style", "authors")),
                "ground_truth": str(target),
                "info": {"numbers": numbers, "reference": countdown.solve(numbers, target)},
            }
        )
    return rows


def hellaswag_preprocess(text: str) -> str:
    """The evaluation harnesses' HellaSwag clean-up, as the authors used it."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag_rows(ds, source) -> list[dict]:
    """Every `every`-th item; the four endings shuffled with a fixed seed and listed 1–4."""
    rng = random.Random(source["shuffle_seed"])
    rows = []
    for i in range(0, len(ds), source["every"]):
        r = ds[i]
        context = hellaswag_preprocess(r["activity_label"] + ": " + r["ctx_a"] + " " + r["ctx_b"].capitalize())
        endings = [hellaswag_preprocess(e) for e in r["endings"]]
        order = list(range(len(endings)))
        rng.shuffle(order)
        right = order.index(int(r["label"])) + 1
        options = [endings[j] for j in order]
        rows.append(
            {
                "id": str(r.get("ind", i)),
                "prompt": choice.format_prompt(context, options, source["instruction"]),
                "ground_truth": str(right),
                # question/options also feed the log-likelihood probe (esforget.evaluate.likelihood)
                "info": {"source_index": i, "order": order, "question": context, "options": options},
            }
        )
    return rows


MMLU_LETTERS = "ABCD"


def mmlu_question(row: dict, with_answer: bool) -> str:
    """One MMLU question as the original 5-shot format writes it (Hendrycks et al.)."""
    options = (f"{letter}. {choice}" for letter, choice in zip(MMLU_LETTERS, row["choices"], strict=True))
    lines = [row["question"].strip(), *options]
    answer = f"Answer: {MMLU_LETTERS[row['answer']]}" if with_answer else "Answer:"
    return "\n".join([*lines, answer])


def _mmlu_rows(ds, source) -> list[dict]:
    """k-shot MMLU (raw text, no chat template): per subject, the first `shots` items of the
    `shots_split` split as worked examples, then the question; answered by the letter
    (scorer `letter`: the log-probability of " A" … " D" at the first answer token)."""
    import datasets

    dev = datasets.load_dataset(
        source["dataset"], source.get("config"), data_files=source.get("data_files"), split=source["shots_split"]
    )
    shots: dict[str, list[dict]] = {}
    for row in dev:
        shots.setdefault(row["subject"], []).append(row)
    rows = []
    for i, r in enumerate(ds):
        examples = shots.get(r["subject"], [])[: source["shots"]]
        if len(examples) < source["shots"]:
            raise ValueError(f"mmlu: only {len(examples)} {source['shots_split']!r} items for subject {r['subject']!r}")
        header = (
            f"The following are multiple choice questions (with answers) about {r['subject'].replace('_', ' ')}.\n\n"
        )
        body = "\n\n".join([*(mmlu_question(e, True) for e in examples), mmlu_question(r, False)])
        rows.append(
            {
                "id": str(i),
                "prompt": header + body,
                "ground_truth": str(r["answer"] + 1),
                "info": {"subject": r["subject"], "question": r["question"], "options": list(r["choices"])},
            }
        )
    return rows


HUB_LOADERS = {
    # GSM8K's answer ends "#### 1,234"; MATH's solution boxes it; OlympiadBench lists it
    "gsm8k": _math_rows("question", lambda r: r["answer"].split("####")[-1].strip().replace(",", "")),
    "math": _math_rows("problem", lambda r: last_boxed(r["solution"]) or ""),
    "olympiadbench": _math_rows("question", lambda r: r["final_answer"][0]),
    "countdown": _countdown_rows,
    "hellaswag": _hellaswag_rows,
    "mmlu": _mmlu_rows,
}


def manifest(frames: dict[str, pl.DataFrame], files: dict[str, str], source: dict, seed: int) -> dict:
    return {
        "seed": seed,
        "source": json.loads(json.dumps(source)),
        "splits": {split: {"rows": frames[split].height, "sha256": files[split]} for split in SPLITS},
    }
