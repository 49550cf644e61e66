"""Builds the service from its settings: the registry, the workload, the routes, the app."""

from __future__ import annotations

import logging
from dataclasses import asdict

from example_service import __version__
from example_service.logs.access import AccessLog
from example_service.logs.writer import LogOutput
from example_service.metrics.exposition import MetricsEndpoint
from example_service.metrics.registry import build_registry
from example_service.server.app import App, Observer
from example_service.server.faults import Faults
from example_service.server.handlers import ComputeFibonacci, Info, Readyz, healthz
from example_service.server.lifecycle import Lifecycle, Phase
from example_service.settings import Settings
from example_service.system.cgroup import CgroupReader
from example_service.workload.admission import SHED_REASONS, Workload, default_workers
from example_service.workload.fibonacci import IMPLEMENTATION

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, log_output: LogOutput) -> None:
        self.settings = settings
        self.lifecycle = Lifecycle()
        cgroup = CgroupReader(cgroup_root=settings.cgroup_root, procfs_root=settings.procfs_root)
        self.workload = Workload(
            settings.fib_n,
            settings.workers or default_workers(cgroup.cpu_limit_cores()),
            settings.request_timeout,
            settings.max_queue,
            settings.queue_delay,
        )
        metrics = build_registry(
            lifecycle=self.lifecycle,
            log_output=log_output,
            workload=self.workload,
            cgroup=cgroup,
            sysfs_root=settings.sysfs_root,
            demo_readings=settings.demo_readings,
            request_metrics=settings.request_metrics,
        )
        if IMPLEMENTATION == "python":
            log.warning(
                "the compiled modules are not installed (built without a C compiler?): "
                "fib runs in Python, many times slower (docs/performance.md)",
                extra={"fib": IMPLEMENTATION},
            )
        faults = Faults(settings.fault_error_ratio, settings.fault_latency)
        if faults.enabled:
            log.warning(
                "fault injection is on: /abc fails or slows down on purpose",
                extra={"error_ratio": faults.error_ratio, "latency_ms": str(faults.latency)},
            )
        observers: list[Observer] = list(metrics.observers)
        if not settings.request_metrics:
            # Absent rather than frozen at 0: a dashboard or an alert can tell absent series.
            log.warning(
                "request metrics are off: /metrics has no request_total, "
                "request_latency_seconds or http_request* families"
            )
        if settings.access_log and logging.getLogger("example_service.access").isEnabledFor(
            logging.INFO
        ):
            observers.append(AccessLog(log_output))
        self.app = App(
            {
                "/abc": {
                    "GET": ComputeFibonacci(
                        workload=self.workload,
                        num_set=settings.num is not None,
                        faults=faults,
                        shed={reason: metrics.shed.child((reason,)) for reason in SHED_REASONS},
                    )
                },
                "/metrics": {"GET": MetricsEndpoint(metrics.registry, metrics.readings)},
                "/healthz": {"GET": healthz},
                "/readyz": {"GET": Readyz(self.lifecycle)},
                "/info": {"GET": Info(settings.procfs_root, cgroup, settings.num)},
            },
            self.lifecycle,
            observers,
        )

    def started(self) -> None:
        log.info(
            "started",
            extra={
                "version": __version__,
                "address": f"http://{self.settings.host}:{self.settings.port}",
                "workers": self.workload.workers,
                "settings": {key: str(value) for key, value in asdict(self.settings).items()},
            },
        )

    def draining(self) -> None:
        self.lifecycle.phase = Phase.DRAINING

    def close(self) -> None:
        self.workload.close()
