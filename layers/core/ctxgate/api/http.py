"""The HTTP result the gateway façade returns and the handler renders. Deliberately import-light (no pydantic)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HttpResult:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def text(self) -> str:
        return self.body if isinstance(self.body, str) else json.dumps(self.body, separators=(",", ":"))
