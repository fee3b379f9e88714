"""A context budget out of range is refused whether or not the request is on a session."""

from __future__ import annotations

import pytest
from ctxgate.auth.models import Caller
from ctxgate.chat.models import ChatRequest
from ctxgate.errors import InvalidRequest
from ctxgate.messages import GenerationParams, Message

from tests.fakes import MemoryStore, chat_service


@pytest.mark.parametrize("budget", [255, 2_000_001])
def test_a_stateless_request_with_a_budget_out_of_range_is_refused(budget):
    # GIVEN a stateless request with X-Ctxgate-Budget out of 256..2,000,000, found by schemathesis:
    #   curl -X POST -H 'X-Ctxgate-Budget: 2000001' -d '{"model": "echo", "messages": [...]}' .../v1/chat/completions
    #   -> was a 200, the value silently ignored
    request = ChatRequest("echo", [Message(role="user", content="Hello")], GenerationParams(), budget_tokens=budget)
    # WHEN it is served
    with pytest.raises(InvalidRequest) as caught:
        chat_service(MemoryStore()).stateless(Caller(tenant="t"), request)
    # THEN it is the same 400 a session gets for that budget
    assert caught.value.code == "invalid_budget"
