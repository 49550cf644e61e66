"""One JSON log line per request: an observer the app reports each request to (there is no
middleware layer)."""

from __future__ import annotations

import logging

from example_service.rsgi import Scope

log = logging.getLogger("example_service.access")


class AccessLog:
    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        log.info(
            "request",
            extra={
                "method": scope.method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client": scope.client,
            },
        )
