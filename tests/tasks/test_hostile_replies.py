"""Untrusted replies cost a bounded time and memory: the Countdown tags are found with
`str.find` in one pass, giving exactly what the authors' regular expressions give, and every
grader answers a 1 MB hostile reply within a bound per call."""

import re
import time
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esforget.tasks import countdown, direct_answer, math_answer, reward_function
from esforget.tasks.safe_arith import safe_eval
from esforget.tasks.verify_worker import Verifier

# the authors' patterns (their countdown reward), which `countdown` must agree with
AUTHORS_FULL = re.compile(r"^<think>.*?</think>\n<answer>.*?</answer>$", re.DOTALL)
AUTHORS_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
AUTHORS_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)

# replies made of the pieces the patterns care about, so that Hypothesis finds the edge cases
PIECES = ["<think>", "</think>", "<answer>", "</answer>", "\n", "1+2", "<", ">", "/", "answer", " ", "x"]
replies = st.lists(st.sampled_from(PIECES), max_size=14).map("".join) | st.text(max_size=60)


@given(replies)
def test_the_format_score_is_the_authors_regular_expressions(reply):
    text = "<think>" + reply
    expected = (
        1.0
        if AUTHORS_FULL.match(text)
        else 0.1 * bool(AUTHORS_THINK.search(text)) + 0.5 * bool(AUTHORS_ANSWER.search(text))
    )
    assert countdown.format_score(reply) == expected


@given(replies)
def test_the_answer_block_is_the_last_the_authors_pattern_finds(reply):
    blocks = AUTHORS_ANSWER.findall(reply)
    assert countdown._last_block(reply) == (blocks[-1] if blocks else None)


MB = 1 << 20
HOSTILE = {
    "repeated <answer>": "<answer>" * (MB // 8),
    "repeated <think>": "<think>" * (MB // 7),
    "repeated layout openers": "</think>\n<answer>" * (MB // 17),
    "unclosed answer of digits": "</think>\n<answer>" + "9" * MB,
    "closed answer of digits": "</think>\n<answer>" + "9" * MB + "</answer>",
    "answer of brackets": "<answer>" + "(" * (MB // 2) + "1" + ")" * (MB // 2) + "</answer>",
    "nested fraction powers": "<answer>(((1/99)**64)**64)**64</answer>",
    "a number of 5,000 digits last": "7 * 8 = " + "5" * 5000,
    "many numbers": "1 " * (MB // 2),
    "boxed power": "\\boxed{(x+1)^{100000}}" * 1000,
    "hashes and digits": "#### " + "1," * (MB // 2),
    "boxed unclosed": "oxed{" + " " * MB,
}
SCORERS = {
    "countdown": ("13", '{"numbers": [3, 11, 1]}'),
    "number": ("56", "{}"),
    "math_authors": ("18", "{}"),
    "math": ("18", "{}"),
}
BOUND_SECONDS, BOUND_BYTES = 2.0, 64 * MB


@pytest.mark.parametrize("scorer", sorted(SCORERS))
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_reply_of_up_to_1_mb_is_graded_within_bounds(name, scorer):
    truth, info = SCORERS[scorer]
    grade = reward_function(scorer)
    tracemalloc.start()
    started = time.perf_counter()
    reward = grade(HOSTILE[name], truth, __import__("json").loads(info))
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reward < 1.0  # none answers its question (Countdown's format bonus may be earned)
    # a bound generous enough for a slow machine and far below what the unbounded graders took
    # (quadratic tag matching: minutes for 1 MB; nested powers: 233 s and 100 MB)
    assert seconds < BOUND_SECONDS and peak < BOUND_BYTES, (seconds, peak)


def test_a_last_number_longer_than_any_answer_grades_as_none_instead_of_raising():
    assert direct_answer.last_integer("7 * 8 = " + "5" * 5000) is None
    assert direct_answer.last_integer("7 * 8 = 56") == 56


@pytest.mark.parametrize(
    "expression",
    ["((1/99)**64)**64", "(1/99)**64", "(((1/2)**64)**64)**64", "(2**64)**4", "(1/3)**200"],
)
def test_powers_whose_result_needs_more_than_256_bits_are_refused_before_they_are_computed(expression):
    tracemalloc.start()
    assert safe_eval(expression) is None
    assert tracemalloc.get_traced_memory()[1] < MB
    tracemalloc.stop()


def test_math_graders_read_only_the_replys_last_300_characters():
    assert math_answer.reward("x" * MB + "#### 18", "18") == 1.0


def test_math_verify_grades_a_hostile_answer_in_its_worker_within_its_time():
    grade = reward_function("math_verify")
    assert grade("\\boxed{\\frac{2}{4}}", "0.5", {}) == 1.0  # the worker started (sympy imported)
    started = time.perf_counter()
    tracemalloc.start()
    reward = grade("\\boxed{(x+1)^{100000}}", "18", {})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # 590 MB and 5 s in the grading process before: now the worker's, bounded by its limits
    assert reward == 0.0 and peak < 8 * MB
    assert time.perf_counter() - started < math_answer.VERIFY_SECONDS + 1


def test_a_comparison_out_of_time_is_no_equivalence_and_the_next_gets_a_fresh_worker():
    verifier = Verifier(seconds=0.5, memory_bytes=2 << 30)
    try:
        assert verifier("$2$", "$2$") is True  # started: what is timed below is the comparison alone
        started = time.perf_counter()
        assert verifier("$18$", "$(x+1)^{100000}$") is False
        assert time.perf_counter() - started < 0.5 + 1.0
        assert verifier("$0.5$", "$\\frac{1}{2}$") is True
    finally:
        verifier.close()


def test_a_worker_that_cannot_start_within_its_memory_is_an_error_not_a_silent_zero():
    with pytest.raises(RuntimeError, match="math-verify worker did not start within 100 MiB"):
        Verifier(seconds=10, memory_bytes=100 << 20)("$1$", "$1$")
