"""A safe evaluator for the arithmetic a Countdown answer may contain.

The authors score Countdown answers with Python's `eval` on model output. That is unsafe
(model output is untrusted) and can hang (`9**9**9` is made only of allowed characters).
This evaluator parses with `ast` and computes exactly with `fractions.Fraction`, accepting
the same operators Python would (`+ - * / // **`, unary signs, parentheses) but refusing
anything that could grow without bound. Every failure is `None`, never an exception.
"""

from __future__ import annotations

import ast
import operator
from fractions import Fraction

MAX_EXPRESSION_CHARS = 512
"""Longer answers are refused outright: no Countdown solution is anywhere near this long."""
MAX_MAGNITUDE = Fraction(10) ** 30
"""Intermediate results beyond this are refused; keeps `**` chains from exploding."""
MAX_EXPONENT = 64
"""Largest |exponent| accepted for `**`."""

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
}


def safe_eval(expression: str) -> Fraction | None:
    """Value of an arithmetic expression, or None if it is malformed, unsafe or undefined."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        return None
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        return _value(tree.body)
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError, OverflowError):
        return None


def _value(node: ast.AST) -> Fraction | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return _bounded(Fraction(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        operand = _value(node.operand)
        if operand is None:
            return None
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        op = _BINARY.get(type(node.op))
        return None if op is None else _bounded(Fraction(op(left, right)))
    return None


def _power(base: Fraction, exponent: Fraction) -> Fraction | None:
    if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
        return None
    if abs(base) > 1 and abs(exponent) * max(abs(base.numerator), base.denominator).bit_length() > 128:
        return None
    return _bounded(base ** int(exponent))


def _bounded(value: Fraction) -> Fraction | None:
    return value if abs(value) <= MAX_MAGNITUDE else None
