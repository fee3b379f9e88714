"""Server-side sessions: the history a client no longer re-sends."""
