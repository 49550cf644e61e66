"""The handlers behind each route: the lab's /abc and the probes."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from example_service.metrics.loop_local import Count
from example_service.server.faults import Faults
from example_service.server.identity import build_identity
from example_service.server.lifecycle import Lifecycle
from example_service.server.rsgi import Response, Scope
from example_service.system.cgroup import CgroupReader
from example_service.system.offloop import Missed, OffLoop
from example_service.workload.admission import (
    ComputationFailed,
    DeadlineExceeded,
    Overloaded,
    Workload,
    WorkloadUnavailable,
)

log = logging.getLogger(__name__)

# The lab's replies, to the character (docs/contract.md, "The endpoint").
REPLY_WITH_NUM = b"there is env NUM. Computation succeeded\n"
REPLY_WITHOUT_NUM = b"there is no env NUM. Computation succeeded\n"


INJECTED_FAULT = Response(500, b"injected fault (FAULT_ERROR_RATIO is set)\n")
# A refusal means the computations queued would make this one wait past its budget
# (MAX_QUEUE_DELAY, a second by default): a second later the queue has most
# likely moved on. Retry-After takes whole seconds.
OVERLOADED = Response(
    503,
    b"service overloaded: too much work queued, retry shortly\n",
    headers=(("retry-after", "1"),),
)


class ComputeFibonacci:
    """GET /abc: computes the workload's fib(n) and answers with the lab's reply, which says
    whether NUM is set."""

    def __init__(
        self, *, workload: Workload, num_set: bool, faults: Faults, shed: Mapping[str, Count]
    ) -> None:
        self._workload = workload
        self._ok = Response(200, REPLY_WITH_NUM if num_set else REPLY_WITHOUT_NUM)
        self._faults = faults if faults.enabled else None
        # By reason (workload.SHED_REASONS).
        self._shed = shed

    async def __call__(self, scope: Scope) -> Response:
        if self._faults is not None:
            await self._faults.delay()
            if self._faults.should_fail():
                return INJECTED_FAULT
        workload = self._workload
        if workload.inline:
            # Right here, without an await: for the lab's fib(10) an await costs more than it.
            workload.compute_inline()
            return self._ok
        # Refused here, before any await: a refusal costs no more than a probe's answer.
        reason = workload.refusal()
        if reason is not None:
            self._shed[reason].value += 1
            return OVERLOADED
        return await self._in_worker(workload)

    async def _in_worker(self, workload: Workload) -> Response:
        try:
            await workload.compute()
        except Overloaded as overloaded:
            self._shed[overloaded.reason].value += 1
            return OVERLOADED
        except DeadlineExceeded as error:
            log.warning("request deadline exceeded", extra={"n": error.n})
            return Response(503, f"{error}\n".encode())
        except WorkloadUnavailable as error:
            return Response(503, f"{error}\n".encode())
        except ComputationFailed as error:
            log.exception("computation failed", extra={"n": error.n})
            return Response(500, f"{error}\n".encode())
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
    """GET /info: the replica's identity and its container's view of itself, as JSON.

    Read off the event loop, as the scrape's readings are: a cgroup file that blocks must not
    stall the loop. With no answer within the budget, 503."""

    def __init__(self, procfs_root: Path, cgroup: CgroupReader, num: int | None) -> None:
        self._identity = OffLoop(
            "info", [partial(build_identity, procfs_root=procfs_root, cgroup=cgroup, num=num)]
        )

    async def __call__(self, scope: Scope) -> Response:
        (identity,) = await self._identity.run()
        if isinstance(identity, Exception):
            raise identity
        if isinstance(identity, Missed):
            return Response(503, f"system readings unavailable: {identity.why}\n".encode())
        return Response(200, json.dumps(identity, indent=2).encode() + b"\n", JSON)
