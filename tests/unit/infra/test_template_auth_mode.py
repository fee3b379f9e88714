"""``AuthMode`` chooses the HTTP API's authorizer at deploy time, checked on SAM's own transform of template.yaml.

The template picks the HttpApi's ``DefaultAuthorizer`` with ``Fn::FindInMap [AuthModes, !Ref AuthMode, ...]``,
which the ``AWS::LanguageExtensions`` transform resolves to a plain name before SAM runs. These tests do that one
resolution for each parameter value, run SAM's translator (samtranslator, offline) on the result and read the
security of every route in the HTTP API's generated OpenAPI body, which is what API Gateway imports: SAM's HttpApi
makes no separate ``AWS::ApiGatewayV2::Route`` resources.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from ctxgate_local.template import load_template, read_stack

TEMPLATE_PATH = Path(__file__).resolve().parents[3] / "template.yaml"
TEMPLATE = load_template(TEMPLATE_PATH)
PUBLIC_ROUTES = {("GET", "/healthz"), ("GET", "/openapi.json")}


def declared_routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every HttpApi event of every function in the template."""
    return {
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for resource in TEMPLATE["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }


def resolve_find_in_map(node: Any, parameters: dict[str, str], mappings: dict[str, Any]) -> Any:
    """What AWS::LanguageExtensions does to a ``Fn::FindInMap`` whose keys are literals or parameter Refs."""
    if isinstance(node, list):
        return [resolve_find_in_map(item, parameters, mappings) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::FindInMap"}:
        name, top, second = (parameters[k["Ref"]] if isinstance(k, dict) else k for k in node["Fn::FindInMap"])
        return mappings[name][top][second]
    return {key: resolve_find_in_map(value, parameters, mappings) for key, value in node.items()}


@cache
def transformed(auth_mode: str) -> dict[str, Any]:
    """The CloudFormation SAM makes of template.yaml deployed with ``AuthMode=auth_mode``."""
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class NoManagedPolicies(ManagedPolicyLoader):  # the template names no AWS managed policies: stay offline
        def __init__(self) -> None:
            pass

        def load(self) -> dict[str, str]:
            return {}

    template = copy.deepcopy(TEMPLATE)
    template["Resources"] = resolve_find_in_map(template["Resources"], {"AuthMode": auth_mode}, template["Mappings"])
    template["Transform"] = "AWS::Serverless-2016-10-31"  # LanguageExtensions' part is done above
    for resource in template["Resources"].values():  # SAM wants packaged artifacts, not local folders
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(name), str):
                properties[name] = "s3://packaged/artifact.zip"
    return transform(template, {"AuthMode": auth_mode}, NoManagedPolicies())


def route_security(auth_mode: str) -> dict[tuple[str, str], list[dict[str, list[str]]]]:
    (api,) = [r for r in transformed(auth_mode)["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    paths = api["Properties"]["Body"]["paths"]
    return {(method.upper(), path): op.get("security") for path, item in paths.items() for method, op in item.items()}


def security_schemes(auth_mode: str) -> dict[str, Any]:
    (api,) = [r for r in transformed(auth_mode)["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    return api["Properties"]["Body"]["components"]["securitySchemes"]


@pytest.mark.parametrize(("auth_mode", "authorizer"), [("apikey", "KeyAuthorizer"), ("jwt", "JwtAuthorizer")])
def test_every_route_but_the_public_ones_uses_the_authorizer_of_the_mode(auth_mode: str, authorizer: str):
    security = route_security(auth_mode)

    assert set(security) == declared_routes()
    assert {route: s for route, s in security.items() if route not in PUBLIC_ROUTES} == {
        route: [{authorizer: []}] for route in declared_routes() - PUBLIC_ROUTES
    }


@pytest.mark.parametrize("auth_mode", ["apikey", "jwt"])
def test_healthz_and_the_openapi_description_stay_unauthenticated_in_both_modes(auth_mode: str):
    security = route_security(auth_mode)

    assert {route: security[route] for route in PUBLIC_ROUTES} == {route: [{"NONE": []}] for route in PUBLIC_ROUTES}


def test_the_key_authorizer_is_the_lambda_authorizer_over_the_keys_table():
    scheme = security_schemes("apikey")["KeyAuthorizer"]["x-amazon-apigateway-authorizer"]

    assert scheme["type"] == "request"
    assert scheme["authorizerPayloadFormatVersion"] == "2.0" and scheme["enableSimpleResponses"] is True
    assert scheme["authorizerUri"]["Fn::Sub"][1] == {"__FunctionArn__": {"Fn::GetAtt": ["AuthorizeFunction", "Arn"]}}


def test_the_jwt_authorizer_is_api_gateways_builtin_one_with_issuer_and_audience_from_the_parameters():
    scheme = security_schemes("jwt")["JwtAuthorizer"]["x-amazon-apigateway-authorizer"]

    assert scheme["type"] == "jwt"
    assert scheme["identitySource"] == "$request.header.Authorization"
    assert scheme["jwtConfiguration"]["issuer"]["Fn::If"][:2] == ["HasJwtIssuer", {"Ref": "JwtIssuer"}]
    assert scheme["jwtConfiguration"]["audience"]["Fn::If"][:2] == ["HasJwtIssuer", {"Ref": "JwtAudience"}]


def test_auth_mode_is_apikey_or_jwt_and_defaults_to_apikey():
    parameter = TEMPLATE["Parameters"]["AuthMode"]

    assert parameter["AllowedValues"] == ["apikey", "jwt"]
    assert parameter["Default"] == "apikey"
    assert set(TEMPLATE["Mappings"]["AuthModes"]) == set(parameter["AllowedValues"])


def test_the_authorizer_is_chosen_with_find_in_map_which_every_cfn_lint_release_can_resolve():
    # Fn::If here passes the newest cfn-lint but fails 1.20-1.50 (E0001 'Auth.DefaultAuthorizer should be a string').
    auth = TEMPLATE["Resources"]["HttpApi"]["Properties"]["Auth"]

    assert auth["DefaultAuthorizer"] == {"Fn::FindInMap": ["AuthModes", {"Ref": "AuthMode"}, "Authorizer"]}
    assert TEMPLATE["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]


def test_jwt_mode_cannot_deploy_without_an_issuer_and_an_audience():
    rule = TEMPLATE["Rules"]["JwtModeNeedsIssuerAndAudience"]

    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "AuthMode"}, "jwt"]}
    asserted = [assertion["Assert"] for assertion in rule["Assertions"]]
    assert {"Fn::Not": [{"Fn::Equals": [{"Ref": "JwtIssuer"}, ""]}]} in asserted
    assert {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "JwtAudience"}]}, ""]}]} in asserted


def test_functions_learn_the_mode_issuer_and_audiences_from_the_globals():
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]

    assert variables["CTXGATE_AUTH_MODE"] == {"Ref": "AuthMode"}
    assert variables["CTXGATE_JWT_ISSUER"] == {"Ref": "JwtIssuer"}
    assert variables["CTXGATE_JWT_AUDIENCE"] == {"Fn::Join": [",", {"Ref": "JwtAudience"}]}
    assert variables["CTXGATE_JWT_TENANT_CLAIM"] == {"Ref": "JwtTenantClaim"}


@pytest.mark.parametrize(("overrides", "authorizer"), [({}, "KeyAuthorizer"), ({"AuthMode": "jwt"}, "JwtAuthorizer")])
def test_ctxgate_local_reads_the_same_choice_from_the_auth_mode_parameter(overrides: dict[str, str], authorizer: str):
    stack = read_stack(TEMPLATE_PATH, overrides)

    assert stack.resolve(stack.resources["HttpApi"]["Properties"]["Auth"]["DefaultAuthorizer"]) == authorizer
