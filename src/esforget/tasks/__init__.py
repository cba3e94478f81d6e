"""Tasks: how each is built, prompted and scored.

Every task, whatever its source, is stored in one row schema (`ROW_SCHEMA`):

| column        | meaning                                                          |
|---------------|------------------------------------------------------------------|
| `id`          | stable identifier of the item within its task                    |
| `prompt`      | the user message; the model's chat template is applied later     |
| `ground_truth`| what the scorer compares against (target, option digit, answer)  |
| `info`        | JSON object with scorer inputs (`numbers`) and provenance         |

A task's *scorer* (`countdown`, `choice`, `number`, `math_authors`, `math` or `math_verify`) maps a
model reply to a reward (see `esforget.tasks.math_answer` for the three math graders and
`esforget.tasks.direct_answer` for `number`); a reply is *correct* when its reward reaches the
scorer's threshold (Countdown: reward ≥ 1, as the authors count accuracy).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl

from esforget.core.files import read_parquet
from esforget.tasks import choice, countdown, direct_answer, math_answer

ROW_SCHEMA = {"id": pl.String, "prompt": pl.String, "ground_truth": pl.String, "info": pl.String}


def read_split(path) -> pl.DataFrame:
    """A prepared split, refused on open (naming the file) unless it holds every column of
    `ROW_SCHEMA` and at least one row: a stage must not score a whole split to find out."""
    return read_parquet(path, columns=tuple(ROW_SCHEMA), nonempty=True)


SCORERS = ("countdown", "choice", "number", "math_authors", "math", "math_verify")

Reward = Callable[[str, str, dict], float]


def reward_function(scorer: str) -> Reward:
    """`reward(reply, ground_truth, info) -> float` for the named scorer."""
    if scorer == "countdown":
        return lambda reply, truth, info: countdown.reward(reply, info["numbers"], truth)
    if scorer == "choice":
        return lambda reply, truth, info: choice.reward(reply, truth)
    if scorer == "number":
        return lambda reply, truth, info: direct_answer.reward(reply, truth)
    if scorer == "math_authors":
        return lambda reply, truth, info: math_answer.reward_authors(reply, truth)
    if scorer == "math":
        return lambda reply, truth, info: math_answer.reward(reply, truth)
    if scorer == "math_verify":
        return lambda reply, truth, info: math_answer.reward_equivalent(reply, truth)
    raise ValueError(f"unknown scorer {scorer!r}; expected one of {SCORERS}")


def correct_threshold(scorer: str) -> float:
    """Reward at or above which a reply counts as correct."""
    return countdown.CORRECT_THRESHOLD if scorer == "countdown" else 1.0


def score_replies(scorer: str, replies: list[str], rows: pl.DataFrame) -> list[float]:
    """Rewards of `replies`, aligned with `rows` (a frame in `ROW_SCHEMA`)."""
    reward = reward_function(scorer)
    return [
        reward(reply, truth, json.loads(info))
        for reply, truth, info in zip(replies, rows["ground_truth"], rows["info"], strict=True)
    ]


def make_frame(rows: list[dict]) -> pl.DataFrame:
    """A frame in `ROW_SCHEMA` from dicts whose `info` is a dict (serialised here)."""
    return pl.DataFrame(
        [{**row, "info": json.dumps(row["info"], sort_keys=True)} for row in rows],
        schema=ROW_SCHEMA,
    )
