"""What every DynamoDB adapter needs: reading a whole query, and recognising a failed condition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAX_TRANSACTION_ITEMS = 100
"""DynamoDB's limit on the actions of one ``TransactWriteItems``."""


def query_pages(ddb: Any, *, limit: int | None = None, **request: Any) -> Iterator[dict[str, Any]]:
    """Every item a ``Query`` matches, in order, following ``LastEvaluatedKey``; stops after ``limit`` items."""
    yielded = 0
    while True:
        page = ddb.query(**request)
        for item in page.get("Items", []):
            yield item
            yielded += 1
            if limit is not None and yielded >= limit:
                return
        if "LastEvaluatedKey" not in page:
            return
        request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def query_all(ddb: Any, **request: Any) -> list[dict[str, Any]]:
    """Every item a ``Query`` matches, in order."""
    return list(query_pages(ddb, **request))


def is_condition_failure(error: Exception) -> bool:
    """Whether ``error`` is a failed condition: a ``ConditionalCheckFailedException``, or a transaction cancelled
    because one of its conditions failed or it collided with another transaction (both mean "re-read and retry")."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code", "")
    if code == "ConditionalCheckFailedException":
        return True
    if code != "TransactionCanceledException":
        return False
    reasons = response.get("CancellationReasons")
    if not reasons:  # some clients only put the reasons in the message
        message = response.get("Error", {}).get("Message", "")
        return "ConditionalCheckFailed" in message or "TransactionConflict" in message
    return any(r.get("Code") in ("ConditionalCheckFailed", "TransactionConflict") for r in reasons)


def delete_keys(ddb: Any, table: str, keys: list[dict[str, Any]]) -> None:
    """Delete the items with ``keys`` in order, 25 per batch, retrying what DynamoDB leaves unprocessed."""
    for start in range(0, len(keys), 25):
        requests = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
        while requests:
            result = ddb.batch_write_item(RequestItems={table: requests})
            requests = result.get("UnprocessedItems", {}).get(table, [])


def partition_keys(ddb: Any, table: str, pk: str) -> list[dict[str, Any]]:
    """The keys of every item in partition ``pk`` (a consistent read)."""
    return query_all(
        ddb,
        TableName=table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}},
        ProjectionExpression="pk, sk",
        ConsistentRead=True,
    )
