"""Lexical recall of evicted turns: BM25 over a light-stemmed bag of words.

Each compaction writes an immutable :class:`RecallShard` for the turns it evicted; at assembly time the shards
of a session are scored together (document frequencies across all of them) against the new message.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable

from ctxgate.context.models import RecallDoc, RecallShard
from ctxgate.messages import Message

K1 = 1.2
B = 0.75
NEIGHBOUR_WEIGHT = 0.5
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


def stem(word: str) -> str:
    """A deliberately small suffix stripper: enough to meet 'painted'/'painting'/'paints' at 'paint'."""
    word = word.split("'")[0]
    for suffix, min_stem in (
        ("ingly", 4),
        ("edly", 4),
        ("ing", 3),
        ("ies", 3),
        ("ied", 3),
        ("ed", 3),
        ("es", 4),
        ("ly", 4),
        ("s", 3),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= min_stem:
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                return base + "y"
            if suffix in ("ing", "ed") and len(base) > 3 and base[-1] == base[-2]:
                return base[:-1]  # running -> run, stopped -> stop
            return base
    return word


def terms(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 1]


_ASKING = frozenset(
    """who whom whose what when where why how which did does do is are was were can could would will have has
    remember recall""".split()  # noqa: SIM905
)


def is_question(text: str) -> bool:
    """Does the message ask for something? Questions are when the past is needed; small talk rarely needs it."""
    words = text.strip().lower().split(maxsplit=1)
    return "?" in text or (bool(words) and words[0].strip(",.!") in _ASKING)


def recall_doc(seq: int, message: Message, tokens: int) -> RecallDoc:
    text = message.text()
    for call in message.tool_calls or ():
        text += f"\n[tool call {call.function.name}({call.function.arguments})]"
    indexed = f"{message.name or ''} {text}"
    return RecallDoc(
        seq=seq, role=message.role, name=message.name, text=text, tokens=tokens, terms=dict(Counter(terms(indexed)))
    )


def build_shard(turns: Iterable[tuple[int, Message, int]]) -> RecallShard:
    docs = [recall_doc(seq, message, tokens) for seq, message, tokens in turns]
    return RecallShard(first_seq=docs[0].seq, last_seq=docs[-1].seq, docs=docs)


def score(shards: list[RecallShard], query: str) -> list[tuple[float, RecallDoc]]:
    """Relevance of every indexed turn to ``query``, best first; turns scoring 0 are left out.

    A turn's BM25 score is smoothed with its neighbours' (an answer often sits beside the turn that names the
    topic), then normalised by the query's total IDF so that one threshold means the same for any query: about 1.0
    for a turn that holds every query term once, near 0 for one that shares a single common word.
    """
    docs = [doc for shard in shards for doc in shard.docs]
    query_terms = set(terms(query))
    if not docs or not query_terms:
        return []
    lengths = [sum(doc.terms.values()) for doc in docs]
    average = sum(lengths) / len(docs) or 1.0
    frequency = Counter(t for doc in docs for t in query_terms if t in doc.terms)
    idf = {t: math.log(1 + (len(docs) - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}
    norm = sum(idf.values())
    if norm == 0:
        return []
    raw: dict[int, float] = {}
    for doc, length in zip(docs, lengths, strict=True):
        total = 0.0
        for term, weight in idf.items():
            tf = doc.terms.get(term, 0)
            if tf:
                total += weight * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average))
        if total > 0:
            raw[doc.seq] = total
    ranked = []
    for doc in docs:
        neighbours = (raw.get(doc.seq - 1, 0.0) + raw.get(doc.seq + 1, 0.0)) / 2
        smoothed = raw.get(doc.seq, 0.0) + NEIGHBOUR_WEIGHT * neighbours
        if smoothed > 0:
            ranked.append((smoothed / norm, doc))
    ranked.sort(key=lambda pair: (-pair[0], pair[1].seq))
    return ranked


RECALL_HEADER = "Earlier turns recalled because they relate to the new message (verbatim, oldest first):"


def recall_line(doc: RecallDoc) -> str:
    speaker = f"{doc.name} ({doc.role})" if doc.name else doc.role
    return f"[turn {doc.seq}] {speaker}: {doc.text}"


def render_recalled(docs: list[RecallDoc]) -> str:
    """Recalled turns, in conversation order, each verbatim with its turn number and speaker."""
    return "\n".join([RECALL_HEADER, *(recall_line(d) for d in sorted(docs, key=lambda d: d.seq))])
