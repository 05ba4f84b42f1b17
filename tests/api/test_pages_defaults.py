"""The duty pages' and links' defaults are the same wherever they are stated: the settings, the
link maker's own default, the operations guide's table and docs/pages.md; and a link made now
with the settings' lifetime expires when they say."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.settings import Settings
from lifecycle.acknowledge import AckError, read_token
from notify.ack_links import AckLinks

DOCS = Path(__file__).resolve().parents[2] / "docs"
# The settings of issue 16's pages, links, phones and demo, as the operations guide lists them.
CHECKED = re.compile(r"SHOUWANG_(PAGES_|NOTIFY_ACK_VALID|NOTIFY_VOICE|DEMO_)")


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _guide_defaults() -> dict[str, str]:
    """Setting name -> the default the operations guide's table gives for it. A row may name
    several settings (`SHOUWANG_A_B` / `_C`: the suffix replaces the last word(s) of the first
    name) with as many defaults, in order."""
    fields = {f"SHOUWANG_{n.upper()}" for n in Settings.model_fields}
    out: dict[str, str] = {}
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    for row in re.findall(r"^\| (`SHOUWANG_[^|]+) \| ([^|]+) \|", text, re.M):
        names = re.findall(r"`([A-Z0-9_]+)`", row[0])
        first = names[0]
        full = [first]
        for suffix in names[1:]:
            words = first.split("_")
            full += [n for k in range(1, 4) if (n := "_".join(words[:-k]) + suffix) in fields][:1]
        values = [v.strip().strip("`") for v in row[1].split(" / ")]
        if len(values) == len(full):
            out.update(zip(full, values, strict=True))
    return out


def test_the_guide_states_each_default_as_the_settings_have_it() -> None:
    guide = _guide_defaults()
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    checked = {
        name: _shown(getattr(defaults, name.removeprefix("SHOUWANG_").lower()))
        for name in guide
        if CHECKED.match(name)
    }
    assert len(checked) >= 10, sorted(guide)
    assert {n: guide[n] for n in checked} == checked


def test_a_link_lasts_half_an_hour_by_default_everywhere() -> None:
    hours = Settings(_env_file=None).notify_ack_valid_hours  # type: ignore[call-arg]
    assert hours == 0.5
    assert AckLinks("s", "https://duty.example/v1/ack").valid == timedelta(hours=hours)
    pages = (DOCS / "pages.md").read_text(encoding="utf-8")
    assert f"`SHOUWANG_NOTIFY_ACK_VALID_HOURS` (default {hours * 60:.0f} minutes)" in pages
    now = datetime.now(UTC).replace(microsecond=0)
    links = AckLinks("s", "https://duty.example/v1/ack", timedelta(hours=hours))
    token = links.link(7, "值班员 李", now, person_id=3).rsplit("/", 1)[1]
    read = read_token("s", token, now=now.timestamp())
    assert read.expires == int((now + timedelta(minutes=30)).timestamp())
    with pytest.raises(AckError, match="expired"):
        read_token("s", token, now=(now + timedelta(minutes=30, seconds=1)).timestamp())


def test_page_cookies_are_secure_by_default() -> None:
    assert Settings(_env_file=None).pages_cookie_secure is True  # type: ignore[call-arg]
