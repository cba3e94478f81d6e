"""Direct-answer arithmetic: "What is 7 * 8?", graded by the last integer of the reply.

A task for small chat models, which answer a direct question ("7 * 8 = 56") far more reliably
than they follow the authors' formats: measured on SmolLM2-135M-Instruct (docs/results/
smollm2.md), the authors' Countdown prompt and GSM8K "####" instruction both score 0 %, the
direct question does not. The grader takes the *last* integer so that a reply that restates
the question before answering ("7 * 8 = 56") counts, while one that stops before its answer,
or whose last number is wrong, does not. Exact match, no partial credit: the reward is 0 or 1.
"""

from __future__ import annotations

import random
import re

from esforget.tasks.choice import ARITH_OPS

_INTEGER = re.compile(r"-?\d+")


def question(a: int, op: str, b: int, instruction: str) -> str:
    text = f"What is {a} {op} {b}?"
    return f"{text} {instruction}" if instruction else text


def random_item(rng: random.Random, low: int, high: int, ops: list[str]) -> tuple[int, str, int, int]:
    """(a, op, b, value); a subtraction is ordered so that its value is never negative."""
    a, b, op = rng.randint(low, high), rng.randint(low, high), rng.choice(ops)
    if op == "-" and b > a:
        a, b = b, a
    return a, op, b, ARITH_OPS[op](a, b)


MAX_DIGITS = 100
"""A last number longer than this is no answer to any question asked here (and `int()` refuses
numbers of more than 4,300 digits): it grades as no number."""


def last_integer(reply: str) -> int | None:
    found = _INTEGER.findall(reply)
    if not found or len(found[-1].lstrip("-")) > MAX_DIGITS:
        return None
    return int(found[-1])


def reward(reply: str, ground_truth: str) -> float:
    return float(last_integer(reply) == int(ground_truth))
