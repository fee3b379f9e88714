"""Creating, reading and deleting responses (the state model is in :mod:`ctxgate.responses`)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ctxgate.chat.models import ChatOutcome, ChatRequest
from ctxgate.chat.service import HistoryMoved
from ctxgate.errors import CtxgateError, InvalidRequest, NotFound
from ctxgate.messages import Completion, Message, Usage
from ctxgate.responses.items import Item, item_id, message_items, turn_items
from ctxgate.responses.models import OutputFormat, ResponseRecord, ResponseRequest
from ctxgate.sessions.lineage import history, owner_of
from ctxgate.sessions.models import SessionMeta, SessionRecord
from ctxgate.sessions.ports import AppendConflict

if TYPE_CHECKING:
    from ctxgate.auth.models import Caller
    from ctxgate.chat.service import ChatService
    from ctxgate.chat.streaming import ChatStream

RESPONSE = "response"
CONVERSATION = "conversation"


@dataclass
class ResponseStream:
    """An opened response: its turn (a finished :class:`ChatOutcome`, or a :class:`ChatStream` to iterate), what is
    known of it up front (``skeleton``), and where its output items live (their ids are known before they exist)."""

    skeleton: ResponseRecord
    turn: ChatOutcome | ChatStream
    owner: str
    """The session whose turn holds the output (the response id itself for ``store: false``)."""
    seq: int
    built: list[ResponseRecord]
    finish: Callable[[ChatOutcome], ResponseRecord] | None = None
    cleanup: Callable[[], object] | None = None
    """Run when the turn failed after it was opened (a streamed branch that never got its turn)."""

    def item_id(self, kind: str, index: int) -> str:
        return item_id(kind, self.owner, self.seq, index)

    def end(self) -> ResponseRecord | None:
        """The response once its turn has ended: the stored record, or None if the turn failed."""
        if self.built:
            return self.built[-1]
        outcome = self.turn if isinstance(self.turn, ChatOutcome) else self.turn.outcome
        if outcome is not None and self.finish is not None:
            return self.finish(outcome)
        if self.cleanup is not None:
            self.cleanup()
            self.cleanup = None
        return None


@dataclass(frozen=True)
class ResponseOutcome:
    record: ResponseRecord
    chat: ChatOutcome
    """The turn behind it (session, turn, cache status, quota state)."""


class OutputSchemaMismatch(CtxgateError):
    """The model's answer is not what ``text.format`` asked for; nothing was stored (502)."""

    status = 502
    type = "upstream_error"
    code = "output_format_mismatch"


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}{uuid.uuid4().hex[:16]}"


def is_id(prefix: str, value: str) -> bool:
    """Whether ``value`` could be an id :func:`new_id` made (anything else is simply not found, never a lookup)."""
    return re.fullmatch(rf"{prefix}_[0-9a-f]{{48}}", value or "") is not None


class ResponsesService:
    def __init__(self, chat: ChatService, *, clock: Callable[[], float] = time.time) -> None:
        self.chat = chat
        self.store = chat.store
        self.clock = clock

    # -- create ------------------------------------------------------------------------------------------------

    def create(self, caller: Caller, request: ResponseRequest) -> ResponseOutcome:
        """Serve one response: append to its history, fork a branch of it, or (``store: false``) read it only."""
        opened = self._open(caller, request, streaming=False)
        record = opened.end()
        assert record is not None and isinstance(opened.turn, ChatOutcome)
        return ResponseOutcome(record, opened.turn)

    def open_stream(self, caller: Caller, request: ResponseRequest) -> ResponseStream:
        """:meth:`create`, streamed: raises every refusal before the first event (see :mod:`ctxgate.chat.streaming`);
        iterate ``turn``, then :meth:`ResponseStream.end` gives the stored record (None if the stream failed)."""
        return self._open(caller, request, streaming=True)

    def _open(self, caller: Caller, request: ResponseRequest, *, streaming: bool) -> ResponseStream:
        if request.previous_response_id and request.conversation:
            raise InvalidRequest(
                "Use either previous_response_id or conversation, not both.", param="previous_response_id"
            )
        tenant = caller.tenant
        skeleton = ResponseRecord(
            id=new_id("resp"),
            created_at=self.clock(),
            model=request.model,
            instructions=request.instructions,
            previous_response_id=request.previous_response_id,
            conversation_id=request.conversation,
            metadata=request.metadata,
            settings=request.settings,
            store=request.store,
        )
        session_id, through = self._position(tenant, request)
        if not request.store:
            return self._unstored(caller, request, skeleton, session_id, through, streaming)
        if session_id is None:
            session_id = new_id("chain")
        if through is not None and request.conversation is None:
            meta = self.store.get(tenant, session_id)
            if meta is None:
                raise NotFound(f"Response {request.previous_response_id!r} not found.", code="response_not_found")
            if meta.last_seq != through:
                return self._on_branch(caller, request, skeleton, meta, through, streaming)
        try:
            return self._turn(caller, request, skeleton, session_id, through, streaming)
        except HistoryMoved:  # someone appended while this request waited: it continues an earlier point now
            meta = self.store.get(tenant, session_id)
            if meta is None or through is None:
                raise
            return self._on_branch(caller, request, skeleton, meta, through, streaming)

    def _position(self, tenant: str, request: ResponseRequest) -> tuple[str | None, int | None]:
        """The session the response continues, and the seq it continues from (None: the newest / a new one)."""
        if request.conversation is not None:
            self.conversation(tenant, request.conversation)
            return request.conversation, None
        if request.previous_response_id is not None:
            previous = self.get(tenant, request.previous_response_id)
            return previous.session_id, previous.output_seq
        return None, None

    def _on_branch(
        self,
        caller: Caller,
        request: ResponseRequest,
        skeleton: ResponseRecord,
        parent: SessionMeta,
        through: int,
        streaming: bool,
    ) -> ResponseStream:
        branch_id = new_id("branch")
        try:
            self.store.fork(caller.tenant, parent, through, branch_id, now=self.clock())
        except AppendConflict:  # the history was deleted meanwhile
            raise NotFound(f"Response {request.previous_response_id!r} not found.", code="response_not_found") from None
        try:
            opened = self._turn(caller, request, skeleton, branch_id, through, streaming)
        except BaseException:
            self.store.delete(caller.tenant, branch_id)  # a failed response leaves no empty branch behind
            raise
        opened.cleanup = lambda: self.store.delete(caller.tenant, branch_id)
        return opened

    def _turn(
        self,
        caller: Caller,
        request: ResponseRequest,
        skeleton: ResponseRecord,
        session_id: str,
        through: int | None,
        streaming: bool,
    ) -> ResponseStream:
        """The turn; its ``records`` callback builds the record it commits (kept in the returned stream)."""
        built: list[ResponseRecord] = []

        def records(completion: Completion, usage: Usage, first_seq: int, served_by: str) -> list[SessionRecord]:
            output_seq = first_seq + len(request.input)
            record = skeleton.model_copy(
                update={
                    "session_id": session_id,
                    "input_seq": first_seq,
                    "output_seq": output_seq,
                    "output": message_items(completion.message, session_id, output_seq),
                    "usage": usage,
                    "served_by": served_by,
                    **_status(completion),
                }
            )
            built.append(record)
            return [SessionRecord(kind=RESPONSE, id=record.id, body=record.model_dump_json())]

        chat_request = ChatRequest(
            model=request.model,
            messages=request.input,
            params=request.params,
            cache=request.cache,
            deadline=request.deadline,
            budget_tokens=request.budget_tokens,
            instructions=request.instructions,
            expected_last_seq=through,
            allow_truncation=request.truncation == "auto",
            check_output=lambda completion: check_format(request.output_format, completion),
            records=records,
        )
        if streaming:
            stream = self.chat.stateful_stream(caller, session_id, chat_request)
            return ResponseStream(skeleton, stream, session_id, stream.head.turn or 0, built)
        outcome = self.chat.stateful(caller, session_id, chat_request)
        return ResponseStream(skeleton, outcome, session_id, outcome.turn or 0, built)

    def _unstored(
        self,
        caller: Caller,
        request: ResponseRequest,
        skeleton: ResponseRecord,
        session_id: str | None,
        through: int | None,
        streaming: bool,
    ) -> ResponseStream:
        """``store: false``: the history so far, verbatim, plus the input, served statelessly; nothing is written."""
        messages: list[Message] = []
        if request.instructions:
            messages.append(Message(role="system", content=request.instructions))
        if session_id is not None:
            meta = self.store.get(caller.tenant, session_id)
            if meta is None:
                raise NotFound(f"No conversation {session_id!r}.", code="not_found")
            turns = history(self.store, caller.tenant, meta, through=through).turns
            messages.extend(t.message for t in turns if not t.deleted)
        messages.extend(request.input)
        no_store = replace(request.cache, control=replace(request.cache.control, no_store=True))
        chat_request = ChatRequest(
            model=request.model,
            messages=messages,
            params=request.params,
            cache=no_store,
            deadline=request.deadline,
            check_output=lambda completion: check_format(request.output_format, completion),
        )

        def finish(outcome: ChatOutcome) -> ResponseRecord:
            completion = outcome.completion
            return skeleton.model_copy(
                update={
                    "output": message_items(completion.message, skeleton.id, 0),
                    "usage": outcome.usage,
                    "served_by": outcome.served_by,
                    **_status(completion),
                }
            )

        turn = (self.chat.stateless_stream if streaming else self.chat.stateless)(caller, chat_request)
        return ResponseStream(skeleton, turn, skeleton.id, 0, [], finish=finish)

    # -- read and delete ---------------------------------------------------------------------------------------

    def get(self, tenant: str, response_id: str) -> ResponseRecord:
        """The stored response; :class:`NotFound` if it never existed, was deleted, or is another tenant's."""
        stored = self.store.get_record(tenant, RESPONSE, response_id) if is_id("resp", response_id) else None
        if stored is None or self.store.get(tenant, stored.session_id) is None:
            raise NotFound(f"Response {response_id!r} not found.", code="response_not_found", param="response_id")
        return ResponseRecord.model_validate_json(stored.body)

    def delete(self, tenant: str, response_id: str) -> None:
        self.get(tenant, response_id)
        self.store.delete_record(tenant, RESPONSE, response_id)

    def input_items(self, tenant: str, response_id: str) -> list[Item]:
        """The response's input items, oldest first."""
        record = self.get(tenant, response_id)
        if record.session_id is None or record.input_seq is None or record.output_seq is None:
            return []
        meta = self.store.get(tenant, record.session_id)
        if meta is None:
            raise NotFound(f"Response {response_id!r} not found.", code="response_not_found")
        page = history(self.store, tenant, meta, after=record.input_seq - 1, through=record.output_seq - 1)
        return [item for turn in page.turns for item in turn_items(turn, owner_of(meta, turn.seq))]

    def conversation(self, tenant: str, conversation_id: str) -> SessionMeta:
        """The conversation's session; :class:`NotFound` if there is no such conversation for this tenant."""
        stored = (
            self.store.get_record(tenant, CONVERSATION, conversation_id) if is_id("conv", conversation_id) else None
        )
        meta = self.store.get(tenant, conversation_id) if stored is not None else None
        if meta is None:
            raise NotFound(f"Conversation {conversation_id!r} not found.", code="conversation_not_found")
        return meta


def _status(completion: Completion) -> dict[str, str | None]:
    if completion.finish_reason == "length":
        return {"status": "incomplete", "incomplete_reason": "max_output_tokens"}
    if completion.finish_reason == "content_filter":
        return {"status": "incomplete", "incomplete_reason": "content_filter"}
    return {"status": "completed", "incomplete_reason": None}


def check_format(output_format: OutputFormat, completion: Completion) -> None:
    """Refuse an answer that ``text.format`` rules out: not JSON, or JSON the schema rejects. An answer that calls
    tools, or was cut off by the token limit (incomplete), is not checked."""
    if output_format.type == "text" or completion.message.tool_calls or completion.finish_reason != "stop":
        return
    try:
        value = json.loads(completion.message.text())
    except ValueError:
        raise OutputSchemaMismatch("The model's output is not JSON, which text.format requires.") from None
    if output_format.type == "json_schema" and output_format.schema is not None:
        import jsonschema

        try:
            error = jsonschema.exceptions.best_match(
                jsonschema.Draft202012Validator(output_format.schema).iter_errors(value)
            )
        except Exception:  # a schema jsonschema cannot apply (an unresolvable local $ref): refused like a mismatch
            raise OutputSchemaMismatch(
                "The model's output could not be checked against text.format's schema."
            ) from None
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise OutputSchemaMismatch(
                f"The model's output does not match the schema {output_format.name!r} at {where}: {error.message[:200]}"
            )
