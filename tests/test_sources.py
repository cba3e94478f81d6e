"""The loaders of the hub datasets, run on one record in each dataset's original layout through
the local-jsonl source (the same loaders the hub path uses), and the size limit of a split."""

import json

import polars as pl
import pytest

from esforget.tasks import countdown
from esforget.tasks.sources import MATH_INSTRUCTION, SPLITS, _limit, build_splits

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
    from esforget import tiny_model
    from esforget.probes import LoglikScorer

    source = {"kind": "arith_choice_generator", "operand_range": [1, 9], "ops": ["+"], "instruction": "Answer."}
    rows = build_splits(source, {"train": 0, "validation": 0, "test": 4}, seed=0)["test"]
    scorer = LoglikScorer(tiny_model.build_tokenizer(), rows, batch_size=4)
    assert scorer.options_per_item == [4, 4, 4, 4]
