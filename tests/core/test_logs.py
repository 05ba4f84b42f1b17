"""Logs (``core.logs``): one JSON object per event when not on a terminal, a human line on one,
each with its stage, and never a secret; a real stage's log, piped, is JSON lines."""

from __future__ import annotations

import io
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.logs import configure, correlation_id, redact
from core.settings import Settings
from tests.conftest import INGEST_PASSWORD, settings_env, shouwang


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for h in root.handlers[:]:
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.parametrize(
    ("text", "kept", "secret"),
    [
        (
            "postgresql://shouwang:s3cr3t-pw@db:5432/shouwang",
            "postgresql://shouwang:***@db",
            "s3cr3t-pw",
        ),
        ("mqtts://svc-ingest:pa55word@broker:8883", "svc-ingest:***@broker", "pa55word"),
        (
            "host=db user=x password=hunter22 dbname=y",
            "host=db user=x password=*** dbname",
            "hunter22",
        ),
        ("password='two words' sslmode=require", "password=*** sslmode", "two words"),
        ("https://robot.example/send?key=abcd1234&x=1", "send?key=***&x=1", "abcd1234"),
        ("https://hook.example/?access_token=tok123456", "?access_token=***", "tok123456"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "Bearer ***", "eyJhbGci"),
        ("{'password': 'x9y8z7', 'user': 'u'}", "'password': '***', 'user': 'u'", "x9y8z7"),
        ('{"token": "t0k3n-value"}', '"token": "***"', "t0k3n-value"),
        ("GET /v1/ack/AbC.dEf-123 HTTP/1.1", "/v1/ack/*** HTTP/1.1", "AbC.dEf-123"),
    ],
)
def test_secrets_are_redacted_and_the_rest_is_kept(text: str, kept: str, secret: str) -> None:
    out = redact(text)
    assert kept in out
    assert secret not in out


def test_text_without_secrets_is_left_alone() -> None:
    text = "connected as shouwang-ingest-0 (session present: True); 12 messages, key metric E01"
    assert redact(text) == text


def test_off_a_terminal_each_event_is_one_json_line_with_its_stage(
    restore_logging: None,
) -> None:
    out = io.StringIO()
    configure("analytics", stream=out)
    log = logging.getLogger("shouwang.analytics")
    log.info("alarm opened on %s", "E-1\nsecond line", extra={"cid": "0123abcd"})
    try:
        raise ValueError("cannot reach postgresql://u:pw123456@db/x")
    except ValueError:
        log.exception("tick failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["stage"] == "analytics" and first["logger"] == "shouwang.analytics"
    assert first["level"] == "info"
    assert first["message"] == "alarm opened on E-1\nsecond line"
    assert first["cid"] == "0123abcd"
    assert first["time"].endswith("+00:00")
    assert second["level"] == "error"
    assert "ValueError" in second["exception"] and "pw123456" not in second["exception"]


def test_on_a_terminal_events_are_human_lines(restore_logging: None) -> None:
    out = Terminal()
    configure("notify", stream=out)
    logging.getLogger("shouwang.notify").warning("sent to https://u:pw@h/x")
    line = out.getvalue().strip()
    assert "WARNING [notify] shouwang.notify: sent to https://u:***@h/x" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_the_format_setting_wins_over_the_terminal(restore_logging: None) -> None:
    out = Terminal()
    configure("api", fmt="json", stream=out)
    logging.getLogger("uvicorn.access").info("GET /v1/ack/secret-token 200")
    event = json.loads(out.getvalue())
    assert event["stage"] == "api" and event["message"] == "GET /v1/ack/*** 200"


def test_a_correlation_id_is_the_same_for_the_same_reading() -> None:
    a = correlation_id("F-0001-FP-01", 1_764_547_200_000)
    assert a == correlation_id("F-0001-FP-01", 1_764_547_200_000)
    assert a != correlation_id("F-0001-FP-01", 1_764_547_200_001)
    assert a != correlation_id("F-0001-FP-02", 1_764_547_200_000)
    assert len(a) == 16 and int(a, 16) >= 0


def run_ingest_briefly(argv: list[str], env: dict[str, str], log: Path) -> str:
    """Start ingest, wait for it to connect, stop it; what it logged (stderr, not a terminal)."""
    with log.open("wb") as f:
        proc = subprocess.Popen(argv, env=env, stdout=f, stderr=f)
        try:
            deadline = time.monotonic() + 30
            while "connected as" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    return log.read_text()


def test_a_stage_piped_logs_json_lines_with_its_stage_and_no_secret(
    settings: Settings, tmp_path: Path
) -> None:
    env = settings_env(settings)
    text = run_ingest_briefly(
        shouwang("ingest", "--client-id", "logs-test-ingest"), env, tmp_path / "ingest.log"
    )
    events = [json.loads(line) for line in text.splitlines()]  # every line is one JSON event
    assert {e["stage"] for e in events} == {"ingest"}
    messages = [e["message"] for e in events]
    assert any(m.startswith("connected as logs-test-ingest") for m in messages), messages
    assert any(m.startswith("stopped: ") for m in messages), messages
    assert INGEST_PASSWORD not in text


def test_python_dash_m_a_stage_logs_as_its_setting_says(settings: Settings, tmp_path: Path) -> None:
    env = settings_env(settings) | {
        "SHOUWANG_LOG_FORMAT": "human",
        "SHOUWANG_INGEST_CLIENT_ID": "logs-test-ingest-m",
    }
    text = run_ingest_briefly([sys.executable, "-m", "ingest"], env, tmp_path / "ingest.log")
    assert "INFO [ingest] shouwang.ingest: connected as logs-test-ingest-m" in text
    assert not text.lstrip().startswith("{")
