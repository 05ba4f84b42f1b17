"""Responsibility: which event-responsibility list is in force, the one answer every stage uses
(analytics, the API, dashboards, public disclosure). Reads the database and files.

1. A list file pinned in the settings (``SHOUWANG_RESPONSIBILITY_LIST``) wins;
2. else the newest version published through the API (table ``responsibility_lists``, newest
   ``published_at`` first, then the highest ``version``);
3. else the shipped default, ``responsibility/default.yaml``.

The county and community override files (``SHOUWANG_RESPONSIBILITY_OVERRIDES``, a directory of
``*.yaml``) always apply on top.

A published version was checked when it was published. Should it fail now with the override
files (one changed since), it is logged and passed over for the next older version, or in the
end the shipped default: the list that was in force before it stays in force. A caller that holds
the list in force (``current``: a running analytics) keeps it, unchecked, when it is that answer,
and also when override files are refused; so a running analytics and a fresh caller (the API,
dashboards, a restart) agree. A pinned file with problems, or override files refused with no
current list to keep, raise :class:`ListError`: there is no list in force to answer with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from core.db import Conn
from responsibility.loader import (
    ListError,
    Override,
    ResponsibilityList,
    default_list,
    load_list,
    load_overrides,
    parse_list,
    read_text,
    shipped_text,
)

log = logging.getLogger("shouwang.responsibility")

Source = Literal["pinned", "published", "shipped"]


@dataclass(frozen=True, slots=True)
class Published:
    """A version as published through the API; ``digest`` is that of the list as published,
    without the override files."""

    version: str
    digest: str
    published_at: datetime
    published_by: str


@dataclass(frozen=True, slots=True)
class InForce:
    """The list in force and where it came from.

    ``rules`` is the list with the override files applied (its ``digest`` covers them);
    ``text`` is the YAML of the list itself (the pinned file, the published version or the
    shipped file); ``published`` is set when ``source`` is ``"published"``.
    """

    rules: ResponsibilityList
    source: Source
    text: str
    published: Published | None = None


def list_in_force(
    conn: Conn,
    *,
    pinned: Path | None,
    overrides_dir: Path | None,
    current: InForce | None = None,
) -> InForce:
    """The responsibility list in force (see the module's docstring).

    ``pinned`` and ``overrides_dir`` are the settings ``responsibility_list`` and
    ``responsibility_overrides``. ``current`` is the caller's list in force, if it has one (a
    running analytics): it is returned as it is (the same object) while it is still the answer,
    or when what would replace it fails with the override files.
    """
    files = sorted(overrides_dir.glob("*.yaml")) if overrides_dir is not None else []
    if pinned is not None:
        return InForce(load_list(pinned, files), "pinned", read_text(pinned))
    try:
        overrides = load_overrides(files)
    except ListError as e:
        return _keep(current, e, "the override files are refused")
    for version in _published(conn):
        if current is not None and current.published == version:
            return current
        name = f"published list {version.version}"
        text = _content(conn, version.version)
        if text is None:  # withdrawn since the first query
            continue
        try:
            rules = _with(parse_list(text, name), overrides)
        except ListError as e:
            log.error("%s is passed over: refused now (with the override files)\n%s", name, e)
            continue
        return InForce(rules, "published", text, version)
    if current is not None and current.source == "shipped":
        return current
    try:
        return InForce(_with(default_list(), overrides), "shipped", shipped_text())
    except ListError as e:
        return _keep(current, e, "the shipped list fails with the override files")


def _keep(current: InForce | None, e: ListError, why: str) -> InForce:
    """``current``, with ``why`` logged; ``e`` raised when there is no current list."""
    if current is None:
        raise e
    rules = current.rules
    log.error("%s; list %s (%s) stays in force\n%s", why, rules.version, rules.source, e)
    return current


def _with(base: ResponsibilityList, overrides: list[Override]) -> ResponsibilityList:
    return base.with_overrides(overrides) if overrides else base


def _published(conn: Conn) -> list[Published]:
    rows = conn.execute(
        "SELECT version, digest, published_at, published_by FROM responsibility_lists"
        " ORDER BY published_at DESC, version DESC"
    ).fetchall()
    return [Published(str(v), str(d), at, str(by)) for v, d, at, by in rows]


def _content(conn: Conn, version: str) -> str | None:
    row = conn.execute(
        "SELECT content FROM responsibility_lists WHERE version = %s", (version,)
    ).fetchone()
    return None if row is None else str(row[0])
