"""An access line is, to the character, what the JSON formatter writes for the same record,
whether the compiled builder makes it or the Python one."""

from __future__ import annotations

import calendar
import json
import logging
import os
import time
from collections.abc import Callable

import pytest
from support.compiler import c_compiler_present
from support.fake_rsgi import FakeScope as Scope

from example_service import access_log
from example_service.app import Observer
from example_service.log_output import LogOutput
from example_service.logs import JsonFormatter

Builder = Callable[[LogOutput], Observer]


@pytest.fixture(params=["compiled", "python"])
def builder(request: pytest.FixtureRequest) -> Builder:
    if request.param == "python":
        return access_log.InterpretedAccessLog
    try:
        from example_service._access_log import AccessLog
    except ImportError:
        if c_compiler_present():
            pytest.fail("a C compiler is here, yet the build left no compiled access log")
        pytest.skip("no C compiler here: the build installed the Python builder alone")
    assert access_log.AccessLog is AccessLog
    return AccessLog


def access_line(builder: Builder, scope: Scope, route: str, status: int, seconds: float) -> str:
    read, write = os.pipe()
    try:
        output = LogOutput(write)
        builder(output).record(scope, route, status, seconds)
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
def test_the_line_is_the_formatters(
    builder: Builder, scope: Scope, route: str, status: int, seconds: float
) -> None:
    line = access_line(builder, scope, route, status, seconds)
    assert line == formatter_line(line, scope, route, status, seconds)
