"""Backups: what pgBackRest's repository holds, read from ``pgbackrest info --output=json``
(pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BackupSet:
    label: str
    kind: str  # full | diff | incr
    started: datetime
    stopped: datetime
    size: int  # the cluster's bytes
    repo_size: int  # what it takes in the repository (compressed; an incr only its changes)
    wal_start: str
    wal_stop: str
    prior: str | None  # the set it depends on


@dataclass(frozen=True, slots=True)
class Catalogue:
    sets: tuple[BackupSet, ...]  # oldest first
    wal_min: str | None  # the archived WAL kept
    wal_max: str | None
    status: str  # pgBackRest's word: "ok", or what is wrong

    @property
    def newest(self) -> BackupSet | None:
        return self.sets[-1] if self.sets else None

    @property
    def earliest_recovery(self) -> datetime | None:
        """The earliest moment a point-in-time restore reaches: the end of the oldest backup."""
        return self.sets[0].stopped if self.sets else None


def _ts(v: Any) -> datetime:
    return datetime.fromtimestamp(int(v), UTC)


def parse_info(text: str) -> Catalogue:
    try:
        stanzas = json.loads(text)
        st = stanzas[0]
        sets = tuple(
            BackupSet(
                label=b["label"],
                kind=b["type"],
                started=_ts(b["timestamp"]["start"]),
                stopped=_ts(b["timestamp"]["stop"]),
                size=int(b["info"]["size"]),
                repo_size=int(b["info"]["repository"]["delta"]),
                wal_start=b["archive"]["start"] or "",
                wal_stop=b["archive"]["stop"] or "",
                prior=b.get("prior"),
            )
            for b in st.get("backup", [])
        )
        archive = st.get("archive") or []
        wal_min = archive[-1]["min"] if archive else None
        wal_max = archive[-1]["max"] if archive else None
        status = str(st["status"]["message"])
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise ConfigError("pgbackrest info", f"unexpected output ({e}): {text[:200]!r}") from None
    return Catalogue(tuple(sorted(sets, key=lambda s: s.started)), wal_min, wal_max, status)
