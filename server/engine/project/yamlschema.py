"""Typed loading of YAML into frozen dataclasses, with line numbers in every error.

PyYAML's node tree keeps the position of every key, so a typo or a wrong type can be
reported as ``projects/demo.yaml:12: unknown key 'treshold' in taxonomies[0]
(did you mean 'threshold'?)`` instead of a traceback.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from server.engine.errors import ProjectConfigError

T = TypeVar("T")


class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node, where: str, message: str) -> ProjectConfigError:
        line = node.start_mark.line + 1
        return ProjectConfigError(f"{self.source}:{line}: {where}: {message}")


YAML_HINTS = {
    "mapping values are not allowed": " (a 'key: value' where none can start: check this "
    "line's indentation, or quote a value that holds ': ')",
    "expected <block end>": " (this line is indented differently from the lines above it)",
    "could not find expected ':'": " (a line with no 'key:': check its indentation)",
    "found character '\\t'": " (YAML is indented with spaces, not tabs)",
    "found a tab character": " (YAML is indented with spaces, not tabs)",
    "did not find expected key": " (a line is indented differently from its siblings)",
    "did not find expected '-' indicator": " (a list item is indented differently from the others)",
}
"""PyYAML's problems, said in a user's words (what to look at on the line)."""


def load_yaml_as(cls: type[T], text: str, source: str) -> T:
    """Parse YAML ``text`` and build ``cls`` (a dataclass) from it, strictly.

    Raises:
        ProjectConfigError: on a syntax error, unknown key, missing key or wrong type,
            naming the file, the line and the key.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        hint = next((h for key, h in YAML_HINTS.items() if key in problem), "")
        raise ProjectConfigError(f"{source}{line}: invalid YAML: {problem}{hint}") from None
    if node is None:
        raise ProjectConfigError(f"{source}: the file is empty")
    return typing.cast(T, _build(cls, node, "top level", _Ctx(source)))


def _scalar(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node))


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {
        str: "text",
        int: "an integer",
        float: "a number",
        bool: "true/false",
        type(None): "null",
        Path: "a path",
    }.get(tp, str(tp))


def _build(tp: Any, node: yaml.Node, where: str, ctx: _Ctx) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if (
            isinstance(node, yaml.ScalarNode)
            and node.tag.endswith(":null")
            and type(None) in options
        ):
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _build(option, node, where, ctx)
            except ProjectConfigError:
                if len([o for o in options if o is not type(None)]) == 1:
                    raise
        raise ctx.fail(node, where, f"expected {_type_name(tp)}")
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(typing.cast(type, tp), node, where, ctx)
    if origin is list or origin is tuple:
        if not isinstance(node, yaml.SequenceNode):
            raise ctx.fail(node, where, "expected a list")
        (item_tp,) = get_args(tp)[:1]
        items = [_build(item_tp, n, f"{where}[{i}]", ctx) for i, n in enumerate(node.value)]
        return tuple(items)
    if origin is dict or origin is collections.abc.Mapping:
        if not isinstance(node, yaml.MappingNode):
            raise ctx.fail(node, where, "expected a mapping")
        _, value_tp = get_args(tp)
        out = {}
        for key_node, value_node in node.value:
            key = str(_scalar(key_node))
            out[key] = _build(value_tp, value_node, f"{where}.{key}", ctx)
        return types.MappingProxyType(out)
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.fail(node, where, f"expected {_type_name(tp)}")
    value = _scalar(node)
    if origin is Literal:
        if value not in get_args(tp):
            raise ctx.fail(node, where, f"expected {_type_name(tp)}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ctx.fail(node, where, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.fail(node, where, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.fail(node, where, f"expected a number, got {value!r}")
        return float(value)
    if tp is str or tp is Path:
        if value is None:
            raise ctx.fail(node, where, f"expected {_type_name(tp)}, got null")
        # The text as written: YAML would turn `yes` into True and a date into a datetime.
        text = str(node.value)
        return Path(text) if tp is Path else text
    raise ctx.fail(node, where, f"unsupported type {tp!r}")  # pragma: no cover


def _build_dataclass(cls: type, node: yaml.Node, where: str, ctx: _Ctx) -> Any:
    if not isinstance(node, yaml.MappingNode):
        raise ctx.fail(node, where, "expected a mapping")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = str(_scalar(key_node))
        inner = key if where == "top level" else f"{where}.{key}"
        if key not in fields:
            hint = difflib.get_close_matches(key, list(fields), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            allowed = ", ".join(sorted(fields))
            raise ctx.fail(
                key_node, where, f"unknown key '{key}'{suggestion}; allowed keys: {allowed}"
            )
        if key in values:
            raise ctx.fail(key_node, where, f"key '{key}' appears twice")
        values[key] = _build(hints[key], value_node, inner, ctx)
    for name, f in fields.items():
        if (
            name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            raise ctx.fail(node, where, f"missing required key '{name}'")
    try:
        return cls(**values)
    except ValueError as exc:  # __post_init__ validation
        raise ctx.fail(node, where, str(exc)) from None
