"""Dashboards: the files Grafana's file provisioning reads (pure rendering, one writing step).

Layout under the provisioning directory (Grafana's ``/etc/grafana/provisioning``)::

    datasources/shouwang.yaml              the data source, as the regulator's login role;
                                           host and password from Grafana's environment
    dashboards/shouwang.yaml               one file provider per folder
    dashboards/shouwang/<folder>/<uid>.json  the dashboards

The files hold no secret and nothing of the machine that exported them, so a copy can be
committed (``dashboards/provisioning``; docker-compose mounts it) and compared with a fresh
export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

import yaml

from dashboards.access import DEFAULT_REGULATOR_LOGIN
from dashboards.datasource import REF, DatasourceSpec
from dashboards.folders import FOLDERS, Placed
from dashboards.model import dashboard_json

CONTAINER_ROOT: Final = PurePosixPath("/etc/grafana/provisioning")
DATABASE: Final = "shouwang"
SUBDIR: Final = "shouwang"
# Grafana expands ${VAR} in provisioning files from its own environment.
HOST_ENV: Final = "SHOUWANG_GRAFANA_DB_HOST"
SECRET_ENV: Final = "SHOUWANG_GRAFANA_DB_PASSWORD"  # noqa: S105 (a variable name)


def _yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def datasource_yaml(database: str, user: str) -> str:
    spec = DatasourceSpec(url=f"${{{HOST_ENV}}}", database=database, user=user)
    ds = spec.json()
    ds.pop("basicAuth")
    ds["secureJsonData"] = {"password": f"${{{SECRET_ENV}}}"}
    ds["editable"] = False
    header = (
        "# Written by 'shouwang dashboards export'; do not edit. Grafana fills in ${...} from its\n"
        f"# environment: {HOST_ENV}, the database as Grafana reaches it (host:port), and\n"
        f"# {SECRET_ENV}, the password of {user} ('shouwang dashboards grant-regulator').\n"
    )
    return header + _yaml({"apiVersion": 1, "datasources": [ds]})


def providers_yaml(root: PurePosixPath = CONTAINER_ROOT) -> str:
    providers = [
        {
            "name": f.uid,
            "orgId": 1,
            "folder": f.title,
            "folderUid": f.uid,
            "type": "file",
            "disableDeletion": False,
            "allowUiUpdates": False,
            "updateIntervalSeconds": 60,
            "options": {"path": str(root / "dashboards" / SUBDIR / f.uid)},
        }
        for f in FOLDERS
    ]
    header = "# Written by 'shouwang dashboards export'; do not edit.\n"
    return header + _yaml({"apiVersion": 1, "providers": providers})


def dashboard_text(p: Placed) -> str:
    return json.dumps(dashboard_json(p.dashboard, REF), indent=2, ensure_ascii=False) + "\n"


@dataclass(frozen=True, slots=True)
class File:
    path: PurePosixPath  # relative to the provisioning directory
    text: str


def files(
    placed: tuple[Placed, ...],
    *,
    database: str = DATABASE,
    user: str = DEFAULT_REGULATOR_LOGIN,
    root: PurePosixPath = CONTAINER_ROOT,
) -> list[File]:
    out = [
        File(PurePosixPath("datasources/shouwang.yaml"), datasource_yaml(database, user)),
        File(PurePosixPath("dashboards/shouwang.yaml"), providers_yaml(root)),
    ]
    for p in placed:
        path = PurePosixPath("dashboards", SUBDIR, p.folder.uid, f"{p.dashboard.uid}.json")
        out.append(File(path, dashboard_text(p)))
    return out


def export(
    directory: Path,
    placed: tuple[Placed, ...],
    *,
    database: str = DATABASE,
    user: str = DEFAULT_REGULATOR_LOGIN,
    root: PurePosixPath = CONTAINER_ROOT,
) -> list[Path]:
    """Write the provisioning files under ``directory`` (the data source reads ``database`` as
    ``user``); dashboards no longer shipped are removed from it. Returns the files written."""
    wanted = files(placed, database=database, user=user, root=root)
    keep = {directory / f.path for f in wanted}
    ours = directory / "dashboards" / SUBDIR
    if ours.exists():
        for stale in ours.rglob("*.json"):
            if stale not in keep:
                stale.unlink()
    written = []
    for f in wanted:
        target = directory / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f.text, encoding="utf-8")
        written.append(target)
    return written
