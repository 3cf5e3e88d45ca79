"""The typed checker of the configuration file: a TOML table checked against the annotations of a
dataclass (``dataclasses.fields`` and ``typing.get_type_hints``), every mistake one line naming
its ``[table] key``.

A small checker rather than a validation library: the messages must name the TOML table and key
in the file's own terms, a bool must not pass as a number (``isinstance(True, int)`` holds), and
the limits live in the annotations (``hal.config.Range``, ``Length``, meter model names: any
object with ``problem(value) -> str | None``).  Used by ``firmware.settings_load``
(and ``Settings.with_overrides``).
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import types
from dataclasses import MISSING, fields
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    TypeVar,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class SettingsError(ValueError):
    """The configuration is wrong.  ``problems``: one line per mistake, each naming its place
    (``[table] key ...``); ``str()`` is those lines joined by newlines."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def lines(self, prefix: str) -> str:
        """The problems, each on its own line behind ``prefix`` (the command's name)."""
        return "\n".join(prefix + problem for problem in self.problems)


T = TypeVar("T", bound="DataclassInstance")


def toml_text(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def describe(value: object) -> str:
    """``value`` as the file wrote it, for "must be X, not <this>"."""
    if isinstance(value, bool):
        return toml_text(value)
    if isinstance(value, str):
        return f"the string {toml_text(value)}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (datetime.date, datetime.time)):
        return f"the date/time {value.isoformat()}"
    return type(value).__name__


_KINDS: dict[object, str] = {
    bool: "true or false",
    int: "a whole number",
    float: "a number",
    str: "a string",
}


def check_value(hint: Any, value: object, place: str) -> Any:
    """``value`` checked against the annotation ``hint`` (ints become floats where a float is
    declared, an array becomes a tuple); SettingsError "<place> must be ..., not ..." otherwise."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *marks = get_args(hint)
        value = check_value(base, value, place)
        for mark in marks:
            # One line per mistake: a mark may find several (a list of lines).
            problem = mark.problem(value)
            if isinstance(problem, list) and problem:
                raise SettingsError([f"{place} {p}" for p in problem])
            if problem:
                raise SettingsError(f"{place} {problem}")
        return value
    if origin is Union or origin is types.UnionType:
        # TOML has no null: an optional value is either given or left out.
        arms = [a for a in get_args(hint) if a is not type(None)]
        if len(arms) != 1:
            raise TypeError(f"no check for {hint}")
        return check_value(arms[0], value, place)
    if origin is Literal:
        choices = get_args(hint)
        # type() too: True == 1 and 1.0 == 1 must not pass as a choice.
        if any(type(value) is type(c) and value == c for c in choices):
            return value
        listed = (
            toml_text(choices[0])
            if len(choices) == 1
            else "one of " + ", ".join(toml_text(c) for c in choices)
        )
        raise SettingsError(f"{place} must be {listed}, not {describe(value)}")
    if origin is tuple:
        # A TOML array of one kind, ``tuple[str, ...]``: every item checked, each mistake a line.
        item, dots = get_args(hint)
        if dots is not Ellipsis:
            raise TypeError(f"no check for {hint}")
        if not isinstance(value, list):
            raise SettingsError(f"{place} must be an array, not {describe(value)}")
        found = Problems()
        items = tuple(
            found.take(check_value, item, v, f"{place} item {n}") for n, v in enumerate(value, 1)
        )
        found.raise_any()
        return items
    if origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
        raise SettingsError(f"{place} must be a table, not {describe(value)}")
    if hint not in _KINDS:
        raise TypeError(f"no check for {hint}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not hint:
        raise SettingsError(f"{place} must be {_KINDS[hint]}, not {describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{place} must be a finite number, not {value}")
    return value


def unknown(kind: str, name: str, known: list[str], show: str = "{}") -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {show.format(close[0])}?" if close else ""
    return f"unknown {kind} {show.format(name)}{hint}"


def check_table(
    cls: type[T],
    table: object,
    where: str,
    given: dict[str, Any] | None = None,
    also_known: tuple[str, ...] = (),
) -> T:
    """A ``cls`` from the TOML table at ``[where]``; the fields in ``given`` are supplied by the
    caller (sub-tables it checked).  SettingsError with every problem found."""
    if not isinstance(table, dict):
        raise SettingsError(f"[{where}] must be a table, not {describe(table)}")
    given = given or {}
    hints = get_type_hints(cls, include_extras=True)
    own = [f for f in fields(cls) if f.name not in given]
    names = [f.name for f in own]
    problems = [
        f"[{where}] " + unknown("key", key, names + list(also_known))
        for key in table
        if key not in names
    ]
    values = dict(given)
    for f in own:
        if f.name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(f"[{where}] {f.name} is required")
            continue
        try:
            values[f.name] = check_value(hints[f.name], table[f.name], f"[{where}] {f.name}")
        except SettingsError as exc:
            problems += exc.problems
    if problems:
        raise SettingsError(problems)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"[{where}] {exc}") from None


class Problems:
    """Collects the problems of independent parts so that one run reports them all."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def take(self, build: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return build(*args, **kwargs)
        except SettingsError as exc:
            self.lines += exc.problems
            return None

    def raise_any(self) -> None:
        if self.lines:
            raise SettingsError(self.lines)


__all__ = [
    "Problems",
    "SettingsError",
    "check_table",
    "check_value",
    "describe",
    "toml_text",
    "unknown",
]
