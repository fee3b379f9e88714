"""Provider keys from Secrets Manager and SSM, read through Powertools Parameters (botocore's Stubber validates each
request against the real service model), cached for the configured TTL."""

from __future__ import annotations

import datetime
import json

import boto3
import httpx
import pytest
import respx
from botocore.stub import Stubber
from ctxgate.errors import ProviderFailure
from ctxgate.messages import GenerationParams, Message
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile, build_provider
from ctxgate.providers.secrets import SecretRef, SecretsReader, SecretUnavailable
from ctxgate.retry import RetryPolicy

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ctxgate/openai-AbCdEf"
PARAMETER = "/ctxgate/anthropic-key"
UPSTREAM = "https://api.upstream.example/v1"


@pytest.fixture
def secretsmanager():
    client = boto3.client("secretsmanager", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def ssm():
    client = boto3.client("ssm", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def secret_value(value: str) -> dict:
    return {
        "ARN": SECRET_ARN,
        "Name": "ctxgate/openai",
        "VersionId": "v1" * 16,
        "SecretString": value,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": datetime.datetime(2026, 1, 1),
    }


def parameter_value(value: str) -> dict:
    return {"Parameter": {"Name": PARAMETER, "Type": "SecureString", "Value": value, "Version": 1}}


def test_a_secrets_manager_key_is_read_once_within_the_ttl(secretsmanager):
    # GIVEN a reader with a 300 s TTL and one stubbed GetSecretValue
    client, stubber = secretsmanager
    stubber.add_response("get_secret_value", secret_value("sk-live-1"), {"SecretId": SECRET_ARN})
    reader = SecretsReader(300, secretsmanager=client)
    # WHEN the key is read twice
    # THEN both reads return it and only one request was made (a second would find no stubbed response)
    assert reader.read(SECRET_ARN) == "sk-live-1"
    assert reader.read(SECRET_ARN) == "sk-live-1"


def test_an_ssm_securestring_is_read_with_decryption(ssm):
    client, stubber = ssm
    stubber.add_response("get_parameter", parameter_value("sk-ant-1"), {"Name": PARAMETER, "WithDecryption": True})
    assert SecretsReader(300, ssm=client).read(f"ssm:{PARAMETER}") == "sk-ant-1"


def test_after_the_ttl_the_key_is_read_again(ssm):
    # GIVEN a reader whose cache expires at once, and a key rotated between two reads
    client, stubber = ssm
    expected = {"Name": PARAMETER, "WithDecryption": True}
    stubber.add_response("get_parameter", parameter_value("old"), expected)
    stubber.add_response("get_parameter", parameter_value("rotated"), expected)
    reader = SecretsReader(0, ssm=client)
    # WHEN it reads twice THEN the second read asks again and sees the rotated key
    assert [reader.read(f"ssm:{PARAMETER}"), reader.read(f"ssm:{PARAMETER}")] == ["old", "rotated"]


def test_an_unreadable_secret_is_secret_unavailable(secretsmanager):
    client, stubber = secretsmanager
    stubber.add_client_error("get_secret_value", "AccessDeniedException", "not authorized", 400)
    with pytest.raises(SecretUnavailable):
        SecretsReader(300, secretsmanager=client).read(SECRET_ARN)


@pytest.mark.parametrize(
    ("reference", "store", "name"),
    [
        ("ssm:/ctxgate/key", "ssm", "/ctxgate/key"),
        ("ssm:arn:aws:ssm:us-east-1:123456789012:parameter/k", "ssm", "arn:aws:ssm:us-east-1:123456789012:parameter/k"),
        ("ctxgate/openai", "secretsmanager", "ctxgate/openai"),
        (SECRET_ARN, "secretsmanager", SECRET_ARN),
    ],
)
def test_reference_syntax(reference, store, name):
    assert SecretRef.parse(reference) == SecretRef(store, name)


@pytest.mark.parametrize("reference", ["ssm:", "", "arn:aws:ssm:us-east-1:123456789012:parameter/k"])
def test_malformed_references_are_refused_when_the_models_file_loads(reference):
    with pytest.raises(ValueError):
        ModelConfig(name="m", provider="openai", upstream_model="x", api_key_secret=reference)


def test_a_model_names_one_key_source():
    with pytest.raises(ValueError):
        ModelConfig(name="m", provider="openai", upstream_model="x", api_key_env="K", api_key_secret="ctxgate/openai")


def router_with_secret(client) -> ModelRouter:
    models = ModelsFile(
        models=[
            ModelConfig(
                name="main", provider="openai", upstream_model="gpt-x", base_url=UPSTREAM, api_key_secret=SECRET_ARN
            )
        ]
    )
    reader = SecretsReader(300, secretsmanager=client)
    return ModelRouter(
        models,
        RetryPolicy(max_attempts=1),
        provider_factory=lambda config, timeout: build_provider(config, timeout, secrets=reader),
    )


@respx.mock
def test_the_openai_adapter_sends_the_key_from_secrets_manager(secretsmanager):
    # GIVEN a model whose key lives in Secrets Manager
    client, stubber = secretsmanager
    stubber.add_response("get_secret_value", secret_value("sk-from-secret"), {"SecretId": SECRET_ARN})
    reply = {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
    route = respx.post(f"{UPSTREAM}/chat/completions").mock(return_value=httpx.Response(200, json=reply))
    router = router_with_secret(client)
    # WHEN two requests are served
    for _ in range(2):
        router.complete("main", [Message(role="user", content="hello")], GenerationParams())
    # THEN both carry the secret as the bearer token, read once
    assert [call.request.headers["authorization"] for call in route.calls] == ["Bearer sk-from-secret"] * 2


@respx.mock
def test_an_unreadable_key_fails_without_naming_the_secret(secretsmanager):
    client, stubber = secretsmanager
    stubber.add_client_error("get_secret_value", "AccessDeniedException", f"no access to {SECRET_ARN}", 400)
    route = respx.post(f"{UPSTREAM}/chat/completions")
    with pytest.raises(ProviderFailure) as caught:
        router_with_secret(client).complete("main", [Message(role="user", content="hello")], GenerationParams())
    body = json.dumps(caught.value.to_body())
    assert route.call_count == 0 and "secretsmanager" not in body and "AccessDenied" not in body
