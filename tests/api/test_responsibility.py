"""The responsibility list through the API: the list in force, a candidate checked with every
problem and its line, a new version published (regulator only) and then in force."""

from __future__ import annotations

from importlib import resources

from core.db import Conn
from tests.api.conftest import Api

SHIPPED = resources.files("responsibility").joinpath("default.yaml").read_text(encoding="utf-8")
VERSION = 'version: "2026.1"'


def candidate(version: str) -> str:
    assert VERSION in SHIPPED
    return SHIPPED.replace(VERSION, f'version: "{version}"', 1)


def test_the_shipped_list_is_in_force_until_one_is_published(api: Api, api_db: Conn) -> None:
    assert api_db.execute("SELECT count(*) FROM responsibility_lists").fetchone() == (0,)
    body = api.as_("duty_c01").get("/v1/responsibility-list").json()
    assert (body["source"], body["version"]) == ("shipped", "2026.1")
    assert "EL.TRAPPED" in {e["code"] for e in body["entries"]}


def test_a_candidate_with_problems_gets_every_one_with_its_line(api: Api) -> None:
    bad = (
        candidate("2026.2")
        .replace("severity: P0", "severity: P9", 1)
        .replace("    kind: event\n", "    kind: event\n    colour: red\n", 1)
    )
    r = api.as_("firm_f01").post("/v1/responsibility-list/validate", json={"content": bad})
    assert r.status_code == 200, r.text
    check = r.json()
    assert check["valid"] is False
    assert len(check["errors"]) == 2
    lines = bad.splitlines()
    for problem in check["errors"]:
        assert ("P9" in lines[problem["line"] - 1]) or ("colour" in lines[problem["line"] - 1])
    as_yaml = api.as_("firm_f01").post(
        "/v1/responsibility-list/validate",
        content=bad.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert as_yaml.json()["errors"] == check["errors"]
    refused = api.as_("regulator").post("/v1/responsibility-list", json={"content": bad})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_list"
    assert {f["line"] for f in refused.json()["error"]["fields"]} == {
        p["line"] for p in check["errors"]
    }
    syntax = api.as_("firm_f01").post(
        "/v1/responsibility-list/validate", json={"content": "version: [unclosed\n"}
    )
    assert syntax.json()["valid"] is False


def test_publishing_a_version_puts_it_in_force(api: Api, api_db: Conn) -> None:
    text = candidate("2026.3")
    check = api.as_("regulator").post("/v1/responsibility-list/validate", json={"content": text})
    assert check.json()["valid"] is True
    published = api.as_("regulator").post(
        "/v1/responsibility-list", content=text.encode(), headers={"Content-Type": "text/yaml"}
    )
    assert published.status_code == 201, published.text
    assert published.json()["digest"] == check.json()["digest"]
    assert published.json()["published_by"].startswith("api test regulator")
    current = api.as_("township_t01").get("/v1/responsibility-list").json()
    assert (current["source"], current["version"], current["content"]) == (
        "published",
        "2026.3",
        text,
    )
    same = api.as_("regulator").post("/v1/responsibility-list", json={"content": text})
    assert same.status_code == 200  # already published: nothing changes
    changed = text.replace("severity: P0", "severity: P1", 1)
    clash = api.as_("regulator").post("/v1/responsibility-list", json={"content": changed})
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "version_taken"
    versions = api.as_("firm_f01").get("/v1/responsibility-list/versions").json()["items"]
    assert versions[0]["version"] == "2026.3"
    stored = api_db.execute(
        "SELECT content FROM responsibility_lists WHERE version = '2026.3'"
    ).fetchone()
    assert stored == (text,)
