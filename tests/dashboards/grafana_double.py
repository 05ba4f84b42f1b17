"""A DOUBLE of Grafana's HTTP API, for tests: a real HTTP server on loopback that keeps folders,
data sources and dashboards in memory and records every call.

It implements the handful of endpoints ``grafana-client`` uses when publishing, as Grafana's
HTTP API documents them (folder, data source and dashboard APIs): status codes, the bodies it
answers with, 404 for what does not exist, 412 for a stale version, and the ``version`` that
Grafana increments on each write. It is not Grafana: it checks no permissions and renders
nothing.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class State:
    folders: dict[str, JSON] = field(default_factory=dict)  # uid -> folder
    datasources: dict[str, JSON] = field(default_factory=dict)  # uid -> data source
    secrets: dict[str, JSON] = field(default_factory=dict)  # uid -> secureJsonData
    dashboards: dict[str, JSON] = field(default_factory=dict)  # uid -> {dashboard, meta}
    calls: list[Call] = field(default_factory=list)
    next_id: int = 1

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method != "GET"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n)) if n else None

    def _handle(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._body() if method in ("POST", "PUT") else None
        st = self.server.state
        with self.server.lock:
            st.calls.append(Call(method, path, body, dict(self.headers.items())))
            if self.headers.get("Authorization") != self.server.expect_auth:
                self._send(401, {"message": "Unauthorized"})
                return
            status, answer = route(st, method, path, body)
        self._send(status, answer)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def route(st: State, method: str, path: str, body: Any) -> tuple[int, Any]:
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:1] != ["api"]:
        return 404, {"message": "Not found"}
    match method, parts[1:]:
        case "GET", ["health"]:
            return 200, {"database": "ok", "version": "11.0.0-double"}
        case "GET", ["folders"]:
            return 200, [
                {"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in st.folders.values()
            ]
        case "GET", ["folders", uid]:
            f = st.folders.get(uid)
            return (200, f) if f else (404, {"message": "folder not found"})
        case "POST", ["folders"]:
            uid = body.get("uid")
            if uid in st.folders or any(f["title"] == body["title"] for f in st.folders.values()):
                return 409, {"message": "a folder with the same name or uid already exists"}
            folder = {"id": st.new_id(), "uid": uid, "title": body["title"], "version": 1}
            st.folders[uid] = folder
            return 200, folder
        case "PUT", ["folders", uid]:
            found = st.folders.get(uid)
            if found is None:
                return 404, {"message": "folder not found"}
            if not body.get("overwrite") and body.get("version") != found["version"]:
                return 412, {"message": "the folder has been changed by someone else"}
            found.update(title=body.get("title", found["title"]), version=found["version"] + 1)
            return 200, found
        case "GET", ["datasources", "name", name]:
            for ds in st.datasources.values():
                if ds["name"] == name:
                    secure = {k: True for k in st.secrets.get(ds["uid"], {})}
                    return 200, ds | {"secureJsonFields": secure}
            return 404, {"message": "Data source not found"}
        case "GET", ["datasources", "uid", uid]:
            if uid in st.datasources:
                return 200, st.datasources[uid]
            return 404, {"message": "Data source not found"}
        case "POST", ["datasources"]:
            if any(d["name"] == body["name"] for d in st.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            ds = {k: v for k, v in body.items() if k != "secureJsonData"}
            ds.update(id=st.new_id(), orgId=1, version=1, readOnly=False)
            st.datasources[ds["uid"]] = ds
            st.secrets[ds["uid"]] = dict(body.get("secureJsonData") or {})
            return 200, {
                "datasource": ds,
                "id": ds["id"],
                "message": "Datasource added",
                "name": ds["name"],
            }
        case "PUT", ["datasources", "uid", uid]:
            old = st.datasources.pop(uid, None)
            if old is None:
                return 404, {"message": "Data source not found"}
            ds = {k: v for k, v in body.items() if k != "secureJsonData"}
            ds.update(id=old["id"], orgId=1, version=old["version"] + 1, readOnly=False)
            st.datasources[ds["uid"]] = ds
            secrets = st.secrets.pop(uid, {})
            secrets.update(body.get("secureJsonData") or {})
            st.secrets[ds["uid"]] = secrets
            return 200, {
                "datasource": ds,
                "id": ds["id"],
                "message": "Datasource updated",
                "name": ds["name"],
            }
        case "GET", ["dashboards", "uid", uid]:
            d = st.dashboards.get(uid)
            return (200, d) if d else (404, {"message": "Dashboard not found"})
        case "POST", ["dashboards", "db"]:
            return _save_dashboard(st, body)
        case "GET", ["search"]:
            return 200, [
                {
                    "uid": u,
                    "title": d["dashboard"]["title"],
                    "type": "dash-db",
                    "folderUid": d["meta"]["folderUid"],
                }
                for u, d in st.dashboards.items()
            ]
    return 404, {"message": "Not found"}


def _save_dashboard(st: State, body: JSON) -> tuple[int, Any]:
    model = dict(body["dashboard"])
    uid = str(model["uid"])
    folder_uid = body.get("folderUid", "")
    if folder_uid and folder_uid not in st.folders:
        return 400, {"message": "folder not found"}
    old = st.dashboards.get(uid)
    stale = old is not None and model.get("version") != old["dashboard"]["version"]
    if stale and not body.get("overwrite"):
        return 412, {"status": "version-mismatch", "message": "changed by someone else"}
    version = 1 if old is None else old["dashboard"]["version"] + 1
    model.update(id=old["dashboard"]["id"] if old else st.new_id(), version=version)
    folder = st.folders.get(folder_uid, {})
    st.dashboards[uid] = {
        "dashboard": model,
        "meta": {
            "folderUid": folder_uid,
            "folderTitle": folder.get("title", "General"),
            "version": version,
        },
    }
    return 200, {
        "id": model["id"],
        "uid": uid,
        "url": f"/d/{uid}",
        "status": "success",
        "version": version,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, expect_auth: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = State()
        self.lock = threading.Lock()
        self.expect_auth = expect_auth


class GrafanaDouble:
    """Start with ``with GrafanaDouble(token) as g:``; ``g.url``, ``g.state``."""

    def __init__(self, token: str) -> None:
        self._server = _Server(f"Bearer {token}")
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def state(self) -> State:
        return self._server.state

    def __enter__(self) -> GrafanaDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
