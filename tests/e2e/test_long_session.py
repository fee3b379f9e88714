"""End to end: a long session under a small budget through ``ctxgate local`` and the official ``openai`` SDK.

Compactions run asynchronously here, through the real queue and the consumer that ``ctxgate local`` polls for.
"""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e
BUDGET = 1024


def queue_idle(gateway) -> bool:
    sqs = gateway.aws("sqs")
    url = next(u for u in sqs.list_queues()["QueueUrls"] if "CompactionQueue" in u and "Dead" not in u)
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def wait_for_compactions(gateway, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not queue_idle(gateway):
        assert time.monotonic() < deadline, "the compaction queue was not drained"
        time.sleep(0.05)


def test_long_session_with_a_small_budget_keeps_correct_echo_counts(gateway):
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    session = f"long-{uuid.uuid4().hex[:8]}"
    headers = {"X-Session-Id": session, "X-Ctxgate-Budget": str(BUDGET)}
    base = gateway.base_url
    httpx.post(
        f"{base}/sessions/{session}/pins", json={"content": "The user is vegetarian."}, headers=gateway.auth
    ).raise_for_status()
    counts = []
    for i in range(40):
        text = f"Day {i} of the trip: we visited place number {i} and ate at a small cafe near the old harbour."
        messages = [{"role": "user", "content": text}]
        if i == 0:
            messages.insert(0, {"role": "system", "content": "You are a travel diary assistant."})
        wait_for_compactions(gateway)
        plan = httpx.get(f"{base}/sessions/{session}/context", params={"message": text}, headers=gateway.auth).json()
        expected = sum(s["messages"] for s in plan["sections"]) + (1 if i == 0 else 0)  # the first system message
        raw = sdk.chat.completions.with_raw_response.create(model="echo", messages=messages, extra_headers=headers)
        reply = raw.parse().choices[0].message.content
        assert reply == f"[echo] received {expected} messages; last: {text}"
        assert int(raw.headers["x-ctxgate-context-tokens"]) <= BUDGET
        assert raw.headers["x-ctxgate-turn"] == str(2 * i + 2)
        counts.append(expected)
    # The history was evicted and summarised: what is sent stays bounded while the session keeps growing.
    assert max(counts[-10:]) < 20 < 80
    final = httpx.get(
        f"{base}/sessions/{session}/context", params={"message": "Where did we eat on day 3?"}, headers=gateway.auth
    ).json()
    assert final["turns"]["summarised"], "older turns were summarised"
    assert 7 in final["turns"]["recalled"] or 8 in final["turns"]["recalled"], final["turns"]
    stored = httpx.get(f"{base}/sessions/{session}", params={"limit": 1000}, headers=gateway.auth).json()
    assert stored["turn_count"] == 80 and len(stored["turns"]) == 80  # eviction never deletes a turn
