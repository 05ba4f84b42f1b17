"""API: bearer tokens. A token is a random secret shown once; only its SHA-256 digest is stored.

Issuing and revoking are what ``shouwang api token`` does (synchronous, one connection);
resolving a presented token to its row is what each request does (see ``api.deps``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, get_args

from core.db import Conn
from core.errors import RegistryError

Role = Literal[
    "county_regulator",
    "township",
    "firm_admin",
    "duty_staff",
    "maintenance_unit",
    "platform_operator",
]
ROLES: Final[tuple[str, ...]] = get_args(Role)

# Which scope option each role takes; the database's CHECK says the same.
SCOPES: Final[dict[str, tuple[str, ...]]] = {
    "county_regulator": ("region",),  # optional: the county
    "township": ("region",),
    "firm_admin": ("firm",),
    "duty_staff": ("firm", "community"),
    "maintenance_unit": ("unit",),
    "platform_operator": (),  # the platform itself, no community
}


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    token: str  # shown once


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: int
    role: str
    name: str
    scope: str  # "firm:F01", "region:T01", "" for the whole county
    created_at: datetime
    revoked_at: datetime | None


_TABLES: Final = {
    "region": ("regions", "region_id"),
    "firm": ("firms", "firm_id"),
    "community": ("communities", "community_id"),
    "unit": ("maintenance_units", "maintenance_unit_id"),
}


def check_scope(role: str, scope: dict[str, str]) -> None:
    """Refuse a role/scope combination the table would refuse, with a sentence saying why."""
    if role not in ROLES:
        raise RegistryError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    allowed = SCOPES[role]
    extra = sorted(set(scope) - set(allowed))
    if extra and not allowed:
        raise RegistryError(
            f"a {role} token takes no scope (it covers the platform, not a community);"
            f" leave out --{extra[0]}"
        )
    if extra:
        raise RegistryError(f"a {role} token takes {' or '.join(allowed)}, not {extra[0]}")
    if allowed and role != "county_regulator" and len(scope) != 1:
        raise RegistryError(f"a {role} token needs exactly one of: --{', --'.join(allowed)}")


def issue(conn: Conn, role: str, name: str, scope: dict[str, str]) -> IssuedToken:
    """Store a new token for ``role`` scoped by codes (``{"firm": "F01"}``); return it once."""
    check_scope(role, scope)
    if not name.strip():
        raise RegistryError("give the token a --name saying who holds it")
    ids: dict[str, int | None] = {column: None for _, column in _TABLES.values()}
    for key, code in scope.items():
        table, column = _TABLES[key]
        row = conn.execute(
            f"SELECT id FROM {table} WHERE code = %s",  # noqa: S608 (table from a fixed map)
            (code,),
        ).fetchone()
        if row is None:
            raise RegistryError(f"no {key} with code {code!r}")
        ids[column] = int(row[0])
    if role == "township" and ids["region_id"] is not None:
        kind = conn.execute("SELECT kind FROM regions WHERE id = %s", (ids["region_id"],))
        if (k := kind.fetchone()) is not None and k[0] == "county":
            raise RegistryError("a township token is for a township or community centre region")
    token = new_token()
    row = conn.execute(
        "INSERT INTO api_tokens (token_hash, role, name, region_id, firm_id, community_id,"
        " maintenance_unit_id) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            digest(token),
            role,
            name.strip(),
            ids["region_id"],
            ids["firm_id"],
            ids["community_id"],
            ids["maintenance_unit_id"],
        ),
    ).fetchone()
    assert row is not None
    return IssuedToken(int(row[0]), token)


def revoke(conn: Conn, token_id: int) -> None:
    cur = conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
        (token_id,),
    )
    if cur.rowcount == 0:
        raise RegistryError(f"no active API token with id {token_id}")


def list_tokens(conn: Conn) -> list[TokenRow]:
    rows = conn.execute(
        "SELECT t.id, t.role, t.name, concat_ws(':', CASE"
        "  WHEN r.code IS NOT NULL THEN 'region' WHEN f.code IS NOT NULL THEN 'firm'"
        "  WHEN c.code IS NOT NULL THEN 'community' WHEN u.code IS NOT NULL THEN 'unit' END,"
        "  coalesce(r.code, f.code, c.code, u.code)), t.created_at, t.revoked_at"
        " FROM api_tokens t LEFT JOIN regions r ON r.id = t.region_id"
        " LEFT JOIN firms f ON f.id = t.firm_id LEFT JOIN communities c ON c.id = t.community_id"
        " LEFT JOIN maintenance_units u ON u.id = t.maintenance_unit_id ORDER BY t.id"
    ).fetchall()
    return [TokenRow(int(i), r, n, s, c, v) for i, r, n, s, c, v in rows]
