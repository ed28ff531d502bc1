"""Target expressions are parsed, never executed."""
import numpy as np
import pytest

from jaxlabs.expr import ExpressionError, parse_range, parse_target


def test_the_reports_custom_function():
    f = parse_target("(x+1)**2 + sin(x**2+1) - log(x**2+1)")
    x = np.array([-3.0, 0.0, 1.5])
    np.testing.assert_allclose(f(x), (x + 1) ** 2 + np.sin(x**2 + 1) - np.log(x**2 + 1))
    np.testing.assert_allclose(parse_target("-x + pi*e + 2")(x), -x + np.pi * np.e + 2)


@pytest.mark.parametrize("text,fragment", [
    ("x^2", "use ** for powers"),
    ("__import__('os').system('true')", "unknown function"),
    ("x.__class__", "Attribute is not allowed"),
    ("y + 1", "unknown name 'y'"),
    ("", "empty expression"),
    ("sin(x", "cannot parse"),
    ("3 + 4", "does not use x"),
    ("[x for x in ()]", "not allowed"),
    ("sin(x, 1)", "exactly one argument"),
    ("'a' + x", "only numbers"),
])
def test_bad_expressions_are_one_line_errors(text, fragment):
    with pytest.raises(ExpressionError) as e:
        parse_target(text)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_huge_powers_overflow_to_inf_instead_of_raising():
    assert np.isinf(parse_target("9**9**9 + x")(np.array([1.0]))).all()


def test_ranges():
    assert parse_range("-3,3") == (-3.0, 3.0)
    for bad in ("3,-3", "1", "a,b", "0,inf"):
        with pytest.raises(ExpressionError):
            parse_range(bad)
