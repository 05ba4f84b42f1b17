"""Dashboards: publishing to a running Grafana through its HTTP API (``grafana-client``).

Idempotent: folders, the data source and each dashboard are read first and written only when
they differ from what the code builds, so a second run changes nothing. The comparisons are
pure functions (:func:`folder_change`, :func:`datasource_change`, :func:`dashboard_change`);
:func:`publish` is the thin I/O step around them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from core.errors import ConfigError
from dashboards.datasource import PROMETHEUS_NAME, REF, DatasourceSpec, prometheus_json
from dashboards.folders import Folder, Placed
from dashboards.model import JSON, dashboard_json

Action = Literal["create", "update", "unchanged"]
MESSAGE: Final = "shouwang dashboards publish"
_VOLATILE: Final = ("id", "version")


@dataclass(frozen=True, slots=True)
class Change:
    kind: Literal["folder", "datasource", "dashboard"]
    name: str
    action: Action

    def __str__(self) -> str:
        return f"{self.kind} {self.name}: {self.action}"


def folder_change(existing: Sequence[JSON], folder: Folder) -> Action:
    for f in existing:
        if f.get("uid") == folder.uid:
            return "unchanged" if f.get("title") == folder.title else "update"
    return "create"


def datasource_change(existing: JSON | None, wanted: JSON, *, password: bool) -> Action:
    """``password``: a password is to be written (it cannot be read back to compare)."""
    if existing is None:
        return "create"
    if password:
        return "update"
    same = all(existing.get(k) == v for k, v in wanted.items() if k != "jsonData")
    have = existing.get("jsonData") or {}
    same = same and all(have.get(k) == v for k, v in wanted["jsonData"].items())
    return "unchanged" if same else "update"


def _stable(d: JSON) -> JSON:
    return {k: v for k, v in d.items() if k not in _VOLATILE}


def dashboard_change(existing: JSON | None, wanted: JSON, folder_uid: str) -> Action:
    """``existing``: Grafana's answer to GET /api/dashboards/uid/<uid> (dashboard and meta)."""
    if existing is None:
        return "create"
    same_folder = (existing.get("meta") or {}).get("folderUid") == folder_uid
    same = _stable(existing.get("dashboard") or {}) == _stable(wanted)
    return "unchanged" if same and same_folder else "update"


class Grafana:
    """The calls publishing makes through ``grafana_client.GrafanaApi``; what does not exist
    comes back as None (Grafana answers 404)."""

    def __init__(self, api: Any) -> None:
        self._api = api

    def folders(self) -> list[JSON]:
        return list(self._api.folder.get_all_folders())

    def create_folder(self, f: Folder) -> None:
        self._api.folder.create_folder(f.title, uid=f.uid)

    def rename_folder(self, f: Folder) -> None:
        self._api.folder.update_folder(f.uid, title=f.title, overwrite=True)

    def datasource(self, name: str) -> JSON | None:
        return _missing_is_none(lambda: self._api.datasource.get_datasource_by_name(name))

    def create_datasource(self, body: JSON) -> None:
        self._api.datasource.create_datasource(body)

    def update_datasource(self, uid: str, body: JSON) -> None:
        self._api.datasource.update_datasource_by_uid(uid, body)

    def dashboard(self, uid: str) -> JSON | None:
        return _missing_is_none(lambda: self._api.dashboard.get_dashboard(uid))

    def save_dashboard(self, body: JSON) -> None:
        self._api.dashboard.update_dashboard(body)

    def close(self) -> None:
        self._api.client.s.close()

    def __enter__(self) -> Grafana:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(
    url: str, *, token: str = "", user: str = "", password: str = "", org_id: int | None = None
) -> Grafana:
    """A client for the Grafana at ``url`` (a service-account token, or user and password),
    sending every call to organisation ``org_id`` (default: the credential's own)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("SHOUWANG_GRAFANA_URL", f"{url!r} is not an http(s) URL")
    auth: str | tuple[str, str] | None = token or ((user, password) if user else None)
    prefix = parts.path.strip("/")
    api: Any = GrafanaApi(
        auth,
        host=parts.hostname,
        port=parts.port,
        url_path_prefix=prefix + "/" if prefix else "",
        protocol=parts.scheme,
        organization_id=org_id,
    )
    return Grafana(api)


def _missing_is_none(call: Callable[[], Any]) -> JSON | None:
    try:
        found: JSON = call()
    except GrafanaClientError as e:
        if e.status_code == 404:
            return None
        raise
    return found


def publish(
    api: Grafana,
    placed: Sequence[Placed],
    spec: DatasourceSpec,
    *,
    password: str | None,
    update_password: bool = False,
) -> list[Change]:
    """Upsert the folders of ``placed``, the data source and the dashboards; return what was
    done to each. ``password`` is written when the data source is created, or with
    ``update_password``; Grafana never returns it, so it is not compared."""
    changes: list[Change] = []
    folders = list(dict.fromkeys(p.folder for p in placed))
    existing_folders = api.folders()
    for f in folders:
        action = folder_change(existing_folders, f)
        if action == "create":
            api.create_folder(f)
        elif action == "update":
            api.rename_folder(f)
        changes.append(Change("folder", f.uid, action))

    wanted = spec.json()
    current = api.datasource(spec.name)
    write_password = password is not None and (current is None or update_password)
    action = datasource_change(current, wanted, password=write_password)
    if action == "create" and password is None:
        raise ConfigError(
            "SHOUWANG_GRAFANA_DB_PASSWORD",
            f"the data source {spec.name!r} does not exist yet and needs the password of"
            f" {spec.user!r}; run 'shouwang dashboards grant-firm CODE' and set it",
        )
    body = dict(wanted)
    if write_password:
        body["secureJsonData"] = {"password": password}
    if action == "create":
        api.create_datasource(body)
    elif action == "update" and current is not None:
        api.update_datasource(str(current["uid"]), body)
    changes.append(Change("datasource", spec.name, action))

    for p in placed:
        model = dashboard_json(p.dashboard, REF)
        action = dashboard_change(api.dashboard(p.dashboard.uid), model, p.folder.uid)
        if action != "unchanged":
            api.save_dashboard(
                {
                    "dashboard": model,
                    "folderUid": p.folder.uid,
                    "overwrite": True,
                    "message": MESSAGE,
                }
            )
        changes.append(Change("dashboard", p.dashboard.uid, action))
    return changes


def publish_platform(api: Grafana, placed: Sequence[Placed], prometheus_url: str) -> list[Change]:
    """Upsert the platform operators' folder, the Prometheus data source at ``prometheus_url``
    (as Grafana reaches it) and the dashboards over it; return what was done to each."""
    changes: list[Change] = []
    existing_folders = api.folders()
    for f in dict.fromkeys(p.folder for p in placed):
        action = folder_change(existing_folders, f)
        if action == "create":
            api.create_folder(f)
        elif action == "update":
            api.rename_folder(f)
        changes.append(Change("folder", f.uid, action))
    wanted = prometheus_json(prometheus_url)
    current = api.datasource(PROMETHEUS_NAME)
    action = datasource_change(current, wanted, password=False)
    if action == "create":
        api.create_datasource(wanted)
    elif action == "update" and current is not None:
        api.update_datasource(str(current["uid"]), wanted)
    changes.append(Change("datasource", PROMETHEUS_NAME, action))
    for p in placed:
        model = dashboard_json(p.dashboard, REF)  # the dashboard names its own data source
        action = dashboard_change(api.dashboard(p.dashboard.uid), model, p.folder.uid)
        if action != "unchanged":
            api.save_dashboard(
                {
                    "dashboard": model,
                    "folderUid": p.folder.uid,
                    "overwrite": True,
                    "message": MESSAGE,
                }
            )
        changes.append(Change("dashboard", p.dashboard.uid, action))
    return changes
