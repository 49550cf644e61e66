from __future__ import annotations

import asyncio

from support.fake_rsgi import request

from example_service.app import Handler
from example_service.endpoints import Readyz, healthz
from example_service.lifecycle import Lifecycle, Phase
from example_service.rsgi import TEXT, Response


def answer(handler: Handler) -> Response:
    async def get() -> Response:
        return await handler(request())

    return asyncio.run(get())


def test_healthz_answers_ok() -> None:
    response = answer(healthz)
    assert (response.status, response.body, response.content_type) == (200, b"ok\n", TEXT)


def test_readyz_follows_the_lifecycle_phase() -> None:
    lifecycle = Lifecycle()
    readyz = Readyz(lifecycle)
    replies = []
    for phase in (Phase.SERVING, Phase.DRAINING):
        lifecycle.phase = phase
        response = answer(readyz)
        replies.append((response.status, response.body))
    assert replies == [(200, b"ready\n"), (503, b"not ready: draining\n")]
