"""One JSON log line per request: an observer the app reports each request to (there is no
middleware layer).

The line is built without the logging machinery (a record, its attribute dictionary, the
JSON formatter, a handler's lock, a write and a flush, which cost more than the rest of the
request: `make bench-profile` counts both) and handed to the batched output (writer.py). It
is the same line, to the character, as the JSON formatter writes for a record with these
fields (json_format.py), put together from parts made once: start (up to the timestamp's
milliseconds) + three digits + middle (up to the duration's value) + the duration + the
client + the end. Start changes once a second, middle once per method, route and status
(docs/design.md, "Logs").
"""

from __future__ import annotations

import time
from json.encoder import encode_basestring  # json.dumps(s, ensure_ascii=False) for a str

from example_service.logs.json_format import MILLISECONDS, seconds_text
from example_service.logs.writer import LogOutput
from example_service.server.rsgi import Scope

__all__ = ["AccessLog"]

# The methods clients send. Lines with any other get a middle of their own that is never
# kept: a client could otherwise grow the cache with every method it makes up.
KEPT_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))

# duration_ms as repr(round(ms, 3)) writes it: the fraction's digits, trailing zeros dropped.
_FRACTIONS = tuple(f"{n:03d}".rstrip("0") or "0" for n in range(1000))


def _start(second: int) -> str:
    return f'{{"time": "{seconds_text(second)}.'


def _middle(method: str, route: str, status: int) -> str:
    return (
        'Z", "level": "info", "logger": "example_service.access", "message": "request", '
        f'"method": {encode_basestring(method)}, "route": {encode_basestring(route)}, '
        f'"status": {status}, "duration_ms": '
    )


class AccessLog:
    def __init__(self, output: LogOutput) -> None:
        self._write = output.write
        self._second = -1
        self._start = ""
        self._middles: dict[tuple[str, str, int], str] = {}

    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._start = _start(second)
        method = scope.method
        key = (method, route, status)
        middle = self._middles.get(key)
        if middle is None:
            middle = _middle(method, route, status)
            if method in KEPT_METHODS:
                self._middles[key] = middle
        milliseconds, microseconds = divmod(round(seconds * 1_000_000), 1000)
        # One string, encoded once: fewer steps than formatting bytes from bytes parts.
        self._write(
            f"{self._start}{MILLISECONDS[int((now - second) * 1000)]}{middle}{milliseconds}."
            f'{_FRACTIONS[microseconds]}, "client": {encode_basestring(scope.client)}}}\n'.encode(
                "utf-8", "backslashreplace"
            )
        )
