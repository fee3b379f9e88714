"""Spend control: per-key quotas reserved before a model call and settled after it, and the usage ledger."""
