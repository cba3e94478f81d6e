"""Multiple-choice tasks asked generatively, as the authors probe HellaSwag.

The options are listed `1) … 4)`, the model is told to answer with the number, and the first
digit 1–4 in its reply is its choice (docs/study.md). The procedural prior task of the default
profile (`arith_choice`: "Which is 7+8?") uses the same format and scorer.
"""

from __future__ import annotations

import random
import re

N_OPTIONS = 4
_FIRST_CHOICE = re.compile(r"[1-4]")

ARITH_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def format_prompt(question: str, options: list[str], instruction: str) -> str:
    lines = [question, *(f"{i}) {option}" for i, option in enumerate(options, start=1))]
    if instruction:
        lines.append(instruction)
    return "\n".join(lines)


def chosen_option(reply: str) -> int | None:
    """The first digit 1–4 in the reply, or None."""
    match = _FIRST_CHOICE.search(reply)
    return int(match.group()) if match else None


def reward(reply: str, ground_truth: str) -> float:
    return float(chosen_option(reply) == int(ground_truth))


def arithmetic_item(rng: random.Random, low: int, high: int, ops: list[str]) -> tuple[str, list[str], int]:
    """A question "Which is a+b?" with the right value and three near misses, shuffled.

    Returns (question, options, 1-based index of the right option).
    """
    a, b, op = rng.randint(low, high), rng.randint(low, high), rng.choice(ops)
    right = ARITH_OPS[op](a, b)
    near_misses = {right - 2, right - 1, right + 1, right + 2, right + 10, right - 10}
    near_misses |= {fn(a, b) for fn in ARITH_OPS.values()}
    near_misses.discard(right)
    options = rng.sample(sorted(near_misses), N_OPTIONS - 1) + [right]
    rng.shuffle(options)
    return f"Which is {a}{op}{b}?", [str(o) for o in options], options.index(right) + 1
