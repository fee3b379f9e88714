"""Patches that make moto behave like the real services where ctxgate depends on it. Pinned: moto==5.2.1.

Lambda: without Docker, moto cannot run a function's code. ``_in_process_invoker`` runs the real handler of the
template's function in this process instead (the one a ``LocalFunctions`` registry names), so Step Functions'
``lambda:invoke`` tasks execute ctxgate's code.

DynamoDB transactions: moto's ``transact_write_items`` deep-copies each table, applies the operations one by
one, and on a failed condition *restores the copy*, silently discarding whatever other threads committed in
between. Real DynamoDB serializes writes to an item, so the conditional appends that sessions rely on would be
lost only under moto. Holding one lock around every DynamoDB write restores serializability.

The copy is also O(table) per transaction, which makes long replays crawl. Under the lock, the replacement below
checks every condition first and applies the operations only if all pass (DynamoDB's all-or-nothing semantics);
should an operation still fail midway, it restores just the items the transaction touched.
"""

from __future__ import annotations

import functools
import json
import threading
import traceback
from collections.abc import Callable
from typing import Any

from ctxgate_local.handlers import LocalFunctions, invoke

MOTO_VERSION = "5.2.1"
_WRITE_METHODS = ("put_item", "update_item", "delete_item")
_lock = threading.RLock()


def _serialized(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    wrapper.__ctxgate_serialized__ = True  # type: ignore[attr-defined]
    return wrapper


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    with _lock:
        operations: list[tuple[str, dict[str, Any], str, dict[str, Any]]] = []
        seen: set[tuple[str, str]] = set()
        for entry in transact_items:
            if len(entry) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(entry.items()))
            table_name = op["TableName"]
            if op_type == "Put":
                table = self.get_table(table_name)
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            identity = (table_name, str(dict(sorted(key.items()))))
            if identity in seen:
                raise MultipleTransactionsException()
            seen.add(identity)
            operations.append((op_type, op, table_name, key))

        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        for _, op, table_name, key in operations:
            current = self.get_item(table_name, key)
            condition = op.get("ConditionExpression")
            passed = condition is None or get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            ).expr(current)
            if passed:
                errors.append((None, None, None))
            else:
                old = None
                if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                    old = current.to_json()["Attributes"]
                errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)

        before = [(table_name, key, self.get_item(table_name, key)) for _, _, table_name, key in operations]
        before = [(t, k, None if item is None else item.to_json()["Attributes"]) for t, k, item in before]
        try:
            for op_type, op, table_name, key in operations:
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if op_type == "Put":
                    self.put_item(
                        table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values
                    )
                elif op_type == "Delete":
                    self.delete_item(
                        table_name, key, expression_attribute_names=names, expression_attribute_values=values
                    )
                elif op_type == "Update":
                    self.update_item(
                        table_name,
                        key,
                        update_expression=op["UpdateExpression"],
                        expression_attribute_names=names,
                        expression_attribute_values=values,
                    )
        except Exception:
            for table_name, key, attributes in before:
                if attributes is None:
                    self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes)
            raise


def _in_process_invoker(functions: LocalFunctions) -> Callable[..., tuple[str, bool, str]]:
    """moto's ``LambdaFunction._invoke_lambda`` without Docker: import the real handler and call it here."""

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        """Returns (payload, errored, logs) as moto expects. An exception becomes a ``FunctionError`` payload whose
        ``errorType`` is the exception's class name, which Step Functions' Retry and Catch match on."""
        function = functions.get(self.function_name)
        if function is None:
            missing = f"no local code for {self.function_name}"
            return json.dumps({"errorType": "ResourceNotFoundException", "errorMessage": missing}), True, ""
        if isinstance(event, str | bytes):
            event = json.loads(event or "{}")
        try:
            return json.dumps(invoke(function, event or {}), default=str), False, ""
        except Exception as error:  # a handler failure is a FunctionError, never a crash of the emulator
            trace = traceback.format_exc()
            payload = {"errorType": type(error).__name__, "errorMessage": str(error), "stackTrace": trace.splitlines()}
            return json.dumps(payload), True, trace

    return _invoke_lambda


def apply(functions: LocalFunctions) -> None:
    """Call before serving requests (``ctxgate local``) or in test fixtures. Idempotent, except that Lambda invokes
    run the handlers of the latest call's ``functions``: fill it with ``LocalFunctions.add_stack`` after provisioning.
    """
    import moto
    from moto.dynamodb.models import DynamoDBBackend

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"ctxgate_local.moto_patches is written against moto {MOTO_VERSION}, not {moto.__version__}")
    for name in _WRITE_METHODS:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, "__ctxgate_serialized__", False):
            setattr(DynamoDBBackend, name, _serialized(method))
    from moto.awslambda.models import LambdaFunction

    LambdaFunction._invoke_lambda = _in_process_invoker(functions)  # type: ignore[method-assign]
    if getattr(DynamoDBBackend.transact_write_items, "__wrapped__", None) is not _transact_write_items:
        DynamoDBBackend.transact_write_items = _serialized(_transact_write_items)  # type: ignore[method-assign]
