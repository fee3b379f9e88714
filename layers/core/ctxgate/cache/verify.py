"""Verification of a semantic candidate: a hit must be right, not just close.

Cosine similarity alone cannot tell "How do I open a savings account?" from "How do I close a savings account?",
and a cache that stores near-duplicate prompts with different answers must not pick between them by a hair.
Every rule below turns a would-be hit into a miss; none can turn a miss into a hit.

1. The best candidate's cosine similarity must reach the threshold (the one documented scale, 0-1).
2. Candidates are ranked by cosine similarity plus a lexical agreement bonus (a second, independent signal), and
   the best must lead the runner-up by a margin; a runner-up holding the very same prompt with another answer is
   always ambiguous.
3. Guards on the best candidate: the numbers must be the same; an added or removed negation in otherwise
   near-identical wording, a swapped named entity, or a known antonym swap is a miss; and a short prompt that
   differs from the candidate by one or two content words must be near-identical in meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ctxgate.context.recall import terms

LEXICAL_WEIGHT = 0.3
MARGIN = 0.03
MINIMAL_PAIR_SIMILARITY = 0.85
MINIMAL_PAIR_MAX_SHARED = 3

_NEGATION = re.compile(r"\b(?:not|no|never|none|nothing|nobody|neither|nor|without|cannot)\b|n['\u2019]t\b", re.I)
_NUMBER = re.compile(r"\d+(?:[.,:/]\d+)*")
_ENTITY = re.compile(r"(?<=[a-z0-9,;:)] )([A-Z][A-Za-z0-9]+(?:[-'][A-Za-z]+)?)")
_IDENTIFIER = re.compile(r"`[^`]+`|\b\w*[A-Z]\w*[A-Z]\w*\b|\b\w+_\w+\b")
_ANTONYMS = [
    ("open", "close"),
    ("enable", "disable"),
    ("upload", "download"),
    ("add", "remove"),
    ("create", "delete"),
    ("start", "stop"),
    ("buy", "sell"),
    ("increase", "decrease"),
    ("import", "export"),
    ("encrypt", "decrypt"),
    ("install", "uninstall"),
    ("subscribe", "unsubscribe"),
    ("login", "logout"),
    ("allow", "deny"),
    ("allow", "block"),
    ("accept", "reject"),
    ("include", "exclude"),
    ("before", "after"),
    ("above", "below"),
    ("minimum", "maximum"),
    ("min", "max"),
    ("first", "last"),
    ("more", "less"),
    ("higher", "lower"),
    ("input", "output"),
    ("send", "receive"),
    ("push", "pull"),
    ("lock", "unlock"),
    ("show", "hide"),
    ("true", "false"),
    ("success", "failure"),
    ("public", "private"),
    ("internal", "external"),
    ("read", "write"),
    ("ascending", "descending"),
    ("attach", "detach"),
    ("connect", "disconnect"),
    ("mount", "unmount"),
    ("expand", "collapse"),
    ("compress", "decompress"),
    ("zip", "unzip"),
    ("activate", "deactivate"),
    ("approve", "reject"),
    ("deposit", "withdraw"),
    ("credit", "debit"),
    ("borrow", "lend"),
    ("arrive", "depart"),
    ("arrival", "departure"),
    ("earliest", "latest"),
    ("oldest", "newest"),
    ("cheapest", "expensive"),
    ("fastest", "slowest"),
    ("hot", "cold"),
    ("north", "south"),
    ("east", "west"),
    ("left", "right"),
    ("top", "bottom"),
    ("begin", "end"),
    ("save", "discard"),
    ("merge", "split"),
    ("join", "leave"),
    ("hire", "fire"),
    ("win", "lose"),
    ("gain", "loss"),
    ("profit", "loss"),
    ("import", "export"),
    ("encode", "decode"),
    ("serialize", "deserialize"),
    ("inside", "outside"),
    ("online", "offline"),
    ("today", "tomorrow"),
    ("today", "yesterday"),
    ("tomorrow", "yesterday"),
    ("morning", "evening"),
    ("night", "day"),
    ("summer", "winter"),
    ("male", "female"),
    ("adult", "child"),
    ("refund", "charge"),
    ("cancel", "confirm"),
    ("cancel", "book"),
    ("upgrade", "downgrade"),
]
_DAYS_MONTHS = [
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ],
]


def _pairs() -> dict[str, set[str]]:
    opposite: dict[str, set[str]] = {}
    groups = [[a, b] for a, b in _ANTONYMS] + _DAYS_MONTHS
    for group in groups:
        stems = [terms(word)[0] if terms(word) else word for word in group]
        for stem in stems:
            opposite.setdefault(stem, set()).update(s for s in stems if s != stem)
    return opposite


_OPPOSITE = _pairs()


@dataclass(frozen=True)
class Features:
    """What verification compares, computed once per prompt (stored with each semantic entry)."""

    negated: bool
    numbers: frozenset[str]
    entities: frozenset[str]
    content: frozenset[str]
    lexical: frozenset[str]
    squashed: str
    """The text lower-cased with everything but letters and digits removed (for spelling-tolerant matching)."""

    @classmethod
    def of(cls, text: str) -> Features:
        content = frozenset(terms(text))
        return cls(
            negated=bool(_NEGATION.search(text)),
            numbers=frozenset(_NUMBER.findall(text)),
            entities=frozenset(e.lower() for e in _ENTITY.findall(text)),
            content=content,
            lexical=content | frozenset(_IDENTIFIER.findall(text)),
            squashed=re.sub(r"[^a-z0-9]", "", text.lower()),
        )


def lexical_agreement(a: Features, b: Features) -> float:
    union = a.lexical | b.lexical
    return len(a.lexical & b.lexical) / len(union) if union else 1.0


def veto(query: Features, candidate: Features, similarity: float) -> str | None:
    """Why the candidate must not be served for the query, or None."""
    if query.numbers != candidate.numbers:
        return "numbers differ"
    shared = query.content & candidate.content
    only_query, only_candidate = query.content - candidate.content, candidate.content - query.content
    union = query.content | candidate.content
    if query.negated != candidate.negated and union and len(shared) / len(union) >= 0.7:
        return "negation differs"
    # An entity counts as present if the other text spells it at all ("Hugging Face" / "Huggingface").
    missing_in_candidate = {e for e in query.entities - candidate.entities if e not in candidate.squashed}
    missing_in_query = {e for e in candidate.entities - query.entities if e not in query.squashed}
    if missing_in_candidate and missing_in_query:
        return "named entity differs"
    for word in only_query:
        if _OPPOSITE.get(word, set()) & only_candidate:
            return "opposite meaning"
    if (
        1 <= len(only_query) <= 2
        and 1 <= len(only_candidate) <= 2
        and 2 <= len(shared) <= MINIMAL_PAIR_MAX_SHARED
        and similarity < MINIMAL_PAIR_SIMILARITY
    ):
        return "a key word differs"
    return None


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    prompt: str
    similarity: float
    features: Features
    answer_id: str
    """Identifies the stored answer; two candidates with the same answer are not in competition."""


@dataclass(frozen=True)
class Verdict:
    candidate: Candidate | None
    reason: str


def choose(query: Features, candidates: list[Candidate], threshold: float) -> Verdict:
    """The candidate to serve, or None with the reason it was refused."""
    if not candidates:
        return Verdict(None, "no candidates")
    ranked = sorted(
        candidates, key=lambda c: c.similarity + LEXICAL_WEIGHT * lexical_agreement(query, c.features), reverse=True
    )
    best = ranked[0]
    if best.similarity < threshold:
        return Verdict(None, f"similarity {best.similarity:.3f} under threshold {threshold}")
    score = best.similarity + LEXICAL_WEIGHT * lexical_agreement(query, best.features)
    for other in ranked[1:]:
        if other.answer_id == best.answer_id:
            continue
        if other.prompt == best.prompt:
            return Verdict(None, "the same prompt is stored with different answers")
        if score - (other.similarity + LEXICAL_WEIGHT * lexical_agreement(query, other.features)) < MARGIN:
            return Verdict(None, "ambiguous: another stored prompt is nearly as close")
        break
    reason = veto(query, best.features, best.similarity)
    if reason:
        return Verdict(None, reason)
    return Verdict(best, "verified")
