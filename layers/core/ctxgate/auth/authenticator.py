"""Who a presented API key stands for, with each answer remembered per key for a short TTL.

The HTTP API's Lambda authorizer runs without identity sources (so that either ``Authorization`` or ``x-api-key``
may carry the key: API Gateway refuses a request that lacks *any* listed identity source before invoking the
authorizer), and therefore without API Gateway's result cache, which is keyed by them. Answers are cached here
instead, in the warm function, per key (by its hash): a revoked or expired key is refused at most ``ttl`` seconds
after the change.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ctxgate.auth.keys import KeyService, key_hash
from ctxgate.auth.models import Caller
from ctxgate.errors import Unauthorized


class CachedAuthenticator:
    """``KeyService.authenticate`` with each answer (a caller, or a refusal) remembered for ``ttl`` seconds.

    Refusals are cached too, so a flood of one bad key costs one read per TTL; the cache holds at most
    ``max_entries`` keys (oldest evicted first), so random keys cannot grow it without bound.
    """

    def __init__(
        self,
        keys: KeyService,
        *,
        ttl: float,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = keys
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._answers: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()
        self._lock = threading.Lock()

    def caller(self, presented: str | None) -> Caller:
        if not presented:
            raise Unauthorized("Missing or invalid API key.")
        digest = key_hash(presented)
        now = self.clock()
        with self._lock:
            cached = self._answers.get(digest)
        if cached is not None and cached[0] > now:
            if cached[1] is None:
                raise Unauthorized("Missing or invalid API key.")
            return cached[1]
        try:
            answer: Caller | None = self.keys.authenticate(presented)
        except Unauthorized:
            answer = None
        if self.ttl > 0:
            with self._lock:
                self._answers[digest] = (now + self.ttl, answer)
                self._answers.move_to_end(digest)
                while len(self._answers) > self.max_entries:
                    self._answers.popitem(last=False)
        if answer is None:
            raise Unauthorized("Missing or invalid API key.")
        return answer
