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

# Aliases are expanded into plain objects (every key needs its own line and path), so without bounds nine levels of
# nine aliases become 9**9 nodes ("billion laughs"). A config is small: these bounds are far above any real one.
MAX_ALIASES = 100
MAX_NODES = 100_000
MAX_DEPTH = 64


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases while composing and names the line of the one that crosses the bound."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.aliases = 0
        self.depth = 0
        self.expanded = 0  # values the aliases add once expanded
        self._sizes: dict[int, int] = {}

    def _size(self, node: yaml.Node) -> int:
        if id(node) not in self._sizes:
            children = (
                node.value
                if isinstance(node, yaml.SequenceNode)
                else [n for pair in node.value for n in pair]
                if isinstance(node, yaml.MappingNode)
                else []
            )
            self._sizes[id(node)] = 1 + sum(self._size(c) for c in children)
        return self._sizes[id(node)]

    def compose_node(self, parent: Any, index: Any) -> Any:
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise ConfigError(
                    f"{self.source}:{line}: more than {MAX_ALIASES} YAML aliases (*name); write the values out instead"
                )
            node = super().compose_node(parent, index)
            self.expanded += self._size(node)
            if self.expanded > MAX_NODES:
                raise ConfigError(
                    f"{self.source}:{line}: YAML aliases expand the config to more than {MAX_NODES} "
                    "values (aliases nested in aliases?); write the values out instead"
                )
            return node
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise ConfigError(f"{self.source}:{line}: YAML nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Budget:
    """Counts the nodes produced while aliases are expanded."""

    def __init__(self, source: str) -> None:
        self.source, self.nodes = source, 0

    def spend(self, node: yaml.Node) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConfigError(
                f"{self.source}:{node.start_mark.line + 1}: the config expands to more than {MAX_NODES} "
                "values (YAML aliases expanding into each other?); write it out without aliases"
            )


def _construct(
    node: yaml.Node,
    path: tuple[str, ...],
    lines: Lines,
    source: str,
    scalars: yaml.constructor.SafeConstructor,
    budget: _Budget,
) -> Any:
    budget.spend(node)
    if len(path) > MAX_DEPTH:
        raise ConfigError(f"{source}:{node.start_mark.line + 1}: YAML nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(f"{source}:{key_node.start_mark.line + 1}: YAML merge keys (<<) are not supported")
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(
                    f"{source}:{key_node.start_mark.line + 1}: a key must be a plain value, not a list or mapping"
                )
            key = str(scalars.construct_object(key_node, deep=True))
            line = key_node.start_mark.line + 1
            field = ".".join((*path, key))
            if key in out:
                first = lines.get((*path, key), "?")
                raise ConfigError(f"{source}:{line}: duplicate key '{field}' (first defined on line {first})")
            lines[(*path, key)] = line
            out[key] = _construct(value_node, (*path, key), lines, source, scalars, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _construct(child, (*path, str(i)), lines, source, scalars, budget) for i, child in enumerate(node.value)
        ]
    return scalars.construct_object(node, deep=True)


def load_yaml(text: str, source: str = "<string>") -> tuple[Any, Lines]:
    """Parse YAML text into plain Python objects plus a map from key path to 1-based line number."""
    loader = _BoundedLoader(text, source)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply to read") from None
    finally:
        loader.dispose()
    lines: Lines = {}
    if node is None:
        return {}, lines
    try:
        data = _construct(node, (), lines, source, yaml.constructor.SafeConstructor(), _Budget(source))
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply to read") from None
    return data, lines


def load_yaml_file(path: str | Path) -> tuple[Any, Lines]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    return load_yaml(text, str(path))


def apply_overrides(
    data: dict[str, Any], overrides: list[str], origins: dict[tuple[str, ...], str] | None = None
) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides; values are parsed as YAML scalars/flow collections (with the same
    bounds as a config file). `origins` receives each overridden key path and the override that set it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"command-line override '{item}': expected dotted.key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        if not all(keys):
            raise ConfigError(f"command-line override '{item}': empty key segment")
        value = load_yaml(raw, f"command-line override '{item}'")[0] if raw.strip() else ""
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"command-line override '{item}': '{'.'.join(keys[: depth + 1])}' is not a section")
            node = child
        node[keys[-1]] = value
        if origins is not None:
            origins[tuple(keys)] = item
    return data
