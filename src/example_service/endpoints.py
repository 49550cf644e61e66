"""The handlers behind each route: the lab's /abc and the probes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from example_service.faults import Faults
from example_service.identity import build_identity
from example_service.lifecycle import Lifecycle
from example_service.metrics.container import CgroupReader
from example_service.rsgi import Response, Scope
from example_service.workload import DeadlineExceeded, Workload, WorkloadUnavailable

log = logging.getLogger(__name__)

# The lab's replies, to the character (SPEC.md section 1).
REPLY_WITH_NUM = b"there is env NUM. Computation succeeded\n"
REPLY_WITHOUT_NUM = b"there is no env NUM. Computation succeeded\n"


INJECTED_FAULT = Response(500, b"injected fault (FAULT_ERROR_RATIO is set)\n")
UNAVAILABLE = Response(503, b"worker processes unavailable, retry shortly\n")


class Abc:
    """GET /abc: computes fib(NUM), or the lab's fib(10) when NUM is unset."""

    def __init__(
        self,
        *,
        num: int | None,
        n: int,
        workload: Workload,
        timeout: float,
        faults: Faults,
    ) -> None:
        self._n = n
        self._inline = workload.runs_inline(n)
        self._ok = Response(200, REPLY_WITHOUT_NUM if num is None else REPLY_WITH_NUM)
        self._workload = workload
        self._faults = faults
        self._deadline_reply = Response(
            503, f"computation of fib({n}) exceeded the {timeout:g} s request deadline\n".encode()
        )

    async def __call__(self, scope: Scope) -> Response:
        # The lab's fib(10) is computed right here: an await per request costs more than it.
        if self._inline and not self._faults.enabled:
            self._workload.compute_inline(self._n)
            return self._ok
        return await self._respond()

    async def _respond(self) -> Response:
        if self._faults.enabled:
            await self._faults.delay()
            if self._faults.should_fail():
                return INJECTED_FAULT
        try:
            await self._workload.compute(self._n)
        except DeadlineExceeded:
            log.warning("request deadline exceeded", extra={"n": self._n})
            return self._deadline_reply
        except WorkloadUnavailable:
            return UNAVAILABLE
        return self._ok


JSON = "application/json"
HEALTHY = Response(200, b"ok\n")
READY = Response(200, b"ready\n")


async def healthz(scope: Scope) -> Response:
    """Liveness: answering at all proves the process and its event loop work."""
    return HEALTHY


class Readyz:
    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    async def __call__(self, scope: Scope) -> Response:
        if self._lifecycle.ready:
            return READY
        return Response(503, f"not ready: {self._lifecycle.phase.value}\n".encode())


class Info:
    """GET /info: the replica's identity and its container's view of itself, as JSON."""

    def __init__(self, procfs_root: Path, cgroup: CgroupReader, num: int | None) -> None:
        self._procfs_root = procfs_root
        self._cgroup = cgroup
        self._num = num

    async def __call__(self, scope: Scope) -> Response:
        identity = build_identity(procfs_root=self._procfs_root, cgroup=self._cgroup, num=self._num)
        return Response(200, json.dumps(identity, indent=2).encode() + b"\n", JSON)
