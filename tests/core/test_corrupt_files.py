"""Files damaged after they were written name themselves: every reader a stage opens its inputs
with turns the library's exception into one that names the path and what is wrong, and nothing
damaged is skipped as if it were absent."""

import json
import shutil

import polars as pl
import pytest

from esforget.core.checkpoints import list_checkpoints
from esforget.core.files import read_json, read_parquet, write_parquet
from esforget.core.models import load_model, load_tokenizer
from esforget.tasks import ROW_SCHEMA, read_split


@pytest.fixture
def model_copy(micro_model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(micro_model_dir, copy)
    return copy


def truncate(path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: truncate(d / "model.safetensors", 1000), r"cannot load the model"),
        (lambda d: truncate(d / "model.safetensors", 4), r"cannot load the model"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\0" * 64), r"cannot load the model"),
        (lambda d: (d / "model.safetensors").unlink(), r"cannot load the model"),
        (lambda d: (d / "config.json").write_text("{not json"), r"cannot load the model"),
        (lambda d: (d / "config.json").unlink(), r"not a model directory \(no config\.json\)"),
    ],
)
def test_a_damaged_model_folder_is_named_when_loaded(model_copy, damage, message):
    damage(model_copy)
    with pytest.raises((ValueError, FileNotFoundError), match=f"{model_copy}.*{message}|{message}.*{model_copy}"):
        load_model(model_copy)


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: (d / "tokenizer.json").write_text("garbage, not a tokenizer"),
        lambda d: truncate(d / "tokenizer.json", 100),
        lambda d: (d / "tokenizer_config.json").write_text("[1, 2"),
    ],
)
def test_a_damaged_tokenizer_is_named_when_loaded(model_copy, damage):
    damage(model_copy)
    with pytest.raises(ValueError, match=f"{model_copy}: cannot load the tokenizer"):
        load_tokenizer(model_copy)


def test_a_checkpoint_folder_without_its_config_is_an_error_not_a_skip(model_copy, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    shutil.copytree(model_copy, checkpoints / "step000010")
    (checkpoints / "step000020").mkdir()  # damaged: its files gone
    with pytest.raises(FileNotFoundError, match=r"step000020: a checkpoint folder without config\.json"):
        list_checkpoints(checkpoints)
    (checkpoints / "step000020").rmdir()
    assert [step for step, _ in list_checkpoints(checkpoints)] == [10]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"cannot read parquet file"),
        (b"PAR1 not really", r"cannot read parquet file"),
        (None, r"missing input file"),
    ],
)
def test_a_damaged_or_missing_table_is_named(tmp_path, content, message):
    path = tmp_path / "metrics.parquet"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises((ValueError, FileNotFoundError), match=f"{message}.*{path}|{path}.*{message}"):
        read_parquet(path)


def test_a_truncated_table_is_named(tmp_path):
    path = tmp_path / "split.parquet"
    write_parquet(pl.DataFrame({"prompt": ["a"] * 100, "answer": list(range(100))}), path)
    truncate(path, path.stat().st_size // 2)
    with pytest.raises(ValueError, match=f"cannot read parquet file {path}"):
        read_parquet(path)


@pytest.mark.parametrize("content", ["{", "[1, 2", "", "\x00\x01"])
def test_damaged_json_is_named(tmp_path, content):
    path = tmp_path / "run_config.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"corrupt JSON in {path}"):
        read_json(path)


def test_a_table_missing_a_column_a_stage_needs_is_named_on_open(tmp_path):
    path = tmp_path / "test.parquet"
    write_parquet(pl.DataFrame({"prompt": ["a"], "info": ["{}"]}), path)
    refused = rf"{path}: missing column\(s\) \['ground_truth'\]; it has \['prompt', 'info'\]"
    with pytest.raises(ValueError, match=refused):
        read_parquet(path, columns=("prompt", "ground_truth", "info"))
    assert read_parquet(path, columns=("prompt",)).columns == ["prompt", "info"]


def test_an_empty_table_is_refused_where_rows_are_needed(tmp_path):
    path = tmp_path / "train.parquet"
    write_parquet(pl.DataFrame({"prompt": []}, schema={"prompt": pl.String}), path)
    with pytest.raises(ValueError, match=f"{path}: no rows"):
        read_parquet(path, nonempty=True)
    assert read_parquet(path).height == 0


def test_json_of_the_wrong_shape_is_named(tmp_path):
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=f"{path}: expected a JSON object, got list"):
        read_json(path, expect=dict)


@pytest.mark.parametrize(
    "frame, message",
    [
        (pl.DataFrame({"id": ["1"], "prompt": ["p"], "ground_truth": ["3"]}), r"missing column\(s\) \['info'\]"),
        (pl.DataFrame(schema=ROW_SCHEMA), r"no rows"),
    ],
)
def test_a_split_a_stage_would_score_is_checked_on_open(tmp_path, frame, message):
    path = tmp_path / "test.parquet"
    write_parquet(frame, path)
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        read_split(path)
