"""Strict YAML loading: duplicate keys are errors, and every key remembers its line.

PyYAML silently keeps the last of two equal keys, which turns a copy-paste slip into a silent default. We
compose the node tree ourselves so we can reject duplicates and report the line of any field a later
validation step complains about.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from definemed.errors import DefinemedError


class ConfigError(DefinemedError, ValueError):
    """A configuration problem, with the file and (where known) the line and field path."""


Lines = dict[tuple[str, ...], int]


def _construct(node: yaml.Node, path: tuple[str, ...], lines: Lines, source: str, scalars: yaml.constructor.SafeConstructor) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: YAML merge keys (<<) are not supported")
            key = str(scalars.construct_object(key_node, deep=True))
            line = key_node.start_mark.line + 1
            field = ".".join((*path, key))
            if key in out:
                first = lines.get((*path, key), "?")
                raise ConfigError(f"{source}:{line}: duplicate key '{field}' (first defined on line {first})")
            lines[(*path, key)] = line
            out[key] = _construct(value_node, (*path, key), lines, source, scalars)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(child, (*path, str(i)), lines, source, scalars) for i, child in enumerate(node.value)]
    return scalars.construct_object(node, deep=True)


def load_yaml(text: str, source: str = "<string>") -> tuple[Any, Lines]:
    """Parse YAML text into plain Python objects plus a map from key path to 1-based line number."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    lines: Lines = {}
    if node is None:
        return {}, lines
    return _construct(node, (), lines, source, yaml.constructor.SafeConstructor()), lines


def load_yaml_file(path: str | Path) -> tuple[Any, Lines]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    return load_yaml(text, str(path))


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides; values are parsed as YAML scalars/flow collections."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected dotted.key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        if not all(keys):
            raise ConfigError(f"override '{item}': empty key segment")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': cannot parse value: {exc}") from exc
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override '{item}': '{'.'.join(keys[: depth + 1])}' is not a section")
            node = child
        node[keys[-1]] = value
    return data
