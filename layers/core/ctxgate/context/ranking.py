"""Ranking evicted turns for a new message: BM25 fused with sentence-embedding cosine, aware of speakers and time.

The ranking (issue 13's measured ladder, each step kept because it helped on LoCoMo conversations 0-2):

- BM25 over Snowball-stemmed words; each turn is indexed with its own words, its ±1 neighbours' words, its month
  and year, and any search keys a summariser wrote for it;
- a turn's BM25 score is smoothed with its neighbours' (an answer often sits beside the turn that names the topic);
- fusion: max-normalised BM25 + ``DENSE_WEIGHT`` times median-normalised, neighbour-smoothed cosine;
- boosts: ``SPEAKER_BOOST`` for turns by a speaker the message names, ``PERIOD_BOOST`` for turns in a period it names.

Relevance for the gate is absolute, not relative to the best turn: the smoothed BM25 score normalised by the
query's total IDF (about 1.0 when a turn, with its neighbours, holds every query term once).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctxgate.context.models import RecallDoc, RecallShard
from ctxgate.context.recall import decode_vectors, terms
from ctxgate.context.timeref import named_periods, time_terms

if TYPE_CHECKING:
    import numpy as np

    from ctxgate.embeddings import Embedder

K1 = 1.2
B = 0.75
NEIGHBOUR_WEIGHT = 1.0
DENSE_WEIGHT = 0.5
SPEAKER_BOOST = 1.6
PERIOD_BOOST = 2.0
INDEX_CACHE_SIZE = 64
_NAME = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Scored:
    doc: RecallDoc
    score: float
    """Fused ranking score (only its order means anything)."""
    relevance: float
    """Absolute relevance that the recall gate compares with its threshold."""


class RecallIndex:
    """The shards of one session, indexed together (document frequencies across all of them). Immutable."""

    def __init__(self, shards: Sequence[RecallShard]) -> None:
        import numpy as np

        self._np = np
        self.docs = sorted((d for s in shards for d in s.docs), key=lambda d: d.seq)
        position = {d.seq: i for i, d in enumerate(self.docs)}
        n = len(self.docs)
        self.left = np.array([position.get(d.seq - 1, n) for d in self.docs], dtype=np.int64)
        self.right = np.array([position.get(d.seq + 1, n) for d in self.docs], dtype=np.int64)
        own = [Counter(d.terms) + Counter(terms(" ".join(d.keys))) for d in self.docs]
        self.postings: dict[str, tuple[Any, Any]] = {}
        postings: dict[str, list[tuple[int, int]]] = {}
        lengths = []
        for i, doc in enumerate(self.docs):
            bag = Counter(own[i])
            for j in (self.left[i], self.right[i]):
                if j < n:
                    bag.update(own[j])
            bag.update(terms(" ".join(time_terms(doc.created_at))))
            lengths.append(sum(bag.values()))
            for term, tf in bag.items():
                postings.setdefault(term, []).append((i, tf))
        for term, rows in postings.items():
            self.postings[term] = (np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=np.float32))
        self.lengths = np.array(lengths, dtype=np.float32)
        self.average = float(self.lengths.mean()) if n else 1.0
        self.speakers = {d.name.lower(): d.name for d in self.docs if d.name}
        names = {s.embedder for s in shards if s.embedder}
        self.embedder = names.pop() if len(names) == 1 else None
        self.vectors = None
        self.has_vector = np.zeros(n, dtype=bool)
        if self.embedder is not None and n:
            dims = next(len(decode_vectors([d.embedding])[0]) for d in self.docs if d.embedding)
            self.vectors = np.zeros((n, dims), dtype=np.float32)
            with_vector = [i for i, d in enumerate(self.docs) if d.embedding]
            self.vectors[with_vector] = decode_vectors([self.docs[i].embedding for i in with_vector])
            self.has_vector[with_vector] = True

    def smooth(self, values: np.ndarray) -> np.ndarray:
        padded = self._np.append(values, 0.0)
        return values + NEIGHBOUR_WEIGHT * (padded[self.left] + padded[self.right]) / 2

    def lexical(self, query_terms: set[str]) -> tuple[np.ndarray, float]:
        """Neighbour-smoothed BM25 of every doc, and the query's total IDF (0 when no term occurs)."""
        np = self._np
        n = len(self.docs)
        raw = np.zeros(n, dtype=np.float32)
        norm = 0.0
        for term in query_terms:
            if term not in self.postings:
                continue
            rows, tf = self.postings[term]
            idf = math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
            norm += idf
            raw[rows] += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * self.lengths[rows] / self.average))
        return self.smooth(raw), norm


_indexes: OrderedDict[tuple[int, ...], tuple[Sequence[RecallShard], RecallIndex]] = OrderedDict()
_lock = threading.Lock()


def index_for(shards: Sequence[RecallShard]) -> RecallIndex:
    """The index of ``shards``, built once per set of shard objects (shards are immutable; the cache entry keeps
    them alive, so their ids cannot be reused while it exists)."""
    key = tuple(id(s) for s in shards)
    with _lock:
        if key in _indexes:
            _indexes.move_to_end(key)
            return _indexes[key][1]
    index = RecallIndex(shards)
    with _lock:
        _indexes[key] = (list(shards), index)
        while len(_indexes) > INDEX_CACHE_SIZE:
            _indexes.popitem(last=False)
    return index


Reranker = Callable[[str, list[str]], list[float]]
"""(query, candidate texts) -> one relevance score per text, higher is better."""


class Ranker:
    """Ranks a session's evicted turns for a message. Without an embedder it is lexical only."""

    def __init__(
        self, embedder: Embedder | None = None, reranker: Reranker | None = None, rerank_candidates: int = 50
    ) -> None:
        self.embedder = embedder
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates
        self._memo: OrderedDict[tuple[int, str, float], list[Scored]] = OrderedDict()
        self._memo_lock = threading.Lock()

    def rank(self, shards: Sequence[RecallShard], query: str, now: float) -> list[Scored]:
        """Every candidate turn for ``query`` asked at ``now``, best first (memoised: sticky recall asks again)."""
        index = index_for(shards)
        key = (id(index), query, now)
        with self._memo_lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key]
        ranked = self._rank(index, query, now)
        with self._memo_lock:
            self._memo[key] = ranked
            while len(self._memo) > 512:
                self._memo.popitem(last=False)
        return ranked

    def _rank(self, index: RecallIndex, query: str, now: float) -> list[Scored]:
        import numpy as np

        if not index.docs:
            return []
        smoothed, norm = index.lexical(set(terms(query)))
        relevance = smoothed / norm if norm > 0 else np.zeros_like(smoothed)
        top = float(smoothed.max())
        fused = smoothed / top if top > 0 else np.zeros_like(smoothed)
        if self.embedder is not None and index.vectors is not None and index.embedder == self.embedder.name:
            cosine = np.where(index.has_vector, index.vectors @ self.embedder.embed([query])[0], 0.0)
            dense = index.smooth(np.clip(cosine, 0.0, None))
            middle = float(np.median(dense[index.has_vector]))
            if middle > 0:
                fused = fused + DENSE_WEIGHT * dense / middle
        fused = fused * self._boosts(index, query, now)
        order = [i for i in np.argsort(-fused, kind="stable") if fused[i] > 0]
        ranked = [Scored(index.docs[i], float(fused[i]), float(relevance[i])) for i in order]
        return self._rerank(query, ranked) if self.reranker is not None else ranked

    @staticmethod
    def _boosts(index: RecallIndex, query: str, now: float) -> np.ndarray:
        import numpy as np

        boost = np.ones(len(index.docs), dtype=np.float32)
        named = {index.speakers[w] for w in _NAME.findall(query.lower()) if w in index.speakers}
        if named:
            boost *= np.array([SPEAKER_BOOST if d.name in named else 1.0 for d in index.docs], dtype=np.float32)
        periods = named_periods(query, now)
        if periods:
            within = [any(d.created_at in p for p in periods) for d in index.docs]
            boost *= np.array([PERIOD_BOOST if w else 1.0 for w in within], dtype=np.float32)
        return boost

    def _rerank(self, query: str, ranked: list[Scored]) -> list[Scored]:
        """Reorder the best ``rerank_candidates`` by the re-ranker's scores; the rest keep their order below them.
        A failing re-ranker leaves the fused order (recall must not fail a request)."""
        head, tail = ranked[: self.rerank_candidates], ranked[self.rerank_candidates :]
        assert self.reranker is not None
        try:
            scores = self.reranker(query, [f"{s.doc.name or s.doc.role}: {s.doc.text}" for s in head])
        except Exception:
            import logging

            logging.getLogger(__name__).warning("re-ranking failed; keeping the fused order", exc_info=True)
            return ranked
        order = sorted(range(len(head)), key=lambda i: -scores[i])
        return [head[i] for i in order] + tail
