"""The machinery every config shares: documented fields (:func:`option`), YAML load/save, one type and range check
(:class:`ConfigBase`), and command-line flags generated from the fields (:func:`add_arguments`,
:func:`config_from_args`), so that a flag, a YAML key and a Python attribute are always the same name. Flags accept
both spellings, ``--dynamic-scale`` and ``--dynamic_scale``, and lists as ``1,2`` or ``1 2``. A field may list older
names (``option(..., aliases=("steps",))``): they work as flags, YAML keys and keyword arguments, and mean the field.

A field is annotated ``bool``, ``int``, ``float``, ``str``, ``list[X]`` or ``X | None``. Values come from YAML and
Python as they are, so the check is strict: a boolean is ``true``/``false`` (YAML's ``no`` is one, the string
``'no'`` is not), an int is no float (``2.5``) and no text (``"ten"``), a float is a finite number, a string no
number.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import math
import os
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from sonic.errors import ConfigError


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


C = TypeVar("C", bound="ConfigBase")


def option(
    default: Any, help: str, choices: tuple | None = None, flag: bool = True, aliases: tuple[str, ...] = ()
) -> Any:
    """A documented dataclass field; ``flag=False`` keeps it out of the command line (YAML/Python only);
    ``aliases``: other accepted names (the flag spellings of the released code's README: docs/released_inference.md
    section 4.0)."""
    metadata = {"help": help, "choices": choices, "flag": flag, "aliases": aliases}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class ConfigBase:
    """YAML round trip and validation shared by every config."""

    section: ClassVar[str] = "config"
    # shorthand name -> (field, {word: value}): e.g. ``motion: intense`` means ``dynamic_scale: 2.0``
    presets: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {}

    def validate(self) -> None:
        """Raises :class:`ConfigError` naming the first invalid field: each value must have its field's type
        (its annotation) and be one of its choices. Subclasses add their own rules."""
        hints = _field_types(type(self))  # type: ignore[arg-type]  # mypy#20409: a class is hashable
        for field in dataclasses.fields(self):
            choices = field.metadata.get("choices")
            value = getattr(self, field.name)
            wanted = type_mismatch(hints[field.name], value)
            if wanted is not None:
                raise ConfigError(f"{self.section}.{field.name} must be {wanted}, got {value!r}")
            if choices and value not in choices:
                raise ConfigError(f"{self.section}.{field.name} must be one of {list(choices)}, got {value!r}")

    def _check_range(self, *names: str, low: float, high: float | None = None) -> None:
        """Each named field that is set (not None) must lie in [low, high] (no upper bound when ``high`` is None)."""
        for name in names:
            value = getattr(self, name)
            if value is None or (low <= value and (high is None or value <= high)):
                continue
            bounds = f">= {low}" if high is None else f"in {low}..{high}"
            raise ConfigError(f"{self.section}.{name} must be {bounds}, got {value}")

    def _check_resolution(self, name: str = "resolution") -> None:
        """Image sides go through the VAE (factor 8) and the UNet (factor 8 more): multiples of 64."""
        value = getattr(self, name)
        if value < 64 or value % 64:
            raise ConfigError(f"{self.section}.{name} must be a positive multiple of 64, got {value}")

    def to_dict(self) -> dict[str, Any]:
        return {name: str(value) if isinstance(value, Path) else value for name, value in vars(self).items()}

    def save_yaml(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def canonical(cls, values: dict[str, Any], source: str = "config") -> dict[str, Any]:
        """``values`` with every alias and preset replaced by its field's name (and value); an option given under two
        names is an error."""
        renamed: dict[str, Any] = {}
        given_as: dict[str, str] = {}
        for key, value in values.items():
            name = _aliases(cls).get(key, key)  # type: ignore[arg-type]  # mypy#20409: a class is hashable
            if name in cls.presets:
                name, value = cls.preset_value(name, value, source)
            if name in renamed:
                raise ConfigError(f"{source}: {cls.section}.{name} is given twice (as {given_as[name]} and {key})")
            renamed[name], given_as[name] = value, key
        return renamed

    @classmethod
    def preset_value(cls, preset: str, word: Any, source: str) -> tuple[str, Any]:
        """(field, value) that the word of a preset stands for."""
        name, values = cls.presets[preset]
        if word not in values:
            raise ConfigError(f"{source}: {cls.section}.{preset} must be one of {list(values)}, got {word!r}")
        return name, values[word]

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any], source: str = "config") -> C:
        values = cls.canonical(values, source)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown {cls.section} option(s) {unknown}; known: {sorted(known)}")
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def load_yaml(cls: type[C], path: str | Path, **overrides: Any) -> C:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        values = read_yaml(path) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of option: value")
        return cls.from_dict({**cls.canonical(values, str(path)), **cls.canonical(overrides)}, source=str(path))


def read_yaml(path: Path) -> Any:
    """``path`` parsed with ``yaml.safe_load`` (no Python tags: a ``!!python/...`` tag is refused, never run); a
    :class:`ConfigError` naming the file and line for YAML that does not parse or that is not text."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8)") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        if "python/" in str(error):
            problem = f"{problem} (Python object tags are refused: a config holds plain values only)"
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None


@functools.cache
def _field_types(cls: type[ConfigBase]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _aliases(cls: type[ConfigBase]) -> dict[str, str]:
    """alias -> field name, for the fields of ``cls`` that have aliases."""
    return {alias: field.name for field in dataclasses.fields(cls) for alias in field.metadata.get("aliases", ())}


def _flag_kwargs(annotation: Any, choices: tuple | None) -> dict[str, Any]:
    """argparse keywords for a field annotation such as ``int``, ``float | None``, ``bool`` or ``list[float]``."""
    annotation, _ = without_none(annotation)
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(annotation) in (list, tuple):
        return {"type": _comma_items(typing.get_args(annotation)[0]), "nargs": "+", "action": _JoinItems}
    return {"type": annotation, "choices": choices}


def _comma_items(item_type: type) -> Callable[[str], list]:
    """An argparse ``type`` that reads one word as comma-separated items (``100,60,220,210`` -> four floats)."""

    def items(word: str) -> list:
        return [item_type(part) for part in word.split(",")]

    items.__name__ = item_type.__name__  # argparse names it in "invalid float value: 'x'"
    return items


class _JoinItems(argparse.Action):
    """A list flag's items, separated by spaces, commas or both (``--face-box 100 60 220 210`` = ``100,60,220,210``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, [item for word in values for item in word])


def add_arguments(parser: argparse.ArgumentParser, cls: type[ConfigBase], skip: tuple[str, ...] = ()) -> None:
    """Adds one flag per field of ``cls`` (help text and default from the field); unset flags parse to SUPPRESS.
    The config's own fields come first, those of shared bases (e.g. :class:`LabelLimits`) after them."""
    hints = _field_types(cls)  # type: ignore[arg-type]  # mypy#20409: a class is hashable
    group = parser.add_argument_group(f"{cls.section} options")
    own = inspect.get_annotations(cls)  # this class's own fields, not its bases'
    for field in sorted(dataclasses.fields(cls), key=lambda field: field.name not in own):
        if not field.metadata.get("flag", True) or field.name in skip:
            continue
        default = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
        names = dict.fromkeys(
            f"--{spelling}"
            for name in (field.name, *field.metadata["aliases"])
            for spelling in (name.replace("_", "-"), name)
        )
        kwargs = _flag_kwargs(hints[field.name], field.metadata.get("choices"))
        help_text = f"{field.metadata['help']} (default: {default})".replace("%", "%%")  # argparse formats it
        group.add_argument(*names, dest=field.name, default=argparse.SUPPRESS, help=help_text, **kwargs)
    for preset, (name, values) in cls.presets.items():
        meaning = ", ".join(f"{word} {value}" for word, value in values.items())
        group.add_argument(
            f"--{preset}",
            choices=tuple(values),
            default=argparse.SUPPRESS,
            help=f"shorthand for --{name.replace('_', '-')}: {meaning}",
        )


def config_from_args(cls: type[C], args: argparse.Namespace, config_file: str | Path | None = None) -> C:
    """The config from an optional YAML file, overridden by the flags that were given on the command line."""
    names = [*(field.name for field in dataclasses.fields(cls)), *cls.presets]
    given = {name: getattr(args, name) for name in names if hasattr(args, name)}
    if config_file is not None:
        return cls.load_yaml(config_file, **given)
    return cls.from_dict(given, source="command line")
