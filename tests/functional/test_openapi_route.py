"""``GET /openapi.json`` through the api function: the description, served to a caller without credentials."""

from __future__ import annotations

import json

from ctxgate.api.openapi import openapi_document

from tests.conftest import load_event, load_function


def test_the_description_is_served_without_credentials(lambda_context):
    # GIVEN the api function and a request that carries no key and no authorizer context
    api = load_function("api")
    event = load_event("get_openapi.json")
    assert "authorizer" not in event["requestContext"] and "authorization" not in event["headers"]
    # WHEN it asks for the description
    response = api.lambda_handler(event, lambda_context)
    # THEN it gets the OpenAPI 3.1 document as JSON
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == openapi_document()
