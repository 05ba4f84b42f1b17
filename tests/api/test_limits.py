"""Request limits (api/limits.py, api/rate_limit.py, the stream's caps): a body above the limit
is refused before it is read, by a real server process whose memory stays put; an upload has
the larger limit; a write without a token is refused before its body is read; each token's
writes are rate limited; live streams are capped per token and in all, and a revoked token's
stream ends; every list's ``limit`` has a maximum."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.limits import ANONYMOUS_WRITES, RAW_BODIES, UPLOADS, WRITES
from api.pagination import MAX_LIMIT
from api.rate_limit import Buckets
from api.tokens import issue, revoke
from core.db import Conn
from core.settings import Settings
from tests.api.conftest import Ids, InProcess, in_process, live
from tests.conftest import free_port, settings_env

MB = 1024 * 1024
SMALL_BODY = 4096
SMALL_UPLOAD = 64 * 1024
CSV_HEADER = "uid,device_class,community\n"


# The buckets (pure).


def test_a_bucket_gives_its_burst_then_one_permit_per_interval() -> None:
    b = Buckets(rate=2.0, burst=3)
    assert [b.take("t", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take("t", 100.0) == pytest.approx(0.5)
    assert b.take("t", 100.25) == pytest.approx(0.25)  # a refused write takes nothing
    assert b.take("t", 100.5) == 0.0
    assert b.take("other", 100.5) == 0.0  # each token its own bucket
    assert b.take("t", 1000.0) == 0.0  # refilled, never above the burst:
    assert [b.take("t", 1000.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.5)]


def test_buckets_keep_at_most_max_keys_forgetting_the_least_recently_used() -> None:
    b = Buckets(rate=1.0, burst=1, max_keys=100)
    b.take("busy", 0.0)
    for i in range(10_000):
        b.take(i, 0.0)
        b.take("busy", 0.0)  # used all along: kept, and still empty
    assert len(b) == 100
    assert b.take("busy", 0.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="rate > 0"):
        Buckets(rate=0.0, burst=1)


# A real server process: its memory while 50 MB bodies arrive.


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of the process, in KiB: now and at its peak."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


@pytest.fixture(scope="module")
def server_process(
    api_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, int]]:
    """``python -m api`` (as ``shouwang api`` runs it) on a free port: (pid, port)."""
    port = free_port()
    env = settings_env(api_settings) | {
        "SHOUWANG_API_HOST": "127.0.0.1",
        "SHOUWANG_API_PORT": str(port),
    }
    log = (tmp_path_factory.mktemp("api-process") / "api.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/public/communities", timeout=1).is_success:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the API process did not start: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.1)
    yield proc.pid, port
    proc.terminate()
    proc.wait(10)
    log.close()


def post_raw(
    port: int, path: str, total: int, *, chunked: bool, token: str | None = None
) -> tuple[int, dict[str, str], dict[str, Any], int]:
    """POST ``total`` bytes (with a Content-Length, or chunked) as fast as the server takes
    them, stopping as soon as it answers: (status, headers, JSON body, bytes sent)."""
    head = f"POST {path} HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {total}\r\n"
    if token is not None:
        head += f"Authorization: Bearer {token}\r\n"
    piece = b" " * (64 * 1024)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head.encode() + b"\r\n")
        try:
            while sent < total and not select.select([s], [], [], 0)[0]:
                n = min(len(piece), total - sent)
                s.sendall(b"%x\r\n%b\r\n" % (n, piece[:n]) if chunked else piece[:n])
                sent += n
            if chunked and sent == total:
                s.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection once it had answered
            pass
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
            dict(_headers(answer)).get("content-length", "0")
        ):
            part = s.recv(65536)
            if not part:
                break
            answer += part
    status = int(answer.split(b" ", 2)[1])
    body = answer.partition(b"\r\n\r\n")[2]
    return status, dict(_headers(answer)), json.loads(body) if body else {}, sent


def _headers(answer: bytes) -> list[tuple[str, str]]:
    lines = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines)]


def test_50_mb_unauthenticated_bodies_are_refused_without_the_server_growing(
    server_process: tuple[int, int],
) -> None:
    pid, port = server_process
    for _ in range(3):  # warm: whatever a first request allocates is allocated now
        assert post_raw(port, "/v1/firms", 1000, chunked=False, token="warm")[0] in (401, 422)
    rss_before, hwm_before = rss_kib(pid)
    fifty = 50 * MB

    status, headers, body, sent = post_raw(port, "/v1/firms", fifty, chunked=False)
    assert status == 413
    assert headers["connection"] == "close"
    assert body["error"]["code"] == "too_large"
    assert "SHOUWANG_API_MAX_BODY_BYTES" in body["error"]["message"]
    assert body["error"]["fields"] == [{"field": "body", "message": "more than 1048576 bytes"}]

    # Chunked, with a token that is no token: read up to the limit, then refused.
    status, _, body, sent = post_raw(port, "/v1/firms", fifty, chunked=True, token="nobody")
    assert status == 413 and body["error"]["code"] == "too_large"
    assert sent < 20 * MB

    # Chunked without any token: refused before a byte of the body is read.
    status, headers, body, sent = post_raw(port, "/v1/firms", fifty, chunked=True)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert headers["www-authenticate"] == "Bearer"

    # An upload route: its larger limit, still far below 50 MB.
    status, _, body, _ = post_raw(port, "/v1/devices/import", fifty, chunked=False)
    assert status == 413 and "SHOUWANG_API_MAX_UPLOAD_BYTES" in body["error"]["message"]

    rss_after, hwm_after = rss_kib(pid)
    assert rss_after - rss_before < 20 * 1024, (rss_before, rss_after)
    assert hwm_after < max(hwm_before, rss_before + 20 * 1024), (rss_before, hwm_after)
    # The server still serves.
    assert httpx.get(f"http://127.0.0.1:{port}/v1/public/communities", timeout=5).is_success


# In process, with small limits.


@pytest.fixture(scope="module")
def small(api_settings: Settings) -> Iterator[InProcess]:
    s = api_settings.model_copy(
        update={
            "api_max_body_bytes": SMALL_BODY,
            "api_max_upload_bytes": SMALL_UPLOAD,
            "api_write_burst": 3,
            "api_write_rate_per_s": 2.0,
        }
    )
    with in_process(s) as client:
        yield client


class Chunks:
    """A body sent chunked; counts the chunks the app asked for."""

    def __init__(self, n: int, size: int = 1024) -> None:
        self.n, self.size, self.pulled = n, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.n):
            self.pulled += 1
            yield b" " * self.size


def auth(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"}


def padded_csv(uid: str, size: int) -> bytes:
    """A CSV of one device, padded with empty lines (which CSV skips) to exactly ``size``."""
    text = f"{CSV_HEADER}{uid},elevator,C01\n".encode()
    return text + b"\n" * (size - len(text))


def test_an_upload_just_under_its_limit_is_imported_and_just_over_is_413(
    small: InProcess, tokens: dict[str, str], api_db: Conn
) -> None:
    headers = {**auth(tokens, "firm_f01"), "Content-Type": "text/csv"}
    over = padded_csv("API-LIM-OVER", SMALL_UPLOAD + 1)
    r = small.request("POST", "/v1/devices/import", content=over, headers=headers)
    assert r.status_code == 413, r.text
    assert "at most 65536 bytes" in r.json()["error"]["message"]
    assert "SHOUWANG_API_MAX_UPLOAD_BYTES" in r.json()["error"]["message"]
    chunks = Chunks(SMALL_UPLOAD // 1024 * 2)  # twice the limit, chunked
    r = small.request("POST", "/v1/devices/import", content=chunks, headers=headers)
    assert r.status_code == 413
    assert chunks.pulled == SMALL_UPLOAD // 1024 + 1  # refused the moment it passed the limit

    under = padded_csv("API-LIM-UNDER", SMALL_UPLOAD)
    try:
        r = small.request("POST", "/v1/devices/import", content=under, headers=headers)
        assert r.status_code == 201, r.text
        assert r.json()["uids"] == ["API-LIM-UNDER"]
        imported = api_db.execute("SELECT uid FROM devices WHERE uid LIKE 'API-LIM-%'")
        assert imported.fetchall() == [("API-LIM-UNDER",)]
    finally:  # other suites pick C01's first elevator by uid
        api_db.execute("DELETE FROM devices WHERE uid LIKE 'API-LIM-%'")
    # As multipart too: the limit is on the whole body.
    form = {"file": ("devices.csv", padded_csv("API-LIM-FORM", SMALL_UPLOAD), "text/csv")}
    r = small.request("POST", "/v1/devices/import", files=form, headers=auth(tokens, "firm_f01"))
    assert r.status_code == 413


def test_other_routes_have_the_smaller_limit_before_anything_parses(
    small: InProcess, tokens: dict[str, str]
) -> None:
    body = json.dumps({"code": "F99", "name": "x" * SMALL_BODY}).encode()
    r = small.request("POST", "/v1/firms", content=body, headers=auth(tokens, "regulator"))
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "too_large"
    assert error["message"] == (
        "a request body is at most 4096 bytes on this API (SHOUWANG_API_MAX_BODY_BYTES); send less"
    )
    chunks = Chunks(100)
    r = small.request("PATCH", "/v1/firms/1", content=chunks, headers=auth(tokens, "regulator"))
    assert r.status_code == 413
    assert chunks.pulled == SMALL_BODY // 1024 + 1
    # A YAML document is an upload, and keeps its own cap on the YAML.
    doc = b"# " + b"x" * (SMALL_BODY * 2) + b"\n"
    r = small.request(
        "POST",
        "/v1/responsibility-list/validate",
        content=doc,
        headers={**auth(tokens, "duty_c01"), "Content-Type": "application/yaml"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["valid"] is False


def test_a_write_without_a_token_is_refused_before_its_body_is_read(small: InProcess) -> None:
    chunks = Chunks(3)
    r = small.request("POST", "/v1/firms", content=chunks)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert chunks.pulled == 0
    r = small.request("POST", "/v1/firms", content=b'{"code": "F9", "name": "F"}')
    assert r.status_code == 401
    # An acknowledgement link needs no token: its body is read and the link judged.
    chunks = Chunks(1, size=10)
    r = small.request("POST", "/v1/ack/not-a-link", content=chunks)
    assert r.status_code in (400, 404) and r.json()["error"]["code"] != "unauthorized"


def test_writes_beyond_the_burst_get_429_with_retry_after_and_reads_do_not(
    small: InProcess, tokens: dict[str, str]
) -> None:
    def write(who: str) -> httpx.Response:
        return small.request(
            "PATCH", "/v1/firms/2147483647", json={"name": "x"}, headers=auth(tokens, who)
        )

    assert [write("township_t01").status_code for _ in range(3)] == [403, 403, 403]
    r = write("township_t01")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    error = r.json()["error"]
    assert error["code"] == "rate_limited"
    assert "SHOUWANG_API_WRITE_BURST" in error["message"]
    assert write("township_t02").status_code == 403  # another token: its own bucket
    reads = [
        small.request("GET", "/v1/firms", headers=auth(tokens, "township_t01")).status_code
        for _ in range(10)
    ]
    assert reads == [200] * 10
    time.sleep(float(r.headers["retry-after"]))
    assert write("township_t01").status_code == 403


# Lists.


def test_every_list_limits_its_page_size(small: InProcess, tokens: dict[str, str]) -> None:
    schema = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    lists = []
    for path, ops in schema["paths"].items():
        get = ops.get("get")
        ok = (get or {}).get("responses", {}).get("200", {})
        ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        if not ref.startswith("#/components/schemas/Page_"):
            continue
        params = {p["name"]: p["schema"] for p in get["parameters"]}
        assert params["limit"]["maximum"] == MAX_LIMIT, path
        lists.append(path.replace("{work_order_id}", "1"))
    assert len(lists) >= 15
    for path in lists:
        r = small.request(
            "GET", path, params={"limit": MAX_LIMIT + 1}, headers=auth(tokens, "regulator")
        )
        assert r.status_code == 422, path
        assert r.json()["error"]["fields"][0]["field"] == "query.limit"


def test_the_upload_and_anonymous_routes_are_the_ones_the_schema_says() -> None:
    schema = create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
    raw_body, anonymous = set(), set()
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            if "415" in op.get("responses", {}):
                raw_body.add(path)
            if method.upper() in WRITES and not op.get("security"):
                anonymous.add(path)
    assert raw_body == UPLOADS | RAW_BODIES
    assert anonymous and all(ANONYMOUS_WRITES.fullmatch(p) for p in anonymous), anonymous


# Live streams, on a real server.


@pytest.fixture(scope="module")
def capped(api_settings: Settings) -> Iterator[str]:
    s = api_settings.model_copy(
        update={"api_stream_max": 3, "api_stream_max_per_token": 2, "api_token_cache_s": 1.0}
    )
    with live(s) as server:
        yield server.url


@contextmanager
def streaming(url: str, token: str, **params: Any) -> Iterator[Iterator[str]]:
    """An open stream, ``ready`` read; yields the rest of its lines."""
    with (
        httpx.Client(base_url=url, timeout=15) as client,
        client.stream(
            "GET", "/v1/stream", params=params, headers={"Authorization": f"Bearer {token}"}
        ) as r,
    ):
        assert r.status_code == 200, r.read()
        lines = r.iter_lines()
        for line in lines:
            if line == "event: ready":
                break
        yield lines


def opening(url: str, token: str) -> httpx.Response:
    """The answer to opening a stream that cannot be opened."""
    return httpx.get(
        f"{url}/v1/stream",
        params={"max_seconds": 0.1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_streams_are_capped_per_token_and_in_all(capped: str, tokens: dict[str, str]) -> None:
    with ExitStack() as open_:
        first = open_.enter_context(ExitStack())  # closed below: its place is given back
        first.enter_context(streaming(capped, tokens["duty_c01"]))
        open_.enter_context(streaming(capped, tokens["duty_c01"]))
        r = opening(capped, tokens["duty_c01"])
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "too_many_streams"
        assert "SHOUWANG_API_STREAM_MAX_PER_TOKEN" in r.json()["error"]["message"]
        assert r.headers["retry-after"] == "10"

        open_.enter_context(streaming(capped, tokens["duty_c02"]))
        r = opening(capped, tokens["regulator"])
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "streams_full"
        assert "SHOUWANG_API_STREAM_MAX" in r.json()["error"]["message"]

        first.close()
        deadline = time.monotonic() + 5
        while (r := opening(capped, tokens["duty_c01"])).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.1)


def test_a_revoked_tokens_stream_ends_within_the_cache_time(capped: str, api_db: Conn) -> None:
    issued = issue(api_db, "duty_staff", "limits: revoked while streaming", {"community": "C01"})
    with streaming(capped, issued.token, max_seconds=30) as lines:
        time.sleep(1.5)  # a check or two passes while the token is valid
        revoke(api_db, issued.id)
        revoked_at = time.monotonic()
        rest = list(lines)
        ended = time.monotonic() - revoked_at
    assert "event: revoked" in rest, rest
    assert rest[rest.index("event: revoked") + 1].startswith("data: ")
    assert ended < 1.0 + 1.0, ended  # the cache time (1 s) and a margin
    assert opening(capped, issued.token).status_code == 401


def test_a_stream_in_scope_lives_on_past_its_token_checks(
    capped: str, tokens: dict[str, str], ids: Ids, api_db: Conn
) -> None:
    from tests.api.conftest import make_alarm

    with streaming(capped, tokens["duty_c01"], max_seconds=2.5) as lines:
        time.sleep(1.2)
        alarm, _ = make_alarm(api_db, ids.devices[ids.device_in("C01")], code="EL.LIMITS")
        rest = list(lines)
    events = [json.loads(line[6:]) for line in rest if line.startswith("data: ")]
    assert alarm in [e["id"] for e in events if e.get("kind") == "alarm"]
    assert "event: revoked" not in rest and "event: reset" not in rest
