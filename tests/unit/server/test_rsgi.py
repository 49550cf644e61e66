from __future__ import annotations

import dataclasses

import pytest
from support.fake_rsgi import request

from example_service.server.rsgi import TEXT, Response, header


def test_a_response_is_text_by_default() -> None:
    assert Response(200, b"ok\n").header_list == [("content-type", TEXT)]


def test_header_list_puts_the_content_type_before_the_extra_headers() -> None:
    response = Response(405, b"", "application/json", (("allow", "GET"), ("vary", "accept")))
    assert response.header_list == [
        ("content-type", "application/json"),
        ("allow", "GET"),
        ("vary", "accept"),
    ]


def test_a_response_cannot_be_changed_once_built() -> None:
    response = Response(200, b"ok\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.status = 500  # type: ignore[misc]


@pytest.mark.parametrize(
    ("sent", "name", "value"),
    [
        ([("accept", "text/plain")], "accept", "text/plain"),
        ([], "accept", ""),
        ([("accept-encoding", "gzip")], "accept", ""),
        # Repeats are one list, as RFC 9110 section 5.3 allows.
        (
            [("accept", "text/plain"), ("accept", "application/json")],
            "accept",
            "text/plain,application/json",
        ),
    ],
)
def test_header_reads_one_request_header(
    sent: list[tuple[str, str]], name: str, value: str
) -> None:
    assert header(request(headers=sent), name) == value
