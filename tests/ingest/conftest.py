from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from core.settings import Settings
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session


@pytest.fixture
def ingest_worker(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Consumer]:
    """An ingest worker running in a thread of the test process, against the test services."""
    cfg = config_from(settings, f"test-ingest-{request.node.name}"[:60])
    overrides = getattr(request, "param", {})
    if overrides:
        from dataclasses import replace

        cfg = replace(cfg, **overrides)
    consumer = Consumer(cfg, settings.database_url)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run()
        except BaseException as e:  # surfaced below: a swallowed error fails the test
            errors.append(e)

    t = threading.Thread(target=run, name="ingest")
    t.start()
    assert consumer._connected.wait(10), "ingest did not connect"
    yield consumer
    consumer.stop()
    t.join(30)
    retire_session(cfg)
    consumer.conn.close()
    assert not errors, errors
