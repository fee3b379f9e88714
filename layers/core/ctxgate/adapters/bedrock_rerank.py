"""The optional re-rank stage of recall: a Bedrock re-ranking model through ``bedrock-agent-runtime.rerank``.

Bedrock serves re-rankers (``cohere.rerank-v3-5:0``, ``amazon.rerank-v1:0``) through the Agents runtime's
``Rerank`` operation, which takes one text query and up to 1,000 inline text sources, and returns each source's
index with a relevance score.
"""

from __future__ import annotations

from typing import Any

MAX_SOURCE_CHARS = 32_000  # the service model's limit on one text source


class BedrockReranker:
    """A ``ranking.Reranker``: (query, texts) -> one relevance score per text (0 for a text the model left out)."""

    def __init__(self, model_id: str, client: Any = None) -> None:
        self.model_id = model_id
        self._client = client

    def model_arn(self, region: str) -> str:
        return f"arn:aws:bedrock:{region}::foundation-model/{self.model_id}"

    def __call__(self, query: str, texts: list[str]) -> list[float]:
        from ctxgate.aws import client

        if not texts:
            return []
        bedrock = self._client or client("bedrock-agent-runtime")
        response = bedrock.rerank(
            queries=[{"type": "TEXT", "textQuery": {"text": query[:MAX_SOURCE_CHARS]}}],
            sources=[
                {
                    "type": "INLINE",
                    "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t[:MAX_SOURCE_CHARS]}},
                }
                for t in texts
            ],
            rerankingConfiguration={
                "type": "BEDROCK_RERANKING_MODEL",
                "bedrockRerankingConfiguration": {
                    "modelConfiguration": {"modelArn": self.model_arn(bedrock.meta.region_name)},
                    "numberOfResults": len(texts),
                },
            },
        )
        scores = [0.0] * len(texts)
        for result in response["results"]:
            scores[result["index"]] = float(result["relevanceScore"])
        return scores
