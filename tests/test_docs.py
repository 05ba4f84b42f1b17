"""The documents a maintainer reads point at things that exist: every cited document, every
file path and every ``shouwang`` command named in the README and docs/."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command

from shouwang.cli import app

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = [p for p in ROOT.rglob("*.py") if not {".venv", ".state"} & set(p.parts)]
CITED_DOC = re.compile(r"\bdocs/[\w-]+\.md\b")
PATH = re.compile(r"`((?:[a-z_]+/)+[\w.-]+\.(?:py|yaml|sql|md|sh|yml))`")
COMMAND = re.compile(r"`shouwang ([a-z][\w -]*?)(?: [A-Z\[<-]|`)")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_a_document_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [p for p in PATH.findall(text) if not (ROOT / p).exists()]
    missing += [d for d in CITED_DOC.findall(text) if not (ROOT / d).exists()]
    assert missing == []


def test_every_document_the_code_cites_exists() -> None:
    missing = {
        f"{src.relative_to(ROOT)}: {d}"
        for src in SOURCES
        for d in CITED_DOC.findall(src.read_text(encoding="utf-8"))
        if not (ROOT / d).exists()
    }
    assert missing == set()


def _known(words: list[str]) -> bool:
    group = get_command(app)
    for word in words:
        sub = getattr(group, "commands", {}).get(word)
        if sub is None:
            return not hasattr(group, "commands")  # arguments after a leaf command
        group = sub
    return True


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_command_a_document_names_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    unknown = [
        c for c in COMMAND.findall(text) if not _known([w for w in shlex.split(c) if w.islower()])
    ]
    assert unknown == []


def test_every_setting_is_documented_in_the_operations_guide() -> None:
    from core.settings import Settings

    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(SHOUWANG_[A-Z0-9_]+)`", guide))
    # "`SHOUWANG_API_HOST` / `_PORT`": a suffix replaces the last word(s) of the name before it.
    for line in guide.splitlines():
        names = re.findall(r"`(SHOUWANG_[A-Z0-9_]+)`", line)
        for suffix in re.findall(r"`(_[A-Z0-9_]+)`", line):
            for name in names:
                words = name.split("_")
                documented |= {"_".join(words[:-k]) + suffix for k in range(1, 4)}
    missing = sorted(
        f"SHOUWANG_{name.upper()}"
        for name in Settings.model_fields
        if f"SHOUWANG_{name.upper()}" not in documented
    )
    assert missing == []
