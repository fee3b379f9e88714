"""The OpenAPI description stays true: the same routes as template.yaml and the api function's resolver, valid
OpenAPI 3.1, request bodies generated from the models that validate them, and authentication everywhere but the
two public routes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ctxgate.api.openapi import openapi_document
from openapi_spec_validator import OpenAPIV31SpecValidator

from tests.conftest import ROOT, load_function

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
PUBLIC = {("GET", "/healthz"), ("GET", "/openapi.json")}


def _http_api_events() -> list[dict[str, Any]]:
    """The ``Properties`` of every HttpApi event of template.yaml's functions."""
    from ctxgate_local.template import load_template

    resources = load_template(ROOT / "template.yaml")["Resources"]
    return [
        event["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource.get("Properties", {}).get("Events", {}).values()
        if event["Type"] == "HttpApi"
    ]


def _template_routes(*, public_only: bool = False) -> set[tuple[str, str]]:
    return {
        (event["Method"].upper(), event["Path"])
        for event in _http_api_events()
        if not public_only or (event.get("Auth") or {}).get("Authorizer") == "NONE"
    }


def _spec_routes() -> set[tuple[str, str]]:
    paths = openapi_document()["paths"]
    return {(method.upper(), path) for path, item in paths.items() for method in item if method in METHODS}


def _shape(path: str) -> str:
    """A path with its parameters' names erased: API Gateway says ``{id}``, the Routers ``<session_id>``."""
    return re.sub(r"\{[^}]+\}|<[^>]+>", "{}", path)


def test_the_description_is_valid_openapi_3_1():
    # GIVEN the served document
    document = openapi_document()
    # WHEN it is validated against the OpenAPI 3.1 schema (raises on the first error)
    OpenAPIV31SpecValidator(document).validate()
    # THEN it declares 3.1
    assert document["openapi"].startswith("3.1.")


def test_every_template_route_is_described_and_nothing_else():
    # GIVEN the HttpApi events of template.yaml and the paths of the description
    template, described = _template_routes(), _spec_routes()
    # THEN they are the same set of (method, path)
    assert template - described == set(), "routes in template.yaml missing from openapi.yaml"
    assert described - template == set(), "routes in openapi.yaml that template.yaml does not serve"


def test_every_route_of_the_api_function_is_described_and_nothing_else():
    # GIVEN the resolver of functions/api/app.py, with every Router included
    app = load_function("api").app
    served = {(route.method, _shape(route.path)) for route in [*app._static_routes, *app._dynamic_routes]}
    # THEN its routes are exactly the described ones
    assert served == {(method, _shape(path)) for method, path in _spec_routes()}


def test_only_the_health_check_and_the_description_are_public():
    # GIVEN the document's global and per-operation security
    document = openapi_document()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyHeader"] == {**schemes["apiKeyHeader"], "type": "apiKey", "in": "header", "name": "x-api-key"}
    assert document["security"] == [{"bearerAuth": []}, {"apiKeyHeader": []}]
    # THEN exactly the public routes override it with no requirement
    public = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS and operation.get("security") == []
    }
    assert public == PUBLIC
    # AND they are the routes template.yaml exempts from the HTTP API's authorizer
    assert _template_routes(public_only=True) == PUBLIC


@pytest.mark.parametrize(
    ("route", "schema"),
    [
        (("post", "/v1/chat/completions"), "ChatCompletionRequest"),
        (("post", "/v1/runs"), "RunRequest"),
        (("post", "/v1/responses"), "ResponseCreate"),
        (("post", "/v1/conversations"), "ConversationCreate"),
        (("post", "/v1/conversations/{id}"), "ConversationUpdate"),
        (("post", "/v1/conversations/{id}/items"), "ItemsCreate"),
        (("post", "/v1/messages"), "MessagesRequest"),
        (("post", "/v1/messages/count_tokens"), "CountTokensRequest"),
    ],
)
def test_request_bodies_are_the_validating_models_schemas(route, schema):
    from ctxgate.agent.models import RunRequest
    from ctxgate.api.wire.anthropic_messages import CountTokensRequest, MessagesRequest
    from ctxgate.api.wire.chat_completions import ChatCompletionRequest
    from ctxgate.api.wire.responses import ConversationCreate, ConversationUpdate, ItemsCreate, ResponseCreate

    # GIVEN the operation's request body
    method, path = route
    body = openapi_document()["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    # THEN it refers to the schema generated from the model, whose fields and limits it carries
    assert body == {"$ref": f"#/components/schemas/{schema}"}
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
    model = {m.__name__: m for m in models}[schema]
    generated = openapi_document()["components"]["schemas"][schema]
    assert set(generated["properties"]) == set(model.model_fields)
    assert generated.get("required", []) == [n for n, f in model.model_fields.items() if f.is_required()]


ANTHROPIC_ROUTES = {"/v1/messages", "/v1/messages/count_tokens"}
OPENAI_ERRORS = ("#/components/schemas/Error", "#/components/schemas/ErrorOrGatewayMessage")
ANTHROPIC_ERRORS = (
    "#/components/schemas/AnthropicError",
    "#/components/schemas/AnthropicErrorOrGatewayMessage",
    "#/components/schemas/AnthropicErrorOrAuthorizerAnswer",
)


def test_every_error_status_uses_its_apis_error_schema():
    # GIVEN every documented 4xx/5xx response
    document = openapi_document()
    responses = document["components"]["responses"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                # THEN its JSON body is the error schema of its API: Anthropic's on the Messages routes, OpenAI's
                # elsewhere (or API Gateway's own message beside it)
                name = response["$ref"].rsplit("/", 1)[-1]
                schema = responses[name]["content"]["application/json"]["schema"]["$ref"]
                expected = ANTHROPIC_ERRORS if path in ANTHROPIC_ROUTES else OPENAI_ERRORS
                assert schema in expected, (method, path, status)
