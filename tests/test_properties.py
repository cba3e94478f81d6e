"""Properties of the small pure functions every number passes through, over inputs Hypothesis
draws freely: Wilson intervals, exact arithmetic on model output, reward parsing."""

import math
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from esforget.evaluate import WILSON_Z, wilson_interval
from esforget.safe_arith import safe_eval
from esforget.tasks import countdown, math_answer

# --- Wilson score interval --------------------------------------------------------------------

COUNTS = st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@given(COUNTS)
def test_wilson_bounds_are_the_roots_of_the_score_equation(counts):
    """The Wilson interval is {p : (p̂ − p)² ≤ z² p(1 − p)/n}: the roots of a quadratic in p,
    solved here directly (clipped to [0, 1] only against rounding)."""
    correct, n = counts
    p, z2 = correct / n, WILSON_Z**2
    a, b, c = 1 + z2 / n, -(2 * p + z2 / n), p * p
    root = math.sqrt(max(b * b - 4 * a * c, 0.0))
    expected = (max(0.0, (-b - root) / (2 * a)), min(1.0, (-b + root) / (2 * a)))
    assert wilson_interval(correct, n) == pytest.approx(expected, abs=1e-9)


@given(COUNTS)
def test_wilson_interval_holds_the_observed_share_and_mirrors_for_the_complement(counts):
    correct, n = counts
    low, high = wilson_interval(correct, n)
    assert 0.0 <= low <= correct / n <= high <= 1.0
    assert low < high  # never a point: even 0/n and n/n keep some uncertainty
    mirror_low, mirror_high = wilson_interval(n - correct, n)
    assert (low, high) == pytest.approx((1 - mirror_high, 1 - mirror_low), abs=1e-12)


@given(st.integers(1, 100).map(lambda k: 2 * k), st.integers(2, 20))
def test_wilson_interval_narrows_with_more_items_at_the_same_share(n, factor):
    low, high = wilson_interval(n // 2, n)
    more_low, more_high = wilson_interval(n * factor // 2, n * factor)
    assert more_high - more_low < high - low


def test_wilson_interval_of_nothing_is_undefined():
    assert all(math.isnan(bound) for bound in wilson_interval(0, 0))


# --- exact arithmetic on model output ---------------------------------------------------------

OPERATORS = {"+": Fraction.__add__, "-": Fraction.__sub__, "*": Fraction.__mul__, "/": Fraction.__truediv__}


@st.composite
def expressions(draw, depth: int = 3) -> tuple[str, Fraction | None]:
    """(text, exact value or None when a division by zero occurs), fully bracketed."""
    if depth == 0 or draw(st.booleans()):
        n = draw(st.integers(0, 100))
        return str(n), Fraction(n)
    left_text, left = draw(expressions(depth - 1))
    right_text, right = draw(expressions(depth - 1))
    op = draw(st.sampled_from(sorted(OPERATORS)))
    spaces = draw(st.sampled_from(["", " "]))
    text = f"({left_text}{spaces}{op}{spaces}{right_text})"
    if left is None or right is None or (op == "/" and right == 0):
        return text, None
    return text, OPERATORS[op](left, right)


@given(expressions())
def test_safe_eval_computes_exactly_what_the_expression_means(case):
    text, value = case
    assert safe_eval(text) == value


@given(st.text(max_size=200))
def test_safe_eval_never_raises_on_any_text(text):
    result = safe_eval(text)
    assert result is None or isinstance(result, Fraction)


# --- reward parsing -------------------------------------------------------------------------

PUZZLES = st.lists(st.integers(1, 99), min_size=2, max_size=4).flatmap(
    lambda numbers: st.tuples(
        st.just(numbers),
        st.permutations(numbers),
        st.lists(st.sampled_from("+*-"), min_size=len(numbers) - 1, max_size=len(numbers) - 1),
    )
)


@given(PUZZLES)
def test_a_countdown_answer_using_every_number_once_scores_answer_and_format(puzzle):
    numbers, order, ops = puzzle
    expression = str(order[0]) + "".join(f" {op} {n}" for op, n in zip(ops, order[1:], strict=True))
    target = safe_eval(expression)
    reply = "I add them up.</think>\n" + f"<answer>{expression}</answer>"
    assert countdown.reward(reply, numbers, str(target)) == pytest.approx(1.1)
    assert countdown.reward(reply, numbers, str(target + 1)) == pytest.approx(0.1)  # format alone
    assert countdown.reward(reply, [*numbers, 1], str(target)) == pytest.approx(0.1)  # a number left unused


@given(st.text(max_size=300), st.lists(st.integers(1, 99), min_size=1, max_size=4), st.integers(-100, 1000))
def test_countdown_reward_of_any_text_is_one_of_its_defined_values(reply, numbers, target):
    formats = {0.0, 0.1, 0.5, 0.6, 1.0}
    allowed = {round(0.1 * f + a, 9) for f in formats for a in (0.0, 1.0)}
    assert round(countdown.reward(reply, numbers, str(target)), 9) in allowed


@given(st.integers(-(10**9), 10**9), st.sampled_from(["{:,}", "{}", "${}"]), st.text(max_size=50))
def test_math_answer_after_hashes_is_read_as_written_with_commas_and_dollars_ignored(value, style, noise):
    assume("####" not in noise and "boxed" not in noise)
    reply = f"{noise}\nSo the answer is\n#### {style.format(value)}"
    assert math_answer.reward(reply, str(value)) == 1.0
    assert math_answer.reward(reply, str(value + 1)) == 0.0


@given(
    st.recursive(
        st.text(alphabet="abc123+-^ ", max_size=5), lambda inner: inner.map(lambda s: "{" + s + "}"), max_leaves=5
    )
)
def test_the_last_boxed_answer_is_read_with_its_braces_matched(content):
    assume(content.count("{") == content.count("}"))
    assert math_answer.last_boxed(f"first \\boxed{{x}} then \\boxed{{{content}}} done") == content
