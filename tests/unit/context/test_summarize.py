"""Session summaries: the extractive fallback, consolidation, and the model summary when one answers."""

from __future__ import annotations

import httpx
import respx
from ctxgate.context.summarize import Summarizer, extractive_summary, summary_units, turn_units
from ctxgate.messages import Message
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.retry import RetryPolicy
from ctxgate.tokens import count_text

TURNS = [
    Message(role="user", name="Caroline", content="Hey Mel! Good to see you. How have you been?"),
    Message(role="assistant", name="Melanie", content="Swamped with the kids. I painted a lake sunrise in 2022."),
    Message(role="user", name="Caroline", content="I went to the LGBTQ support group on 7 May and it was powerful."),
    Message(role="assistant", name="Melanie", content="That's great. Haha, yeah, totally, wow."),
]


def test_extractive_summary_is_deterministic():
    units = turn_units(TURNS)
    assert extractive_summary(units, 40) == extractive_summary(units, 40)


def test_extractive_summary_stays_within_its_target():
    assert count_text(extractive_summary(turn_units(TURNS), 40)) <= 40


def test_extractive_summary_keeps_facts_over_filler():
    summary = extractive_summary(turn_units(TURNS), 40)
    assert "LGBTQ support group on 7 May" in summary and "lake sunrise in 2022" in summary
    assert "totally" not in summary  # filler loses to facts


def consolidation_units() -> list:
    summary = extractive_summary(turn_units(TURNS), 60)
    return summary_units([summary, "- Melanie: We adopted a dog named Oscar."])


def test_consolidating_summaries_reads_their_bullets_back():
    assert ("Melanie", "We adopted a dog named Oscar.") in consolidation_units()


def test_a_consolidated_summary_stays_within_its_target():
    assert count_text(extractive_summary(consolidation_units(), 30)) <= 30


def router(base: str) -> ModelRouter:
    models = ModelsFile(
        models=[
            ModelConfig(name="m", provider="openai", upstream_model="x", base_url=base),
            ModelConfig(name="echo", provider="echo", upstream_model="echo"),
        ]
    )
    return ModelRouter(models, RetryPolicy(max_attempts=1), sleep=lambda s: None)


@respx.mock
def test_model_summary_is_used_when_the_model_answers():
    route = respx.post("http://sum.test/v1/chat/completions").mock(
        return_value=httpx.Response(
            200,
            json={
                "choices": [
                    {
                        "message": {"role": "assistant", "content": "- Caroline went to a support group (7 May)."},
                        "finish_reason": "stop",
                    }
                ]
            },
        )
    )
    summary = Summarizer(router("http://sum.test/v1")).summarise(turn_units(TURNS), 60, session_model="m")
    assert summary == "- Caroline went to a support group (7 May)." and route.called


@respx.mock
def test_a_failing_model_falls_back_to_the_extractive_summary():
    respx.post("http://sum.test/v1/chat/completions").mock(return_value=httpx.Response(500))
    expected = extractive_summary(turn_units(TURNS), 60)
    assert Summarizer(router("http://sum.test/v1")).summarise(turn_units(TURNS), 60, session_model="m") == expected


def test_the_echo_model_falls_back_to_the_extractive_summary():
    expected = extractive_summary(turn_units(TURNS), 60)
    assert Summarizer(router("http://sum.test/v1"), "echo").summarise(turn_units(TURNS), 60) == expected
