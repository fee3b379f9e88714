"""Issue 11 end to end: the official openai SDK streaming through ``ctxgate local`` from an upstream the test
controls (an OpenAI-compatible SSE server in this process, so a test can hold its stream back until it says so)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest

from tests.e2e.conftest import LocalGateway, start_gateway, stop_gateway

pytestmark = pytest.mark.e2e

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
HELD_REST = ["second ", "third"]
HOLD_TIMEOUT = 30.0


class ControlledUpstream:
    """Answers by the last user message: ``hold`` (one chunk, then the rest once :attr:`release` is set),
    ``tool`` (a streamed or whole tool call), ``fail`` (two chunks, then the connection drops), else one chunk per
    word."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held_rest_sent = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a body that ends when the connection closes: a drop looks like one
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                upstream.serve(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def serve(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        prompt = body["messages"][-1]["content"]
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": prompt}
            if prompt == "tool":
                message = {"role": "assistant", "content": None, "tool_calls": [self.tool_call()]}
            reply = {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
            data = json.dumps(reply).encode()
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.end_headers()

        def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {"id": "up", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
            chunk["choices"][0]["finish_reason"] = finish
            handler.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            handler.wfile.flush()

        if prompt == "hold":
            send({"role": "assistant", "content": "first "})
            released = self.release.wait(HOLD_TIMEOUT)
            for word in HELD_REST if released else ["never released"]:
                send({"content": word})
            self.held_rest_sent.set()
        elif prompt == "tool":
            call = self.tool_call()
            arguments = call["function"]["arguments"]
            send({"tool_calls": [{"index": 0, "id": call["id"], "type": "function", "function": {"name": "weather"}}]})
            for start in range(0, len(arguments), 5):
                send({"tool_calls": [{"index": 0, "function": {"arguments": arguments[start : start + 5]}}]})
            send({}, "tool_calls")
        elif prompt == "fail":
            send({"content": "partial "})
            send({"content": "answer"})
            return  # the connection closes without [DONE]: the upstream died midway
        else:
            for word in prompt.split(" "):
                send({"content": word + " "})
        if prompt != "tool":
            send({}, "stop")
        usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
        handler.wfile.write(f"data: {json.dumps({'id': 'up', 'choices': [], 'usage': usage})}\n\n".encode())
        handler.wfile.write(b"data: [DONE]\n\n")

    @staticmethod
    def tool_call() -> dict[str, Any]:
        return {"id": "call_7", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'}}


@pytest.fixture(scope="module")
def upstream() -> Iterator[ControlledUpstream]:
    running = ControlledUpstream()
    yield running
    running.release.set()
    running.server.shutdown()


@pytest.fixture(scope="module")
def local(upstream: ControlledUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGateway]:
    config = tmp_path_factory.mktemp("stream") / "models.yaml"
    config.write_text(
        "models:\n"
        f"  - {{name: up, provider: openai, upstream_model: up-1, base_url: '{upstream.url}'}}\n"
        "  - {name: echo, provider: echo, upstream_model: echo}\n"
    )
    gateway = start_gateway("--config", str(config))
    yield gateway
    stop_gateway(gateway)


def sdk(gateway: LocalGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_the_first_chunk_reaches_the_client_while_the_upstream_holds_back_the_rest(local, upstream):
    # GIVEN an upstream that sends one chunk and then waits for the test's signal
    upstream.release.clear()
    upstream.held_rest_sent.clear()
    stream = sdk(local).chat.completions.create(model="up", messages=user("hold"), stream=True)
    # WHEN the client reads until the first content arrives
    first = next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
    # THEN it arrived while the upstream was still holding the rest back; the rest follows the signal
    assert first.choices[0].delta.content == "first "
    assert not upstream.held_rest_sent.is_set()
    upstream.release.set()
    rest = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert rest == HELD_REST


def test_tool_call_deltas_reassemble_into_the_non_streamed_call(local):
    # GIVEN the same tool-calling request, streamed and not
    client = sdk(local)
    whole = client.chat.completions.create(model="up", messages=user("tool"), tools=[WEATHER_TOOL])
    stream = client.chat.completions.create(model="up", messages=user("tool"), tools=[WEATHER_TOOL], stream=True)
    # WHEN the streamed deltas are joined per index
    calls: dict[int, dict[str, str]] = {}
    finish = None
    deltas = 0
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                deltas += 1
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                call["name"] += (delta.function and delta.function.name) or ""
                call["arguments"] += (delta.function and delta.function.arguments) or ""
    # THEN they arrived as several deltas and make exactly the non-streamed call
    expected = whole.choices[0].message.tool_calls[0]
    assert deltas > 2 and finish == "tool_calls" == whole.choices[0].finish_reason
    assert calls == {0: {"id": expected.id, "name": expected.function.name, "arguments": expected.function.arguments}}


def test_include_usage_adds_a_last_chunk_with_the_usage_and_no_choices(local):
    client = sdk(local)
    with_usage = list(
        client.chat.completions.create(
            model="up", messages=user("count my tokens"), stream=True, stream_options={"include_usage": True}
        )
    )
    without = list(client.chat.completions.create(model="up", messages=user("count my tokens"), stream=True))
    last = with_usage[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (11, 5, 16)
    assert all(chunk.usage is None for chunk in with_usage[:-1] + without)


def session_turns(gateway: LocalGateway, session: str) -> list[dict[str, Any]] | None:
    response = httpx.get(f"{gateway.base_url}/sessions/{session}", headers=gateway.auth)
    return None if response.status_code == 404 else response.json()["turns"]


def test_a_mid_stream_upstream_failure_raises_in_the_sdk_and_stores_nothing(local):
    # GIVEN a session with one stored turn
    session = f"stream-fail-{uuid.uuid4().hex[:8]}"
    headers = {"X-Session-Id": session}
    client = sdk(local)
    client.chat.completions.create(model="up", messages=user("hello"), extra_headers=headers)
    # WHEN the next turn's upstream dies after two chunks
    received: list[str] = []
    with pytest.raises(openai.APIError) as failed:
        for chunk in client.chat.completions.create(
            model="up", messages=user("fail"), stream=True, extra_headers=headers
        ):
            received.extend(c.delta.content for c in chunk.choices if c.delta.content)
    # THEN the client saw the partial answer, then an error; the session still holds only the first turn
    assert "".join(received) == "partial answer"
    assert "upstream" not in str(failed.value).lower()
    assert [t["content"] for t in session_turns(local, session) or []] == ["hello", "hello"]


def test_a_cache_hit_is_streamed_in_chunks(local):
    # GIVEN a deterministic request answered once (and so cached)
    client = sdk(local)
    prompt = user(f"cache me please now {uuid.uuid4().hex[:6]}")
    client.chat.completions.create(model="echo", messages=prompt, temperature=0)
    # WHEN it is asked again with stream=True
    raw = client.chat.completions.with_raw_response.create(model="echo", messages=prompt, temperature=0, stream=True)
    pieces = [c.choices[0].delta.content for c in raw.parse() if c.choices and c.choices[0].delta.content]
    # THEN the hit is served as several content chunks making the cached answer
    assert raw.headers["x-ctxgate-cache"] == "hit-exact"
    assert len(pieces) > 3
    assert "".join(pieces) == f"[echo] received 1 messages; last: {prompt[0]['content']}"


def test_a_client_that_disconnects_mid_stream_still_gets_its_paid_turn_stored(local, upstream):
    # GIVEN a stateful stream whose upstream holds back after the first chunk
    upstream.release.clear()
    upstream.held_rest_sent.clear()
    session = f"stream-gone-{uuid.uuid4().hex[:8]}"
    stream = sdk(local).chat.completions.create(
        model="up", messages=user("hold"), stream=True, extra_headers={"X-Session-Id": session}
    )
    next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content)
    # WHEN the client goes away, and only then the upstream completes
    stream.close()
    upstream.release.set()
    assert upstream.held_rest_sent.wait(HOLD_TIMEOUT)
    # THEN the whole turn is stored (the documented choice: the caller has paid for it)
    turns = None
    for _ in range(200):
        turns = session_turns(local, session)
        if turns:
            break
        time.sleep(0.05)
    assert turns is not None
    assert [t["content"] for t in turns] == ["hold", "first " + "".join(HELD_REST)]
