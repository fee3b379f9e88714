"""Conversations: a ctxgate session (its id is the conversation id) plus a record of its metadata."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ctxgate.errors import InvalidRequest, NotFound
from ctxgate.messages import Message
from ctxgate.responses.items import Item, message_items, parse_item_id, turn_items, without_item
from ctxgate.responses.models import ConversationRecord
from ctxgate.responses.service import CONVERSATION, is_id, new_id
from ctxgate.retry import RetryPolicy, call_with_retry
from ctxgate.sessions.lineage import history
from ctxgate.sessions.models import SessionMeta, SessionRecord, Turn
from ctxgate.tokens import count_message

if TYPE_CHECKING:
    from ctxgate.context.ports import ContextStore

MAX_NEW_ITEMS = 20
"""Items one create or add request may carry (OpenAI's limit too)."""


class ConversationService:
    def __init__(
        self, store: ContextStore, *, conflict_policy: RetryPolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.conflict_policy = conflict_policy
        self.clock = clock

    def create(self, tenant: str, items: list[Message], metadata: dict[str, str]) -> ConversationRecord:
        """A new conversation holding ``items`` as its first turns, with the record, in one transaction."""
        _check_count(items)
        record = ConversationRecord(id=new_id("conv"), created_at=self.clock(), metadata=metadata)
        self.store.append(
            tenant,
            record.id,
            expected_last_seq=0,
            messages=items,
            tokens=[count_message(m) for m in items],
            system_prompt=None,
            model="",
            now=record.created_at,
            records=[SessionRecord(kind=CONVERSATION, id=record.id, body=record.model_dump_json())],
        )
        return record

    def get(self, tenant: str, conversation_id: str) -> tuple[ConversationRecord, SessionMeta]:
        stored = (
            self.store.get_record(tenant, CONVERSATION, conversation_id) if is_id("conv", conversation_id) else None
        )
        meta = self.store.get(tenant, conversation_id) if stored is not None else None
        if stored is None or meta is None:
            raise NotFound(
                f"Conversation {conversation_id!r} not found.", code="conversation_not_found", param="conversation_id"
            )
        return ConversationRecord.model_validate_json(stored.body), meta

    def update(self, tenant: str, conversation_id: str, metadata: dict[str, str]) -> ConversationRecord:
        record, _ = self.get(tenant, conversation_id)
        record = record.model_copy(update={"metadata": metadata})
        body = SessionRecord(kind=CONVERSATION, id=record.id, body=record.model_dump_json())
        if not self.store.put_record(tenant, conversation_id, body, create=False):
            raise NotFound(f"Conversation {conversation_id!r} not found.", code="conversation_not_found")
        return record

    def delete(self, tenant: str, conversation_id: str) -> None:
        """Delete the conversation's session: its turns, pins, summaries, responses and branches."""
        self.get(tenant, conversation_id)
        self.store.delete(tenant, conversation_id)

    def items(self, tenant: str, conversation_id: str) -> list[Item]:
        """The conversation's items, oldest first."""
        _, meta = self.get(tenant, conversation_id)
        turns = history(self.store, tenant, meta).turns
        return [item for turn in turns for item in turn_items(turn, conversation_id)]

    def add(self, tenant: str, conversation_id: str, items: list[Message]) -> list[Item]:
        """Append ``items`` as new turns (retried if a response is appending at the same time)."""
        _check_count(items)
        if not items:
            raise InvalidRequest("Add at least one item.", param="items")

        def attempt() -> list[Item]:
            _, meta = self.get(tenant, conversation_id)
            turns = self.store.append(
                tenant,
                conversation_id,
                expected_last_seq=meta.last_seq,
                messages=items,
                tokens=[count_message(m) for m in items],
                system_prompt=None,
                model=meta.model or "",
                now=self.clock(),
            )
            return [item for turn in turns for item in message_items(turn.message, conversation_id, turn.seq)]

        return call_with_retry(attempt, self.conflict_policy)

    def item(self, tenant: str, conversation_id: str, item_id: str) -> Item:
        _, meta = self.get(tenant, conversation_id)
        turn, _ = self._turn_of(tenant, meta, item_id)
        found = next((i for i in turn_items(turn, conversation_id) if i.id == item_id), None)
        if found is None:
            raise NotFound(f"Item {item_id!r} not found.", code="item_not_found")
        return found

    def delete_item(self, tenant: str, conversation_id: str, item_id: str) -> ConversationRecord:
        """Remove the item from the conversation: its turn leaves every later context (see the package docs)."""
        record, meta = self.get(tenant, conversation_id)
        self.item(tenant, conversation_id, item_id)
        turn, index = self._turn_of(tenant, meta, item_id)
        self.store.replace_turn(tenant, conversation_id, turn.seq, without_item(turn.message, index))
        return record

    def _turn_of(self, tenant: str, meta: SessionMeta, item_id: str) -> tuple[Turn, int]:
        parsed = parse_item_id(meta.session_id, item_id)
        if parsed is None or not 0 < parsed[0] <= meta.last_seq:
            raise NotFound(f"Item {item_id!r} not found.", code="item_not_found")
        seq, index = parsed
        turns = self.store.turns(tenant, meta.session_id, after=seq - 1, through=seq).turns
        if not turns or turns[0].deleted:
            raise NotFound(f"Item {item_id!r} not found.", code="item_not_found")
        return turns[0], index


def _check_count(items: list[Message]) -> None:
    if len(items) > MAX_NEW_ITEMS:
        raise InvalidRequest(f"At most {MAX_NEW_ITEMS} items fit in one request.", param="items")
