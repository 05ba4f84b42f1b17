"""Shared: alarm and work-order severity, P0 (most severe) to P3, defined once.

The responsibility list gives each entry a severity, the alarm lifecycle raises it, the API
filters by it, dashboards colour by it and notifications are grouped by it. The values are the
strings stored in the database and sent in JSON (``"P0"`` … ``"P3"``). Pure.
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        """0 for P0 (the most severe), 3 for P3."""
        return _RANK[self]

    def more_severe_than(self, other: Severity | str) -> bool:
        """Whether this severity is above ``other`` (a Severity or its text, e.g. from the
        database); ValueError for text that is not a severity."""
        return self.rank < Severity(other).rank


_RANK = {s: i for i, s in enumerate(Severity)}
