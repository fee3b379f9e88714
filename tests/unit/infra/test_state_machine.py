"""Every ASL file is checked: transitions name existing states, and every Task retries with jitter and catches.

cfn-lint does not look inside ASL; moto's parser (which rejects most mistakes) runs on it in the functional tests
through provisioning, but it accepts a ``Next`` that names no state, so that is checked here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

ASL_FILES = sorted((ROOT / "infra" / "statemachine").glob("*.asl.json"))


def transitions(state: dict[str, Any]) -> list[str]:
    names = [state[k] for k in ("Next", "Default") if k in state]
    names += [choice["Next"] for choice in state.get("Choices", [])]
    names += [catch["Next"] for catch in state.get("Catch", [])]
    return names


def machines(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The definition and every nested Map iterator / Parallel branch."""
    found = [definition]
    for state in definition["States"].values():
        for nested in [state.get("Iterator"), state.get("ItemProcessor"), *state.get("Branches", [])]:
            if nested:
                found += machines(nested)
    return found


@pytest.mark.parametrize("path", ASL_FILES, ids=[p.name for p in ASL_FILES])
def test_every_transition_names_an_existing_state(path: Path):
    for machine in machines(json.loads(path.read_text())):
        states = machine["States"]
        assert machine["StartAt"] in states
        for name, state in states.items():
            for target in transitions(state):
                assert target in states, f"{path.name}: {name} -> {target} names no state"
            terminal = state["Type"] in ("Succeed", "Fail") or state.get("End")
            assert terminal or "Next" in state or state["Type"] == "Choice", f"{name} neither ends nor goes on"


@pytest.mark.parametrize("path", ASL_FILES, ids=[p.name for p in ASL_FILES])
def test_every_task_retries_with_full_jitter_and_jsonpath_only(path: Path):
    text = path.read_text()
    assert '"QueryLanguage": "JSONata"' not in text  # moto cannot evaluate JSONata
    for machine in machines(json.loads(text)):
        for name, state in machine["States"].items():
            if state["Type"] != "Task":
                continue
            assert state.get("Retry"), f"{name} has no Retry"
            for retry in state["Retry"]:
                assert retry["JitterStrategy"] == "FULL" and "BackoffRate" in retry and "MaxDelaySeconds" in retry
            if name not in ("RecordToolError", "RecordFailure", "SendToDeadLetterQueue"):  # the failure path itself
                assert state.get("Catch"), f"{name} has no Catch"


def test_asl_files_exist():
    assert [p.name for p in ASL_FILES] == ["agent_loop.asl.json"]
