"""Dashboards: the database login roles Grafana connects with (I/O, plus pure helpers).

A firm's Grafana organisation gets its own login role: a member of ``shouwang_dashboards``
(SELECT on the ``dash`` views only), mapped to the firm in ``dash.firm_roles``, so its data source
returns that firm's rows and nothing else. The regulator's organisation gets a member of
``shouwang_regulator``, which sees every firm. Login roles are read-only by default
(``default_transaction_read_only``) on top of having no write privilege at all.

The password is sent to the server as a SCRAM-SHA-256 verifier computed here, never in clear
text, so it cannot end up in the server's statement log.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Final

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from core.db import Conn
from core.errors import RegistryError

READER_ROLE: Final = "shouwang_dashboards"
REGULATOR_ROLE: Final = "shouwang_regulator"
# The regulator's login role by default: the user of the provisioned data source.
DEFAULT_REGULATOR_LOGIN: Final = "dash_regulator"
_ROLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class AccessError(RegistryError):
    """A login role that cannot be granted as asked (name taken by another kind of role)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a Grafana data source needs to connect as a dashboards login role."""

    role: str
    password: str
    host: str
    port: int
    database: str
    firm: str | None  # firm code, or None for the regulator
    township: str | None = None  # region code of a township role

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"


def scram_verifier(conn: Conn, role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password``, computed by libpq
    (PQencryptPasswordConn), so the password itself never reaches the server."""
    return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()


def default_role_name(firm_code: str) -> str:
    return "dash_firm_" + re.sub(r"[^a-z0-9_]", "_", firm_code.lower())


def _check_name(role: str) -> None:
    if not _ROLE_NAME.fullmatch(role):
        raise AccessError(
            f"{role!r} is not a usable role name; use lower-case letters, digits and '_',"
            " starting with a letter (e.g. dash_firm_f01)"
        )


def _upsert_login(conn: Conn, role: str, password: str, group: str) -> None:
    """Create ``role`` as a login member of ``group``, or reset its password if it already is
    one; refuse any other existing role (an admin, a service account)."""
    row = conn.execute(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls,"
        " pg_has_role(oid, %s, 'MEMBER'), pg_has_role(oid, %s, 'MEMBER')"
        " FROM pg_roles WHERE rolname = %s",
        (READER_ROLE, REGULATOR_ROLE, role),
    ).fetchone()
    verifier = sql.Literal(scram_verifier(conn, role, password))
    if row is None:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                sql.Identifier(role), verifier, sql.Identifier(group)
            )
        )
    elif row[0] or not row[1]:
        raise AccessError(
            f"role {role!r} exists and is not a dashboards login; choose another name with --role"
        )
    elif row[2] and group != REGULATOR_ROLE:
        raise AccessError(f"role {role!r} is a regulator login (it sees every firm); use another")
    else:
        conn.execute(
            sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(role), verifier)
        )
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(role)))
    conn.execute(
        sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(sql.Identifier(role))
    )


def _credentials(
    conn: Conn,
    role: str,
    password: str,
    host: str | None,
    firm: str | None,
    township: str | None = None,
) -> Credentials:
    info = conninfo_to_dict(conn.info.dsn)
    h, _, p = (host or "").partition(":")
    return Credentials(
        role=role,
        password=password,
        host=h or str(info.get("host") or "localhost"),
        port=int(p or info.get("port") or 5432),
        database=conn.info.dbname,
        firm=firm,
        township=township,
    )


def grant_firm(
    conn: Conn,
    firm_code: str,
    *,
    role: str | None = None,
    password: str | None = None,
    host: str | None = None,
) -> Credentials:
    """A login role that reads ``firm_code``'s rows only; returns the data source credentials.

    Run again to rotate the password. ``host`` ("host:port") is the database as Grafana sees
    it; by default, as this connection sees it."""
    role = role or default_role_name(firm_code)
    _check_name(role)
    password = password or secrets.token_urlsafe(24)
    with conn.transaction():
        firm = conn.execute("SELECT id FROM firms WHERE code = %s", (firm_code,)).fetchone()
        if firm is None:
            raise RegistryError(f"no firm with code {firm_code!r}; see the firms table")
        mapped = conn.execute(
            "SELECT f.code FROM dash.firm_roles r JOIN firms f ON f.id = r.firm_id"
            " WHERE r.role_name = %s",
            (role,),
        ).fetchone()
        if mapped is not None and mapped[0] != firm_code:
            raise AccessError(f"role {role!r} already reads for firm {mapped[0]}; use another")
        _upsert_login(conn, role, password, READER_ROLE)
        conn.execute(
            "INSERT INTO dash.firm_roles (role_name, firm_id) VALUES (%s, %s)"
            " ON CONFLICT (role_name) DO NOTHING",
            (role, firm[0]),
        )
    return _credentials(conn, role, password, host, firm_code)


def grant_township(
    conn: Conn,
    region_code: str,
    *,
    role: str | None = None,
    password: str | None = None,
    host: str | None = None,
) -> Credentials:
    """A login role that reads the communities of a township (or community service centre)
    and the regions below it; returns the data source credentials. Run again to rotate."""
    role = role or "dash_region_" + re.sub(r"[^a-z0-9_]", "_", region_code.lower())
    _check_name(role)
    password = password or secrets.token_urlsafe(24)
    with conn.transaction():
        region = conn.execute(
            "SELECT id, kind FROM regions WHERE code = %s", (region_code,)
        ).fetchone()
        if region is None:
            raise RegistryError(f"no region with code {region_code!r}; see the regions table")
        if region[1] == "county":
            raise AccessError(
                f"{region_code} is the county: use grant-regulator for the whole county"
            )
        taken = conn.execute(
            "SELECT 'firm' FROM dash.firm_roles WHERE role_name = %s UNION ALL"
            " SELECT g.code FROM dash.region_roles r JOIN regions g ON g.id = r.region_id"
            " WHERE r.role_name = %s AND g.code <> %s",
            (role, role, region_code),
        ).fetchone()
        if taken is not None:
            raise AccessError(f"role {role!r} already reads for {taken[0]}; use another name")
        _upsert_login(conn, role, password, READER_ROLE)
        conn.execute(
            "INSERT INTO dash.region_roles (role_name, region_id) VALUES (%s, %s)"
            " ON CONFLICT (role_name) DO NOTHING",
            (role, region[0]),
        )
    return _credentials(conn, role, password, host, None, region_code)


def grant_regulator(
    conn: Conn,
    role: str = DEFAULT_REGULATOR_LOGIN,
    *,
    password: str | None = None,
    host: str | None = None,
) -> Credentials:
    """A login role that reads every firm's rows (the county housing bureau's organisation)."""
    _check_name(role)
    password = password or secrets.token_urlsafe(24)
    with conn.transaction():
        if conn.execute(
            "SELECT 1 FROM dash.firm_roles WHERE role_name = %s UNION ALL"
            " SELECT 1 FROM dash.region_roles WHERE role_name = %s",
            (role, role),
        ).fetchone():
            raise AccessError(f"role {role!r} reads for a firm or a township; use another name")
        _upsert_login(conn, role, password, REGULATOR_ROLE)
    return _credentials(conn, role, password, host, None)


def revoke(conn: Conn, role: str) -> bool:
    """Drop a dashboards login role; False if there was none."""
    _check_name(role)
    with conn.transaction():
        row = conn.execute(
            "SELECT pg_has_role(oid, %s, 'MEMBER') AND NOT rolsuper FROM pg_roles"
            " WHERE rolname = %s",
            (READER_ROLE, role),
        ).fetchone()
        conn.execute("DELETE FROM dash.firm_roles WHERE role_name = %s", (role,))
        conn.execute("DELETE FROM dash.region_roles WHERE role_name = %s", (role,))
        if row is None:
            return False
        if not row[0]:
            raise AccessError(f"role {role!r} is not a dashboards login; not dropping it")
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    return True
