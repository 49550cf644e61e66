"""One JSON log line per request: an observer the app reports each request to (there is no
middleware layer).

The line is built here and handed to the batched output (log_output.py). Through the logging
machinery (a record, its attribute dictionary, the JSON formatter, a handler's lock, a write
and a flush) it cost twice the rest of the request; built here from parts made once, it costs
a few percent (README, "Logs"). It is the same line, to the character, as the JSON formatter
writes for the record it replaces.
"""

from __future__ import annotations

import time
from json.encoder import encode_basestring  # json.dumps(s, ensure_ascii=False) for a str

from example_service.log_output import LogOutput
from example_service.logs import MILLISECONDS, seconds_text
from example_service.rsgi import Scope

# The methods clients send. Lines with any other are built whole, never cached: a client
# could otherwise grow the cache with every method it makes up.
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))
# duration_ms as repr(round(ms, 3)) writes it: the fraction's digits, trailing zeros dropped.
_FRACTIONS = tuple(f"{n:03d}".rstrip("0") or "0" for n in range(1000))


def _middle(method: str, route: str, status: int) -> str:
    """The line between the timestamp's milliseconds and the duration's value."""
    return (
        'Z", "level": "info", "logger": "example_service.access", "message": "request", '
        f'"method": {encode_basestring(method)}, "route": {encode_basestring(route)}, '
        f'"status": {status}, "duration_ms": '
    )


class AccessLog:
    def __init__(self, output: LogOutput) -> None:
        self._write = output.write
        # The line's start up to the milliseconds, rebuilt once a second.
        self._second = -1
        self._start = ""
        # By method, route (the app's fixed paths and "<unmatched>") and status: a few dozen.
        self._middles: dict[tuple[str, str, int], str] = {}

    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._start = f'{{"time": "{seconds_text(second)}.'
        method = scope.method
        key = (method, route, status)
        middle = self._middles.get(key)
        if middle is None:
            middle = _middle(method, route, status)
            if method in _METHODS:
                self._middles[key] = middle
        milliseconds, microseconds = divmod(round(seconds * 1_000_000), 1000)
        self._write(
            f"{self._start}{MILLISECONDS[int((now - second) * 1000)]}{middle}"
            f'{milliseconds}.{_FRACTIONS[microseconds]}, "client": '
            f"{encode_basestring(scope.client)}}}\n"
        )
