from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from support.fake_rsgi import FakeProtocol, SentResponse, call, request, serve

from example_service.server.app import UNMATCHED_ROUTE, App, Handler
from example_service.server.lifecycle import Lifecycle
from example_service.server.rsgi import TEXT, Response, Scope


def replying(body: bytes, status: int = 200) -> Handler:
    response = Response(status, body)

    async def handler(scope: Scope) -> Response:
        return response

    return handler


async def failing(scope: Scope) -> Response:
    raise RuntimeError("handler bug")


@dataclass(frozen=True)
class Record:
    method: str
    path: str
    route: str
    status: int
    seconds: float


class Recorder:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        self.records.append(Record(scope.method, scope.path, route, status, seconds))


def make_app(*observers: Recorder, lifecycle: Lifecycle | None = None) -> App:
    return App(
        {
            "/items": {"GET": replying(b"list\n"), "POST": replying(b"created\n", 201)},
            "/items/1": {"GET": replying(b"one\n")},
            "/submit": {"POST": replying(b"accepted\n", 202)},
            "/broken": {"GET": failing},
        },
        lifecycle or Lifecycle(),
        observers,
    )


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/items", 200, b"list\n"),
        ("POST", "/items", 201, b"created\n"),
        ("GET", "/items/1", 200, b"one\n"),
        ("POST", "/submit", 202, b"accepted\n"),
    ],
)
def test_dispatch_by_path_then_method(method: str, path: str, status: int, body: bytes) -> None:
    sent = serve(make_app(), request(method, path))
    assert (sent.status, sent.body) == (status, body)
    assert sent.headers == [("content-type", TEXT)]


@pytest.mark.parametrize("path", ["/items/", "/item", "/items/2", "/ITEMS", "//items", "/"])
def test_paths_match_exactly_or_not_at_all(path: str) -> None:
    sent = serve(make_app(), request("GET", path))
    assert (sent.status, sent.body) == (404, b"not found\n")
    assert sent.header("content-type") == TEXT
    assert sent.header("allow") is None


def test_head_is_answered_by_the_get_handler() -> None:
    seen: list[str] = []

    async def handler(scope: Scope) -> Response:
        seen.append(scope.method)
        return Response(200, b"body the server leaves out of a HEAD reply\n")

    app = App({"/page": {"GET": handler}}, Lifecycle())
    sent = serve(app, request("HEAD", "/page"))
    # The body is handed over all the same: the server sends its length and leaves it out.
    assert (sent.status, sent.body) == (200, b"body the server leaves out of a HEAD reply\n")
    assert seen == ["HEAD"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/items", "GET, HEAD, POST"),
        ("POST", "/items/1", "GET, HEAD"),
        ("GET", "/submit", "POST"),
        # HEAD is GET's: a route without GET has no HEAD either.
        ("HEAD", "/submit", "POST"),
        ("get", "/items", "GET, HEAD, POST"),
        ("BREW", "/items/1", "GET, HEAD"),
    ],
)
def test_a_known_path_with_another_method_is_405_with_allow(
    method: str, path: str, allow: str
) -> None:
    sent = serve(make_app(), request(method, path))
    assert (sent.status, sent.body) == (405, b"method not allowed\n")
    assert sent.header("allow") == allow
    assert sent.header("content-type") == TEXT


def test_extra_response_headers_follow_the_content_type() -> None:
    async def handler(scope: Scope) -> Response:
        return Response(200, b"{}", "application/json", (("cache-control", "no-store"),))

    sent = serve(App({"/j": {"GET": handler}}, Lifecycle()), request("GET", "/j"))
    assert sent.headers == [("content-type", "application/json"), ("cache-control", "no-store")]


def test_observers_see_each_request_once_with_route_status_and_duration() -> None:
    first, second = Recorder(), Recorder()

    async def slow(scope: Scope) -> Response:
        await asyncio.sleep(0.02)
        return Response(200, b"slow\n")

    app = App(
        {"/slow": {"GET": slow}, "/items": {"GET": replying(b"x")}}, Lifecycle(), [first, second]
    )
    serve(app, request("GET", "/slow"))
    serve(app, request("HEAD", "/items"))
    serve(app, request("PUT", "/items"))

    assert first.records == second.records
    assert [(r.method, r.path, r.route, r.status) for r in first.records] == [
        ("GET", "/slow", "/slow", 200),
        ("HEAD", "/items", "/items", 200),
        ("PUT", "/items", "/items", 405),
    ]
    # The duration covers the handler's own time, and is measured, not made up.
    assert 0.02 <= first.records[0].seconds < 10
    assert all(r.seconds >= 0 for r in first.records)


def test_unknown_paths_are_reported_under_one_route() -> None:
    recorder = Recorder()
    app = make_app(recorder)
    for path in ("/nope", "/items/99", "/../etc/passwd"):
        serve(app, request("GET", path))
    assert [(r.path, r.route, r.status) for r in recorder.records] == [
        ("/nope", UNMATCHED_ROUTE, 404),
        ("/items/99", UNMATCHED_ROUTE, 404),
        ("/../etc/passwd", UNMATCHED_ROUTE, 404),
    ]


def test_a_handler_that_raises_is_reported_as_500_and_released() -> None:
    recorder, lifecycle = Recorder(), Lifecycle()
    app = make_app(recorder, lifecycle=lifecycle)
    protocol = FakeProtocol()
    # The error reaches the server, which answers 500 itself.
    with pytest.raises(RuntimeError, match="handler bug"):
        asyncio.run(app.__rsgi__(request("GET", "/broken"), protocol))
    assert protocol.sent == []
    assert [(r.route, r.status) for r in recorder.records] == [("/broken", 500)]
    assert lifecycle.in_flight == 0
    # The app goes on answering.
    assert serve(app, request("GET", "/items")).status == 200


def test_a_cancelled_request_is_reported_and_released() -> None:
    """A client that goes away cancels its request's task: it must not stay in flight."""
    recorder, lifecycle = Recorder(), Lifecycle()
    entered = asyncio.Event()

    async def hangs(scope: Scope) -> Response:
        entered.set()
        await asyncio.Event().wait()
        raise AssertionError("never reached")

    app = App({"/hang": {"GET": hangs}}, lifecycle, [recorder])

    async def scenario() -> None:
        task = asyncio.create_task(call(app, request("GET", "/hang")))
        await asyncio.wait_for(entered.wait(), 5)
        assert lifecycle.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert lifecycle.in_flight == 0
    assert [(r.route, r.status) for r in recorder.records] == [("/hang", 500)]


def test_requests_are_in_flight_until_answered() -> None:
    lifecycle = Lifecycle()
    release = asyncio.Event()
    waiting = 0

    async def held(scope: Scope) -> Response:
        nonlocal waiting
        waiting += 1
        await release.wait()
        return Response(200, b"done\n")

    app = App({"/held": {"GET": held}}, lifecycle)

    async def scenario() -> list[SentResponse]:
        tasks = [asyncio.create_task(call(app, request("GET", "/held"))) for _ in range(3)]
        while waiting < 3:
            await asyncio.sleep(0)
        assert lifecycle.in_flight == 3
        assert not await lifecycle.wait_idle(0)
        release.set()
        return await asyncio.wait_for(asyncio.gather(*tasks), 5)

    sent = asyncio.run(scenario())
    assert [s.status for s in sent] == [200, 200, 200]
    assert lifecycle.in_flight == 0
