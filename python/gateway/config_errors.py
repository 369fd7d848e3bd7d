"""Locating configuration errors: file, line and field, so a user can fix them at once.

YAML nodes know their line and msgspec knows the path of what it rejected (``$.providers[0].id``);
this module records a line for every data path while parsing and maps msgspec's path back onto
it. msgspec writes a dict value as ``[...]`` and a dict key as ``key``; the offending key is
found by re-validating the document with that dict cut down to one entry at a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec
import yaml

DataPath = tuple[str | int, ...]

try:  # libyaml is ~5x faster and keeps the same marks
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_AT = re.compile(r"^(?P<msg>.*?) - at `(?P<at>[^`]+)`(?: in `(?P<inside>[^`]+)`)?$", re.S)
_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\.\.\.)\]")
_UNKNOWN_FIELD = re.compile(r"^Object (?:contains unknown|missing required) field `([^`]+)`$")


class ConfigError(Exception):
    """A configuration problem, rendered ``{path}:{line}: {field}: {message}``.

    ``line`` is None when there is no file content to point at (missing file); the ``:{line}``
    part is then left out, as is the ``{field}: `` part when ``field`` is empty (syntax errors).
    """

    def __init__(self, path: str, line: int | None, field: str, message: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, int | None, str, str]]:
        return (type(self), (self.path, self.line, self.field, self.message))


def format_field(path: DataPath) -> str:
    """``("providers", 0, "format")`` → ``providers[0].format``."""
    out = ""
    for segment in path:
        if isinstance(segment, int):
            out += f"[{segment}]"
        else:
            out += f".{segment}" if out else segment
    return out


class LineMap:
    """The line (1-based) of every data path of one file; unknown paths use their nearest parent."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._lines: dict[DataPath, int] = {(): 1}

    def record(self, path: DataPath, line: int) -> None:
        self._lines[path] = line

    def line(self, path: DataPath) -> int:
        while path not in self._lines:
            path = path[:-1]
        return self._lines[path]

    def error(self, path: DataPath, message: str) -> ConfigError:
        return ConfigError(self.file, self.line(path), format_field(path), message)


def parse_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse one document keeping node lines; duplicate keys are errors, not silent overwrites."""
    lines = LineMap(file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, lines
        _check_duplicate_keys(node, (), lines, set())
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
        line = None if mark is None else mark.line + 1
        raise ConfigError(file, line, "", f"invalid YAML: {problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, None, "", f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    _record_lines(node, (), lines, set())  # after construction: merge keys (<<) are flattened
    return data, lines


def _check_duplicate_keys(node: yaml.Node, path: DataPath, lines: LineMap, seen: set[int]) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                line = key_node.start_mark.line + 1
                if key_node.value in keys:
                    raise ConfigError(
                        lines.file,
                        line,
                        format_field((*path, key_node.value)),
                        f"duplicate key (first given at line {keys[key_node.value]})",
                    )
                keys[key_node.value] = line
                _check_duplicate_keys(value_node, (*path, key_node.value), lines, seen)
            else:
                _check_duplicate_keys(value_node, path, lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, (*path, index), lines, seen)


def _record_lines(node: yaml.Node, path: DataPath, lines: LineMap, ancestors: set[int]) -> None:
    """A mapping entry's line is its key's line: where the user reads ``field:``."""
    if id(node) in ancestors:  # recursive anchors
        return
    ancestors.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*path, str(key_node.value))
                lines.record(child, key_node.start_mark.line + 1)
                _record_lines(value_node, child, lines, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.record((*path, index), item.start_mark.line + 1)
            _record_lines(item, (*path, index), lines, ancestors)
    ancestors.discard(id(node))


def locate_validation_error(
    exc: msgspec.ValidationError, data: Any, lines: LineMap, root: type[Any]
) -> ConfigError:
    """Turn msgspec's error about decoding ``data`` as ``root`` into a located ConfigError."""

    def probe(variant: Any) -> str | None:
        try:
            msgspec.convert(variant, root, strict=True)
        except msgspec.ValidationError as error:
            return str(error)
        return None

    text = str(exc)
    match = _AT.match(text)
    message, at, inside = (text, "$", None) if match is None else match.group("msg", "at", "inside")
    segments = [a or b for a, b in _SEGMENT.findall((inside or at)[1:])]
    path: list[str | int] = []  # for lines and the field name
    raw: list[Any] = []  # the same path with the data's own keys, for probing
    current, probe_data = data, data
    for segment in segments:
        if segment == "...":
            found = _find_culprit(current, probe_data, raw, text, probe)
            if found is None:
                break
            key, probe_data = found
            segment_key: Any = key
        else:
            segment_key = int(segment) if segment.isdigit() else segment
        path.append(str(segment_key) if segment == "..." else segment_key)
        raw.append(segment_key)
        current = _child(current, segment_key)
    else:
        if inside is not None:  # "at `key` in `$.x`": a dict key was rejected
            found = _find_culprit(current, probe_data, raw, text, probe)
            if found is not None:
                path.append(str(found[0]))
        elif (field := _UNKNOWN_FIELD.match(message)) is not None:
            path.append(field.group(1))
        elif message.startswith("Invalid enum value"):
            allowed = _literal_values(msgspec.inspect.type_info(root), segments)
            if allowed:
                message += f"; expected one of {', '.join(map(repr, allowed))}"
    return lines.error(tuple(path), message)


def _literal_values(info: msgspec.inspect.Type, segments: list[str]) -> list[Any]:
    """The allowed values of the Literal at ``segments``, to say what was expected."""
    for segment in segments:
        info = _unwrap(info, segment)
    info = _unwrap(info, None)
    return list(info.values) if isinstance(info, msgspec.inspect.LiteralType) else []


def _unwrap(info: msgspec.inspect.Type, segment: str | None) -> msgspec.inspect.Type:
    """One step down the type tree (or, with None, through Metadata and Optional only)."""
    while isinstance(info, msgspec.inspect.Metadata | msgspec.inspect.UnionType):
        if isinstance(info, msgspec.inspect.Metadata):
            info = info.type
        else:
            members = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            info = members[0] if len(members) == 1 else info
            if len(members) != 1:
                break
    if segment is None:
        return info
    if isinstance(info, msgspec.inspect.StructType):
        return next((f.type for f in info.fields if f.name == segment), info)
    if isinstance(info, msgspec.inspect.ListType):
        return info.item_type
    if isinstance(info, msgspec.inspect.DictType):
        return info.value_type
    return info


def _child(container: Any, key: Any) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    if isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container):
        return container[key]
    return None


def _find_culprit(
    mapping: Any,
    data: Any,
    raw_path: list[Any],
    text: str,
    probe: Callable[[Any], str | None],
) -> tuple[Any, Any] | None:
    """The first key whose entry alone reproduces the error, and the data cut down to it."""
    if not isinstance(mapping, dict):
        return None
    for key, value in mapping.items():
        variant = _replace_at(data, raw_path, {key: value})
        if probe(variant) == text:
            return key, variant
    return None


def _replace_at(data: Any, path: list[Any], new: Any) -> Any:
    """A copy of ``data`` with the value at ``path`` replaced; only the spine is copied."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        copy: dict[Any, Any] = dict(data)
        copy[head] = _replace_at(data[head], rest, new)
        return copy
    if isinstance(data, list):
        items = list(data)
        items[head] = _replace_at(data[head], rest, new)
        return items
    return data
