"""Provider API keys from AWS Secrets Manager or SSM Parameter Store, read through Powertools Parameters.

A model's ``api_key_secret`` (in the models YAML) names where its key lives:

- ``ssm:<name or ARN>``: an SSM parameter, a SecureString read with decryption (``ssm:/ctxgate/openai-key``);
- anything else: a Secrets Manager secret id, its name or full ARN, whose ``SecretString`` is the key itself.

Values are cached in the process for ``ttl_seconds`` by Powertools, so a warm function asks once per key per TTL,
and a rotated key is picked up within one TTL. Failures raise :class:`SecretUnavailable`, whose message is for the
logs (it can name the secret and the AWS error); the provider turns it into a generic client-facing error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

SSM_PREFIX = "ssm:"


class SecretUnavailable(Exception):
    """The key could not be read (missing, access denied, throttled, empty)."""


@dataclass(frozen=True)
class SecretRef:
    """A parsed ``api_key_secret``: which store, and the id to ask it for."""

    store: Literal["secretsmanager", "ssm"]
    name: str

    @classmethod
    def parse(cls, reference: str) -> SecretRef:
        """Raises ``ValueError`` for an empty reference, or an ARN of neither store without the ``ssm:`` prefix."""
        reference = reference.strip()
        if reference.startswith(SSM_PREFIX):
            name = reference[len(SSM_PREFIX) :].strip()
            if not name:
                raise ValueError("api_key_secret 'ssm:' needs a parameter name, e.g. ssm:/ctxgate/openai-key")
            return cls("ssm", name)
        if not reference:
            raise ValueError("api_key_secret needs a Secrets Manager secret name or ARN, or ssm:<parameter>")
        if reference.startswith("arn:") and ":secretsmanager:" not in reference:
            raise ValueError(
                f"api_key_secret {reference!r} is not a Secrets Manager ARN; write SSM parameters as ssm:<name>"
            )
        return cls("secretsmanager", reference)


class SecretsReader:
    """Reads key references with Powertools' ``SecretsProvider`` and ``SSMProvider`` (boto3 clients are built on
    first use, or injected: tests pass clients wrapped in botocore's ``Stubber``)."""

    def __init__(self, ttl_seconds: int, *, secretsmanager: Any = None, ssm: Any = None) -> None:
        self.ttl_seconds = ttl_seconds
        self._clients = {"secretsmanager": secretsmanager, "ssm": ssm}
        self._providers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _provider(self, store: str) -> Any:
        with self._lock:
            if store not in self._providers:
                from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

                client = self._clients[store]
                if client is None:
                    from ctxgate.aws import client as shared_client

                    client = shared_client(store)
                kind = SecretsProvider if store == "secretsmanager" else SSMProvider
                self._providers[store] = kind(boto3_client=client)
            return self._providers[store]

    def read(self, reference: str) -> str:
        """The key ``reference`` names, from the cache if it was read less than ``ttl_seconds`` ago."""
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

        ref = SecretRef.parse(reference)
        options: dict[str, Any] = {"decrypt": True} if ref.store == "ssm" else {}
        try:
            value = self._provider(ref.store).get(ref.name, max_age=self.ttl_seconds, **options)
        except (GetParameterError, TransformParameterError) as error:
            raise SecretUnavailable(f"cannot read {ref.store} {ref.name!r}: {error}") from error
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str) or not value.strip():
            raise SecretUnavailable(f"{ref.store} {ref.name!r} holds no key")
        return value.strip()
