"""API (duty pages): event names as the responsibility list gives them (``EL.TRAPPED`` is
"电梯困人 Passengers trapped in a lift"), per list version, read once per version and kept."""

from __future__ import annotations

from typing import Any

import psycopg

from responsibility.loader import ListError, default_list, parse_list

Names = dict[str, tuple[str, str]]


def _of(content: str | None, version: str) -> Names:
    try:
        lst = default_list() if content is None else parse_list(content, f"list {version}")
    except ListError:
        lst = default_list()
    return {code: (e.name.zh, e.name.en) for code, e in lst.entries.items()}


class EventNames:
    """Names by list version; a version not in the database falls back to the shipped list,
    and a code in no list to the device catalogue's event names, then to the code itself."""

    def __init__(self) -> None:
        self._versions: dict[str, Names] = {}
        self._catalogue: Names | None = None

    async def name(
        self, db: psycopg.AsyncConnection[Any], code: str, version: str
    ) -> tuple[str, str]:
        names = self._versions.get(version)
        if names is None:
            cur = await db.execute(
                "SELECT content FROM responsibility_lists WHERE version = %s", (version,)
            )
            row = await cur.fetchone()
            names = _of(None if row is None else str(row[0]), version)
            if len(self._versions) > 50:
                self._versions.clear()
            self._versions[version] = names
        if code in names:
            return names[code]
        if self._catalogue is None:
            cur = await db.execute("SELECT code, name_zh, name_en FROM event_codes")
            self._catalogue = {str(c): (str(z), str(e)) for c, z, e in await cur.fetchall()}
        return self._catalogue.get(code, (code, code))
