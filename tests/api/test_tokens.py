"""API tokens: issued with a role and a scope, shown once, kept only as a SHA-256 digest,
refused at once when revoked; the ``shouwang api token`` commands; the public docs."""

from __future__ import annotations

import hashlib
import subprocess
import time

import pytest

from api.tokens import issue, revoke
from core.db import Conn
from core.errors import RegistryError
from core.settings import Settings
from tests.api.conftest import Api, in_process
from tests.conftest import Broker, settings_for, shouwang


def test_a_token_is_kept_only_as_its_digest_and_stops_when_revoked(
    api_settings: Settings, api_db: Conn
) -> None:
    issued = issue(api_db, "firm_admin", "digest test", {"firm": "F01"})
    stored = api_db.execute(
        "SELECT token_hash FROM api_tokens WHERE id = %s", (issued.id,)
    ).fetchone()
    assert stored == (hashlib.sha256(issued.token.encode()).digest(),)
    headers = {"Authorization": f"Bearer {issued.token}"}
    # Without the token cache a revocation is in force for the very next request.
    with in_process(api_settings.model_copy(update={"api_token_cache_s": 0.0})) as client:
        assert client.request("GET", "/v1/communities", headers=headers).status_code == 200
        revoke(api_db, issued.id)
        refused = client.request("GET", "/v1/communities", headers=headers)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["code"] == "unauthorized"
        wrong = client.request("GET", "/v1/communities", headers={"Authorization": "Basic eDp5"})
        assert wrong.status_code == 401


TTL = 1.0


def test_a_revoked_token_stops_within_the_cache_time(api_settings: Settings, api_db: Conn) -> None:
    issued = issue(api_db, "firm_admin", "cache test", {"firm": "F01"})
    headers = {"Authorization": f"Bearer {issued.token}"}
    with in_process(api_settings.model_copy(update={"api_token_cache_s": TTL})) as client:
        assert client.request("GET", "/v1/communities", headers=headers).status_code == 200
        revoked_at = time.monotonic()
        revoke(api_db, issued.id)
        while client.request("GET", "/v1/communities", headers=headers).status_code == 200:
            assert time.monotonic() - revoked_at < TTL, "still accepted after the cache time"
            time.sleep(0.05)
        time.sleep(TTL)
        assert client.request("GET", "/v1/communities", headers=headers).status_code == 401


def test_a_change_through_the_api_is_in_force_at_once_despite_the_cache(
    api_settings: Settings, api_db: Conn
) -> None:
    """A township creates a community in its region: its very next read sees it, though its
    caller (with the region's communities) was cached a moment before."""
    township = issue(api_db, "township", "cache scope test", {"region": "T01"})
    headers = {"Authorization": f"Bearer {township.token}"}
    with in_process(api_settings.model_copy(update={"api_token_cache_s": 60.0})) as client:
        listed = client.request("GET", "/v1/communities?limit=500", headers=headers)
        assert listed.status_code == 200
        region = api_db.execute("SELECT id FROM regions WHERE code = 'T01'").fetchone()
        assert region is not None
        body = {"code": "C-CACHE", "region_id": region[0], "name_zh": "缓存小区"}
        created = client.request("POST", "/v1/communities", headers=headers, json=body)
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        try:
            seen = client.request("GET", f"/v1/communities/{cid}", headers=headers)
            assert seen.status_code == 200, seen.text
        finally:
            api_db.execute("DELETE FROM communities WHERE id = %s", (cid,))


@pytest.mark.parametrize(
    ("role", "scope", "says"),
    [
        ("mayor", {}, "unknown role"),
        ("firm_admin", {}, "exactly one"),
        ("firm_admin", {"region": "T01"}, "takes firm"),
        ("duty_staff", {"firm": "F01", "community": "C01"}, "exactly one"),
        ("township", {"region": "DEMO"}, "township"),
        ("maintenance_unit", {"unit": "MU-NONE"}, "no unit"),
    ],
)
def test_a_token_needs_the_scope_its_role_takes(
    api_db: Conn, role: str, scope: dict[str, str], says: str
) -> None:
    with pytest.raises(RegistryError, match=says):
        issue(api_db, role, "bad", scope)


def test_the_token_commands(
    api: Api, api_settings: Settings, api_database: str, api_broker: Broker, tmp_path: object
) -> None:
    from pathlib import Path

    from tests.conftest import settings_env

    env = settings_env(settings_for(api_database, api_broker, Path(str(tmp_path)), api_pool_size=4))
    out = subprocess.run(
        shouwang(
            "api",
            "token",
            "issue",
            "--role",
            "duty_staff",
            "--community",
            "C02",
            "--name",
            "C02 duty room",
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = out.stdout.strip()
    assert len(token) >= 43 and "\n" not in token
    headers = {"Authorization": f"Bearer {token}"}
    seen = api.client.request("GET", "/v1/communities", headers=headers).json()["items"]
    assert [c["code"] for c in seen] == ["C02"]
    listed = subprocess.run(
        shouwang("api", "token", "list"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    line = next(row for row in listed.splitlines() if "C02 duty room" in row)
    assert "community:C02" in line and token not in listed
    subprocess.run(
        shouwang("api", "token", "revoke", line.split("\t")[0]),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Refused once the API's token cache lets the caller go (api_token_cache_s, 5 s).
    deadline = time.monotonic() + api_settings.api_token_cache_s + 1
    while api.client.request("GET", "/v1/communities", headers=headers).status_code == 200:
        assert time.monotonic() < deadline, "the revoked token still works"
        time.sleep(0.1)


def test_the_docs_are_served_without_a_token(api: Api) -> None:
    spec = api.client.request("GET", "/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/v1/devices/{uid}/credentials" in spec["paths"]
    assert api.client.request("GET", "/docs").status_code == 200
