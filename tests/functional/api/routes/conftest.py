"""The api function (functions/api/app.py) on moto, shared by the per-route tests."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.conftest import load_function


@pytest.fixture
def api(aws) -> ModuleType:
    return load_function("api")
