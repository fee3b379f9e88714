"""Agent runs end to end on moto: the state machine from infra/statemachine executes in moto's engine, its Lambda
tasks run the real handlers in-process, the runs queue is delivered to the starter as Lambda would, the model is
a scripted OpenAI-compatible server on loopback (reached through the ``openai`` provider) and the tools are
webhooks served on loopback. Only the state machine's retry sleeps are patched."""

from __future__ import annotations

import json
import threading
import time
import types
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ctxgate.agent.models import MAX_TOOL_CALLS_PER_STEP
from ctxgate_local.runtime import free_port

from tests.conftest import FakeContext, load_event, load_function


class Scripted:
    """A loopback HTTP server: ``routes[path]`` answers each POST with (status, body)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]] = {}
        self.requests: dict[str, list[dict[str, Any]]] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
                owner.requests.setdefault(self.path, []).append(body)
                status, reply = owner.routes[self.path](body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def completion(content: str | None = None, calls: list[tuple[str, str, dict]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, n, a in calls
        ]
    return {
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60},
    }


def script(*replies: dict[str, Any]) -> Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]:
    queue = list(replies)
    return lambda body: (200, queue.pop(0) if len(queue) > 1 else queue[0])


@pytest.fixture
def world(aws, tmp_path, monkeypatch) -> Iterator[Any]:
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    upstream = Scripted()
    tools = Scripted()
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        f"  - {{name: agent, provider: openai, upstream_model: scripted, base_url: '{upstream.url}/v1'}}\n"
        f"  - {{name: down, provider: openai, upstream_model: scripted, base_url: 'http://127.0.0.1:{free_port()}/v1'}}\n"
    )
    monkeypatch.setenv("CTXGATE_MODELS_FILE", str(models))
    # The loopback tool server is reachable only because the allowlist names its IP and port explicitly.
    monkeypatch.setenv("CTXGATE_TOOL_ALLOWED_HOSTS", f"127.0.0.1:{tools.server.server_address[1]}")
    monkeypatch.setenv("CTXGATE_RETRY_MAX_ATTEMPTS", "1")
    from tests.conftest import _reset_caches

    _reset_caches()
    yield types.SimpleNamespace(aws=aws, upstream=upstream, tools=tools, api=load_function("api"))
    _reset_caches()
    upstream.server.shutdown()
    tools.server.shutdown()


def api_call(world, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    event = load_event("get_session.json", rawPath=path, routeKey=f"{method} {path}", queryStringParameters=None)
    event["requestContext"]["http"].update(method=method, path=path)
    event["body"] = json.dumps(body) if body is not None else None
    response = world.api.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


def tool(world, name: str, path: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": name, "parameters": {"type": "object"}},
        "endpoint": {"url": f"{world.tools.url}{path}", "timeout_seconds": 5},
    }


def start_and_wait(world, run_id: str, timeout: float = 60) -> dict[str, Any]:
    from ctxgate_local.sqs_delivery import deliver_once

    stack = world.aws.stack
    starter = stack.functions["StartRunFunction"]
    sqs = world.aws.session.client("sqs")
    while deliver_once(sqs, starter, starter.queues[0], stack):
        pass
    deadline = time.monotonic() + timeout
    while True:
        status, run = api_call(world, "GET", f"/v1/runs/{run_id}")
        assert status == 200
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.05)


def create(world, **body: Any) -> str:
    status, created = api_call(world, "POST", "/v1/runs", {"model": "agent", "max_steps": 5, **body})
    assert status == 202 and created["status"] == "queued", created
    return created["id"]


def test_a_two_tool_three_step_run_succeeds_and_extends_its_session(world):
    # GIVEN a model that calls two tools, then one, then answers, and the two webhook tools
    world.upstream.routes["/v1/chat/completions"] = script(
        completion(calls=[("c1", "weather", {"city": "Paris"}), ("c2", "clock", {"city": "Paris"})]),
        completion(calls=[("c3", "weather", {"city": "Oslo"})]),
        completion("Paris is sunny at noon; Oslo is snowy."),
    )
    world.tools.routes["/weather"] = lambda body: (
        200,
        {"city": body["city"], "sky": "sunny" if body["city"] == "Paris" else "snowy"},
    )
    world.tools.routes["/clock"] = lambda body: (200, {"time": "12:00"})
    # WHEN a run on a named session is created and executed on the state machine
    run_id = create(
        world,
        session_id="trip-planner",
        input=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
        tools=[tool(world, "weather", "/weather"), tool(world, "clock", "/clock")],
    )
    run = start_and_wait(world, run_id)
    # THEN it succeeds with three model steps and three tool steps, and its turns extend the session
    assert run["status"] == "succeeded", run["error"]
    assert run["output"] == "Paris is sunny at noon; Oslo is snowy."
    kinds = [(s["kind"], s.get("tool")) for s in run["steps"]]
    assert sorted(kinds, key=str) == sorted(
        [("model", None)] * 3 + [("tool", "weather")] * 2 + [("tool", "clock")], key=str
    )
    assert all(s["duration_ms"] >= 0 for s in run["steps"]) and run["steps"][0]["prompt_tokens"] == 50
    assert world.tools.requests["/weather"][0] == {"city": "Paris"}
    # the second model call saw both tool results
    second = world.upstream.requests["/v1/chat/completions"][1]["messages"]
    assert {m.get("tool_call_id") for m in second if m["role"] == "tool"} == {"c1", "c2"}
    _, session = api_call(world, "GET", "/v1/sessions/trip-planner")
    roles = [t["role"] for t in session["turns"]]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]


def test_a_tool_that_fails_twice_then_succeeds(world):
    # GIVEN a tool that answers 503 twice before it succeeds
    attempts = {"n": 0}

    def flaky(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        attempts["n"] += 1
        return (503, {"error": "busy"}) if attempts["n"] <= 2 else (200, {"ok": True})

    world.tools.routes["/flaky"] = flaky
    world.upstream.routes["/v1/chat/completions"] = script(completion(calls=[("c1", "flaky", {})]), completion("done"))
    # WHEN a run calls it
    run = start_and_wait(
        world, create(world, input=[{"role": "user", "content": "go"}], tools=[tool(world, "flaky", "/flaky")])
    )
    # THEN the state machine's retries carry it to success
    assert run["status"] == "succeeded" and attempts["n"] == 3
    assert next(s for s in run["steps"] if s["kind"] == "tool")["is_error"] is False


def test_a_tool_that_always_fails_is_an_error_result_the_model_sees(world):
    # GIVEN a tool that always answers 500
    world.tools.routes["/broken"] = lambda body: (500, {"error": "down"})
    world.upstream.routes["/v1/chat/completions"] = script(
        completion(calls=[("c1", "broken", {})]), completion("The tool is down; sorry.")
    )
    # WHEN a run calls it
    run = start_and_wait(
        world, create(world, input=[{"role": "user", "content": "go"}], tools=[tool(world, "broken", "/broken")])
    )
    # THEN after the retries the model sees an error result and the run still ends well
    assert run["status"] == "succeeded" and run["output"] == "The tool is down; sorry."
    second = world.upstream.requests["/v1/chat/completions"][1]["messages"]
    result = next(m for m in second if m["role"] == "tool")
    assert (
        result["content"] == "ERROR: Tool failed after retries: TransientError: tool broken returned HTTP 500"
        and len(world.tools.requests["/broken"]) == 4
    )


def test_a_provider_that_always_fails_fails_the_run_with_its_cause_and_dead_letters_it(world):
    # GIVEN a run on a model whose every provider is unreachable
    run_id = create(world, model="down", input=[{"role": "user", "content": "hello"}])
    # WHEN it is executed
    run = start_and_wait(world, run_id)
    # THEN it fails with a clean cause, and its id reaches the runs DLQ
    assert run["status"] == "failed" and run["error"]["error"] == "ProviderFailure"
    # the cause is a clean message: no stack trace, no upstream text
    assert run["error"]["cause"].startswith("All providers failed for the run's model")
    assert "Traceback" not in run["error"]["cause"] and "127.0.0.1" not in run["error"]["cause"]
    # The DLQ message is sent by the state after the one that marks the run failed: wait for it.
    sqs = world.aws.session.client("sqs")
    deadline = time.monotonic() + 20
    while not (messages := sqs.receive_message(QueueUrl=world.aws.physical["RunsDeadLetterQueue"]).get("Messages")):
        assert time.monotonic() < deadline, "the run id never reached the DLQ"
        time.sleep(0.05)
    assert [json.loads(m["Body"])["run_id"] for m in messages] == [run_id]


def test_tool_calls_over_the_per_step_limit_are_error_results_and_are_not_run(world):
    # GIVEN a model that asks for one tool call more than a step may make
    world.tools.routes["/ping"] = lambda body: (200, {"pong": body["n"]})
    calls = [(f"c{n:02d}", "ping", {"n": n}) for n in range(MAX_TOOL_CALLS_PER_STEP + 1)]
    world.upstream.routes["/v1/chat/completions"] = script(completion(calls=calls), completion("16 pongs."))
    # WHEN the run executes
    run = start_and_wait(
        world, create(world, input=[{"role": "user", "content": "ping"}], tools=[tool(world, "ping", "/ping")])
    )
    # THEN the extra call is not run but recorded as an error result the model sees
    assert run["status"] == "succeeded" and run["output"] == "16 pongs."
    assert sorted(r["n"] for r in world.tools.requests["/ping"]) == list(range(MAX_TOOL_CALLS_PER_STEP))
    refused = [s for s in run["steps"] if s["kind"] == "tool" and s["is_error"]]
    assert [s["tool_call_id"] for s in refused] == [f"c{MAX_TOOL_CALLS_PER_STEP:02d}"]
    assert "Not run" in refused[0]["result"]
    # the model saw a result for every call it made, so the session stays well-formed
    second = world.upstream.requests["/v1/chat/completions"][1]["messages"]
    assert len([m for m in second if m["role"] == "tool"]) == MAX_TOOL_CALLS_PER_STEP + 1


def test_max_steps_stops_the_run_for_budget(world):
    # GIVEN a model that calls a tool forever
    world.tools.routes["/loop"] = lambda body: (200, {"again": True})
    world.upstream.routes["/v1/chat/completions"] = script(completion(calls=[("c", "loop", {})]))
    # WHEN a run with max_steps 2 executes
    run = start_and_wait(
        world,
        create(world, max_steps=2, input=[{"role": "user", "content": "loop"}], tools=[tool(world, "loop", "/loop")]),
    )
    # THEN it stops for budget after two model steps
    assert run["status"] == "stopped_for_budget"
    assert len([s for s in run["steps"] if s["kind"] == "model"]) == 2


def test_the_same_run_message_delivered_twice_starts_one_execution(world):
    # GIVEN a created run
    world.upstream.routes["/v1/chat/completions"] = script(completion("hi"))
    run_id = create(world, input=[{"role": "user", "content": "hello"}])
    # WHEN its start message is delivered twice
    sqs = world.aws.session.client("sqs")
    sqs.send_message(
        QueueUrl=world.aws.physical["RunsQueue"], MessageBody=json.dumps({"tenant": "default", "run_id": run_id})
    )
    run = start_and_wait(world, run_id)
    # THEN one execution, named after the run, serves it
    assert run["status"] == "succeeded"
    sfn = world.aws.session.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=world.aws.physical["AgentStateMachine"])["executions"]
    assert [e["name"] for e in executions] == [run_id]


def test_cancel(world):
    # GIVEN a queued run, and a running run blocked in a slow tool
    release = threading.Event()

    def slow(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        release.wait(10)
        return 200, {"late": True}

    world.tools.routes["/slow"] = slow
    world.upstream.routes["/v1/chat/completions"] = script(completion(calls=[("c1", "slow", {})]), completion("done"))
    queued = create(world, input=[{"role": "user", "content": "never started"}])
    status, cancelled = api_call(world, "POST", f"/v1/runs/{queued}/cancel")
    assert status == 200 and cancelled["status"] == "cancelled"
    running = create(world, input=[{"role": "user", "content": "go"}], tools=[tool(world, "slow", "/slow")])
    from ctxgate_local.sqs_delivery import deliver_once

    starter = world.aws.stack.functions["StartRunFunction"]
    while deliver_once(world.aws.session.client("sqs"), starter, starter.queues[0], world.aws.stack):
        pass
    deadline = time.monotonic() + 20
    while not world.tools.requests.get("/slow"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # WHEN both are cancelled
    status, run = api_call(world, "POST", f"/v1/runs/{running}/cancel")
    release.set()
    # THEN both end cancelled, the execution stops, and no model call follows
    assert status == 200 and run["status"] == "cancelled"
    sfn = world.aws.session.client("stepfunctions")
    arn = f"{world.aws.physical['AgentStateMachine'].replace(':stateMachine:', ':execution:')}:{running}"
    deadline = time.monotonic() + 20
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # AWS reports ABORTED; moto 5.2.1's engine crashes aborting a running Map iteration and reports FAILED.
    assert sfn.describe_execution(executionArn=arn)["status"] in ("ABORTED", "FAILED")
    assert api_call(world, "GET", f"/v1/runs/{running}")[1]["status"] == "cancelled"  # the first ending stands
    assert len(world.upstream.requests["/v1/chat/completions"]) == 1  # no model call after the cancel
    assert api_call(world, "GET", f"/v1/runs/{queued}")[1]["status"] == "cancelled"  # the starter skipped it


def test_the_budget_check_compacts_a_long_run_session_through_the_consumer(world, monkeypatch):
    from ctxgate.bootstrap import session_service

    from tests.conftest import _reset_caches

    # GIVEN a small session budget and a tool whose long reports fill it
    monkeypatch.setenv("CTXGATE_DEFAULT_BUDGET_TOKENS", "2048")
    _reset_caches()
    report = "The quarterly figures show steady growth across every region we track. " * 30
    world.tools.routes["/report"] = lambda body: (200, {"page": body.get("page"), "text": report})
    calls = [completion(calls=[(f"p{i}", "report", {"page": i})]) for i in range(1, 5)]
    world.upstream.routes["/v1/chat/completions"] = script(*calls, completion("Growth everywhere."))
    # WHEN a run reads four reports
    run_id = create(
        world,
        max_steps=8,
        session_id="long-report",
        input=[{"role": "user", "content": "Summarise."}],
        tools=[tool(world, "report", "/report")],
    )
    run = start_and_wait(world, run_id)
    # THEN the budget check hands the session to the compaction consumer (the Compact state) and it is summarised
    assert run["status"] == "succeeded", run["error"]
    sfn = world.aws.session.client("stepfunctions")
    arn = f"{world.aws.physical['AgentStateMachine'].replace(':stateMachine:', ':execution:')}:{run_id}"
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    assert "Compact" in entered
    plan = session_service().inspect("default", "long-report", "next")
    assert plan.summarised, "the consumer summarised the run's evicted turns"


def test_a_lambda_tool_is_invoked_with_the_arguments(world, tmp_path, monkeypatch):
    from ctxgate_local.template import _EMPTY_ZIP, Function

    from tests.conftest import _reset_caches

    # GIVEN a Lambda function the operator lists as a tool, and a model that calls it
    (tmp_path / "tool.py").write_text("def handler(event, context):\n    return {'total': sum(event['numbers'])}\n")
    lam = world.aws.session.client("lambda")
    role = world.aws.session.client("iam").get_role(RoleName="ctxgate-local-lambda")["Role"]["Arn"]
    arn = lam.create_function(
        FunctionName="adder", Runtime="python3.12", Role=role, Handler="tool.handler", Code={"ZipFile": _EMPTY_ZIP}
    )["FunctionArn"]
    world.aws.functions.add(
        "adder", Function(logical_id="Adder", code_uri=tmp_path, handler="tool.handler", environment={}, timeout=10)
    )
    monkeypatch.setenv("CTXGATE_TOOL_FUNCTION_ARNS", arn)  # the operator lists it (ToolFunctionArns)
    _reset_caches()
    world.upstream.routes["/v1/chat/completions"] = script(
        completion(calls=[("c1", "add", {"numbers": [2, 3, 37]})]), completion("The total is 42.")
    )
    adder = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}, "lambda_arn": arn}
    # WHEN a run uses it
    run = start_and_wait(world, create(world, input=[{"role": "user", "content": "Add 2, 3 and 37."}], tools=[adder]))
    # THEN the function is invoked with the model's arguments and its answer is the tool result
    assert run["status"] == "succeeded" and run["output"] == "The total is 42."
    result = next(s for s in run["steps"] if s["kind"] == "tool")
    assert result["is_error"] is False and result["result"] == '{"total": 42}'
