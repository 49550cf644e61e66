"""One JSON log line per request: an observer the app reports each request to (there is no
middleware layer).

The line is built directly from parts made once (access_line.py) and handed to the batched
output (log_output.py). Through the logging machinery (a record, its attribute dictionary,
the JSON formatter, a handler's lock, a write and a flush) it cost twice the rest of the
request; built in Python it adds a quarter, compiled (_access_log.pyx) about 7% of a
request's CPU (README, "Logs"). A build without a C compiler leaves the Python one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from example_service import access_line
from example_service.app import Observer
from example_service.log_output import LogOutput
from example_service.logs import MILLISECONDS
from example_service.rsgi import Scope

__all__ = ["AccessLog", "InterpretedAccessLog"]

_MILLISECONDS = tuple(digits.encode() for digits in MILLISECONDS)
# duration_ms as repr(round(ms, 3)) writes it: the fraction's digits, trailing zeros dropped.
_FRACTIONS = tuple((f"{n:03d}".rstrip("0") or "0").encode() for n in range(1000))
_LINE = b"%s%s%s%d.%s" + access_line.CLIENT + b"%s" + access_line.END


class InterpretedAccessLog:
    def __init__(self, output: LogOutput) -> None:
        self._write = output.write
        self._second = -1
        self._start = b""
        self._middles: dict[tuple[str, str, int], bytes] = {}

    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._start = access_line.start(second)
        method = scope.method
        key = (method, route, status)
        middle = self._middles.get(key)
        if middle is None:
            middle = access_line.middle(method, route, status)
            if method in access_line.KEPT_METHODS:
                self._middles[key] = middle
        milliseconds, microseconds = divmod(round(seconds * 1_000_000), 1000)
        self._write(
            _LINE
            % (
                self._start,
                _MILLISECONDS[int((now - second) * 1000)],
                middle,
                milliseconds,
                _FRACTIONS[microseconds],
                access_line.quoted(scope.client),
            )
        )


AccessLog: Callable[[LogOutput], Observer]
try:
    from example_service._access_log import AccessLog
except ImportError:
    AccessLog = InterpretedAccessLog
