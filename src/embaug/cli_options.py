"""Command-line options declared once, as the fields of a stage's options dataclass.

A field ``max_chars: int = 250`` is the option ``--max-chars`` (type ``int``, default 250); a field
without a default is a required option. The annotation gives the shape:

* ``bool``: ``--name`` / ``--no-name``;
* ``list[T]``: one or more values (``nargs="+"``), or with ``option(append=True)`` one value per
  repetition of the option;
* ``tuple[str, str]``: exactly that many values (``nargs=2``);
* ``list[tuple[str, str, str]]``: that many values per repetition (``action="append"``);
* ``T | None``: the option may be left out (default ``None``).

:func:`add_options` turns a class into a parser's options and :func:`read_options` a parsed
namespace into an instance, so a stage's handler reads typed fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

Options = TypeVar("Options")


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str | None = None,
    choices: typing.Sequence[str] | None = None,
    metavar: str | tuple[str, ...] | None = None,
    append: bool = False,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A field of an options dataclass with its help text and what its annotation cannot say:
    ``choices``, ``metavar``, ``append`` (``list[T]``: one value per repetition) and ``parse`` (the
    function turning one argument into a value, instead of the annotation's type). A list default is
    copied for each instance."""
    metadata = {"help": help, "choices": choices, "metavar": metavar, "append": append, "parse": parse}
    if isinstance(default, list):
        return dataclasses.field(default_factory=default.copy, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _without_none(hint: Any) -> Any:
    """``T`` of ``T | None``; any other annotation unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kept = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return kept[0] if len(kept) == 1 else hint
    return hint


def _shape(hint: Any, append: bool) -> dict[str, Any]:
    """The argparse ``nargs`` / ``action`` and element type of a field's annotation."""
    hint = _without_none(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is tuple:
        return {"nargs": len(args), "type": args[0]}
    if origin is list and typing.get_origin(args[0]) is tuple:
        return {"action": "append", **_shape(args[0], False)}
    if origin is list:
        return {"action": "append", "type": args[0]} if append else {"nargs": "+", "type": args[0]}
    return {"type": hint}


def option_fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """Each field of an options dataclass with its resolved annotation."""
    hints = typing.get_type_hints(cls)
    return [(field, hints[field.name]) for field in dataclasses.fields(cls)]


def add_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per field of ``cls`` to ``parser`` (the field's name, ``_`` written ``-``)."""
    for field, hint in option_fields(cls):
        meta = field.metadata
        kwargs = _shape(hint, meta.get("append", False))
        if meta.get("parse"):
            kwargs["type"] = meta["parse"]
        if kwargs.get("type") is str:
            del kwargs["type"]  # argparse's own: the argument as given
        if field.default is not dataclasses.MISSING:
            kwargs["default"] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            kwargs["default"] = field.default_factory()
        else:
            kwargs["required"] = True
        kwargs.update({key: meta[key] for key in ("help", "choices", "metavar") if meta.get(key) is not None})
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, **kwargs)


def read_options(cls: type[Options], namespace: argparse.Namespace) -> Options:
    """The ``cls`` instance of a namespace parsed with :func:`add_options` (repeated fixed-size
    values as tuples, as annotated)."""
    values = {}
    for field, hint in option_fields(cls):
        value = getattr(namespace, field.name)
        shape = _shape(hint, False)
        if isinstance(shape.get("nargs"), int) and value is not None:
            value = [tuple(v) for v in value] if shape.get("action") == "append" else tuple(value)
        values[field.name] = value
    return cls(**values)
