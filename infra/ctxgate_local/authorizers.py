"""The HTTP API's authorizers, emulated: which route has which, and calling it before the route's function.

As API Gateway does it: a request missing any of the authorizer's identity sources is refused without invoking
it; otherwise the authorizer function gets a payload-format-2.0 ``REQUEST`` event, its simple response decides,
and an allowed request's ``context`` reaches the route's function as ``requestContext.authorizer.lambda``.
Answers are cached per identity-source values for ``AuthorizerResultTtlInSeconds`` (``ReauthorizeEvery``).

The JWT authorizer (``AuthMode=jwt``) is emulated with ``ctxgate.auth.jwt``, which checks a token as API Gateway
does (issuer's JWKS, ``iss``, ``aud`` or ``client_id``, ``exp``/``nbf``/``iat``); the claims reach the route as
``requestContext.authorizer.jwt.claims``, as strings, as API Gateway passes them.

One deliberate difference: every refusal is answered with ctxgate's OpenAI-style 401 body, where API Gateway
answers ``{"message":"Unauthorized"}`` (401) or ``{"message":"Forbidden"}`` (403); HTTP APIs cannot customise
those (see README, Authentication).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ctxgate_local.handlers import invoke
from ctxgate_local.template import ACCOUNT, REGION, Function, LocalStack

Refusal = tuple[int, dict[str, str], bytes]


@dataclass
class LambdaAuthorizer:
    name: str
    function: Function
    identity_sources: list[str]
    ttl_seconds: int
    _answers: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorize(self, event: dict[str, Any]) -> Refusal | None:
        """Allow ``event`` (its ``requestContext.authorizer`` is set) and return None, or return the refusal."""
        identity = [_identity_value(source, event) for source in self.identity_sources]
        if any(not value for value in identity):
            return unauthorized()
        cache_key = tuple(v or "" for v in identity)
        answer = self._cached(cache_key)
        if answer is None:
            answer = invoke(self.function, authorizer_event(event, identity or None))
            if self.ttl_seconds > 0 and self.identity_sources:  # API Gateway caches only by identity sources
                with self._lock:
                    self._answers[cache_key] = (time.monotonic() + self.ttl_seconds, answer)
        if not (isinstance(answer, dict) and answer.get("isAuthorized") is True):
            return unauthorized()
        event["requestContext"]["authorizer"] = {"lambda": dict(answer.get("context") or {})}
        return None

    def _cached(self, key: tuple[str, ...]) -> dict[str, Any] | None:
        with self._lock:
            hit = self._answers.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None


@dataclass
class JwtAuthorizer:
    name: str
    issuer: str
    audiences: list[str]
    identity_source: str
    _verifier: Any = None

    def authorize(self, event: dict[str, Any]) -> Refusal | None:
        """Allow ``event`` (its ``requestContext.authorizer.jwt`` is set) and return None, or return the refusal."""
        from ctxgate.auth.jwt import JwtVerifier
        from ctxgate.errors import Unauthorized

        token = _identity_value(self.identity_source, event)
        if not token:
            return unauthorized()
        if self._verifier is None:
            self._verifier = JwtVerifier(self.issuer, self.audiences)
        try:
            claims = self._verifier.verify(token)
        except Unauthorized:
            return unauthorized()
        event["requestContext"]["authorizer"] = {"jwt": {"claims": _as_gateway_claims(claims), "scopes": None}}
        return None


Authorizer = LambdaAuthorizer | JwtAuthorizer


def _as_gateway_claims(claims: dict[str, Any]) -> dict[str, str]:
    """API Gateway passes every claim as a string; a list becomes ``[a b]``."""
    return {k: f"[{' '.join(map(str, v))}]" if isinstance(v, list) else str(v) for k, v in claims.items()}


def unauthorized() -> Refusal:
    from ctxgate.errors import Unauthorized

    body = Unauthorized("Missing or invalid API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key'.")
    return 401, {"content-type": "application/json"}, json.dumps(body.to_body()).encode()


def authorizer_event(event: dict[str, Any], identity: list[str | None] | None) -> dict[str, Any]:
    """The payload-format-2.0 ``REQUEST`` event API Gateway sends a Lambda authorizer for ``event``."""
    method, path = event["requestContext"]["http"]["method"], event["rawPath"]
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT}:local/$default/{method}{path}",
        "identitySource": identity,
        "routeKey": event["routeKey"],
        "rawPath": path,
        "rawQueryString": event["rawQueryString"],
        "cookies": event.get("cookies"),
        "headers": event["headers"],
        "queryStringParameters": event.get("queryStringParameters"),
        "requestContext": {k: v for k, v in event["requestContext"].items() if k != "authorizer"},
        "pathParameters": event.get("pathParameters"),
    }


def _identity_value(source: str, event: dict[str, Any]) -> str | None:
    if source.startswith("$request.header."):
        return event["headers"].get(source.removeprefix("$request.header.").lower())
    if source.startswith("$request.querystring."):
        return (event.get("queryStringParameters") or {}).get(source.removeprefix("$request.querystring."))
    if source.startswith("$context."):
        return str(event["requestContext"].get(source.removeprefix("$context."), "")) or None
    raise ValueError(f"unsupported identity source {source!r}")


def route_authorizers(stack: LocalStack) -> dict[tuple[str, str], Authorizer | None]:
    """(METHOD, path) of every HttpApi route -> its authorizer (None: a public route), from template.yaml."""
    resources = stack.resources
    apis: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::HttpApi":
            auth = (resource.get("Properties") or {}).get("Auth") or {}
            apis[logical_id] = (stack.resolve(auth.get("DefaultAuthorizer")), auth.get("Authorizers") or {})
    built: dict[tuple[str, str], Authorizer] = {}
    routes: dict[tuple[str, str], Authorizer | None] = {}
    for logical_id in stack.functions:
        for event in (resources[logical_id].get("Properties") or {}).get("Events", {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event["Properties"]
            api_id = (props.get("ApiId") or {}).get("Ref")
            default, authorizers = apis.get(api_id, (None, {}))
            name = ((props.get("Auth") or {}).get("Authorizer")) or default
            route = (props["Method"].upper(), props["Path"])
            if name is None or name == "NONE":
                routes[route] = None
                continue
            if (api_id, name) not in built:
                built[(api_id, name)] = _authorizer(stack, name, authorizers[name])
            routes[route] = built[(api_id, name)]
    return routes


def _authorizer(stack: LocalStack, name: str, spec: dict[str, Any]) -> Authorizer:
    if "JwtConfiguration" in spec:
        return _jwt_authorizer(stack, name, spec)
    if "FunctionArn" not in spec:
        raise ValueError(f"authorizer {name} is neither a Lambda nor a JWT authorizer; ctxgate local emulates those")
    arn = stack.resolve(spec["FunctionArn"])
    function = next(f for lid, f in stack.functions.items() if stack.arns.get(lid) == arn)
    identity = spec.get("Identity") or {}
    sources = [f"$request.header.{h}" for h in identity.get("Headers", [])]
    sources += [f"$request.querystring.{q}" for q in identity.get("QueryStrings", [])]
    sources += [f"$context.{c}" for c in identity.get("Context", [])]
    return LambdaAuthorizer(name, function, sources, int(stack.resolve(identity.get("ReauthorizeEvery", 300))))


def _jwt_authorizer(stack: LocalStack, name: str, spec: dict[str, Any]) -> JwtAuthorizer:
    configuration = stack.resolve(spec["JwtConfiguration"])
    audiences = configuration.get("audience") or []
    if isinstance(audiences, str):  # a CommaDelimitedList parameter given as Key=a,b on the command line
        audiences = audiences.split(",")
    audiences = [a.strip() for a in audiences if a.strip()]
    issuer = str(configuration.get("issuer") or "")
    if not stack.parameters.get("JwtIssuer") or not audiences:
        raise ValueError("AuthMode=jwt needs JwtIssuer and JwtAudience (--parameter JwtIssuer=https://...)")
    return JwtAuthorizer(name, issuer, audiences, str(spec.get("IdentitySource", "$request.header.Authorization")))
