"""Identity: API keys, who a caller is, and the limits that come with their key."""
