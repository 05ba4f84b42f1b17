"""Shared: the database roles of the stages (least privilege) and their login roles.

Migration 0021 creates one NOLOGIN role per long-running stage and grants it what that stage
does (``core/migrations/0021_service_roles.sql``); :func:`login` makes a login role that is a
member of exactly one of them, so a stage's ``SHOUWANG_DATABASE_URL`` can name it. Run as the
owner (a role that may create roles); the password reaches the server only as a SCRAM verifier.
"""

from __future__ import annotations

import re
from typing import Final

from psycopg import sql

from core.db import Conn
from core.errors import ConfigError

STAGE_ROLES: Final = {
    "ingest": "shouwang_ingest",
    "analytics": "shouwang_analytics",
    "notify": "shouwang_notify",
    "api": "shouwang_api",
}
TELEMETRY_OWNER: Final = "shouwang_telemetry"
_ROLE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
MIN_PASSWORD_CHARS: Final = 16


def default_login(stage: str) -> str:
    return f"{STAGE_ROLES[stage]}_login"


def login(conn: Conn, stage: str, password: str, role: str | None = None) -> str:
    """Create (or give a new password to) the login role ``role`` (default
    ``shouwang_<stage>_login``) as a member of ``stage``'s role and of nothing else; return its
    name. Refuses a role that is anything else (a superuser, an owner, another stage's login)."""
    if stage not in STAGE_ROLES:
        raise ConfigError(stage, f"no such stage; give one of {', '.join(STAGE_ROLES)}")
    group = STAGE_ROLES[stage]
    role = role or default_login(stage)
    if not _ROLE_NAME.fullmatch(role):
        raise ConfigError(
            role, "not a usable role name; use lower-case letters, digits and '_' (63 at most)"
        )
    if role in STAGE_ROLES.values() or role == TELEMETRY_OWNER:
        raise ConfigError(role, "that is a stage's group role; name a login role of its own")
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(
            "password",
            f"at least {MIN_PASSWORD_CHARS} characters; generate one with "
            "'openssl rand -base64 32'",
        )
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone():
            raise ConfigError(group, "the stages' roles are not there; run 'shouwang migrate'")
        row = conn.execute(
            "SELECT r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication"
            " OR r.rolbypassrls,"
            " (SELECT array_agg(g.rolname) FROM pg_auth_members m"
            "  JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid),"
            " EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid)"
            " FROM pg_roles r WHERE r.rolname = %s",
            (role,),
        ).fetchone()
        verifier = sql.Literal(
            conn.pgconn.encrypt_password(
                password.encode(), role.encode(), b"scram-sha-256"
            ).decode()
        )
        if row is None:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                    sql.Identifier(role), verifier, sql.Identifier(group)
                )
            )
        else:
            powerful, groups, owns = row
            if powerful or owns or set(groups or []) != {group}:
                raise ConfigError(
                    role,
                    f"the role exists and is not only a login of {group} (it is privileged, "
                    "owns tables or belongs to other roles); choose another name with --role",
                )
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    sql.Identifier(role), verifier
                )
            )
    return role
