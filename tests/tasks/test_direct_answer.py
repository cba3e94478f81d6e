"""Direct-answer arithmetic: the question asked, the last integer of the reply graded."""

import random

import pytest

from esforget.data.sources import build_splits
from esforget.tasks import direct_answer, score_replies


@pytest.mark.parametrize(
    "reply, correct",
    [
        ("56", True),
        ("7 * 8 = 56", True),  # restates the question, then answers
        ("7 * 8 = 56.\n\nThis is a classic", True),  # rambles on without another number
        ("The answer is -3.", False),  # wrong sign: the ground truth is 3
        ("7 * 8 = 54", False),
        ("To calculate 7 * 8, you simply multiply 7 by 8.", False),  # stops before its answer
        ("56, or in words fifty-six; step 2", False),  # the last integer is what counts
        ("", False),
    ],
)
def test_a_reply_is_right_when_its_last_integer_is_the_answer(reply, correct):
    truth = "3" if "-3" in reply else "56"
    assert direct_answer.reward(reply, truth) == float(correct)


def test_a_negative_answer_is_read_with_its_sign():
    assert direct_answer.reward("2 - 5 = -3", "-3") == 1.0


def test_the_question_is_asked_with_its_instruction_or_alone():
    assert direct_answer.question(7, "*", 8, "Answer with the number only.") == (
        "What is 7 * 8? Answer with the number only."
    )
    assert direct_answer.question(7, "*", 8, "") == "What is 7 * 8?"


def test_a_subtraction_puts_the_larger_operand_first():
    rng = random.Random(0)
    items = [direct_answer.random_item(rng, 1, 9, ["-"]) for _ in range(200)]
    assert all(a >= b and value == a - b for a, _, b, value in items)
    assert {(a, b) for a, _, b, _ in items} != {(b, a) for a, _, b, _ in items}  # not symmetric


def test_the_generator_writes_distinct_questions_with_their_products_as_ground_truth():
    source = {"kind": "arith_direct_generator", "operand_range": [2, 5], "ops": ["*"], "instruction": ""}
    frames = build_splits(source, {"train": 8, "validation": 4, "test": 4}, seed=3)
    prompts = [p for frame in frames.values() for p in frame["prompt"]]
    assert len(set(prompts)) == 16 == 4 * 4  # every product of 2–5 once
    for frame in frames.values():
        for prompt, truth in zip(frame["prompt"], frame["ground_truth"], strict=True):
            a, b = (int(x) for x in prompt.removeprefix("What is ").removesuffix("?").split(" * "))
            assert int(truth) == a * b
        assert score_replies("number", [f"= {t}" for t in frame["ground_truth"]], frame) == [1.0] * frame.height
