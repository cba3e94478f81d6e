"""The safe evaluator that replaces the authors' `eval` on Countdown answers."""

import tracemalloc
from fractions import Fraction

import pytest

from esforget.tasks.safe_arith import safe_eval


@pytest.mark.parametrize(
    "expression, value",
    [
        ("3*5+7", 22),
        ("(73 + (78 / (24 - 21)))", 99),
        ("8/3*3", 8),  # exact: no float rounding
        ("-2+5", 3),
        ("2**3", 8),
        ("7//2", 3),
        ("(+3)*2", 6),  # a unary plus keeps the sign
        ("-(-3)", 3),
        ("2**64", 2**64),  # the largest power of 2 allowed: 64 × 2 bits of base is the limit, not over it
        ("10**30", 10**30),  # the largest magnitude allowed
    ],
)
def test_arithmetic_is_exact(expression, value):
    assert safe_eval(expression) == Fraction(value)


@pytest.mark.parametrize(
    "hostile",
    [
        "9**9**9**9",  # would hang Python's eval
        "10**100",
        "1" + "0" * 31,  # a number beyond 10**30, written out
        "99999999999 * 99999999999 * 99999999999",  # products beyond it
        "1/0",
        "__import__('os')",
        "(1).__class__",
        "1 2",
        "(" * 5000 + "1" + ")" * 5000,
        "1+" * 10_000 + "1",
        "",
        "1.5+1",  # floats are not Countdown numbers
        "7 % 2",  # operators Python has and Countdown does not
        "1 << 3",
        "2**(1/2)",  # a fractional exponent
        "2**65",  # an exponent beyond 64, however small the result
        "4**43",  # 43 × 3 bits of base: one bit over the limit, though 4**43 < 10**30
        "(5/4)**64",  # 64 × 3 bits of numerator: over the limit, though (5/4)**64 is small
    ],
)
def test_hostile_or_malformed_input_is_none_and_never_builds_a_large_number(hostile):
    """Refused before any number grows: `9**9**9**9` evaluated would need gigabytes, and the time
    to build them. Memory is counted, not time: the bound holds on any machine, however loaded
    (benchmarks/safe_arith.py times the same inputs)."""
    tracemalloc.start()
    try:
        assert safe_eval(hostile) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_an_answer_of_at_most_512_characters_is_read_and_a_longer_one_refused():
    longest = "+".join(["1"] * 256)  # 256 ones, 255 plus signs: 511 characters
    assert len(longest + " ") == 512 and safe_eval(longest + " ") == 256
    assert safe_eval(longest + "  ") is None
