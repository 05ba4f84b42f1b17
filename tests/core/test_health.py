"""`shouwang health`'s checks against the real services, and against nothing."""

from __future__ import annotations

from core import health
from tests.conftest import Broker, free_port


def test_checks_say_what_answers(database_url: str, broker: Broker) -> None:
    assert health.database(database_url)[0]
    assert health.broker(broker.host, broker.port)[0]
    ok, detail = health.broker("127.0.0.1", free_port())
    assert not ok and "refused" in detail
    assert not health.http(f"http://127.0.0.1:{free_port()}/")[0]
