"""GSM8K / MATH / OlympiadBench answers: three graders of one reply.

`reward_authors` (scorer `math_authors`) is the authors' reward, regex for regex
(`gsm8k_reward.py`, `math_reward.py`, `olympiadbench_reward.py`): in the last 300 characters
take the last `#### <digits, -, ., ,>` or else the last `oxed{…}`, which stops at the first
`}`; strip whitespace, commas and `$`; compare with the ground truth as written. So
`\\boxed{\\frac{1}{2}}` extracts `\\frac{1`, `#### $18` extracts nothing, and a ground
truth written `$4 \\sqrt{5}$` (about a third of OlympiadBench) can never score.

`reward` (scorer `math`) is our fairer exact match: braces matched, `$` allowed after `####`,
commas, `$` and spaces stripped from both the answer and the ground truth.

`reward_equivalent` (scorer `math_verify`) adds mathematical equivalence with math-verify
(e.g. `0.5` = `\\frac{1}{2}`).
"""

from __future__ import annotations

import re

from esforget.tasks.verify_worker import Verifier

CLIP_CHARS = 300
_HASHES = re.compile(r"####\s*\$?\s*(-?[0-9.,]+)")
_BOXED = "\\boxed"

_AUTHORS_HASHES = re.compile(r"####\s*([\-0-9\.,]+)")
_AUTHORS_BOXED = re.compile(r"(?:\${1,2}\s*)?oxed\s*\{\s*([^}]*)\s*\}(?:\s*\${1,2})?", flags=re.IGNORECASE)


def extract_authors(reply: str) -> str | None:
    """The authors' `extract_after_think_hash_then_boxed`, normalised as theirs."""
    tail = reply[-CLIP_CHARS:]
    hits = _AUTHORS_HASHES.findall(tail) or _AUTHORS_BOXED.findall(tail)
    return hits[-1].strip().replace(",", "").replace("$", "") if hits else None


def reward_authors(reply: str, ground_truth: str) -> float:
    """The authors' `my_reward_fn`: the extracted answer equals the raw ground truth."""
    answer = extract_authors(reply)
    return float(answer is not None and answer == str(ground_truth))


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


VERIFY_SECONDS = 10.0
"""Longest a math-verify comparison may take before the answer counts as not equivalent."""
VERIFY_MEMORY = 2 << 30
"""Address space (bytes) of the worker math-verify runs in (`esforget.tasks.verify_worker`)."""

_verifier = Verifier(VERIFY_SECONDS, VERIFY_MEMORY)  # its worker starts on first use


def reward_equivalent(reply: str, ground_truth: str) -> float:
    """1 if the extracted answer is mathematically equivalent to the ground truth: math-verify,
    in a worker of bounded memory given at most `VERIFY_SECONDS`; an answer it cannot decide
    within them is not equivalent."""
    answer = extract(reply)
    if answer is None:
        return 0.0
    if normalise(answer) == normalise(ground_truth):
        return 1.0
    return float(_verifier(f"${normalise(ground_truth)}$", f"${normalise(answer)}$"))
