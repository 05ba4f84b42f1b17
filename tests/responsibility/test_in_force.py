"""Which responsibility list is in force is answered once (``responsibility.in_force``): analytics,
the API, the dashboards and public disclosure get the same list in every set-up: the shipped
list; a version published through the API, with override files; a list file pinned in the
settings, with county and community override files, over a published version. A published
version that fails with the override files is passed over by everyone alike."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analytics.__main__ import build
from api.disclosure import last_quarter
from api.tokens import issue, revoke
from core.db import Conn
from core.settings import Settings
from dashboards.commands import list_in_force as dashboards_list
from responsibility.in_force import list_in_force
from responsibility.loader import ResponsibilityList, shipped_text
from tests.api import report_data as make
from tests.api.conftest import in_process

SHIPPED = shipped_text()
TRAPPED = "name: {zh: 电梯困人, en: Passengers trapped in a lift}"
COUNTY = """scope: county:DEMO
entries:
  - code: EL.TRAPPED
    limits:
      arrival: {value: 15, unit: calendar_minutes}
"""
COMMUNITY = """scope: community:C01
entries:
  - code: EL.TRAPPED
    name: {en: Passengers trapped in a lift at C01}
"""


def a_list(version: str, trapped_en: str = "Passengers trapped in a lift") -> str:
    """The shipped list as ``version``, the trapped-passenger entry named ``trapped_en``."""
    assert 'version: "2026.1"' in SHIPPED and TRAPPED in SHIPPED
    text = SHIPPED.replace('version: "2026.1"', f'version: "{version}"', 1)
    return text.replace(TRAPPED, f"name: {{zh: 电梯困人, en: {trapped_en}}}", 1)


def overrides(directory: Path, **files: str) -> Path:
    directory.mkdir()
    for name, text in files.items():
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


@dataclass
class Callers:
    """What each caller takes as the list in force, as (version, digest), and the name public
    disclosure gives the trapped-passenger work orders of C01."""

    analytics: tuple[str, str]
    api: tuple[str, str]
    dashboards: tuple[str, str]
    api_body: dict[str, Any]
    disclosed_name: str | None
    analytics_list: ResponsibilityList
    # What analytics itself files against for a C01 elevator's trapped passengers (its county's
    # and community's overrides applied): the arrival limit in minutes.
    c01_trapped_arrival: float | None


@pytest.fixture
def regulator(db: Conn) -> Iterator[str]:
    token = issue(db, "county_regulator", "in-force test regulator", {})
    yield token.token
    revoke(db, token.id)


@pytest.fixture
def trapped_last_quarter(db: Conn) -> Iterator[None]:
    """A trapped-passenger work order at C01 in the last complete quarter, for disclosure."""
    row = db.execute(
        "SELECT d.id FROM devices d JOIN communities c ON c.id = d.community_id"
        " WHERE c.code = 'C01' AND d.device_class = 'elevator' ORDER BY d.uid LIMIT 1"
    ).fetchone()
    assert row is not None
    start, _ = last_quarter(datetime.now(UTC)).bounds()
    wo = make.work_order(db, int(row[0]), "EL.TRAPPED", start + timedelta(days=10), closed_s=600)
    yield
    alarm = db.execute("SELECT alarm_id FROM work_orders WHERE id = %s", (wo,)).fetchone()
    assert alarm is not None
    db.execute("DELETE FROM work_order_breaches WHERE work_order_id = %s", (wo,))
    db.execute("DELETE FROM work_orders WHERE id = %s", (wo,))
    db.execute("DELETE FROM alarms WHERE id = %s", (alarm[0],))


@pytest.fixture
def published(db: Conn) -> Iterator[list[str]]:
    """Versions published in the test (appended by it), withdrawn afterwards."""
    versions: list[str] = []
    yield versions
    db.execute("DELETE FROM responsibility_lists WHERE version = ANY(%s)", (versions,))


def publish(s: Settings, token: str, text: str) -> None:
    with in_process(s) as client:
        r = client.request(
            "POST",
            "/v1/responsibility-list",
            content=text.encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"},
        )
    assert r.status_code == 201, r.text


def every_caller(s: Settings, token: str) -> Callers:
    service = build(s, clock="data")
    (elevator,) = service.conn.execute(
        "SELECT d.id FROM devices d JOIN communities c ON c.id = d.community_id"
        " WHERE c.code = 'C01' AND d.device_class = 'elevator' ORDER BY d.id LIMIT 1"
    ).fetchone() or (0,)
    service.conn.close()
    trapped = service._entry(int(elevator), "EL.TRAPPED")
    arrival = trapped.limits.arrival if trapped is not None else None
    rules = service.entries
    dash = dashboards_list(s)
    with in_process(s) as client:
        auth = {"Authorization": f"Bearer {token}"}
        body = client.request("GET", "/v1/responsibility-list", headers=auth).json()
        public = client.request("GET", "/v1/public/communities/C01")
    assert public.status_code == 200, public.text
    names = {t["event_code"]: t["name_en"] for t in public.json()["incidents"]["by_type"]}
    return Callers(
        analytics=(rules.version, rules.digest),
        api=(body["version"], body["digest"]),
        dashboards=(dash.version, dash.digest),
        api_body=body,
        disclosed_name=names.get("EL.TRAPPED"),
        analytics_list=rules,
        c01_trapped_arrival=None if arrival is None else arrival.value,
    )


def assert_one_answer(seen: Callers, version: str, trapped_at_c01: str) -> None:
    assert seen.analytics[0] == version
    assert seen.api == seen.analytics
    assert seen.dashboards == seen.analytics
    in_c01 = seen.analytics_list.for_community("C01", "DEMO")["EL.TRAPPED"]
    assert seen.disclosed_name == in_c01.name.en == trapped_at_c01
    assert in_c01.limits.arrival is not None
    assert seen.c01_trapped_arrival == in_c01.limits.arrival.value, "analytics files as listed"


@pytest.mark.usefixtures("trapped_last_quarter")
def test_every_caller_gets_the_same_list_in_force(
    settings: Settings, db: Conn, regulator: str, published: list[str], tmp_path: Path
) -> None:
    assert db.execute("SELECT count(*) FROM responsibility_lists").fetchone() == (0,)

    # (a) Nothing published, nothing pinned: the shipped list.
    seen = every_caller(settings, regulator)
    assert_one_answer(seen, "2026.1", "Passengers trapped in a lift")
    assert seen.api_body["source"] == "shipped" and seen.api_body["content"] == SHIPPED
    assert seen.api_body["overrides"] == [] and seen.api_body["published_by"] == "system"

    # (b) A version published through the API, with a county override file.
    text = a_list("2026.7", "Passengers trapped in a lift (2026.7)")
    publish(settings, regulator, text)
    published.append("2026.7")
    county = settings.model_copy(
        update={"responsibility_overrides": overrides(tmp_path / "county", county=COUNTY)}
    )
    seen = every_caller(county, regulator)
    assert_one_answer(seen, "2026.7", "Passengers trapped in a lift (2026.7)")
    body = seen.api_body
    assert (body["source"], body["content"], body["overrides"]) == (
        "published",
        text,
        ["county:DEMO"],
    )
    assert body["published_by"].startswith("in-force test regulator")
    as_published = db.execute(
        "SELECT digest FROM responsibility_lists WHERE version = '2026.7'"
    ).fetchone()
    assert as_published is not None and body["digest"] != as_published[0], (
        "the digest in force covers the override file"
    )
    arrival = seen.analytics_list.for_community("C01", "DEMO")["EL.TRAPPED"].limits.arrival
    assert arrival is not None and arrival.value == 15
    assert seen.c01_trapped_arrival == 15, "analytics applies the county's override"

    # (c) A file pinned in the settings wins over the published version; the county and
    # community override files apply on top.
    pinned_file = tmp_path / "pinned.yaml"
    pinned_file.write_text(a_list("2026.8-pinned"), encoding="utf-8")
    pinned = settings.model_copy(
        update={
            "responsibility_list": pinned_file,
            "responsibility_overrides": overrides(
                tmp_path / "both", county=COUNTY, community=COMMUNITY
            ),
        }
    )
    seen = every_caller(pinned, regulator)
    assert_one_answer(seen, "2026.8-pinned", "Passengers trapped in a lift at C01")
    body = seen.api_body
    assert (body["source"], body["published_at"], body["published_by"]) == (
        "configured",
        None,
        "system",
    )
    assert sorted(body["overrides"]) == ["community:C01", "county:DEMO"]
    assert body["content"] == pinned_file.read_text(encoding="utf-8")


def test_a_published_version_that_fails_with_the_overrides_is_passed_over_by_everyone(
    settings: Settings,
    db: Conn,
    regulator: str,
    published: list[str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = settings.model_copy(
        update={"responsibility_overrides": overrides(tmp_path / "county", county=COUNTY)}
    )
    publish(s, regulator, a_list("2026.5"))
    published.append("2026.5")
    running = build(s, clock="data")
    try:
        assert running.entries.version == "2026.5"
        # Valid on its own (1 → 20 min response, 30 min arrival), but the county's 15-minute
        # arrival is now shorter than the response.
        slow = a_list("2026.6").replace(
            "response: {value: 1, unit: calendar_minutes}     # maintenance unit answers",
            "response: {value: 20, unit: calendar_minutes}    # maintenance unit answers",
            1,
        )
        assert slow != a_list("2026.6")
        publish(s, regulator, slow)
        published.append("2026.6")
        with caplog.at_level(logging.ERROR, logger="shouwang.responsibility"):
            assert running.refresh_list() is False, "the list in force stays"
        assert "published list 2026.6 is passed over" in caplog.text
        assert running.entries.version == "2026.5"
        fresh = list_in_force(db, pinned=None, overrides_dir=s.responsibility_overrides)
        assert (fresh.source, fresh.rules.version) == ("published", "2026.5")
        assert fresh.rules.digest == running.entries.digest
        seen = every_caller(s, regulator)
        assert seen.analytics[0] == "2026.5"
        assert seen.api == seen.analytics == seen.dashboards
        # Without the override file the newer version is the one in force.
        assert list_in_force(db, pinned=None, overrides_dir=None).rules.version == "2026.6"
        plain = build(settings, clock="data")
        plain.conn.close()
        assert plain.entries.version == "2026.6"
    finally:
        running.conn.close()


def test_a_caller_holding_the_list_in_force_gets_it_back_unchanged(
    settings: Settings, db: Conn, regulator: str, published: list[str]
) -> None:
    shipped = list_in_force(db, pinned=None, overrides_dir=None)
    assert shipped.source == "shipped" and shipped.published is None
    again = list_in_force(db, pinned=None, overrides_dir=None, current=shipped)
    assert again is shipped
    publish(settings, regulator, a_list("2026.4"))
    published.append("2026.4")
    newer = list_in_force(db, pinned=None, overrides_dir=None, current=shipped)
    assert newer is not shipped and newer.source == "published"
    assert newer.published is not None and newer.published.version == "2026.4"
    assert newer.text == a_list("2026.4")
    assert list_in_force(db, pinned=None, overrides_dir=None, current=newer) is newer
