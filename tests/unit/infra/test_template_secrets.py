"""template.yaml keeps provider keys out of environments and lets only the functions that call models read them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ctxgate_local.template import load_template

TEMPLATE = load_template(Path(__file__).resolve().parents[3] / "template.yaml")
MODEL_CALLERS = {"ApiFunction", "StreamingFunction", "InvokeModelFunction", "CompactContextFunction"}
KEY_LIKE = re.compile(r"API_?KEY|SECRET|(^|_)TOKEN($|_)|PASSWORD|CREDENTIAL", re.I)


def functions() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def mentions(value: Any, name: str) -> bool:
    return name in repr(value)


def test_only_the_functions_that_call_models_may_read_provider_keys():
    readers = {
        name for name, fn in functions().items() if mentions(fn["Properties"].get("Policies"), "ProviderKeySecrets")
    }
    assert readers == MODEL_CALLERS


def test_the_grant_is_conditional_so_an_empty_list_grants_nothing():
    condition = TEMPLATE["Conditions"]["HasProviderKeySecrets"]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "ProviderKeySecrets"}]}, ""]}]}
    assert TEMPLATE["Parameters"]["ProviderKeySecrets"] == {
        **TEMPLATE["Parameters"]["ProviderKeySecrets"],
        "Default": "",
    }
    for name in MODEL_CALLERS:
        grants = [p for p in functions()[name]["Properties"]["Policies"] if mentions(p, "ProviderKeySecrets")]
        assert len(grants) == 1 and grants[0]["Fn::If"][0] == "HasProviderKeySecrets"
        assert grants[0]["Fn::If"][2] == {"Ref": "AWS::NoValue"}
        statement = grants[0]["Fn::If"][1]["Statement"][0]
        assert statement["Action"] == ["secretsmanager:GetSecretValue", "ssm:GetParameter"]
        assert statement["Resource"] == {"Ref": "ProviderKeySecrets"}


def test_no_environment_variable_holds_a_key():
    environments = [TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]]
    environments += [fn["Properties"].get("Environment", {}).get("Variables", {}) for fn in functions().values()]
    names = [name for variables in environments for name in variables]
    assert names and not [name for name in names if KEY_LIKE.search(name)]
