"""Gateway: its YAML documents (site configs, device profiles) read into their schema (pure
apart from reading a file), every problem as ``file:line: path: what to fix``.

One loader for both: the size limit, UTF-8, YAML syntax and keys given twice
(``core/located_yaml.py``), a mapping at the top, and the pydantic schema, whose complaints are
placed at their lines. The caller then checks the document's sense and raises its own error with
the problems this one returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from core.located_yaml import Document, Loc, Problem, ProblemsError, decode, located, read

M = TypeVar("M", bound=BaseModel)


def problems_from(err: ValidationError, doc: Document, prefix: Loc = ()) -> list[Problem]:
    """Each of pydantic's complaints as a problem at its line."""
    out = []
    for e in err.errors(include_url=False):
        loc: Loc = prefix + tuple(
            p
            for p in e["loc"]
            if isinstance(p, int)
            or not str(p).startswith(("function-", "int", "float", "constrained"))
        )
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "this key is not part of the format; remove it or check its spelling"
        elif e["type"] == "missing":
            msg = "this key is required"
        out.append(located(doc, loc, msg))
    return out


def parse_document(
    data: bytes,
    source: str,
    schema: type[M],
    error: type[ProblemsError],
    *,
    max_bytes: int,
    what: str,
) -> tuple[Document, M, list[Problem]]:
    """The document, its content in ``schema``, and the problems found so far (keys given
    twice) for the caller to add to. Raises ``error`` when the content does not fit the schema
    at all; ``what`` names the document ("a site config")."""
    if len(data) > max_bytes:
        raise error([Problem(source, 1, "(document)", f"over {max_bytes} bytes")])
    doc, problems = read(decode(data, source, error), source, error)
    if not isinstance(doc.data, dict):
        raise error([Problem(source, 1, "(document)", f"{what} is a mapping")])
    try:
        raw = schema.model_validate(doc.data)
    except ValidationError as e:
        raise error(problems + problems_from(e, doc)) from None
    return doc, raw, problems


def read_document(path: Path, error: type[ProblemsError]) -> bytes:
    """The bytes of the file at ``path``, or ``error`` saying why it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as e:
        raise error([Problem(str(path), 1, "(document)", f"cannot read it ({e.strerror})")]) from e
