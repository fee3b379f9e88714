"""``ctxgate keys create|list|revoke`` against the keys table of template.yaml in moto: the ``--json`` contract,
a secret that is printed once and never again, and only its hash in the table."""

from __future__ import annotations

import hashlib
import json

import pytest
from ctxgate.cli import main


def keys(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["keys", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def table(aws) -> str:
    return aws.physical["KeysTable"]


def test_create_json_prints_one_object_with_the_key_once(capsys, aws, table):
    # GIVEN the deployed keys table
    # WHEN a key is created with limits
    code, out, _ = keys(
        capsys,
        "create",
        "--tenant",
        "acme",
        "--name",
        "ci",
        "--rpm",
        "10",
        "--tpm",
        "5000",
        "--tokens-per-day",
        "100000",
        "--models",
        "echo,gpt-4o-mini",
        "--max-budget",
        "16000",
        "--cache-opt-in",
        "--expires-days",
        "30",
        "--table",
        table,
        "--json",
    )
    # THEN exactly one JSON object with id, key and tenant is printed
    assert code == 0 and len(out.strip().splitlines()) == 1
    created = json.loads(out)
    assert created["key"].startswith("ctg_") and created["id"].startswith("key_") and created["tenant"] == "acme"
    assert created["limits"] == {
        "rpm": 10,
        "tpm": 5000,
        "tokens_per_day": 100000,
        "models": ["echo", "gpt-4o-mini"],
        "max_budget_tokens": 16000,
        "cache_opt_in": True,
    }
    assert created["expires_at"] - created["created_at"] == 30 * 86400
    # AND the table holds its SHA-256, never the key
    items = aws.session.client("dynamodb").scan(TableName=table)["Items"]
    assert len(items) == 1 and items[0]["key_hash"]["S"] == hashlib.sha256(created["key"].encode()).hexdigest()
    assert created["key"] not in json.dumps(items)


def test_list_never_prints_a_secret_and_filters_by_tenant(capsys, table):
    secrets = {}
    for tenant in ("acme", "acme", "globex"):
        created = json.loads(keys(capsys, "create", "--tenant", tenant, "--table", table, "--json")[1])
        secrets[created["id"]] = created["key"]
    code, out, _ = keys(capsys, "list", "--table", table, "--json")
    listed = json.loads(out)["data"]
    assert code == 0 and {k["id"] for k in listed} == set(secrets)
    assert not any(secret in out or secret[4:20] in out for secret in secrets.values())
    assert "key_hash" not in out
    acme = json.loads(keys(capsys, "list", "--tenant", "acme", "--table", table, "--json")[1])["data"]
    assert [k["tenant"] for k in acme] == ["acme", "acme"]
    code, human, _ = keys(capsys, "list", "--table", table)
    assert code == 0 and all(key_id in human for key_id in secrets)
    assert not any(secret in human for secret in secrets.values())


def test_revoke_marks_the_key_and_the_authorizer_refuses_it(capsys, table, monkeypatch):
    created = json.loads(keys(capsys, "create", "--tenant", "acme", "--table", table, "--json")[1])
    code, out, _ = keys(capsys, "revoke", created["id"], "--table", table)
    assert code == 0 and created["id"] in out
    listed = json.loads(keys(capsys, "list", "--table", table, "--json")[1])["data"]
    assert [(k["id"], k["status"], k["revoked"]) for k in listed] == [(created["id"], "revoked", True)]
    from ctxgate.bootstrap import key_service
    from ctxgate.errors import Unauthorized

    with pytest.raises(Unauthorized):
        key_service().authenticate(created["key"])
    code, _, err = keys(capsys, "revoke", "key_00000000000000000000", "--table", table)
    assert code == 1 and "No key" in err


def test_stack_finds_the_table_in_the_stacks_outputs(capsys, aws, table):
    # GIVEN a CloudFormation stack whose KeysTableName output names the keys table
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"KeysTableName": {"Value": table}},
    }
    aws.session.client("cloudformation").create_stack(StackName="ctxgate-prod", TemplateBody=json.dumps(template))
    # WHEN keys are created and listed by stack name
    created = json.loads(keys(capsys, "create", "--tenant", "acme", "--stack", "ctxgate-prod", "--json")[1])
    listed = json.loads(keys(capsys, "list", "--stack", "ctxgate-prod", "--json")[1])["data"]
    # THEN they are in that table; an unknown stack is a clear error
    assert [k["id"] for k in listed] == [created["id"]]
    code, _, err = keys(capsys, "list", "--stack", "nope")
    assert code == 2 and "nope" in err


def test_bad_input_is_refused_without_a_traceback(capsys, table):
    code, _, err = keys(capsys, "create", "--tenant", "a/b", "--table", table)
    assert code == 1 and "Tenants are" in err
    with pytest.raises(SystemExit):
        main(["keys", "create", "--tenant", "acme", "--rpm", "0", "--table", table])
