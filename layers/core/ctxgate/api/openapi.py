"""The OpenAPI 3.1 description of the HTTP API, as ``GET /openapi.json`` serves it.

Paths, parameters, responses and security are written in ``openapi.yaml`` beside this module. The request bodies of
chat completions, messages and runs are generated here from the pydantic models that validate them
(:class:`~ctxgate.api.wire.chat_completions.ChatCompletionRequest`,
:class:`~ctxgate.api.wire.anthropic_messages.MessagesRequest` and ``CountTokensRequest``,
:class:`~ctxgate.agent.models.RunRequest`), so a new field or limit there is described the moment it is enforced.

Why not Powertools' own OpenAPI generation: it describes bodies, headers and query strings only from typed handler
parameters, which need the resolver's ``enable_validation``; that would move request validation into Powertools'
middleware (422s with its own body instead of OpenAI-style 400s) and onto every request's path. It also cannot mark
a single route as needing no authentication (an empty per-route ``security`` is dropped).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

SCHEMA_REF = "#/components/schemas/{model}"


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The complete description (built once per process; callers must not mutate it)."""
    import yaml

    document: dict[str, Any] = yaml.safe_load(resources.files(__package__).joinpath("openapi.yaml").read_text())
    schemas: dict[str, Any] = document["components"]["schemas"]
    for name, schema in request_body_schemas().items():
        if name in schemas:
            raise ValueError(f"openapi.yaml defines {name!r}, which is generated from a request model")
        schemas[name] = schema
    return document


def request_body_schemas() -> dict[str, Any]:
    """JSON Schemas (2020-12, as OpenAPI 3.1 uses) of the validated request bodies and every model they refer to,
    keyed by model name and referring to each other under ``#/components/schemas/``."""
    from pydantic.json_schema import models_json_schema

    from ctxgate.agent.models import RunRequest
    from ctxgate.api.wire.anthropic_messages import CountTokensRequest, MessagesRequest
    from ctxgate.api.wire.chat_completions import ChatCompletionRequest
    from ctxgate.api.wire.responses import ConversationCreate, ConversationUpdate, ItemsCreate, ResponseCreate

    models = [
        ChatCompletionRequest,
        MessagesRequest,
        CountTokensRequest,
        RunRequest,
        ResponseCreate,
        ConversationCreate,
        ConversationUpdate,
        ItemsCreate,
    ]
    _, generated = models_json_schema([(model, "validation") for model in models], ref_template=SCHEMA_REF)
    return dict(generated["$defs"])
