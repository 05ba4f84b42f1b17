"""Backups: the manifest of a files archive (pure): each file's name in the archive, where it
came from, its size, SHA-256 and mode, and the backup set it belongs with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from core.errors import ConfigError

FORMAT: Final = 1
NAME: Final = "manifest.json"  # the first member of every files archive


@dataclass(frozen=True, slots=True)
class Entry:
    arcname: str
    source: str  # the absolute path it was read from (and is restored to)
    size: int
    sha256: str
    mode: int
    role: str


@dataclass(frozen=True, slots=True)
class Manifest:
    label: str  # the pgBackRest backup set it was made with
    created_at: datetime
    entries: tuple[Entry, ...]

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "format": FORMAT,
                    "label": self.label,
                    "created_at": self.created_at.isoformat(),
                    "files": [
                        {
                            "arcname": e.arcname,
                            "source": e.source,
                            "size": e.size,
                            "sha256": e.sha256,
                            "mode": oct(e.mode),
                            "role": e.role,
                        }
                        for e in self.entries
                    ],
                },
                indent=1,
            )
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            d: dict[str, Any] = json.loads(text)
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}, this version reads {FORMAT}")
            created = datetime.fromisoformat(d["created_at"])
            entries = tuple(
                Entry(
                    f["arcname"],
                    f["source"],
                    int(f["size"]),
                    f["sha256"],
                    int(f["mode"], 8),
                    f["role"],
                )
                for f in d["files"]
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(where, f"not a shouwang backup manifest ({e})") from None
        if created.tzinfo is None:
            raise ConfigError(where, "created_at has no time zone")
        return cls(str(d["label"]), created, entries)

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries)


def differences(manifest: Manifest, found: dict[str, tuple[int, str]]) -> list[str]:
    """What in an archive (arcname -> size, sha256) disagrees with its manifest; empty when
    every file is there, whole, and nothing else is."""
    out = []
    for e in manifest.entries:
        got = found.get(e.arcname)
        if got is None:
            out.append(f"{e.arcname}: missing from the archive")
        elif got != (e.size, e.sha256):
            out.append(
                f"{e.arcname}: {got[0]} bytes sha256 {got[1][:12]}, the manifest says "
                f"{e.size} bytes sha256 {e.sha256[:12]}"
            )
    listed = {e.arcname for e in manifest.entries}
    out += [f"{name}: in the archive, not in the manifest" for name in sorted(set(found) - listed)]
    return out
