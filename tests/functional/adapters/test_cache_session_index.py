"""The response cache's per-session index on moto (tables from template.yaml): a session's entries go with it, and
an entry written by a turn that races the delete is refused."""

from __future__ import annotations

import pytest
from ctxgate.auth.models import Caller
from ctxgate.bootstrap import build_chat
from ctxgate.cache.models import CachedResponse
from ctxgate.chat.models import ChatRequest
from ctxgate.messages import Completion, GenerationParams, Message, Usage
from ctxgate.settings import get_settings


@pytest.fixture
def chat(aws, monkeypatch):
    monkeypatch.setenv("CTXGATE_EMBEDDINGS", "off")
    monkeypatch.setenv("CTXGATE_OFFLOAD_THRESHOLD_BYTES", "100")  # cached answers' bodies go to S3
    get_settings.cache_clear()
    return build_chat(get_settings())


def turn(chat, session: str, text: str) -> None:
    request = ChatRequest("echo", [Message(role="user", content=text)], GenerationParams(temperature=0))
    chat.stateful(Caller("default"), session, request)


def cache_items(aws) -> list[dict]:
    return aws.session.client("dynamodb").scan(TableName=aws.physical["CacheTable"])["Items"]


def answer() -> CachedResponse:
    return CachedResponse(
        completion=Completion(message=Message(role="assistant", content="a long answer " * 20)),
        usage=Usage(prompt_tokens=5, completion_tokens=2),
        served_by="echo",
        created_at=0.0,
    )


def test_deleting_a_session_forgets_the_entries_its_turns_stored_and_no_other(aws, chat):
    # GIVEN two sessions whose turns stored cache entries, and a stateless entry
    turn(chat, "mine", "what is the capital of France?")
    turn(chat, "other", "what is the capital of Spain?")
    chat.cache.store.put_exact("default", "stateless-key", answer(), expires_at=2**31)
    before = cache_items(aws)
    # WHEN one session is deleted
    assert chat.store.delete("default", "mine")
    # THEN its entries, their index and their bodies are gone; the other session's and the stateless entry stay
    after = cache_items(aws)
    gone = [i for i in before if i not in after]
    assert gone and all("mine" in i["pk"]["S"] or "O#" not in i["pk"]["S"] for i in gone)
    assert not any(i["pk"]["S"] == "O#default#mine" for i in after)
    assert any(i["pk"]["S"] == "O#default#other" for i in after)
    assert any(i["pk"]["S"] == "X#default#stateless-key" for i in after)


def test_an_entry_from_a_turn_racing_the_delete_is_refused(aws, chat):
    # GIVEN a session deleted while one of its turns was still running
    turn(chat, "raced", "hello there")
    chat.store.delete("default", "raced")
    objects = set(aws.object_keys())
    # WHEN that turn stores its answer in the cache afterwards
    stored = chat.cache.store.put_exact("default", "late-key", answer(), expires_at=2**31, session_id="raced")
    # THEN the write is refused: no entry, no index item, no body
    assert stored is False
    assert not [i for i in cache_items(aws) if "late-key" in i["pk"]["S"] or i["pk"]["S"] == "O#default#raced"]
    assert set(aws.object_keys()) == objects


def test_forgetting_is_idempotent(aws, chat):
    # GIVEN a deleted session
    turn(chat, "twice", "hello")
    chat.store.delete("default", "twice")
    # WHEN its cache entries are forgotten again
    # THEN nothing is left to forget
    assert chat.cache.forget_session("default", "twice") == 0
