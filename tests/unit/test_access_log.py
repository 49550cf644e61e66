from __future__ import annotations

import logging

import pytest
from support.fake_rsgi import FakeScope

from example_service.access_log import AccessLog


def test_one_record_per_request_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="example_service.access")
    scope = FakeScope(method="HEAD", path="/nope", client="10.0.0.7:51234")
    AccessLog().record(scope, "<unmatched>", 404, 0.0123456)
    [entry] = caplog.records
    assert (entry.name, entry.levelname, entry.getMessage()) == (
        "example_service.access",
        "INFO",
        "request",
    )
    fields = {
        key: entry.__dict__[key] for key in ("method", "route", "status", "duration_ms", "client")
    }
    assert fields == {
        "method": "HEAD",
        "route": "<unmatched>",
        "status": 404,
        "duration_ms": 12.346,
        "client": "10.0.0.7:51234",
    }
