"""The models file and the router's model resolution (``ctxgate.providers.registry``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ctxgate.errors import UnknownModel
from ctxgate.providers.registry import ECHO_ONLY, ModelRouter, load_models
from ctxgate.retry import RetryPolicy


def test_without_a_config_the_only_model_is_echo():
    assert [m.name for m in load_models(None).models] == ["echo"]


def test_bundled_models_file_is_echo_only():
    from ctxgate.settings import BUNDLED_MODELS_FILE

    assert [m.name for m in load_models(BUNDLED_MODELS_FILE).models] == ["echo"]


def test_a_valid_config_file_is_loaded_in_order(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text(
        "models:\n"
        "  - {name: fast, provider: openai, upstream_model: gpt-4o-mini, base_url: 'http://x/v1',"
        " api_key_env: K, fallbacks: [local]}\n"
        "  - {name: local, provider: echo, upstream_model: echo}\n"
    )
    assert [m.name for m in load_models(good).models] == ["fast", "local"]


@pytest.mark.parametrize(
    "text",
    [
        "models: []\n",
        "models:\n  - {name: a, provider: nope, upstream_model: x}\n",
        "models:\n  - {name: a, provider: echo, upstream_model: x, fallbacks: [b]}\n",
        "models:\n  - {name: a, provider: echo, upstream_model: x, colour: red}\n",
        "models: [\n",
    ],
    ids=["no-models", "unknown-provider", "unknown-fallback", "unknown-field", "broken-yaml"],
)
def test_an_invalid_config_file_is_refused(tmp_path: Path, text):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ValueError):
        load_models(bad)


def test_unknown_model_is_a_404():
    with pytest.raises(UnknownModel) as caught:
        ModelRouter(ECHO_ONLY, RetryPolicy()).resolve("gpt-5")
    assert caught.value.status == 404 and caught.value.code == "model_not_found"
