"""YAML read into plain Python values, with the line and column of every key, value and item.

PyYAML's composer gives a node tree with marks; :func:`read_yaml` turns it into dicts, lists
and scalars and keeps a side table, :class:`Positions`, from each YAML path
(``("routes", "clean", "steps", 0, "filter")``) to where its text starts. Errors found later,
by pydantic or by the graph checks, are located through that table, the way a compiler points
at a line and column.

Reading also substitutes ``${VAR}`` in strings (see :mod:`._env`) and refuses what a pipeline
file must not hold: duplicate keys, keys that are not text, tags other than YAML's own,
recursive aliases and alias bombs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from millstream.core.errors import ConfigError

from ._env import EnvSubstitutionError, substitute

__all__ = ["Document", "Position", "Positions", "YamlPath", "format_path", "read_yaml"]

YamlPath = tuple[str | int, ...]
"""A path into a YAML document: mapping keys and list indexes, from the root."""

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAX_NODES = 100_000
"""More values than this (aliases expand) is an alias bomb, not a pipeline file."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a piece of text starts: 1-based line and column."""

    line: int
    column: int


def format_path(path: YamlPath) -> str:
    """``("routes", "clean", "steps", 0, "filter")`` → ``routes.clean.steps[0].filter``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class Positions:
    """Where each key, value and list item of one file starts.

    ``value(path)`` is where the value at ``path`` starts, ``key(path)`` where its key is written
    (for a list item, where the item starts). Both fall back to the nearest ancestor that is in
    the file, so a path that names something missing (a required key) still points close by.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self._values: dict[YamlPath, Position] = {}
        self._keys: dict[YamlPath, Position] = {}

    def value(self, path: YamlPath) -> Position:
        """Where the value at ``path`` starts (or its nearest ancestor's)."""
        for end in range(len(path), -1, -1):
            found = self._values.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)

    def key(self, path: YamlPath) -> Position:
        """Where the key of the entry at ``path`` is written (where the item starts, for a list
        item); for a path not in the file, the key of its nearest ancestor that is."""
        for end in range(len(path), -1, -1):
            found = self._keys.get(path[:end]) or self._values.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)

    def __contains__(self, path: object) -> bool:
        return path in self._values

    def error(self, message: str, path: YamlPath, *, at_key: bool = False) -> ConfigError:
        """A ConfigError located at ``path`` (its key when ``at_key``), named by its YAML path."""
        where = self.key(path) if at_key else self.value(path)
        return ConfigError(
            message,
            file=self.file,
            line=where.line,
            column=where.column,
            path=format_path(path) or None,
        )

    def where(self, path: YamlPath, *, at_key: bool = True) -> str:
        """``file:line:column`` of ``path``, for plans and messages."""
        where = self.key(path) if at_key else self.value(path)
        return f"{self.file}:{where.line}:{where.column}"

    def _set(self, path: YamlPath, node: Node, *, key: Node | None = None) -> None:
        self._values[path] = _position(node)
        if key is not None:
            self._keys[path] = _position(key)


@dataclass(frozen=True)
class Document:
    """A YAML file read: its ``value`` as plain Python data and where each part of it is."""

    file: Path
    value: Any
    positions: Positions


def read_yaml(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    text: str | None = None,
) -> Document:
    """Read the YAML file at ``path`` (or ``text``, named ``path`` in messages).

    ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` in strings are replaced from ``env``
    (default: ``os.environ``); ``$${`` stands for a literal ``${``. Raises ConfigError, with
    the file, line and column, for a file that cannot be read, YAML that does not parse, a
    duplicate key, an unknown tag or an unset variable.
    """
    shown = os.fspath(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("no such file", file=shown) from None
        except IsADirectoryError:
            raise ConfigError("is a directory, not a YAML file", file=shown) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"not UTF-8 text ({exc.reason})", file=shown) from None
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror or exc}", file=shown) from None
    positions = Positions(shown)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, shown) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=shown) from None
    if root is None:
        return Document(Path(path), None, positions)
    builder = _Builder(positions, os.environ if env is None else env)
    return Document(Path(path), builder.build(root, ()), positions)


def _position(node: Node) -> Position:
    mark = node.start_mark
    return Position(mark.line + 1, mark.column + 1)


def _yaml_error(exc: yaml.MarkedYAMLError, file: str) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "not valid YAML"
    if mark is None:
        return ConfigError(f"invalid YAML: {problem}", file=file)
    return ConfigError(
        f"invalid YAML: {problem}", file=file, line=mark.line + 1, column=mark.column + 1
    )


class _Builder:
    """Walks a node tree once, building values and recording positions."""

    def __init__(self, positions: Positions, env: Mapping[str, str]) -> None:
        self.positions = positions
        self.env = env
        self.constructor = SafeConstructor()
        self.active: set[int] = set()
        self.count = 0

    def build(self, node: Node, path: YamlPath, key: Node | None = None) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise self._error(node, path, "too many values (an alias expands without bound?)")
        self.positions._set(path, node, key=key)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.active:
            raise self._error(node, path, "an alias refers to a value that contains it")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise self._error(node, path, f"unsupported YAML node {type(node).__name__}")

    def _mapping(self, node: MappingNode, path: YamlPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        written: dict[str, Node] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._error(key_node, path, "a key must be text, not a list or a mapping")
            name = key_node.value
            first = written.get(name)
            if first is not None:
                line = first.start_mark.line + 1
                raise self._error(
                    key_node,
                    (*path, name),
                    f"duplicate key {name!r} (first given on line {line}); give each key once",
                )
            written[name] = key_node
            result[name] = self.build(value_node, (*path, name), key=key_node)
        for merged in merges:
            self._merge(merged, path, result)
        return result

    def _merge(self, node: Node, path: YamlPath, into: dict[str, Any]) -> None:
        """``<<: *anchor`` (or a list of them): keys not written here come from the anchor."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                raise self._error(source, path, "`<<` merges a mapping (or a list of mappings)")
            for key_node, value_node in source.value:
                if key_node.tag == _MERGE:
                    self._merge(value_node, path, into)
                    continue
                if not isinstance(key_node, ScalarNode) or key_node.value in into:
                    continue
                name = key_node.value
                into[name] = self.build(value_node, (*path, name), key=key_node)

    def _scalar(self, node: ScalarNode, path: YamlPath) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value  # dates stay text: configs and expressions expect strings
        try:
            value = self.constructor.construct_object(node)
        except ConstructorError as exc:
            raise self._error(
                node, path, f"unsupported YAML tag {node.tag!r}; {exc.problem}"
            ) from None
        if node.tag == _STR and "$" in value:
            try:
                value = substitute(value, self.env)
            except EnvSubstitutionError as exc:
                raise self._substitution_error(node, path, exc) from None
        return value

    def _substitution_error(
        self, node: ScalarNode, path: YamlPath, exc: EnvSubstitutionError
    ) -> ConfigError:
        start = node.start_mark
        column = start.column + 1
        if start.line == node.end_mark.line and "\\" not in node.value:
            column += exc.offset + (1 if node.style in ("'", '"') else 0)
        return ConfigError(
            exc.message,
            file=self.positions.file,
            line=start.line + 1,
            column=column,
            path=format_path(path) or None,
        )

    def _error(self, node: Node, path: YamlPath, message: str) -> ConfigError:
        mark = node.start_mark
        return ConfigError(
            message,
            file=self.positions.file,
            line=mark.line + 1,
            column=mark.column + 1,
            path=format_path(path) or None,
        )
