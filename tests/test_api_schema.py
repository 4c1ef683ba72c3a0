"""Property-based: every request the OpenAPI schema of `monitor serve` allows gets an answer the
schema describes (status, media type, body), never a server error (schemathesis 4 + hypothesis).

The read API is fuzzed as schemathesis generates it. The webhook rightly refuses unsigned calls,
so its cases are signed here, as Miniflux would sign them, before they are sent: every body its
schema allows must then be accepted.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from test_api import SUMMIT, _fill, _settings

from monitor.config import API_TOKEN_ENV, MINIFLUX_SECRET_ENV
from monitor.db.story_models import judgment_history
from monitor.integrations import miniflux
from monitor.server import WEBHOOK_PATH, create_app
from monitor.service import MonitorService

SECRET = "schema-test-secret"
EXAMPLES = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MonitorService]:
    monkeypatch.setenv(MINIFLUX_SECRET_ENV, SECRET)
    with MonitorService(_settings(f"sqlite:///{tmp_path / 'monitor.db'}")) as svc:
        _fill(svc)
        yield svc


# schemathesis's pytest integration (`from_fixture`) breaks on pytest 9 (it sets Node._nodeid, which
# pytest 9 removed), so each operation's strategy is driven by hypothesis's own @given.
READ_OPERATIONS = [("GET", "/api/health"), ("GET", "/api/stories"), ("GET", "/api/stories/{story_id}"),
                   ("GET", "/api/matches"), ("GET", "/api/digest"), ("GET", "/api/stories/{story_id}/near-misses"),
                   ("GET", "/api/stories/{story_id}/judgments")]
JUDGMENTS = "/api/stories/{story_id}/judgments"


def test_every_operation_is_fuzzed(service: MonitorService) -> None:
    loaded = schemathesis.openapi.from_asgi("/openapi.json", create_app(service))
    operations = {(op.method.upper(), op.path) for op in (r.ok() for r in loaded.get_all_operations())}
    assert operations == {*READ_OPERATIONS, ("POST", WEBHOOK_PATH), ("POST", JUDGMENTS)}


@pytest.mark.parametrize("method, path, mode", [
    *((method, path, GenerationMode.POSITIVE) for method, path in READ_OPERATIONS),
    # only these take parameters that can be invalid
    ("GET", "/api/matches", GenerationMode.NEGATIVE), ("GET", "/api/digest", GenerationMode.NEGATIVE),
    ("GET", "/api/stories/{story_id}/near-misses", GenerationMode.NEGATIVE),
    # no token is configured here: every write is refused (403), as documented
    ("POST", JUDGMENTS, GenerationMode.POSITIVE), ("POST", JUDGMENTS, GenerationMode.NEGATIVE),
], ids=lambda v: v.value if isinstance(v, GenerationMode) else v)
def test_the_read_api_answers_as_its_schema_says(service: MonitorService, method: str, path: str,
                                                 mode: GenerationMode) -> None:
    operation = schemathesis.openapi.from_asgi("/openapi.json", create_app(service))[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @EXAMPLES
    def answers(case: schemathesis.Case) -> None:
        case.call_and_validate()

    answers()


def test_the_webhook_accepts_every_signed_body_its_schema_allows(service: MonitorService) -> None:
    app = create_app(service)
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[WEBHOOK_PATH]["POST"]
    transport = httpx.ASGITransport(app=app)

    @given(case=operation.as_strategy())
    @EXAMPLES
    def signed(case: schemathesis.Case) -> None:
        body = json.dumps(case.body).encode("utf-8")
        headers = {"Content-Type": "application/json", miniflux.SIGNATURE_HEADER: miniflux.sign(SECRET, body),
                   **({miniflux.EVENT_HEADER: case.headers[miniflux.EVENT_HEADER]}
                      if case.headers and miniflux.EVENT_HEADER in case.headers else {})}
        response = _post(transport, body, headers)
        assert response.status_code == 202, response.text
        assert response.json()["queued"] == len(case.body["entries"])
        case.validate_response(response)

    signed()
    assert service.pending() > 0


def test_with_the_token_every_judgment_its_schema_allows_is_recorded(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, "schema-token")
    with MonitorService(_settings(f"sqlite:///{tmp_path / 'monitor.db'}")) as svc:
        _fill(svc)
        operation = schemathesis.openapi.from_asgi("/openapi.json", create_app(svc))[JUDGMENTS]["POST"]
        recorded = 0

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        @EXAMPLES
        def judged(case: schemathesis.Case) -> None:
            nonlocal recorded
            case.path_parameters = {"story_id": SUMMIT}
            response = case.call_and_validate(headers={"Authorization": "Bearer schema-token"})
            assert response.status_code == 201, response.text
            recorded += 1

        judged()
        assert len(judgment_history(svc.store, SUMMIT)) == recorded > 0


def _post(transport: httpx.ASGITransport, body: bytes, headers: dict[str, str]) -> httpx.Response:
    import asyncio

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://monitor.test") as client:
            response = await client.post(WEBHOOK_PATH, content=body, headers=headers)
            await response.aread()
            return response

    return asyncio.run(send())
