"""Dashboards: the files Grafana's file provisioning reads (pure rendering, one writing step).

Layout under the provisioning directory (Grafana's ``/etc/grafana/provisioning``)::

    datasources/shouwang.yaml              the data source, as the regulator's login role;
                                           host and password from Grafana's environment
    datasources/prometheus.yaml            the platform's Prometheus (dashboards/prometheus),
                                           its URL from Grafana's environment
    dashboards/shouwang.yaml               one file provider per folder
    dashboards/platform.yaml               ... and the platform operators' folder's
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
from dashboards.datasource import REF, DatasourceSpec, prometheus_json
from dashboards.folders import FOLDERS, PLATFORM, Folder, Placed, platform_dashboards
from dashboards.model import dashboard_json

CONTAINER_ROOT: Final = PurePosixPath("/etc/grafana/provisioning")
DATABASE: Final = "shouwang"
SUBDIR: Final = "shouwang"
# Grafana expands ${VAR} in provisioning files from its own environment.
HOST_ENV: Final = "SHOUWANG_GRAFANA_DB_HOST"
SECRET_ENV: Final = "SHOUWANG_GRAFANA_DB_PASSWORD"  # noqa: S105 (a variable name)
PROMETHEUS_URL_ENV: Final = "SHOUWANG_GRAFANA_PROMETHEUS_URL"


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


def prometheus_yaml() -> str:
    ds = prometheus_json(f"${{{PROMETHEUS_URL_ENV}}}")
    ds["editable"] = False
    header = (
        "# Written by 'shouwang dashboards export'; do not edit. Grafana fills in ${...} from its\n"
        f"# environment: {PROMETHEUS_URL_ENV}, the URL of the Prometheus that scrapes the\n"
        "# stages (dashboards/prometheus; in docker compose http://prometheus:9090).\n"
    )
    return header + _yaml({"apiVersion": 1, "datasources": [ds]})


def providers_yaml(
    root: PurePosixPath = CONTAINER_ROOT, folders: tuple[Folder, ...] = FOLDERS
) -> str:
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
        for f in folders
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
    platform: tuple[Placed, ...] | None = None,
) -> list[File]:
    """The files for ``placed`` and the platform operators' dashboards (``platform``, default
    :func:`dashboards.folders.platform_dashboards`)."""
    out = [
        File(PurePosixPath("datasources/shouwang.yaml"), datasource_yaml(database, user)),
        File(PurePosixPath("datasources/prometheus.yaml"), prometheus_yaml()),
        File(PurePosixPath("dashboards/shouwang.yaml"), providers_yaml(root)),
        File(PurePosixPath("dashboards/platform.yaml"), providers_yaml(root, (PLATFORM,))),
    ]
    for p in (*placed, *(platform_dashboards() if platform is None else platform)):
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
    platform: tuple[Placed, ...] | None = None,
) -> list[Path]:
    """Write the provisioning files under ``directory`` (the data source reads ``database`` as
    ``user``; ``platform``: as :func:`files`); dashboards no longer shipped are removed from it.
    Returns the files written."""
    wanted = files(placed, database=database, user=user, root=root, platform=platform)
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
