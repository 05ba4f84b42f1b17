"""Simulators: writes a demo county into the registry and issues its devices' credentials.

Idempotent: a county already present is left as it is, and the secrets file is kept.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import orjson

from broker.accounts import issue_many
from broker.credentials import hash_password, new_password
from core.db import Conn
from simulators.county import County
from simulators.maintenance import contracted_units, maintenance_history


def seed(conn: Conn, county: County, secrets_file: Path) -> dict[str, str]:
    """Insert ``county``; return uid -> password for every device and gateway (also written to
    ``secrets_file``, mode 0600, which the simulator reads)."""
    if (
        secrets_file.exists()
        and conn.execute(
            "SELECT 1 FROM regions WHERE code = %s", (county.regions[0].code,)
        ).fetchone()
    ):
        seed_maintenance(conn, county, datetime.now(UTC))
        return dict(json.loads(secrets_file.read_text()))
    ids: dict[str, int] = {}
    with conn.transaction():
        for r in county.regions:
            (ids[r.code],) = conn.execute(
                "INSERT INTO regions (code, kind, parent_id, name_zh, name_en) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (code) DO UPDATE SET name_zh = excluded.name_zh RETURNING id",
                (r.code, r.kind, ids.get(r.parent) if r.parent else None, r.name_zh, r.name_en),
            ).fetchone() or (0,)
        for f in county.firms:
            (ids[f.code],) = conn.execute(
                "INSERT INTO firms (code, name_zh, name_en, contact_phone, complaint_phone)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (code) DO UPDATE SET name_zh = excluded.name_zh RETURNING id",
                (f.code, f.name_zh, f.name_en, f.phone, f.phone),
            ).fetchone() or (0,)
        for u in county.units:
            (ids[u.code],) = conn.execute(
                "INSERT INTO maintenance_units (code, kind, name_zh, name_en, phone) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (code) DO UPDATE SET name_zh = excluded.name_zh RETURNING id",
                (u.code, u.kind, u.name_zh, u.name_en, u.phone),
            ).fetchone() or (0,)
        secrets: dict[str, str] = {}
        for c in county.communities:
            (cid,) = conn.execute(
                "INSERT INTO communities (code, region_id, firm_id, name_zh, name_en, address)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (code) DO UPDATE SET name_zh = excluded.name_zh RETURNING id",
                (c.code, ids[c.township], ids[c.firm], c.name_zh, c.name_en, c.address),
            ).fetchone() or (0,)
            bids: dict[str, int] = {}
            for b in c.buildings:
                (bids[b.code],) = conn.execute(
                    "INSERT INTO buildings (community_id, code, name, floors) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (community_id, code) DO UPDATE SET name = excluded.name RETURNING id",
                    (cid, b.code, b.name, b.floors),
                ).fetchone() or (0,)
            (gid,) = conn.execute(
                "INSERT INTO gateways (uid, community_id) VALUES (%s, %s)"
                " ON CONFLICT (uid) DO UPDATE SET community_id = excluded.community_id RETURNING id",
                (c.gateway, cid),
            ).fetchone() or (0,)
            gw_password = new_password()
            conn.execute(
                "INSERT INTO mqtt_accounts (username, kind, gateway_id, password_hash)"
                " VALUES (%s, 'gateway', %s, %s)"
                " ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, revoked_at = NULL",
                (c.gateway, gid, hash_password(gw_password)),
            )
            secrets[c.gateway] = gw_password
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO devices (uid, device_class, model, community_id, building_id, location,"
                    " maintenance_unit_id, gateway_id, install_date, report_interval_s, attributes)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (uid) DO NOTHING",
                    [
                        (
                            d.uid,
                            d.device_class.value,
                            d.model,
                            cid,
                            bids.get(d.building or ""),
                            d.location,
                            ids.get(d.maintenance_unit or ""),
                            gid if d.gateway else None,
                            d.install_date,
                            d.report_interval_s,
                            orjson.dumps(d.attributes).decode(),
                        )
                        for d in c.devices
                    ],
                )
            direct = [d.uid for d in c.devices if d.gateway is None]
            secrets.update(issue_many(conn, direct))
        seed_maintenance(conn, county, datetime.now(UTC))
    secrets_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = secrets_file.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(secrets, indent=0))
    os.replace(tmp, secrets_file)
    return secrets


def seed_maintenance(conn: Conn, county: County, now: datetime) -> int:
    """Link each community to its maintenance units and record the maintenance history up to
    ``now`` (``simulators.maintenance``); visits already recorded are kept. Returns new visits."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO community_maintenance_units (community_id, kind, maintenance_unit_id)"
            " SELECT c.id, %s, u.id FROM communities c, maintenance_units u"
            " WHERE c.code = %s AND u.code = %s ON CONFLICT DO NOTHING",
            [(kind, community, unit) for community, kind, unit in contracted_units(county)],
        )
        devices: dict[str, int] = dict(conn.execute("SELECT uid, id FROM devices").fetchall())
        units: dict[str, int] = dict(
            conn.execute("SELECT code, id FROM maintenance_units").fetchall()
        )
        visits = [v for v in maintenance_history(county, now) if v.device_uid in devices]
        cur.executemany(
            "INSERT INTO maintenance_records (device_id, maintenance_unit_id, kind, performed_at,"
            " cost_cny) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (devices[v.device_uid], units[v.unit], v.kind, v.performed_at, v.cost_cny)
                for v in visits
            ],
        )
        return len(visits) if cur.rowcount < 0 else cur.rowcount
