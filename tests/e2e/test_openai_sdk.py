"""End to end: ``ctxgate local`` served on a free port, driven by the official ``openai`` SDK."""

from __future__ import annotations

import json
import uuid

import httpx
import openai
import pytest
from ctxgate.cli import main
from ctxgate.cli_usage import LOCAL_USAGE_TABLE as USAGE_TABLE

from tests.e2e.conftest import LocalGateway, start_gateway, stop_gateway

pytestmark = pytest.mark.e2e


def client(gateway: LocalGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)


def test_three_turn_session_sends_only_new_messages(gateway):
    sdk = client(gateway)
    session = f"e2e-{uuid.uuid4().hex[:8]}"
    headers = {"X-Session-Id": session}
    turns = [
        [{"role": "system", "content": "You are a concise travel agent."}, {"role": "user", "content": "Book Lisbon."}],
        [{"role": "user", "content": "Window seat, please."}],
        [{"role": "user", "content": "And a hotel near the river."}],
    ]
    for expected_count, expected_turn, messages in zip((2, 4, 6), ("2", "4", "6"), turns, strict=True):
        raw = sdk.chat.completions.with_raw_response.create(model="echo", messages=messages, extra_headers=headers)
        completion = raw.parse()
        last = messages[-1]["content"]
        assert completion.choices[0].message.content == f"[echo] received {expected_count} messages; last: {last}"
        assert raw.headers["x-session-id"] == session and raw.headers["x-ctxgate-turn"] == expected_turn
        assert completion.usage is not None and completion.usage.prompt_tokens > 0
    stored = httpx.get(f"{gateway.base_url}/sessions/{session}", headers=gateway.auth).json()
    assert [t["role"] for t in stored["turns"]] == ["user", "assistant"] * 3
    assert stored["system_prompt"] == "You are a concise travel agent."
    assert [t["turn"] for t in stored["turns"]] == [1, 2, 3, 4, 5, 6]


def usage_total(gateway: LocalGateway, capsys: pytest.CaptureFixture[str]) -> dict:
    """The development key's tenant's usage today, as ``ctxgate usage --json`` reads it from the local AWS
    endpoint (the e2e client authenticates with the key ``ctxgate local`` printed, for tenant ``local``)."""
    assert main(["usage", "--tenant", "local", "--json", "--endpoint-url", gateway.aws_endpoint]) == 0
    return json.loads(capsys.readouterr().out)["total"]


def test_stateless_call_is_forwarded_as_is_and_stores_nothing_but_its_usage(gateway, capsys):
    before = gateway.dynamodb_item_count(except_tables=(USAGE_TABLE,))
    usage_before = usage_total(gateway, capsys)
    completion = client(gateway).chat.completions.create(
        model="echo",
        messages=[
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ],
    )
    assert completion.choices[0].message.content == "[echo] received 3 messages; last: c"
    assert gateway.dynamodb_item_count(except_tables=(USAGE_TABLE,)) == before
    usage_after = usage_total(gateway, capsys)
    assert usage_after["requests"] == usage_before["requests"] + 1
    assert usage_after["input_tokens"] - usage_before["input_tokens"] == completion.usage.prompt_tokens


def test_streaming_with_the_sdk(gateway):
    session = f"e2e-stream-{uuid.uuid4().hex[:8]}"
    stream = client(gateway).chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "stream this please " * 10}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"X-Session-Id": session},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[echo] received 1 messages; last: " + "stream this please " * 10
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert httpx.get(f"{gateway.base_url}/sessions/{session}", headers=gateway.auth).json()["turn_count"] == 2


def test_models_are_listed(gateway):
    assert [m.id for m in client(gateway).models.list()] == ["echo"]


def raw_post(gateway: LocalGateway, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        content=content,
        headers={"content-type": "application/json", **gateway.auth, **(headers or {})},
        timeout=30,
    )


SESSION = {"X-Session-Id": "bad-input-session"}


@pytest.mark.parametrize(
    ("case", "send"),
    [
        ("malformed JSON", lambda g: raw_post(g, b'{"model": "echo", "messages": [', SESSION)),
        ("missing messages", lambda g: raw_post(g, b'{"model": "echo"}', SESSION)),
        ("empty messages", lambda g: raw_post(g, b'{"model": "echo", "messages": []}', SESSION)),
        (
            "wrong types",
            lambda g: raw_post(g, b'{"model": "echo", "messages": [{"role": "user", "content": 7}]}', SESSION),
        ),
        (
            "oversized body",
            lambda g: raw_post(
                g, b'{"model": "echo", "messages": [{"role": "user", "content": "' + b"x" * 2_200_000 + b'"}]}', SESSION
            ),
        ),
    ],
)
def test_bad_input_is_a_4xx_with_an_error_body_and_nothing_is_stored(gateway, case, send):
    items, objects = gateway.dynamodb_item_count(), gateway.s3_object_count()
    response = send(gateway)
    assert 400 <= response.status_code < 500, case
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error" and error["code"]
    assert (gateway.dynamodb_item_count(), gateway.s3_object_count()) == (items, objects)
    assert httpx.get(f"{gateway.base_url}/sessions/bad-input-session", headers=gateway.auth).status_code == 404


def test_unknown_model_and_bad_session_id_through_the_sdk(gateway):
    sdk = client(gateway)
    before = gateway.dynamodb_item_count()
    with pytest.raises(openai.NotFoundError) as unknown:
        sdk.chat.completions.create(
            model="gpt-404", messages=[{"role": "user", "content": "x"}], extra_headers={"X-Session-Id": "fine"}
        )
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad_id:
        sdk.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "x"}], extra_headers={"X-Session-Id": "not/valid"}
        )
    assert bad_id.value.code == "invalid_session_id"
    assert gateway.dynamodb_item_count() == before


def test_custom_config_and_clean_shutdown_on_ctrl_c(tmp_path):
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n"
        "  - {name: house, provider: echo, upstream_model: echo}\n"
        "  - {name: gpt-4o-mini, provider: openai, upstream_model: gpt-4o-mini, api_key_env: OPENAI_API_KEY,"
        " fallbacks: [house]}\n"
    )
    running = start_gateway("--config", str(config))
    try:
        assert "models: house, gpt-4o-mini" in "".join(running.output)
        assert [m.id for m in client(running).models.list()] == ["house", "gpt-4o-mini"]
    finally:
        code = stop_gateway(running)
    assert code == 0 and "stopping" in "".join(running.output)


def test_ctrl_c_stops_a_gateway_started_as_a_background_job():
    # GIVEN ctxgate local started the way `cmd &` in a CI script starts it: SIGINT ignored from the start
    running = start_gateway(sigint_ignored=True)
    # WHEN it gets Ctrl-C
    code = stop_gateway(running)
    # THEN it still stops, cleanly
    assert code == 0 and "stopping" in "".join(running.output)


def test_the_same_deterministic_request_twice_is_an_exact_cache_hit(gateway):
    sdk = client(gateway)
    messages = [{"role": "user", "content": f"What is the capital of Portugal? ({uuid.uuid4().hex[:6]})"}]
    first = sdk.chat.completions.with_raw_response.create(model="echo", messages=messages, temperature=0)
    second = sdk.chat.completions.with_raw_response.create(model="echo", messages=messages, temperature=0)
    assert first.headers["x-ctxgate-cache"] == "miss"
    assert second.headers["x-ctxgate-cache"] == "hit-exact"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    no_cache = sdk.chat.completions.with_raw_response.create(
        model="echo", messages=messages, temperature=0, extra_headers={"Cache-Control": "no-cache"}
    )
    assert no_cache.headers["x-ctxgate-cache"] == "bypass"
    warm = sdk.chat.completions.with_raw_response.create(model="echo", messages=messages, temperature=0.7)
    assert warm.headers["x-ctxgate-cache"] == "bypass"


def test_the_sdk_sees_the_request_id_on_success_and_on_errors(gateway):
    # GIVEN the official SDK against the local gateway
    sdk = client(gateway)
    # WHEN a request succeeds THEN the SDK exposes the gateway's x-request-id
    completion = sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert completion._request_id
    # WHEN a request fails THEN the error carries a request id, a type, a code and a message
    with pytest.raises(openai.NotFoundError) as caught:
        sdk.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    error = caught.value
    assert error.request_id and error.code == "model_not_found" and error.type == "invalid_request_error"
    assert isinstance(error.body, dict) and error.body["request_id"] == error.request_id
