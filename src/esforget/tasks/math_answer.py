"""GSM8K / MATH / OlympiadBench answers: the authors' extraction and exact match.

In the last 300 characters of the reply take the last `#### <number>`, or else the last
`\\boxed{…}`; strip commas, `$` and spaces; the reward is 1 if the result equals the ground
truth exactly. The ground truth gets the same normalisation: several MATH/OlympiadBench
ground truths are written `$…$`, which would otherwise never match anything.

`reward_equivalent` is the known improvement kept beside the faithful grader: mathematical
equivalence with math-verify (e.g. `0.5` = `\\frac{1}{2}`).
"""

from __future__ import annotations

import re

CLIP_CHARS = 300
_HASHES = re.compile(r"####\s*\$?\s*(-?[0-9.,]+)")
_BOXED = "\\boxed"


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}`, braces matched, or None."""
    start = text.rfind(_BOXED + "{")
    if start < 0:
        return None
    depth, begin = 0, start + len(_BOXED)
    for pos in range(begin, len(text)):
        if text[pos] == "{":
            depth += 1
        elif text[pos] == "}":
            depth -= 1
            if depth == 0:
                return text[begin + 1 : pos]
    return None


def extract(reply: str) -> str | None:
    tail = reply[-CLIP_CHARS:]
    hashes = _HASHES.findall(tail)
    if hashes:
        return hashes[-1]
    return last_boxed(tail)


def normalise(answer: str) -> str:
    return answer.replace(",", "").replace("$", "").replace(" ", "")


def reward(reply: str, ground_truth: str) -> float:
    answer = extract(reply)
    return float(answer is not None and normalise(answer) == normalise(ground_truth))


def reward_equivalent(reply: str, ground_truth: str) -> float:
    """1 if the extracted answer is mathematically equivalent to the ground truth."""
    from math_verify import parse, verify  # heavy import (sympy); only for this grader

    answer = extract(reply)
    if answer is None:
        return 0.0
    if normalise(answer) == normalise(ground_truth):
        return 1.0
    gold = parse(f"${normalise(ground_truth)}$")
    guess = parse(f"${normalise(answer)}$")
    return float(bool(gold) and bool(guess) and verify(gold, guess))
