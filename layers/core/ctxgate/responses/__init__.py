"""OpenAI's Responses and Conversations APIs over ctxgate sessions.

State model
-----------
Every stored response is a point in a session's history: its record (``resp_...``) names the session and the
seq of the turn holding its output, and is committed in the same transaction as its turns (a failed model call or
a refused output leaves neither). The sessions are ordinary ctxgate sessions, so the context engine (budget, pins,
eviction, summaries, recall, cache breakpoints), the response cache, quotas and the session lease serve the
Responses API exactly as they serve ``X-Session-Id`` chat completions.

- A response with neither ``previous_response_id`` nor ``conversation`` starts a new session ``chain_...``.
- ``previous_response_id`` naming the newest response of its session appends to that session. Naming an earlier one
  forks a branch session ``branch_...`` that shares the history up to that response *without copying it* (its META
  carries a flat lineage of (ancestor, through-seq) segments, :mod:`ctxgate.sessions.lineage`), copies the pins and
  budget, and has its own summaries and recall: compacting a branch never writes into its ancestors. If the
  session moves on while a request waits (a concurrent append), the request forks instead of appending after it.
- A conversation (``conv_...``) *is* a session: its id is the session id, so ``/v1/sessions/{id}`` (pins, budget,
  context plan) applies to it. Its metadata is a record stored with the session. ``conversation`` on
  responses.create appends to it; a conversation never forks (OpenAI forbids it with ``previous_response_id``).
- ``instructions`` are a system prompt for one request only, never stored, so never carried over.
- ``store: false`` serves statelessly on the history read so far: no turn, no record, and the response cache is
  told not to store (``no-store``).

Deletion
--------
- Deleting a response deletes its record (GET, ``input_items`` and ``previous_response_id`` then 404). Its turns
  stay in the session, because later responses were built on them; delete the session (the create response's
  ``X-Session-Id``) or the conversation to remove the content.
- Deleting a conversation deletes its session: turns, pins, summaries, every response record in it and every
  branch that shares its turns.
- Deleting a conversation item marks its turn deleted (or removes one function call from its turn): the turn keeps
  its seq but leaves every later context; summaries made earlier are not rewritten.
"""
