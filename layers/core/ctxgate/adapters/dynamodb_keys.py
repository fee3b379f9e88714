"""DynamoDB store of API keys (the keys table).

    pk = "{key id}"    tenant, name, key_hash, created_at, expires_at (the table's TTL attribute), revoked,
                       and the limits (absent = unlimited; models a string set)
    GSI "by-tenant":   tenant (hash), created_at (range) - one tenant's keys, oldest first

The secret itself is never written; ``key_hash`` is its SHA-256. Expired keys are refused by the authorizer at
once and deleted by DynamoDB's TTL later.
"""

from __future__ import annotations

from typing import Any

from ctxgate.adapters.dynamodb_common import is_condition_failure, query_all
from ctxgate.auth.keys import ApiKey
from ctxgate.auth.models import KeyLimits
from ctxgate.auth.ports import KeyExists
from ctxgate.aws import client

TENANT_INDEX = "by-tenant"
_NUMBERS = ("rpm", "tpm", "tokens_per_day", "max_budget_tokens")


class DynamoKeyStore:
    def __init__(self, table: str, dynamodb: Any = None) -> None:
        self.table = table
        self._ddb = dynamodb

    @property
    def ddb(self) -> Any:
        return self._ddb or client("dynamodb")

    def create(self, key: ApiKey) -> None:
        from botocore.exceptions import ClientError

        try:
            self.ddb.put_item(TableName=self.table, Item=to_item(key), ConditionExpression="attribute_not_exists(pk)")
        except ClientError as error:
            if is_condition_failure(error):
                raise KeyExists(key.id) from error
            raise

    def get(self, key_id: str) -> ApiKey | None:
        item = self.ddb.get_item(TableName=self.table, Key={"pk": {"S": key_id}}, ConsistentRead=True).get("Item")
        return from_item(item) if item else None

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        if tenant is not None:
            items = query_all(
                self.ddb,
                TableName=self.table,
                IndexName=TENANT_INDEX,
                KeyConditionExpression="tenant = :t",
                ExpressionAttributeValues={":t": {"S": tenant}},
            )
        else:
            items, request = [], {"TableName": self.table}
            while True:
                page = self.ddb.scan(**request)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted((from_item(i) for i in items), key=lambda k: (k.created_at, k.id))

    def revoke(self, key_id: str) -> ApiKey | None:
        from botocore.exceptions import ClientError

        try:
            item = self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": key_id}},
                UpdateExpression="SET revoked = :yes",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return from_item(item)


def to_item(key: ApiKey) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": key.id},
        "key_hash": {"S": key.key_hash},
        "tenant": {"S": key.tenant},
        "name": {"S": key.name},
        "created_at": {"N": str(key.created_at)},
        "revoked": {"BOOL": key.revoked},
        "cache_opt_in": {"BOOL": key.limits.cache_opt_in},
    }
    if key.expires_at is not None:
        item["expires_at"] = {"N": str(key.expires_at)}
    for name in _NUMBERS:
        value = getattr(key.limits, name)
        if value is not None:
            item[name] = {"N": str(value)}
    if key.limits.models:
        item["models"] = {"SS": sorted(key.limits.models)}
    return item


def from_item(item: dict[str, Any]) -> ApiKey:
    def number(name: str) -> int | None:
        return int(item[name]["N"]) if name in item else None

    limits = KeyLimits(
        rpm=number("rpm"),
        tpm=number("tpm"),
        tokens_per_day=number("tokens_per_day"),
        models=tuple(sorted(item.get("models", {}).get("SS", []))),
        max_budget_tokens=number("max_budget_tokens"),
        cache_opt_in=bool(item.get("cache_opt_in", {}).get("BOOL", False)),
    )
    return ApiKey(
        id=item["pk"]["S"],
        key_hash=item["key_hash"]["S"],
        tenant=item["tenant"]["S"],
        name=item.get("name", {}).get("S", ""),
        limits=limits,
        created_at=int(item["created_at"]["N"]),
        expires_at=number("expires_at"),
        revoked=bool(item.get("revoked", {}).get("BOOL", False)),
    )
