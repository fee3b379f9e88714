"""Responses streaming end to end: the official openai SDK streaming ``POST /v1/responses`` through ``ctxgate
local`` from an upstream the test controls (the controllable OpenAI-compatible server of the streaming tests)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.e2e.conftest import LocalGateway, start_gateway, stop_gateway
from tests.e2e.test_streaming_local import HELD_REST, ControlledUpstream

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def upstream() -> Iterator[ControlledUpstream]:
    running = ControlledUpstream()
    yield running
    running.release.set()
    running.server.shutdown()


@pytest.fixture(scope="module")
def local(upstream: ControlledUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    config = tmp_path_factory.mktemp("responses-stream") / "models.yaml"
    config.write_text(
        f"models:\n  - {{name: up, provider: openai, upstream_model: up-1, base_url: '{upstream.url}'}}\n"
    )
    gateway = start_gateway("--config", str(config))
    yield gateway
    stop_gateway(gateway)


def sdk(gateway: LocalGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)


def test_the_first_text_delta_arrives_while_the_upstream_holds_back_the_rest(local, upstream):
    # GIVEN an upstream that sends one chunk and then waits for the test's signal
    upstream.release.clear()
    upstream.held_rest_sent.clear()
    with sdk(local).responses.stream(model="up", input="hold") as stream:
        # WHEN the client reads until the first text delta
        first = next(event for event in stream if event.type == "response.output_text.delta")
        # THEN it arrived while the upstream was still holding the rest back; the rest follows the signal
        assert first.delta == "first " and not upstream.held_rest_sent.is_set()
        upstream.release.set()
        rest = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert rest == HELD_REST and final.output_text == "first " + "".join(HELD_REST)


def test_a_mid_stream_failure_ends_in_response_failed_and_stores_nothing(local):
    # GIVEN a stored response
    client = sdk(local)
    raw = client.responses.with_raw_response.create(model="up", input="hello")
    first, session = raw.parse(), raw.headers["x-session-id"]
    # WHEN the next response streams from an upstream that dies after two chunks
    events = list(client.responses.create(model="up", input="fail", previous_response_id=first.id, stream=True))
    # THEN the client saw the partial text, then response.failed with a safe error; nothing was stored
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "partial answer"
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.error is not None
    assert "upstream" not in failed.response.error.message.lower()
    raw = client.responses.with_raw_response.create(model="up", input="again", previous_response_id=first.id)
    assert raw.headers["x-session-id"] == session and raw.headers["x-ctxgate-turn"] == "4"  # appended, not forked
    turns = httpx.get(f"{local.base_url}/sessions/{session}", headers=local.auth).json()["turns"]
    assert [t["content"] for t in turns] == ["hello", "hello", "again", "again"]
