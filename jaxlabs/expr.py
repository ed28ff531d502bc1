"""Safe target expressions of x for the function-fitting labs, e.g.
``"(x+1)**2 + sin(x**2+1) - log(x**2+1)"``.

The text is parsed with :mod:`ast` and interpreted node by node over NumPy arrays: only numbers,
``x``, the constants ``pi`` and ``e``, ``+ - * / **`` and the functions in :data:`FUNCTIONS` are
allowed, so no text is ever executed as code.
"""
from __future__ import annotations

import ast
import operator
from typing import Callable

import numpy as np

FUNCTIONS: dict[str, Callable] = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos,
    "arctan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "exp": np.exp,
    "log": np.log, "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt, "abs": np.abs,
}
CONSTANTS = {"pi": np.pi, "e": np.e}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


class ExpressionError(ValueError):
    pass


def _check(node: ast.AST, text: str) -> None:
    if isinstance(node, ast.Expression):
        return _check(node.body, text)
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            hint = " (use ** for powers)" if isinstance(node.op, ast.BitXor) else ""
            raise ExpressionError(f"operator not allowed in {text!r}{hint}; allowed: + - * / **")
        _check(node.left, text)
        return _check(node.right, text)
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"operator not allowed in {text!r}; allowed: + - * / **")
        return _check(node.operand, text)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"only numbers are allowed as constants in {text!r}")
        return None
    if isinstance(node, ast.Name):
        if node.id != "x" and node.id not in CONSTANTS:
            raise ExpressionError(f"unknown name {node.id!r} in {text!r}; use x, pi, e and "
                                  f"functions {', '.join(FUNCTIONS)}")
        return None
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"unknown function {name!r} in {text!r}; allowed: {', '.join(FUNCTIONS)}")
        if len(node.args) != 1 or node.keywords:
            raise ExpressionError(f"{node.func.id}() takes exactly one argument in {text!r}")
        return _check(node.args[0], text)
    raise ExpressionError(f"{type(node).__name__} is not allowed in {text!r}; write an expression "
                          "of x with numbers, + - * / ** and functions such as sin, log")


def _eval(node: ast.AST, x: np.ndarray):
    if isinstance(node, ast.Expression):
        return _eval(node.body, x)
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, x), _eval(node.right, x))
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_eval(node.operand, x))
    if isinstance(node, ast.Constant):
        return np.float64(node.value)  # NumPy floats overflow to inf instead of raising
    if isinstance(node, ast.Name):
        return x if node.id == "x" else CONSTANTS[node.id]
    return FUNCTIONS[node.func.id](_eval(node.args[0], x))


def parse_target(text: str) -> Callable[[np.ndarray], np.ndarray]:
    """A NumPy function of x from ``text``; raises :class:`ExpressionError` (one line) if the text
    is not a valid expression of x."""
    if not text or not text.strip():
        raise ExpressionError("empty expression; give a function of x such as 'x**2 + sin(x)'")
    if len(text) > 500:
        raise ExpressionError("expression longer than 500 characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"cannot parse {text!r}: {e.msg}; write it like Python, e.g. 'x**2 + sin(x)'") from None
    _check(tree, text)
    if not any(isinstance(n, ast.Name) and n.id == "x" for n in ast.walk(tree)):
        raise ExpressionError(f"{text!r} does not use x")

    def target(x):
        x = np.asarray(x, np.float64)
        with np.errstate(all="ignore"):
            return np.broadcast_to(_eval(tree, x), x.shape).astype(np.float64)

    return target


def parse_range(text: str) -> tuple[float, float]:
    """``"-3,3"`` -> (-3.0, 3.0), low < high."""
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ExpressionError(f"{text!r} is not a range; give two numbers LOW,HIGH such as -3,3") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ExpressionError(f"{text!r}: need finite LOW < HIGH, such as -3,3")
    return lo, hi
