"""Countdown: combine the given numbers with + - * / to reach a target.

Reward exactly as the authors define it (docs/study.md): `0.1 × format + answer`, with `format`
checked on the reply with `<think>` prepended (the prompt ends inside a think block) and
`answer` checked on the last `<answer>…</answer>` block. Only the authors' `eval` is
replaced, by `esforget.tasks.safe_arith.safe_eval`.
"""

from __future__ import annotations

import itertools
import random
import re
from fractions import Fraction

from esforget.tasks.safe_arith import MAX_EXPRESSION_CHARS, safe_eval

CORRECT_THRESHOLD = 1.0
"""A reply is correct when its reward is at least this (format bonus alone is 0.1)."""
TARGET_TOLERANCE = 1e-5
FORMAT_WEIGHT = 0.1

_ALLOWED = re.compile(r"^[0-9+\-*/() ]+$")

AUTHORS_TEMPLATE = (
    "You are a helpful assistant. You first think about the reasoning process in your mind "
    "and then provide the user with the answer.Using the numbers [{numbers}], create an "
    "equation that equals {target}. You can use basic arithmetic operations (+, -, *, /) and "
    "each number can only be used once. Show your work in <think> </think> tags. And return "
    "the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
    "Let me solve this step by step.\n<think>"
)
COMPACT_TEMPLATE = "Using the numbers [{numbers}], create an equation that equals {target}.\n<think>"
MINIMAL_TEMPLATE = "[{numbers}] -> {target}\n<think>"
"""The puzzle alone, for a model pretrained here from scratch: the instruction carries nothing a
character-level model can read, and ES pays for every prompt token once per member (its prefill
is most of an ES iteration's arithmetic), so the tiny default's prompts are a quarter as long."""
PROMPT_TEMPLATES = {"authors": AUTHORS_TEMPLATE, "compact": COMPACT_TEMPLATE, "minimal": MINIMAL_TEMPLATE}


# The authors match the layout with regular expressions (`^<think>.*?</think>\n<answer>.*?</answer>$`,
# `<think>.*?</think>`, `<answer>(.*?)</answer>`, DOTALL); on a reply of many unclosed tags those
# take time quadratic in its length (64 k characters of "<answer>": 10 s). The functions below
# compute the same answers with `str.find`, in one pass; tests check them against the regexes.


def _has_block(text: str, opening: str, closing: str) -> bool:
    """Whether `opening` occurs with `closing` somewhere after it: `re.search(opening.*?closing)`."""
    start = text.find(opening)
    return start >= 0 and text.find(closing, start + len(opening)) >= 0


def _last_block(text: str, opening: str = "<answer>", closing: str = "</answer>") -> str | None:
    """The content of the last of the non-overlapping blocks `re.findall(opening(.*?)closing)`
    finds, scanning left to right, or None."""
    last, position = None, 0
    while (start := text.find(opening, position)) >= 0:
        end = text.find(closing, start + len(opening))
        if end < 0:
            break
        last, position = text[start + len(opening) : end], end + len(closing)
    return last


def _full_layout(text: str) -> bool:
    """`re.match(r"^<think>.*?</think>\n<answer>.*?</answer>$", text, re.DOTALL)`: `$` also
    matches before a final newline."""
    body = text[:-1] if text.endswith("\n") else text
    if not (text.startswith("<think>") and body.endswith("</answer>")):
        return False
    middle = text.find("</think>\n<answer>", len("<think>"))
    return middle >= 0 and middle + len("</think>\n<answer>") <= len(body) - len("</answer>")


def format_score(reply: str) -> float:
    """1 for the full think/answer layout, else 0.1 per think block + 0.5 per answer block."""
    text = "<think>" + reply
    if _full_layout(text):
        return 1.0
    return 0.1 * _has_block(text, "<think>", "</think>") + 0.5 * _has_block(text, "<answer>", "</answer>")


def answer_score(reply: str, numbers: list[int], target: str | int) -> float:
    """1 if the last answer block uses each given number once and reaches the target."""
    expression = _last_block(reply)
    # longer than any expression `safe_eval` reads (and `int()` refuses numbers of 4,300 digits)
    if expression is None or len(expression) > MAX_EXPRESSION_CHARS or not _ALLOWED.match(expression):
        return 0.0
    used = sorted(int(token) for token in re.findall(r"\d+", expression))
    if used != sorted(int(n) for n in numbers):
        return 0.0
    value = safe_eval(expression)
    try:
        goal = float(target)
    except ValueError:
        return 0.0
    return float(value is not None and abs(float(value) - goal) < TARGET_TOLERANCE)


def reward(reply: str, numbers: list[int], target: str | int) -> float:
    return FORMAT_WEIGHT * format_score(reply) + answer_score(reply, numbers, target)


def completion(expression: str) -> str:
    """The reply a model should give (after the prompt's opening `<think>`)."""
    return f"</think>\n<answer>{expression}</answer>"


def prompt(numbers: list[int], target: int, style: str) -> str:
    return PROMPT_TEMPLATES[style].format(numbers=" ".join(map(str, numbers)), target=target)


# --- puzzles ---------------------------------------------------------------------------------

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_APPLY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b != 0 else None,
}
SEARCH_OPS = ("+", "-", "*", "/")


def _expressions(numbers: tuple[int, ...], ops: tuple[str, ...]):
    """Yield (value, text, precedence) for every binary tree over `numbers` in this order."""
    if len(numbers) == 1:
        yield Fraction(numbers[0]), str(numbers[0]), 3
        return
    for split in range(1, len(numbers)):
        for lv, lt, lp in _expressions(numbers[:split], ops):
            for rv, rt, rp in _expressions(numbers[split:], ops):
                for op in ops:
                    value = _APPLY[op](lv, rv)
                    if value is None:
                        continue
                    prec = _PRECEDENCE[op]
                    left = f"({lt})" if lp < prec else lt
                    # Right operands of - and / need brackets at equal precedence.
                    right_needs = rp < prec or (rp == prec and op in "-/")
                    right = f"({rt})" if right_needs else rt
                    yield value, f"{left}{op}{right}", prec


def solve(numbers: list[int], target: int) -> str | None:
    """A canonical solution: numbers in the given order where possible, simplest ops first."""
    for order in itertools.permutations(numbers):
        for value, text, _ in _expressions(tuple(order), SEARCH_OPS):
            if value == target:
                return text
    return None


def lazy_answer(numbers: list[int]) -> str:
    """The guess a model falls back on: all numbers added in the given order."""
    return "+".join(map(str, numbers))


MAX_DRAWS = 10_000
"""Draws `random_puzzle` makes before it gives up on a target range its numbers cannot reach."""


def random_puzzle(
    rng: random.Random, count: int, low: int, high: int, ops: list[str], target_range: list[int]
) -> tuple[list[int], int]:
    """Draw numbers and a reachable target by applying random ops to a random order of them.
    A ValueError after `MAX_DRAWS` draws that reached no target in `target_range`."""
    for _ in range(MAX_DRAWS):
        numbers = [rng.randint(low, high) for _ in range(count)]
        order = rng.sample(numbers, count)
        value = Fraction(order[0])
        for number in order[1:]:
            value = _APPLY[rng.choice(ops)](value, Fraction(number))
            if value is None:
                break
        if value is not None and value.denominator == 1 and target_range[0] <= value <= target_range[1]:
            return numbers, int(value)
    raise ValueError(
        f"no target in {list(target_range)} from {count} numbers in [{low}, {high}] with ops {list(ops)} "
        f"in {MAX_DRAWS:,} draws"
    )
