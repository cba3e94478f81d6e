"""Properties of the pure functions every reward passes through, over inputs Hypothesis draws
freely: exact arithmetic on model output and reward parsing."""

from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from esforget.tasks import countdown, math_answer
from esforget.tasks.safe_arith import safe_eval

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
