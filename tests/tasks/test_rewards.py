"""Rewards, as the authors define them (docs/study.md), on hand-made replies and on every row of the paper's splits."""

import json
import re

import pytest

from esforget.data.sources import build_splits
from esforget.tasks import choice, countdown, make_frame, math_answer, score_replies

# --- Countdown ---------------------------------------------------------------------------------


def test_countdown_correct_reply_scores_answer_plus_format_bonus():
    assert countdown.reward("</think>\n<answer>3*5+7</answer>", [3, 5, 7], "22") == pytest.approx(1.1)


def test_countdown_uses_the_last_answer_block():
    reply = "</think>\n<answer>3+5+7</answer> no wait <answer>3*5+7</answer>"
    assert countdown.answer_score(reply, [3, 5, 7], 22) == 1.0


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("</think>\n<answer>3+5+7</answer>", 0.1),  # well formatted, wrong value
        ("</think>\n<answer>3*5</answer>", 0.1),  # misses a number
        ("</think>\n<answer>3*5+7+7</answer>", 0.1),  # uses a number twice
        ("</think>\n<answer>3*5+x</answer>", 0.1),  # disallowed character
        ("<answer>3*5+7</answer>", 0.1 * 0.5 + 1.0),  # right, but no closing think tag
        ("3*5+7", 0.0),  # no tags at all
        ("</think>\n<answer>9**9**9**9**3**5*7</answer>", 0.1),  # hostile: scored, never evaluated
    ],
)
def test_countdown_wrong_or_malformed(reply, expected):
    assert countdown.reward(reply, [3, 5, 7], "22") == pytest.approx(expected)


@pytest.mark.parametrize("style", sorted(countdown.PROMPT_TEMPLATES))
def test_every_prompt_style_states_the_puzzle_and_ends_inside_a_think_block(style):
    """The format reward prepends `<think>` to the reply: every prompt must leave one open."""
    prompt = countdown.prompt([3, 11, 5], 13, style)
    assert "3 11 5" in prompt and "13" in prompt
    assert prompt.endswith("\n<think>")


def test_the_minimal_prompt_is_the_puzzle_alone():
    assert countdown.prompt([3, 11, 5], 13, "minimal") == "[3 11 5] -> 13\n<think>"


def test_canonical_solution_keeps_the_given_order_when_it_can():
    assert countdown.solve([3, 5, 7], 22) == "3*5+7"
    assert countdown.solve([7, 5, 3], 22) == "7+5*3"
    for numbers, target in ([2, 9, 4], 1), ([8, 8, 1], 63), ([6, 2, 9], 27):
        solution = countdown.solve(numbers, target)
        assert countdown.answer_score(countdown.completion(solution), numbers, target) == 1.0


def test_paper_countdown_reference_solutions_score_correct(paper_data):
    for split in ("train", "test"):
        frames = build_splits({"kind": "verl_parquet", "path": str(paper_data / "countdown")}, {}, seed=0)
        rows = frames[split]
        right = [countdown.completion(json.loads(info)["reference"]) for info in rows["info"]]
        assert min(score_replies("countdown", right, rows)) >= countdown.CORRECT_THRESHOLD
        wrong = [c.replace("<answer>", "<answer>1+") for c in right]  # an extra number
        assert max(score_replies("countdown", wrong, rows)) < countdown.CORRECT_THRESHOLD
        malformed = [c.replace("<answer>", "<answ>") for c in right]
        assert max(score_replies("countdown", malformed, rows)) == pytest.approx(0.01)  # think block only


# --- GSM8K / MATH / OlympiadBench --------------------------------------------------------------


def test_math_answer_extraction():
    assert math_answer.reward("so 2+2 is\n#### 4", "4") == 1.0
    assert math_answer.reward("#### 1,000", "1000") == 1.0
    assert math_answer.reward("the answer is $\\boxed{\\frac{1}{2}}$", "$\\frac{1}{2}$") == 1.0
    assert math_answer.reward("\\boxed{x^{2}}", "x^{2}") == 1.0
    assert math_answer.reward("#### 5", "4") == 0.0
    assert math_answer.reward("the answer is 4", "4") == 0.0  # no marker
    assert math_answer.reward("#### 4" + " " * 400, "4") == 0.0  # outside the last 300 chars


@pytest.mark.parametrize(
    "reply, truth, authors, ours",
    [
        ("so 2+2 is\n#### 4", "4", 1.0, 1.0),
        ("#### 1,000", "1000", 1.0, 1.0),
        # their `[^}]*` stops at the first brace: nested braces never match ...
        ("the answer is $\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}", 0.0, 1.0),
        # ... and their ground truth is compared as written, `$` and spaces included
        ("\\boxed{4 \\sqrt{5}}", "$4 \\sqrt{5}$", 0.0, 1.0),
        ("\\boxed{\\frac{800}{3}}", "$\\frac{800}{3}$", 0.0, 1.0),
        ("\\boxed{2500,7500}", "2500,7500", 0.0, 1.0),  # their commas are stripped from the answer only
        ("#### $18", "18", 0.0, 1.0),  # `$` is not in their `[\-0-9\.,]+`
        ("\\boxed{ 72 }", "72", 1.0, 1.0),
        ("\\boxed{$72$}", "72", 1.0, 1.0),  # `$` inside the box: stripped from the answer
        ("\\Boxed{72}", "72", 1.0, 0.0),  # their pattern ignores case (and matches "oxed")
        ("#### 5", "4", 0.0, 0.0),
        ("#### 4" + " " * 400, "4", 0.0, 0.0),  # outside the last 300 characters
    ],
)
def test_the_authors_grader_against_our_fairer_one(reply, truth, authors, ours):
    assert math_answer.reward_authors(reply, truth) == authors
    assert math_answer.reward(reply, truth) == ours


@pytest.mark.parametrize("scorer", ["math_authors", "math", "math_verify"])
def test_each_math_scorer_grades_against_the_rows_ground_truth(scorer):
    rows = make_frame([{"id": str(i), "prompt": "?", "ground_truth": t, "info": {}} for i, t in enumerate("12")])
    assert score_replies(scorer, ["#### 1", "#### 1"], rows) == [1.0, 0.0]


def test_math_verify_grader_accepts_equivalent_forms():
    assert math_answer.reward_equivalent("\\boxed{0.5}", "\\frac{1}{2}") == 1.0
    assert math_answer.reward_equivalent("\\boxed{3}", "\\frac{1}{2}") == 0.0


@pytest.mark.parametrize("task", ["gsm8k", "math", "olympiadbench"])
def test_every_paper_row_scores_right_answers_1_and_wrong_ones_0(paper_data, task):
    frames = build_splits({"kind": "verl_parquet", "path": str(paper_data / task)}, {}, seed=0)
    for split in ("train", "test"):
        rows = frames[split]
        truths = rows["ground_truth"].to_list()
        if task == "gsm8k":
            right = [f"Step by step...\n#### {t}" for t in truths]
        else:
            right = [f"Step by step... so the answer is \\boxed{{{t.strip('$')}}}." for t in truths]
        assert score_replies("math", right, rows) == [1.0] * rows.height
        wrong = [r.replace(f"{t.strip('$')}", f"{t.strip('$')}7", 1) for r, t in zip(right, truths, strict=True)]
        assert score_replies("math", wrong, rows) == [0.0] * rows.height
        malformed = [f"The answer is {t}" for t in truths]
        assert score_replies("math", malformed, rows) == [0.0] * rows.height


@pytest.mark.parametrize("task", ["gsm8k", "math", "olympiadbench"])
def test_the_authors_grader_scores_a_paper_row_only_if_its_raw_truth_can_be_extracted(paper_data, task):
    """Their grader: `#### <truth>` scores wherever the truth is a plain number, a boxed truth
    wherever it has no `}`, `$`, comma or surrounding space; no other truth can ever score 1."""
    frames = build_splits({"kind": "verl_parquet", "path": str(paper_data / task)}, {}, seed=0)
    rows = frames["test"]
    truths = rows["ground_truth"].to_list()
    hashes = score_replies("math_authors", [f"...\n#### {t}" for t in truths], rows)
    boxed = score_replies("math_authors", [f"... \\boxed{{{t}}}." for t in truths], rows)
    for truth, by_hashes, by_box in zip(truths, hashes, boxed, strict=True):
        assert by_hashes == float(re.fullmatch(r"[-0-9.]+", truth) is not None), truth
        assert by_box == float(not re.search(r"[}$,]", truth) and truth == truth.strip()), truth
    never = [bool(not re.fullmatch(r"[-0-9.]+", t) and re.search(r"[}$,]", t)) for t in truths]
    if task == "olympiadbench":  # a third of its test truths can never score under their grader
        assert 0.3 < sum(never) / len(never) < 0.5
    else:
        assert not any(never)


# --- multiple choice ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply, chosen", [("2", 2), ("The answer is 3.", 3), ("0 then 4", 4), ("none", None), ("5", None)]
)
def test_choice_takes_the_first_digit_1_to_4(reply, chosen):
    assert choice.chosen_option(reply) == chosen


def test_arithmetic_item_has_one_right_option():
    import random

    rng = random.Random(0)
    for _ in range(200):
        question, options, answer = choice.arithmetic_item(rng, 1, 9, ["+", "-", "*"])
        a, op, b = question[len("Which is ") : -1]
        right = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert len(set(options)) == 4 and options[answer - 1] == str(right)


def test_a_reference_solution_brackets_a_lower_precedence_left_operand():
    """The canonical solution is written to evaluate to its target: (1+2)*3, not 1+2*3."""
    solution = countdown.solve([1, 2, 3], 9)
    assert solution == "(1+2)*3"
    assert countdown.reward(countdown.completion(solution), [1, 2, 3], "9") == pytest.approx(1.1)


def test_the_lazy_answer_adds_the_numbers_in_the_order_given():
    assert countdown.lazy_answer([7, 3, 11]) == "7+3+11"


def test_a_reply_without_an_answer_is_not_equivalent_to_any_truth():
    assert math_answer.reward_equivalent("I do not know.", "5") == 0.0
    assert math_answer.reward_equivalent("So #### 5", "5") == 1.0
