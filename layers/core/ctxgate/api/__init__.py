"""The HTTP face of the gateway: OpenAI wire formats in and out, errors as ``{"error": {...}}``."""
