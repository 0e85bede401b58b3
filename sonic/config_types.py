"""The value types a config field may hold, checked the same way for every config (:class:`sonic.config.ConfigBase`).

A field is annotated ``bool``, ``int``, ``float``, ``str``, ``list[X]`` or ``X | None``. Values come from YAML and
Python as they are, so the check is strict: a boolean is ``true``/``false`` (YAML's ``no`` is one, the string
``'no'`` is not), an int is no float (``2.5``) and no text (``"ten"``), a float is a finite number, a string no
number.
"""

from __future__ import annotations

import math
import os
import types
import typing
from collections.abc import Callable
from typing import Any


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int to Python, not to a config


def _finite(value: Any) -> bool:
    return (_whole(value) or isinstance(value, float)) and math.isfinite(value)


CHECKS: dict[type, tuple[str, Callable[[Any], bool]]] = {
    bool: ("true or false", lambda value: isinstance(value, bool)),
    int: ("a whole number", _whole),
    float: ("a finite number", _finite),
    str: ("a string", lambda value: isinstance(value, str | os.PathLike)),  # a Path is taken for a path option
}


def without_none(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); any other annotation -> (itself, False)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        assert len(options) == 1, f"a config field holds one type or None, not {annotation}"
        return options[0], True
    return annotation, False


def type_mismatch(annotation: Any, value: Any) -> str | None:
    """None when ``value`` fits the field ``annotation``, else what the field expects (``a whole number``, ...)."""
    annotation, optional = without_none(annotation)
    if value is None and optional:
        return None
    if typing.get_origin(annotation) is list:
        (element,) = typing.get_args(annotation)
        wanted = f"a list, each item {CHECKS[element][0]}"
        fits = isinstance(value, list | tuple) and all(type_mismatch(element, item) is None for item in value)
        return None if fits else wanted
    assert annotation in CHECKS, f"config fields of type {annotation} are not checked: add it to CHECKS"
    wanted, check = CHECKS[annotation]
    return None if check(value) else wanted
