"""An access line is, to the character, what the JSON formatter writes for the same record;
the parts it keeps are bounded whatever methods clients send."""

from __future__ import annotations

import calendar
import json
import logging
import os
import time

import pytest
from support.fake_rsgi import FakeScope as Scope

from example_service.logs.access import KEPT_METHODS, AccessLog
from example_service.logs.json_format import JsonFormatter
from example_service.logs.writer import LogOutput


def access_line(scope: Scope, route: str, status: int, seconds: float) -> str:
    read, write = os.pipe()
    try:
        output = LogOutput(write)
        AccessLog(output).record(scope, route, status, seconds)
        output.close()
        return os.read(read, 1 << 16).decode()
    finally:
        os.close(read)
        os.close(write)


def formatter_line(line: str, scope: Scope, route: str, status: int, seconds: float) -> str:
    """What the JSON formatter writes for a record made within the same millisecond."""
    stamp = json.loads(line)["time"]
    second = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    record = logging.makeLogRecord(
        {
            "name": "example_service.access",
            "levelname": "INFO",
            "msg": "request",
            "created": second + int(stamp[20:23]) / 1000 + 0.0004,
            "method": scope.method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": scope.client,
        }
    )
    return JsonFormatter().format(record) + "\n"


@pytest.mark.parametrize(
    ("scope", "route", "status", "seconds"),
    [
        (Scope(method="GET", client="127.0.0.1:43428"), "/abc", 200, 0.0000493),
        (Scope(method="HEAD", client="[fe80::1%2]:5000"), "<unmatched>", 404, 0.0),
        (Scope(method="BREW", client="10.0.0.1:1"), "/metrics", 405, 12.3456789),
        (Scope(method="GET", client="10.0.0.1:1"), "/abc", 200, 1234.5),
        (Scope(method="GET", client="10.0.0.1:1"), "/abc", 200, 0.00012),
        (Scope(method='PO"ST\\', client='odd "client"\\'), "/abc", 500, 1e-9),
        (Scope(method="ГЕТ\u2028\x01", client="ünïcode\x7f"), "/healthz", 200, 0.25),
        (Scope(method="X" * 2000, client="127.0.0.1:3"), "/abc", 405, 0.001),
    ],
)
def test_the_line_is_the_formatters(scope: Scope, route: str, status: int, seconds: float) -> None:
    line = access_line(scope, route, status, seconds)
    assert line == formatter_line(line, scope, route, status, seconds)


def test_made_up_methods_and_clients_are_not_kept() -> None:
    with open(os.devnull, "wb") as devnull:
        output = LogOutput(devnull.fileno())
        log = AccessLog(output)
        for i in range(1000):
            log.record(Scope(method=f"M{i}", client="10.0.0.1:1"), "/abc", 405, 0.001)
            log.record(Scope(method="GET", client=f"10.0.0.{i % 256}:{i}"), "/abc", 200, 0.001)
        output.close()
    assert len(log._middles) == 1
    assert {method for method, _, _ in log._middles} <= KEPT_METHODS
