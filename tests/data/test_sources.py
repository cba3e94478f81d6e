"""The loaders of the hub datasets, run on one record in each dataset's original layout through
the local-jsonl source (the same loaders the hub path uses), and the size limit of a split."""

import collections
import hashlib
import json
import random
import re

import polars as pl
import pytest

from esforget.data.prepare import prepare_task
from esforget.data.sources import (
    HUB_LOADERS,
    MATH_INSTRUCTION,
    SPLITS,
    _countdown_rows,
    _hellaswag_rows,
    _limit,
    _mmlu_rows,
    _read_verl,
    build_splits,
    hellaswag_preprocess,
    mmlu_question,
    read_jsonl,
)
from esforget.tasks import ROW_SCHEMA, choice, countdown, make_frame
from esforget.tasks.safe_arith import safe_eval
from tests.shared import FIXTURES, MICRO_COUNTDOWN

ARITH = {"kind": "arith_choice_generator", "operand_range": [1, 9], "ops": ["+"], "instruction": ""}
PROSE_CLOZE = {"kind": "prose_cloze_generator", "context_sentences": 2, "instruction": ""}

RECORDS = {
    "gsm8k": (
        {"question": "Tom has 1,200 apples. How many?", "answer": "He has 1200.\n#### 1,200"},
        {"prompt": "Tom has 1,200 apples. How many?" + MATH_INSTRUCTION, "ground_truth": "1200"},
    ),
    "math": (
        {"problem": "Half of 1?", "solution": "It is $\\boxed{\\frac{1}{2}}$."},
        {"prompt": "Half of 1?" + MATH_INSTRUCTION, "ground_truth": "\\frac{1}{2}"},
    ),
    "olympiadbench": (
        {"question": "Find x.", "final_answer": ["$4 \\sqrt{5}$"]},
        {"prompt": "Find x." + MATH_INSTRUCTION, "ground_truth": "$4 \\sqrt{5}$"},
    ),
    "countdown": (
        {"nums": [3, 5, 7], "target": 22},
        {"prompt": countdown.prompt([3, 5, 7], 22, "compact"), "ground_truth": "22"},
    ),
}


@pytest.mark.parametrize("loader", sorted(RECORDS))
def test_each_loader_turns_an_original_record_into_a_task_row(tmp_path, loader):
    record, expected = RECORDS[loader]
    (tmp_path / "all.jsonl").write_text(json.dumps(record) + "\n")
    source = {
        "kind": "local_jsonl",
        "path": str(tmp_path),
        "loader": loader,
        "prompt_style": "compact",
        "splits": dict.fromkeys(("train", "validation", "test"), "all.jsonl"),
    }
    row = build_splits(source, {}, seed=0)["test"].row(0, named=True)
    assert {key: row[key] for key in expected} == expected
    assert row["id"] == "0"
    if loader == "countdown":  # the scorer's inputs, and a reference solution that scores
        info = json.loads(row["info"])
        assert info["numbers"] == [3, 5, 7]
        assert countdown.reward(countdown.completion(info["reference"]), [3, 5, 7], "22") == pytest.approx(1.1)


def test_a_limited_split_is_the_same_seeded_sample_every_time_in_the_original_order():
    frame = pl.DataFrame({"id": [str(i) for i in range(100)]})
    first = _limit(frame, 10, seed=3)
    assert first.equals(_limit(frame, 10, seed=3))
    assert not first.equals(_limit(frame, 10, seed=4))
    assert first["id"].cast(pl.Int64).is_sorted()
    assert _limit(frame, None, seed=3).equals(frame) and _limit(frame, 500, seed=3).equals(frame)


def test_split_sizes_are_honoured_for_file_sources(tmp_path):
    records = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(6)]
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    source = {
        "kind": "local_jsonl",
        "path": str(tmp_path),
        "loader": "gsm8k",
        "splits": dict.fromkeys(SPLITS, "all.jsonl"),
    }
    frames = build_splits(source, {"train": 2, "validation": 3}, seed=0)
    assert (frames["train"].height, frames["validation"].height, frames["test"].height) == (2, 3, 6)


def test_generated_choice_items_carry_what_the_log_likelihood_probe_reads(micro_model_dir):
    from esforget.base import tiny
    from esforget.evaluate.likelihood import LoglikScorer

    source = {"kind": "arith_choice_generator", "operand_range": [1, 9], "ops": ["+"], "instruction": "Answer."}
    rows = build_splits(source, {"train": 0, "validation": 0, "test": 4}, seed=0)["test"]
    scorer = LoglikScorer(tiny.build_tokenizer(), rows, batch_size=4)
    assert scorer.options_per_item == [4, 4, 4, 4]


def test_choice_items_offer_the_right_value_and_three_of_its_near_misses():
    """Wrong options are the right value ± 1, 2 or 10, or a and b under another operator; over
    many items every one of those offsets is offered."""
    rng = random.Random(0)
    offsets = collections.Counter()
    for _ in range(500):
        question, options, right = choice.arithmetic_item(rng, 1, 9, ["+"])
        a, b = map(int, re.fullmatch(r"Which is (\d+)\+(\d+)\?", question).groups())
        values = [int(option) for option in options]
        assert values[right - 1] == a + b and len(set(values)) == 4
        other_operators = {a - b, a * b}
        wrong = [v for i, v in enumerate(values) if i != right - 1]
        assert all(v in other_operators or v - (a + b) in (-10, -2, -1, 1, 2, 10) for v in wrong)
        offsets.update(v - (a + b) for v in wrong if v not in other_operators)
    assert set(offsets) == {-10, -2, -1, 1, 2, 10}


def test_puzzle_targets_cover_the_target_range_bounds_included():
    rng = random.Random(0)
    targets = {countdown.random_puzzle(rng, 3, 1, 9, ["+", "-"], [4, 6])[1] for _ in range(300)}
    assert targets == {4, 5, 6}


def test_hellaswag_text_is_cleaned_as_the_harnesses_clean_it():
    """ " [title]" becomes ". ", any other [tag] goes, and the double spaces left are closed."""
    assert hellaswag_preprocess("  Baking [title] Mix the flour [header] well.  ") == "Baking. Mix the flour well."


def test_a_hellaswag_record_without_an_index_is_named_by_its_position():
    record = json.loads(FIXTURES.joinpath("hellaswag_validation.jsonl").read_text().splitlines()[0])
    del record["ind"]
    source = {"every": 1, "shuffle_seed": 0, "instruction": ""}
    rows = _hellaswag_rows([record, record, record], source)
    assert [row["id"] for row in rows] == ["0", "1", "2"]


def test_split_sizes_are_honoured_for_the_authors_parquet_splits(paper_data):
    frames = build_splits({"kind": "verl_parquet", "path": str(paper_data / "countdown")}, {"train": 5, "test": 7}, 0)
    assert (frames["train"].height, frames["test"].height) == (5, 7)


@pytest.mark.parametrize(
    "source",
    [MICRO_COUNTDOWN, ARITH, {**ARITH, "kind": "arith_direct_generator"}, PROSE_CLOZE],
    ids=["countdown", "arith_choice", "arith_direct", "prose_cloze"],
)
def test_generated_splits_are_a_function_of_the_data_seed(source):
    sizes = {"train": 20, "validation": 5, "test": 5}
    first = build_splits(source, sizes, seed=11)
    again = build_splits(source, sizes, seed=11)
    other = build_splits(source, sizes, seed=12)
    assert all(first[split].equals(again[split]) for split in SPLITS)
    assert not first["train"].equals(other["train"])


def test_every_task_frame_has_the_row_schema_even_when_empty():
    assert make_frame([]).schema == pl.Schema(ROW_SCHEMA)


def test_countdown_from_the_hub_is_asked_in_the_authors_prompt_unless_a_style_is_given():
    record = [{"nums": [3, 5, 7], "target": 22}]
    assert _countdown_rows(record, {})[0]["prompt"] == countdown.prompt([3, 5, 7], 22, "authors")
    assert _countdown_rows(record, {"prompt_style": "minimal"})[0]["prompt"] == "[3 5 7] -> 22\n<think>"


def test_the_math_ground_truths_are_what_the_authors_graders_compare_with():
    """GSM8K: the number after the last `####` of the worked answer, commas dropped; MATH: the
    last boxed expression of the solution, or nothing where there is none."""
    gsm8k = [{"question": "q", "answer": "First #### is not the end.\nSo 1,000 + 200.\n#### 1,200"}]
    assert HUB_LOADERS["gsm8k"](gsm8k, {})[0]["ground_truth"] == "1200"
    unboxed = [{"problem": "p", "solution": "The answer is 5."}, {"problem": "p", "solution": "$\\boxed{5}$"}]
    assert [row["ground_truth"] for row in HUB_LOADERS["math"](unboxed, {})] == ["", "5"]


def test_math_rows_remember_each_items_place_in_the_source():
    records = [{"question": f"q{i}", "final_answer": [str(i)]} for i in range(3)]
    assert [row["info"] for row in HUB_LOADERS["olympiadbench"](records, {})] == [
        {"index": 0},
        {"index": 1},
        {"index": 2},
    ]


def test_the_authors_splits_keep_only_an_items_index_and_id_beside_its_prompt(tmp_path):
    """A math item keeps where it came from (`index`, `unique_id`) and nothing else of VeRL's
    `extra_info`; a Countdown item its numbers, and its target as the ground truth."""
    math_row = {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+1?"}],
        "reward_model": {"ground_truth": "2"},
        "extra_info": {"index": 4, "unique_id": "test/7.json", "split": "train", "question": "1+1?"},
    }
    pl.DataFrame([math_row]).write_parquet(tmp_path / "math.parquet")
    (row,) = _read_verl(tmp_path / "math.parquet").iter_rows(named=True)
    assert (row["id"], row["prompt"], row["ground_truth"], json.loads(row["info"])) == (
        "0",
        "1+1?",
        "2",
        {"index": 4, "unique_id": "test/7.json"},
    )
    countdown_row = {
        **math_row,
        "reward_model": {"ground_truth": "3*5+7"},
        "extra_info": {"numbers": [3, 5, 7], "target": 22},
    }
    pl.DataFrame([countdown_row]).write_parquet(tmp_path / "countdown.parquet")
    (row,) = _read_verl(tmp_path / "countdown.parquet").iter_rows(named=True)
    assert (row["ground_truth"], json.loads(row["info"])) == ("22", {"numbers": [3, 5, 7], "reference": "3*5+7"})


def test_blank_lines_of_a_jsonl_file_are_skipped_not_the_end_of_it(tmp_path):
    (tmp_path / "all.jsonl").write_text('{"a": 1}\n\n   \n{"a": 2}\n')
    assert read_jsonl(tmp_path / "all.jsonl") == [{"a": 1}, {"a": 2}]


def test_a_manifest_records_each_splits_rows_and_bytes(tmp_path):
    prepare_task({"source": MICRO_COUNTDOWN, "splits": {"train": 5, "validation": 2, "test": 3}}, 7, tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert {split: entry["rows"] for split, entry in manifest["splits"].items()} == {
        "train": 5,
        "validation": 2,
        "test": 3,
    }
    for split in SPLITS:
        digest = hashlib.sha256((tmp_path / f"{split}.parquet").read_bytes()).hexdigest()
        assert manifest["splits"][split]["sha256"] == digest
    assert (manifest["seed"], manifest["source"]) == (7, MICRO_COUNTDOWN)


def test_a_generator_fills_the_splits_with_every_distinct_item_it_has():
    """'Which is 1+1?' has 480 distinct option lists (3 of its 6 near misses, in any of 4!
    orders with the right value): asked for all of them, the splits hold each once."""
    one_sum = {"kind": "arith_choice_generator", "operand_range": [1, 1], "ops": ["+"], "instruction": ""}
    splits = build_splits(one_sum, {"train": 400, "validation": 40, "test": 40}, seed=0)
    prompts = pl.concat([splits[split]["prompt"] for split in SPLITS])
    assert prompts.len() == prompts.n_unique() == 480


def test_a_generated_choice_item_is_numbered_in_its_split_and_asks_with_the_instruction():
    source = {**ARITH, "instruction": "Answer with the number only."}
    first = build_splits(source, {"train": 2, "validation": 1, "test": 1}, seed=0)["validation"].row(0, named=True)
    info = json.loads(first["info"])
    assert first["id"] == "validation-0"
    assert first["prompt"] == choice.format_prompt(info["question"], info["options"], "Answer with the number only.")
    assert first["prompt"].endswith("\nAnswer with the number only.")


def test_gsm8k_reads_the_number_after_the_last_hashes_written_with_or_without_a_space():
    records = [{"question": "q", "answer": "So.\n####1,200"}, {"question": "q", "answer": "So.\n#### 7"}]
    rows = HUB_LOADERS["gsm8k"](records, {})
    assert [row["ground_truth"] for row in rows] == ["1200", "7"]
    assert [row["info"] for row in rows] == [{"index": 0}, {"index": 1}]
    assert [row["info"] for row in HUB_LOADERS["math"]([{"problem": "p", "solution": "\\\\boxed{1}"}] * 2, {})] == [
        {"index": 0},
        {"index": 1},
    ]


@pytest.mark.parametrize("kind", ["hub", "local_jsonl"])
def test_a_split_limited_in_size_is_the_seeded_sample_of_the_whole(tmp_path, kind):
    """The same rows `_limit` draws with the data seed, from the hub path and from local files."""
    records = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(12)]
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    whole = make_frame(HUB_LOADERS["gsm8k"](records, {}))
    if kind == "hub":
        source = {"kind": "hub", "loader": "gsm8k", "dataset": "json", "data_files": str(tmp_path / "all.jsonl")}
        source["splits"] = dict.fromkeys(SPLITS, "train")
    else:
        source = {
            "kind": "local_jsonl",
            "loader": "gsm8k",
            "path": str(tmp_path),
            "splits": dict.fromkeys(SPLITS, "all.jsonl"),
        }
    frames = build_splits(source, {"train": 5, "test": 3}, seed=4)
    assert frames["train"].equals(_limit(whole, 5, 4)) and frames["test"].equals(_limit(whole, 3, 4))
    assert frames["validation"].equals(whole)
    assert not frames["train"].equals(_limit(whole, 5, 5))  # another seed, other rows


def test_the_authors_validation_split_is_their_test_split_and_limits_draw_with_the_data_seed(tmp_path):
    rows = [
        {
            "prompt": [{"role": "user", "content": f"{i}+1?"}],
            "reward_model": {"ground_truth": str(i + 1)},
            "extra_info": {"index": i},
        }
        for i in range(10)
    ]
    for split in ("train", "test"):
        pl.DataFrame(rows).write_parquet(tmp_path / f"{split}.parquet")
    frames = build_splits({"kind": "verl_parquet", "path": str(tmp_path)}, {"test": 4, "validation": 4}, seed=3)
    whole = _read_verl(tmp_path / "test.parquet")
    assert frames["validation"].equals(frames["test"]) and frames["test"].equals(_limit(whole, 4, 3))
    assert frames["train"].height == 10


def test_mmlu_asks_each_question_after_its_worked_examples_and_keeps_what_the_probes_read():
    examples = [{"question": f"e{k}?", "subject": "s", "choices": ["1", "2", "3", "4"], "answer": 1} for k in range(2)]
    question = {"question": " q? ", "subject": "s", "choices": ["a", "b", "c", "d"], "answer": 2}
    expected_prompt = (
        "The following are multiple choice questions (with answers) about s.\n\n"
        "e0?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
        "e1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: B\n\n"
        "q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    )
    assert mmlu_question(question, False) == "q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    assert "\n\n".join([*(mmlu_question(e, True) for e in examples), mmlu_question(question, False)]) in expected_prompt
    with pytest.raises(ValueError):  # an item of another shape than four options is refused, not cut
        mmlu_question({**question, "choices": ["a", "b", "c", "d", "e"]}, False)


def test_mmlu_rows_keep_the_subject_question_and_options(tmp_path):
    import datasets

    dev = [{"question": f"e{k}?", "subject": "s", "choices": ["1", "2", "3", "4"], "answer": 1} for k in range(2)]
    test = [{"question": "q?", "subject": "s", "choices": ["a", "b", "c", "d"], "answer": 2}]
    for name, records in (("dev", dev), ("test", test)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    files = {"dev": str(tmp_path / "dev.jsonl"), "test": str(tmp_path / "test.jsonl")}
    source = {"dataset": "json", "data_files": files, "shots": 2, "shots_split": "dev"}
    (row,) = _mmlu_rows(datasets.load_dataset("json", data_files=files, split="test"), source)
    assert row["info"] == {"subject": "s", "question": "q?", "options": ["a", "b", "c", "d"]}
    assert row["prompt"].endswith("Answer: B\n\nq?\nA. a\nB. b\nC. c\nD. d\nAnswer:")
    assert (row["id"], row["ground_truth"]) == ("0", "3")


def test_a_generated_puzzle_is_numbered_in_its_split_and_its_reference_reaches_its_target():
    splits = build_splits(MICRO_COUNTDOWN, {"train": 6, "validation": 2, "test": 3}, seed=0)
    for split, frame in splits.items():
        assert frame["id"].to_list() == [f"{split}-{i}" for i in range(frame.height)]
        for row in frame.iter_rows(named=True):
            info = json.loads(row["info"])
            target = int(row["ground_truth"])
            assert row["prompt"] == countdown.prompt(info["numbers"], target, MICRO_COUNTDOWN["prompt_style"])
            assert safe_eval(info["reference"]) == target
            assert sorted(map(int, re.findall(r"\d+", info["reference"]))) == sorted(info["numbers"])


def test_a_source_that_gives_a_split_no_rows_is_refused_and_nothing_is_written(tmp_path):
    (tmp_path / "all.jsonl").write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n")
    (tmp_path / "none.jsonl").write_text("\n")
    splits = {"train": "all.jsonl", "validation": "all.jsonl", "test": "none.jsonl"}
    task = {"source": {"kind": "local_jsonl", "path": str(tmp_path), "loader": "gsm8k", "splits": splits}}
    with pytest.raises(ValueError, match=r"gave no rows for split\(s\) \['test'\]; nothing written"):
        prepare_task(task, seed=0, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_countdown_targets_no_draw_can_reach_end_the_generator_naming_the_ranges():
    with pytest.raises(ValueError, match=r"no target in \[1000, 2000\] from 3 numbers in \[1, 10\] with ops \['\+'\]"):
        countdown.random_puzzle(random.Random(0), 3, 1, 10, ["+"], [1000, 2000])
