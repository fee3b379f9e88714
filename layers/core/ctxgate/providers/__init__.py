"""Model providers: one adapter per upstream API, all speaking :mod:`ctxgate.messages`."""
