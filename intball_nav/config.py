"""YAML -> frozen dataclass loading with errors that name the file, line, field and range.

The YAML files under ``intball_nav/data/`` and user files (missions) are read with
``yaml.compose`` so that every value keeps its source line. Loaders walk the node tree
with the helpers below and build their frozen dataclasses; every problem raises
:class:`ConfigError` with a message of the form ``"robot.yaml:12: fans.tau: 0.5 s is
outside the allowed range 0.001 .. 0.2 s"``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

_CONSTRUCTOR = yaml.constructor.SafeConstructor()


class ConfigError(ValueError):
    """A configuration or mission file is invalid; the message names file, line and field."""


def location(path: str | Path, node: yaml.Node) -> str:
    """``"file.yaml:LINE"`` of a node (1-based line)."""
    return f"{Path(path).name}:{node.start_mark.line + 1}"


def fail(path: str | Path, node: yaml.Node, field: str, message: str) -> ConfigError:
    """Build a ConfigError ``"file:line: field: message"`` (to be raised by the caller)."""
    return ConfigError(f"{location(path, node)}: {field}: {message}")


def compose_yaml(path: str | Path) -> yaml.Node | None:
    """Parse a YAML file into a node tree (keeps line marks); errors name file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 0
        raise ConfigError(f"{path.name}:{line}: invalid YAML: {exc.problem}") from exc


def compose_file(path: str | Path) -> yaml.MappingNode:
    """Parse a YAML file into a node tree whose root must be a mapping."""
    path = Path(path)
    root = compose_yaml(path)
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path.name}:1: the file must hold a mapping (key: value pairs)")
    return root


def mapping(
    path: str | Path,
    node: yaml.Node,
    field: str,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    allow_unknown: bool = False,
) -> dict[str, yaml.Node]:
    """Children of a mapping node by key; rejects missing, duplicate and unknown keys."""
    if not isinstance(node, yaml.MappingNode):
        raise fail(path, node, field, f"expected a mapping with keys {list(required + optional)}")
    children: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        name = f"{field}.{key}" if field else key
        if key in children:
            raise fail(path, key_node, name, "duplicate key")
        if key not in required and key not in optional and not allow_unknown:
            allowed = ", ".join(required + optional)
            raise fail(path, key_node, name, f"unknown key (allowed: {allowed})")
        children[key] = value_node
    for key in required:
        if key not in children:
            raise fail(path, node, field or "<root>", f"missing required key '{key}'")
    return children


def sequence(path: str | Path, node: yaml.Node, field: str) -> list[yaml.Node]:
    """Items of a sequence node."""
    if not isinstance(node, yaml.SequenceNode):
        raise fail(path, node, field, "expected a list")
    return list(node.value)


def number(
    path: str | Path,
    node: yaml.Node,
    field: str,
    lo: float = -math.inf,
    hi: float = math.inf,
    unit: str = "",
) -> float:
    """A finite number in [lo, hi] (int or float YAML scalar)."""
    value = _CONSTRUCTOR.construct_object(node, deep=True) if isinstance(node, yaml.ScalarNode) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(path, node, field, f"expected a number, got {_describe(node)}")
    value = float(value)
    if not math.isfinite(value):
        raise fail(path, node, field, f"must be a finite number, got {value}")
    if not lo <= value <= hi:
        sep = f" {unit}" if unit else ""
        raise fail(path, node, field, f"{value:g}{sep} is outside the allowed range {lo:g} .. {hi:g}{sep}")
    return value


def vector(path: str | Path, node: yaml.Node, field: str, size: int) -> np.ndarray:
    """A list of ``size`` finite numbers as a float array (size,)."""
    items = sequence(path, node, field)
    if len(items) != size:
        raise fail(path, node, field, f"expected a list of {size} numbers, got {len(items)}")
    return np.array([number(path, item, f"{field}[{i}]") for i, item in enumerate(items)])


def string(path: str | Path, node: yaml.Node, field: str) -> str:
    """A plain string scalar."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        raise fail(path, node, field, f"expected a string, got {_describe(node)}")
    return str(node.value)


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)
