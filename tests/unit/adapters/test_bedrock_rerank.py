"""The Bedrock re-rank stage against the real bedrock-agent-runtime service model (botocore Stubber)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from ctxgate.adapters.bedrock_rerank import BedrockReranker

MODEL = "cohere.rerank-v3-5:0"


@pytest.fixture
def stubbed():
    client = boto3.client("bedrock-agent-runtime", region_name="us-west-2")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_scores_come_back_in_the_order_of_the_texts(stubbed):
    client, stubber = stubbed
    texts = ["Ana: the lake was frozen", "Ben: we went skating", "Ana: I bought bread"]
    expected = {
        "queries": [{"type": "TEXT", "textQuery": {"text": "Where did they skate?"}}],
        "sources": [
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}}} for t in texts
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "modelConfiguration": {"modelArn": f"arn:aws:bedrock:us-west-2::foundation-model/{MODEL}"},
                "numberOfResults": 3,
            },
        },
    }
    results = [{"index": 1, "relevanceScore": 0.91}, {"index": 0, "relevanceScore": 0.40}]
    stubber.add_response("rerank", {"results": results}, expected)
    scores = BedrockReranker(MODEL, client=client)("Where did they skate?", texts)
    assert scores == pytest.approx([0.40, 0.91, 0.0])


def test_an_upstream_error_reaches_the_caller(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("rerank", "ThrottlingException", "slow down", 429)
    with pytest.raises(client.exceptions.ThrottlingException):
        BedrockReranker(MODEL, client=client)("q", ["a"])
