"""ctxgate: a serverless LLM gateway with server-side sessions and budgeted context."""

__version__ = "0.1.0"
