"""Shared: YAML files read with their line numbers, so every problem names its file and line.

The responsibility list and the yearly holiday schedule are both written by people; a refused file
reports every problem at once as ``file:line: path: what to fix`` (:class:`Problem`). Pure.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import yaml

from core.errors import ConfigError

Loc = tuple[str | int, ...]

MAX_PROBLEMS: Final = 100
"""The most problems a refused file lists: enough to fix a real file in one go, and a file made
of thousands of mistakes costs no more to check than one with a hundred."""


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    path: str
    message: str
    more: int = 0  # > 0: this line stands for that many problems not listed one by one

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class ProblemsError(ConfigError):
    """A file that was refused; ``errors`` holds every problem, in file and line order."""

    what: ClassVar[str] = "the file"

    def __init__(self, errors: Sequence[Problem]) -> None:
        order = {f: i for i, f in enumerate(dict.fromkeys(p.file for p in errors))}
        found = sorted(dict.fromkeys(errors), key=lambda p: (order[p.file], p.line))
        total = sum(p.more or 1 for p in found)
        self.errors = [p for p in found if not p.more][:MAX_PROBLEMS]
        if total > len(self.errors):
            last = self.errors[-1] if self.errors else found[-1]
            n = total - len(self.errors)
            msg = f"{n} more problem(s) not listed; fix these and check again"
            self.errors.append(Problem(last.file, last.line, "(document)", msg, more=n))
        files = ", ".join(order)
        super().__init__(files, f"{total} problem(s) in {self.what}")

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.errors)


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, except that a date that does not exist (2027-13-01) stays text, for
    the caller to report with its line instead of the loader failing on it."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    try:
        return yaml.constructor.SafeConstructor.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    node: yaml.Node | None
    data: Any


def path_text(loc: Loc) -> str:
    """``("entries", 3, "code")`` as ``entries[3].code``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(document)"


def decode(data: bytes, source: str, error: type[ProblemsError]) -> str:
    """UTF-8 text (a byte-order mark is dropped), or ``error`` naming the line that is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        msg = "the file is not UTF-8 text; save it as UTF-8"
        raise error([Problem(source, line, "(document)", msg)]) from e


def read(text: str, source: str, error: type[ProblemsError]) -> tuple[Document, list[Problem]]:
    """The parsed document and the keys given twice; a syntax error raises ``error``."""
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as e:  # a control character, before any parsing
        line = text[: e.position].count("\n") + 1
        msg = f"YAML syntax: character {e.character:#x} is not allowed; remove it"
        raise error([Problem(source, line, "(document)", msg)]) from e
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = e.problem or e.context or "YAML syntax error"
        if e.context and e.context_mark is not None and e.problem:
            what += f" ({e.context}, which starts on line {e.context_mark.line + 1})"
        raise error([Problem(source, line, "(document)", f"YAML syntax: {what}")]) from e
    finally:
        loader.dispose()
    return Document(source, node, data), duplicate_keys(node, source)


def duplicate_keys(node: yaml.Node | None, source: str) -> list[Problem]:
    """Keys given twice in one mapping, which YAML would otherwise resolve silently."""
    out: list[Problem] = []
    stack: list[tuple[yaml.Node, Loc]] = [(node, ())] if node is not None else []
    seen: set[int] = set()
    while stack:
        n, loc = stack.pop()
        if id(n) in seen:  # an alias repeats a node already walked
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in n.value:
                key = str(k.value) if isinstance(k, yaml.ScalarNode) else "?"
                line = k.start_mark.line + 1
                if key in first:
                    msg = f"'{key}' appears twice here (first on line {first[key]}); keep one"
                    out.append(Problem(source, line, path_text((*loc, key)), msg))
                first.setdefault(key, line)
                stack.append((v, (*loc, key)))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend((child, (*loc, i)) for i, child in enumerate(n.value))
    return out


_KEYS: weakref.WeakKeyDictionary[yaml.MappingNode, dict[str, tuple[int, yaml.Node]]] = (
    weakref.WeakKeyDictionary()
)


def _keys(node: yaml.MappingNode) -> dict[str, tuple[int, yaml.Node]]:
    """A mapping's keys with their lines and values (the last of a repeated key), indexed once
    per node: looking up many problems in one wide mapping stays linear."""
    index = _KEYS.get(node)
    if index is None:
        index = {
            str(k.value): (k.start_mark.line + 1, v)
            for k, v in node.value
            if isinstance(k, yaml.ScalarNode)
        }
        _KEYS[node] = index
    return index


def line_of(node: yaml.Node | None, loc: Loc) -> int:
    """The line of the node at ``loc``, or of its nearest ancestor present in the file."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            found = _keys(node).get(str(part))
            if found is not None:
                line, child = found
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def located(doc: Document, loc: Loc, message: str) -> Problem:
    """A problem at ``loc`` of ``doc``."""
    return Problem(doc.source, line_of(doc.node, loc), path_text(loc), message)
