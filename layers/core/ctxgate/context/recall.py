"""Recall of evicted turns: what a shard stores for each turn, and how recalled turns are rendered.

Each compaction writes an immutable :class:`RecallShard` for the turns it evicted: each turn's text, its
Snowball-stemmed content words, its time, any search keys a summariser model wrote, and its sentence embedding.
``ranking`` scores the shards of a session together against a new message.
"""

from __future__ import annotations

import base64
import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from ctxgate.context.models import RecallDoc, RecallShard
from ctxgate.messages import Message

if TYPE_CHECKING:
    import numpy as np

    from ctxgate.embeddings import Embedder
    from ctxgate.sessions.models import Turn

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves yeah yes oh hey hi wow really so just also got get like
    thanks thank im i'm it's that's
    """.split()  # noqa: SIM905
)


@cache
def _stemmer() -> Any:  # PyStemmer ships no type hints
    import Stemmer

    return Stemmer.Stemmer("english")


def terms(text: str) -> list[str]:
    """Content words of ``text``, lower-cased, without stopwords, Snowball-stemmed ('painting' -> 'paint')."""
    words = [w.split("'")[0] for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]
    return _stemmer().stemWords(words)


_ASKING = frozenset(
    """who whom whose what when where why how which did does do is are was were can could would will have has
    remember recall""".split()  # noqa: SIM905
)


def is_question(text: str) -> bool:
    """Does the message ask for something? Questions are when the past is needed; small talk rarely needs it."""
    words = text.strip().lower().split(maxsplit=1)
    return "?" in text or (bool(words) and words[0].strip(",.!") in _ASKING)


def turn_text(message: Message) -> str:
    text = message.text()
    for call in message.tool_calls or ():
        text += f"\n[tool call {call.function.name}({call.function.arguments})]"
    return text


def encode_vector(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype("<f2").tobytes()).decode()


def decode_vectors(encoded: Sequence[str]) -> np.ndarray:
    import numpy as np

    raw = b"".join(base64.b64decode(e) for e in encoded)
    return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(len(encoded), -1)


def build_shard(
    turns: Sequence[Turn], *, embedder: Embedder | None = None, keys: dict[int, list[str]] | None = None
) -> RecallShard:
    """Index an evicted chunk: one :class:`RecallDoc` per turn, with embeddings when an embedder is given."""
    docs = []
    for turn in turns:
        text = turn_text(turn.message)
        name = turn.message.name
        docs.append(
            RecallDoc(
                seq=turn.seq,
                role=turn.message.role,
                name=name,
                text=text,
                tokens=turn.tokens,
                terms=dict(Counter(terms(f"{name or ''} {text}"))),
                created_at=turn.created_at,
                keys=(keys or {}).get(turn.seq, []),
            )
        )
    embedder_name = None
    if embedder is not None and docs:
        vectors = embedder.embed([f"{d.name or d.role}: {d.text}" for d in docs])
        docs = [d.model_copy(update={"embedding": encode_vector(v)}) for d, v in zip(docs, vectors, strict=True)]
        embedder_name = embedder.name
    return RecallShard(first_seq=docs[0].seq, last_seq=docs[-1].seq, docs=docs, embedder=embedder_name)


def day_line(doc: RecallDoc) -> str | None:
    """The date heading a recalled turn is listed under, e.g. "(8 May 2023)"; None for a turn without a time."""
    if doc.created_at <= 0:
        return None
    moment = datetime.fromtimestamp(doc.created_at, UTC)
    return f"({moment.day} {moment:%B %Y})"
