"""A task's options as typed data: each command line, check and default comes from one declaration.

An :class:`Option` says what a task can be told: its type, default, range or choices, help, and
whether it is *static* (it shapes the compiled program: a change compiles a new one) or *traced*
(a number the engine vmaps over: every member may have its own). ``lr_sweep``'s task flags,
``--help``, the validation of values from the command line and from studies, and the defaults
of unswept traced numbers are all read from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from numbers import Real
from typing import Any, Callable, Optional, Sequence


class OptionError(ValueError):
    """A value an option does not accept; the message is one line that says what is allowed."""


@dataclass(frozen=True)
class Option:
    name: str
    type: type  # int, float, str or bool
    default: Any
    help: str
    traced: bool = False  # a number vmapped per member; else static (shapes the program)
    low: Optional[float] = None  # smallest accepted value
    high: Optional[float] = None  # largest accepted value
    low_open: bool = False  # the value must be > low (not >=)
    high_open: bool = False  # the value must be < high (not <=)
    choices: Optional[Sequence[Any]] = None
    check: Optional[Callable[[str], Any]] = None  # extra check of a text value (raises ValueError)
    none_ok: bool = False  # None is accepted (and means the task's own choice)
    # a number whose useful values span decades (learning rates, weight decay): a search samples a
    # range of it log-uniformly (jaxlabs.search), and its range must then be > 0
    log: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def range_text(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        kind = {int: "an integer", float: "a number", bool: "true or false", str: "text"}[self.type]
        if self.low is not None and self.high is not None:
            lo, hi = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {lo}{self.low:g}, {self.high:g}{hi}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        return kind

    def validate(self, value: Any, owner: str = "") -> Any:
        """``value`` as this option's type, or an :class:`OptionError` naming the option."""
        where = f"{owner}: " if owner else ""
        if value is None:
            if self.none_ok:
                return None
            raise OptionError(f"{where}{self.name} needs a value ({self.range_text()})")
        bad = OptionError(f"{where}{self.name} must be {self.range_text()}, got {value!r}")
        if self.type is bool:
            if not isinstance(value, bool):
                raise bad
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, Real) or int(value) != value:
                raise bad
            value = int(value)
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, Real) or math.isnan(value):
                raise bad
            value = float(value)
        elif not isinstance(value, str):
            raise bad
        if self.choices is not None and value not in self.choices:
            raise bad
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise bad
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise bad
        if self.check is not None:
            try:
                self.check(value)
            except ValueError as e:
                raise OptionError(f"{where}{self.name}: {e}") from None
        return value

    def parse(self, text: str) -> Any:
        """A command-line value: text -> typed and validated (OptionError on anything else)."""
        if self.type is bool:
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise OptionError(f"{text!r} is not true or false")
            return low in ("true", "1", "yes")
        if self.type in (int, float):
            try:
                number = float(text)
            except ValueError:
                raise OptionError(f"{text!r} is not {'a whole number' if self.type is int else 'a number'}") from None
            if self.type is int and (not math.isfinite(number) or number != int(number)):
                raise OptionError(f"{text!r} is not a whole number")
            return self.validate(int(number) if self.type is int else number)
        return self.validate(text)


def static_option(name, type, default, help, **kw) -> Option:
    return Option(name, type, default, help, traced=False, **kw)


def traced_option(name, default, help, **kw) -> Option:
    return Option(name, float, default, help, traced=True, **kw)


def by_name(options: Sequence[Option]) -> dict[str, Option]:
    out: dict[str, Option] = {}
    for o in options:
        if o.name in out:
            raise ValueError(f"option {o.name!r} declared twice")
        out[o.name] = o
    return out


def resolve(options: Sequence[Option], values: dict, owner: str) -> dict:
    """Every option's value: ``values`` validated over the declared defaults. An unknown name is an
    :class:`OptionError` that lists the options there are."""
    table = by_name(options)
    unknown = [k for k in values if k not in table]
    if unknown:
        raise OptionError(f"{owner} has no option {unknown[0]!r}; its options: {', '.join(table)}")
    return {name: o.validate(values[name], owner) if name in values else o.default for name, o in table.items()}


def with_defaults(options: Sequence[Option], **defaults: Any) -> tuple[Option, ...]:
    """``options`` with other defaults (a task that is a variant of another)."""
    table = by_name(options)
    missing = [k for k in defaults if k not in table]
    if missing:
        raise ValueError(f"no option {missing[0]!r} to change the default of")
    return tuple(replace(o, default=defaults[o.name]) if o.name in defaults else o for o in options)
