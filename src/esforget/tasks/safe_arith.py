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
MAX_POWER_BITS = 128
"""Largest result of `**`, in bits of its numerator or denominator, checked before it is computed."""
MAX_BITS = 256
"""Largest numerator or denominator of any intermediate result, in bits. The magnitude bound
alone let fractions grow: `(1/99)**64` nested four deep is small but has a denominator of
millions of digits (233 s and 100 MB to compute). Every operation's inputs are within this, so
no single step can cost more than a product of two 256-bit integers, or a power checked below."""

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
    """`base ** exponent`, refused before it is computed when its result would exceed
    `MAX_POWER_BITS` (its size is the exponent times the base's, in bits), for a fraction below
    one too."""
    if exponent.denominator != 1 or abs(exponent) > MAX_EXPONENT:
        return None
    if abs(exponent) * max(abs(base.numerator), base.denominator).bit_length() > MAX_POWER_BITS:
        return None
    return _bounded(base ** int(exponent))


def _bounded(value: Fraction) -> Fraction | None:
    if abs(value) > MAX_MAGNITUDE or max(abs(value.numerator), value.denominator).bit_length() > MAX_BITS:
        return None
    return value
