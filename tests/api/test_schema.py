"""The API against its own OpenAPI description: schemathesis generates requests for every
operation, valid and invalid, sent as the county regulator (who may do the most) to a server on
a database of its own. No answer may be a server error or differ from what the schema documents
(status code, content type, body)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.tokens import issue
from core.db import connect
from core.settings import Settings
from tests.api.conftest import UNLIMITED_WRITES, InProcess, in_process, seeded_database
from tests.conftest import Broker, settings_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 6  # per operation and mode: the whole run stays well under a minute

# The schema as the app describes it (building the app connects to nothing). The stream never
# ends by itself, so it has tests of its own.
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]
).exclude(path="/v1/stream")
OPERATIONS = {
    op.label: op
    for op in (r.ok() for r in SCHEMA.get_all_operations())  # type: ignore[union-attr]
}


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, api_broker: Broker
) -> Iterator[tuple[InProcess, str]]:
    """The app on a database of its own (the fuzzing writes freely), and a regulator token.
    Credential calls write broker files in a directory of their own."""
    state = tmp_path_factory.mktemp("schema")
    with seeded_database(f"shouwang_api_fuzz_{os.getpid()}", state / "secrets.json") as url:
        with connect(url, autocommit=True) as db:
            token = issue(db, "county_regulator", "schemathesis", {}).token
        files = Broker(api_broker.host, api_broker.port, state, api_broker.proc)
        settings = settings_for(url, files, state, api_pool_size=4, **UNLIMITED_WRITES)
        with in_process(settings) as client:
            yield client, token


def send(client: InProcess, case: Any, token: str) -> httpx.Response:
    """The case as an httpx request, in-process."""
    kw = case.as_transport_kwargs(base_url="http://api")
    headers = {**kw.get("headers", {}), "Authorization": f"Bearer {token}"}
    extra: dict[str, Any] = {}
    if "json" in kw:
        extra["json"] = kw["json"]
    if kw.get("data") is not None:
        data = kw["data"]
        extra["content" if isinstance(data, bytes | str) else "data"] = data
    if kw.get("files"):  # requests' form: (name, (filename, content)); encoded here, whole
        form = httpx.Request(
            "POST",
            "http://api",
            files=[
                (name, (filename, v if isinstance(v, bytes) else str(v).encode()))
                for name, (filename, v, *_) in kw["files"]
            ],
        )
        extra["content"] = form.read()
        headers["Content-Type"] = form.headers["Content-Type"]
    return client.request(
        kw["method"], kw["url"], headers=headers, params=kw.get("params"), **extra
    )


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_conforms_to_the_schema(label: str, fuzzed: tuple[InProcess, str]) -> None:
    client, token = fuzzed
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @given(case=OPERATIONS[label].as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.validate_response(send(client, case, token), checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise
            # Nothing of this operation's input can be made invalid (e.g. one free-text path part).
