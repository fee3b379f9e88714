"""The context engine's configuration from settings: policy knobs, and the recall models they name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctxgate.context.models import ContextConfig

if TYPE_CHECKING:
    import numpy as np

    from ctxgate.settings import Settings

EMBEDDER_NAMES = {"local": "minilm-l6-v2-int8", "bedrock": "titan-embed-text-v2-512"}


def context_config(settings: Settings) -> ContextConfig:
    return ContextConfig(
        recall_share=settings.recall_share,
        recall_min_relevance=settings.recall_min_relevance,
        recall_min_relevance_question=settings.recall_min_relevance_question,
        sticky_recall=settings.sticky_recall,
        rerank_model=settings.rerank_model or None,
    )


class LazyEmbedder:
    """``embeddings.get_embedder(kind)``, loaded on first use: a request that recalls nothing never loads a model."""

    def __init__(self, kind: str) -> None:
        if kind not in EMBEDDER_NAMES:
            raise ValueError(f"unknown recall embedder {kind!r}; use 'local', 'bedrock' or 'none'")
        self.kind = kind
        self.name = EMBEDDER_NAMES[kind]

    def embed(self, texts: list[str]) -> np.ndarray:
        from ctxgate.embeddings import get_embedder

        return get_embedder(self.kind).embed(texts)


def recall_embedder(settings: Settings) -> LazyEmbedder | None:
    return None if settings.recall_embeddings == "none" else LazyEmbedder(settings.recall_embeddings)
