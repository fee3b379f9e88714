"""Embedders: Titan v2 against the real bedrock-runtime service model (Stubber), the local model's basic contract."""

from __future__ import annotations

import io
import json

import boto3
import numpy as np
from botocore.response import StreamingBody
from botocore.stub import Stubber
from ctxgate.embeddings import LocalMiniLM, TitanEmbedder


def test_titan_v2_request_and_normalised_vectors():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    embedder = TitanEmbedder(dimensions=256, client=client)
    vector = [0.0] * 256
    vector[3] = 1.0
    body = json.dumps({"embedding": vector, "inputTextTokenCount": 5}).encode()
    with Stubber(client) as stubber:
        stubber.add_response(
            "invoke_model",
            {"body": StreamingBody(io.BytesIO(body), len(body)), "contentType": "application/json"},
            {
                "modelId": "amazon.titan-embed-text-v2:0",
                "body": json.dumps({"inputText": "hello", "dimensions": 256, "normalize": True}),
                "contentType": "application/json",
                "accept": "application/json",
            },
        )
        rows = embedder.embed(["hello"])
        stubber.assert_no_pending_responses()
    assert rows.shape == (1, 256) and rows.dtype == np.float32 and float(rows[0] @ rows[0]) == 1.0
    assert embedder.name == "titan-embed-text-v2-256"  # folded into cache scopes, so models never mix


def test_local_minilm_vectors_are_unit_length_and_order_independent():
    embedder = LocalMiniLM()
    texts = ["How do I open a savings account?", "Where is the nearest train station?"]
    both = embedder.embed(texts)
    embedder.forget()
    reversed_rows = embedder.embed(list(reversed(texts)))
    assert both.shape == (2, 384)
    assert np.allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-5)
    assert np.allclose(both[0], reversed_rows[1], atol=1e-5)
    assert float(both[0] @ both[1]) < 0.5
