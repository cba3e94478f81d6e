"""Every user-facing error on bad input, as a table: the input, and the message that must name
the file, key or value at fault (so a researcher can fix it without reading the code)."""

import json
import re

import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from esforget.analyze.weight_diff import TensorFile, diff_checkpoint
from esforget.base import tiny
from esforget.core.checkpoints import list_checkpoints
from esforget.core.files import read_json, read_parquet
from esforget.data.sources import _mmlu_rows, build_splits
from esforget.evaluate.likelihood import LetterScorer, LoglikScorer
from esforget.tasks import make_frame, reward_function
from esforget.train.member_batch import MemberStack
from tests.shared import MICRO_COUNTDOWN, save_pair


def truncated_safetensors(tmp):
    base, tuned = save_pair(tmp, {"w": torch.zeros(64)}, {"w": torch.ones(64)})
    file = tuned / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-16])  # a copy cut short
    diff_checkpoint(base, tuned, [1e-6])


def truncated_while_streaming(tmp):
    save_file({"w": torch.zeros(64)}, tmp / "model.safetensors")
    file = tmp / "model.safetensors"
    file.write_bytes(file.read_bytes()[:-16])
    TensorFile(file).rows("w", 0, 64)


def mismatched_shapes(tmp):
    diff_checkpoint(*save_pair(tmp, {"w": torch.zeros(2)}, {"w": torch.zeros(3)}), [1e-6])


def no_safetensors(tmp):
    (tmp / "empty").mkdir()
    diff_checkpoint(tmp / "empty", tmp / "empty", [1e-6])


def corrupt_json(tmp):
    (tmp / "run_config.json").write_text('{"sigma": 0.1,')
    read_json(tmp / "run_config.json")


def missing_json(tmp):
    read_json(tmp / "state.json")


def corrupt_parquet(tmp):
    (tmp / "train.parquet").write_bytes(b"PAR1 not really")
    read_parquet(tmp / "train.parquet")


def verl_split_missing_columns(tmp):
    pl.DataFrame({"prompt": ["x"], "answer": ["1"]}).write_parquet(tmp / "train.parquet")
    pl.DataFrame({"prompt": ["x"], "answer": ["1"]}).write_parquet(tmp / "test.parquet")
    build_splits({"kind": "verl_parquet", "path": str(tmp)}, {}, seed=0)


def jsonl_line_not_json(tmp):
    (tmp / "dev.jsonl").write_text('{"ctx": "a"}\n{"ctx": \n')
    source = {"kind": "local_jsonl", "path": str(tmp), "loader": "gsm8k", "splits": {"train": "dev.jsonl"}}
    build_splits(source, {"train": 1}, seed=0)


def generator_cannot_fill_the_splits(tmp):
    narrow = {**MICRO_COUNTDOWN, "count": 2, "number_range": [1, 2], "ops": ["+"], "target_range": [1, 100]}
    build_splits(narrow, {"train": 50, "validation": 5, "test": 5}, seed=0)


def arith_generator_cannot_fill_the_splits(tmp):
    """'Which is 1+1?' has at most 480 distinct option lists."""
    one_sum = {"kind": "arith_choice_generator", "operand_range": [1, 1], "ops": ["+"], "instruction": ""}
    build_splits(one_sum, {"train": 400, "validation": 50, "test": 50}, seed=0)


def mmlu_shots_beyond_the_dev_split(tmp):
    """5-shot MMLU asks 5 solved examples per subject from the dev split; it holds 1."""
    item = {"question": "1+1?", "choices": ["1", "2", "3", "4"], "answer": 1, "subject": "elementary_mathematics"}
    (tmp / "dev.jsonl").write_text(json.dumps(item) + "\n")
    source = {"dataset": "json", "data_files": str(tmp / "dev.jsonl"), "shots": 5, "shots_split": "train"}
    _mmlu_rows([item], source)


def members_beyond_memory(tmp):
    MemberStack(torch.nn.Linear(1024, 1024), 10**9)  # refused before anything is allocated


def mmlu_subject_missing_from_the_dev_split(tmp):
    item = {"question": "1+1?", "choices": ["1", "2", "3", "4"], "answer": 1, "subject": "virology"}
    (tmp / "dev.jsonl").write_text(json.dumps({**item, "subject": "geography"}) + "\n")
    source = {"dataset": "json", "data_files": str(tmp / "dev.jsonl"), "shots": 1, "shots_split": "train"}
    _mmlu_rows([item], source)


def choice_rows(infos: list[dict]) -> pl.DataFrame:
    return make_frame(
        [{"id": str(i), "prompt": "q", "ground_truth": "1", "info": info} for i, info in enumerate(infos)]
    )


def probe_item_without_options(tmp):
    LoglikScorer(tiny.build_tokenizer(), choice_rows([{"question": "2+2?", "choices": ["4"]}]), batch_size=4)


def word_tokenizer():
    """Words split on whitespace, which is dropped: an empty option adds nothing to its context."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "2+2?": 2, "4": 3}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]")


def probe_option_adding_no_token(tmp):
    rows = choice_rows([{"question": "2+2?", "options": ["4", ""]}])  # " " + "": nothing left once split
    LoglikScorer(word_tokenizer(), rows, batch_size=4)


def letters_the_tokenizer_cannot_tell_apart(tmp):
    """MMLU's probe reads the probabilities of " A" … " D": a tokenizer that maps them all to
    its unknown token cannot tell the answers apart."""
    rows = make_frame([{"id": "0", "prompt": "2+2?\nAnswer:", "ground_truth": "1", "info": {}}])
    LetterScorer(word_tokenizer(), rows, batch_size=4)


def verl_split_missing(tmp):
    build_splits({"kind": "verl_parquet", "path": str(tmp / "nowhere")}, {}, seed=0)


def jsonl_split_missing(tmp):
    splits = dict.fromkeys(("train", "validation", "test"), "all.jsonl")
    build_splits({"kind": "local_jsonl", "loader": "gsm8k", "path": str(tmp), "splits": splits}, {}, seed=0)


def no_checkpoints(tmp):
    (tmp / "checkpoints").mkdir()
    list_checkpoints(tmp / "checkpoints")


def checkpoint_without_config(tmp):
    (tmp / "checkpoints" / "step000010").mkdir(parents=True)  # renamed into place whole: damaged since
    list_checkpoints(tmp / "checkpoints")


def unknown_scorer(tmp):
    reward_function("bleu")


CASES = [
    (truncated_safetensors, ValueError, r"tuned/model\.safetensors: not a complete safetensors file"),
    (truncated_while_streaming, ValueError, r"model\.safetensors: w is truncated"),
    (mismatched_shapes, ValueError, r"w: shape \(3,\) in .*tuned vs \(2,\) in base"),
    (no_safetensors, FileNotFoundError, r"no \.safetensors files in .*empty"),
    (corrupt_json, ValueError, r"corrupt JSON in .*run_config\.json"),
    (missing_json, FileNotFoundError, r"missing input file: .*state\.json"),
    (corrupt_parquet, ValueError, r"cannot read parquet file .*train\.parquet"),
    (
        verl_split_missing_columns,
        ValueError,
        r"train\.parquet: not in VeRL layout, missing columns \['extra_info', 'reward_model'\]",
    ),
    (jsonl_line_not_json, ValueError, r"dev\.jsonl, line 2: not JSON"),
    (
        generator_cannot_fill_the_splits,
        ValueError,
        r"countdown_generator: only \d+ distinct items found but the splits ask for 60; "
        "widen the generator's ranges or shrink the splits",
    ),
    (
        arith_generator_cannot_fill_the_splits,
        ValueError,
        r"arith_choice_generator: only \d+ distinct items found but the splits ask for 500",
    ),
    (mmlu_shots_beyond_the_dev_split, ValueError, r"mmlu: only 1 'train' items for subject 'elementary_mathematics'"),
    (members_beyond_memory, ValueError, r"members_per_forward=1000000000: .* GiB, .* GiB are free on cpu; lower it"),
    (mmlu_subject_missing_from_the_dev_split, ValueError, r"mmlu: only 0 'train' items for subject 'virology'"),
    (probe_item_without_options, ValueError, re.escape("item info ['choices', 'question'] lacks 'question'/'options'")),
    (probe_option_adding_no_token, ValueError, "^log-likelihood probe: an option adds no token to its context$"),
    (
        letters_the_tokenizer_cannot_tell_apart,
        ValueError,
        re.escape("letter probe: the tokenizer maps ' A' … ' D' to [0, 0, 0, 0], not four tokens"),
    ),
    (verl_split_missing, FileNotFoundError, r"missing task file: .*nowhere/train\.parquet"),
    (jsonl_split_missing, FileNotFoundError, r"missing task file: .*all\.jsonl"),
    (no_checkpoints, FileNotFoundError, r"no checkpoints \(step\?\?\?\?\?\?/config\.json\) in .*checkpoints"),
    (checkpoint_without_config, FileNotFoundError, r"step000010: a checkpoint folder without config\.json"),
    (unknown_scorer, ValueError, r"unknown scorer 'bleu'"),
]


@pytest.mark.parametrize("make, error, message", CASES, ids=[case[0].__name__ for case in CASES])
def test_bad_input_is_refused_naming_what_is_wrong(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        make(tmp_path)


def test_every_case_checks_a_distinct_failure():
    assert len({json.dumps(case[2]) for case in CASES}) == len(CASES)


def test_an_option_of_exactly_one_token_is_scored():
    """The boundary of the check above: one continuation token is enough."""
    scorer = LoglikScorer(word_tokenizer(), choice_rows([{"question": "2+2?", "options": ["4", "2+2?"]}]), 4)
    assert scorer.continuation_lengths == [1, 1]
