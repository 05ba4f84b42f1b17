from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.settings import Settings
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from tests.background import running


@pytest.fixture
def ingest_worker(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Consumer]:
    """An ingest worker running in a thread of the test process, against the test services."""
    cfg = config_from(settings, f"test-ingest-{request.node.name}"[:60])
    overrides = getattr(request, "param", {})
    if overrides:
        from dataclasses import replace

        cfg = replace(cfg, **overrides)
    consumer = Consumer(cfg, settings.database_url)
    try:
        with running(consumer.run, consumer.stop, "ingest"):
            assert consumer._connected.wait(10), "ingest did not connect"
            yield consumer
    finally:
        retire_session(cfg)
        consumer.conn.close()
