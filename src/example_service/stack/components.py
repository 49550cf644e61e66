"""The stack itself: which components run, in what order they start and stop."""

from __future__ import annotations

import shutil
import sys
import urllib.parse
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from example_service.stack.config import (
    Addresses,
    Intervals,
    alertmanager_config,
    federation_config,
    prometheus_config,
    webhook_url,
)
from example_service.stack.processes import Component
from example_service.stack.supervisor import Backoff

# Debian's names: the alertmanager binary is packaged as prometheus-alertmanager.
BINARIES = {
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-pushgateway": "prometheus-pushgateway",
}
READY_TIMEOUT = 30.0
# The repository's rule files and Alertmanager configuration, shipped as package data (assets/
# links to them in deploy/), so the stack runs from any directory and from an installed wheel.
# Resolved, so an editable install names the files in deploy/ that one would edit.
_ASSETS = Path(str(files("example_service.stack") / "assets"))
RULES_DIR = (_ASSETS / "rules").resolve()
ALERTMANAGER_CONFIG = (_ASSETS / "alertmanager.yml").resolve()
# The receiver the cluster runs beside Alertmanager: each notification as one JSON line.
WEBHOOK_LOG = (_ASSETS / "webhook_log.py").resolve()
LOOPBACK = {"127.0.0.1", "localhost"}


class MissingBinaries(Exception):
    def __init__(self, packages: list[str]) -> None:
        super().__init__(
            "missing " + ", ".join(packages) + "; install with: sudo apt-get install -y "
            + " ".join(packages)
        )  # fmt: skip


@dataclass(frozen=True)
class StackOptions:
    # One replica per port; the CLI numbers them up from --first-port.
    replica_ports: tuple[int, ...] = (5565, 5566)
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    pushgateway_port: int = 9091
    # A second, "global" Prometheus federating the lab's aggregates, on this port; 0: none.
    global_prometheus_port: int = 0
    data_dir: Path = Path("stack-data")
    rules_dir: Path = RULES_DIR
    alertmanager_config: Path = ALERTMANAGER_CONFIG
    # Notifications go to a receiver elsewhere, which the stack does not run.
    webhook_url: str | None = None
    # The stack's receiver listens here rather than on the configuration's port.
    webhook_port: int | None = None
    intervals: Intervals = field(default_factory=Intervals)
    replica_args: tuple[str, ...] = ()
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True)
class Fault:
    """What `example-service stack break` starts a replica with."""

    error_ratio: float = 0.0
    # Milliseconds, fixed ("1500") or a uniform range ("100-900"), as --fault-latency-ms.
    latency: str = ""
    # Started with a setting it refuses, it exits at once, as a bad rollout would: the stack
    # restarts it with back-off and it crash-loops until restored.
    crash: bool = False

    def args(self) -> tuple[str, ...]:
        args: tuple[str, ...] = ()
        if self.error_ratio:
            args += ("--fault-error-ratio", f"{self.error_ratio:g}")
        if self.latency:
            args += ("--fault-latency-ms", self.latency)
        if self.crash:
            args += ("--num", "0")  # NUM is 1 or more: refused, exit status 2
        return args


def check_binaries() -> None:
    missing = sorted({pkg for binary, pkg in BINARIES.items() if shutil.which(binary) is None})
    if missing:
        raise MissingBinaries(missing)


class Stack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        data = options.data_dir
        self.replicas = [self._replica(i) for i in range(len(options.replica_ports))]
        self.notification_url, self.receiver = self._receiver()
        am = f"127.0.0.1:{options.alertmanager_port}"
        prom = f"127.0.0.1:{options.prometheus_port}"
        self.alertmanager = Component(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={data / 'alertmanager.yml'}",
                f"--storage.path={data / 'alertmanager'}",
                f"--web.listen-address={am}",
                # A single instance: no gossip port to open.
                "--cluster.listen-address=",
            ],
            f"http://{am}",
            "/-/ready",
            data / "logs" / "alertmanager.log",
        )
        self.prometheus = self._prometheus("prometheus", prom, "prometheus.yml")
        push = f"127.0.0.1:{options.pushgateway_port}"
        self.pushgateway = Component(
            "pushgateway",
            ["prometheus-pushgateway", f"--web.listen-address={push}"],
            f"http://{push}",
            "/-/ready",
            data / "logs" / "pushgateway.log",
        )
        self.global_prometheus: Component | None = None
        if options.global_prometheus_port:
            self.global_prometheus = self._prometheus(
                "global-prometheus",
                f"127.0.0.1:{options.global_prometheus_port}",
                "global-prometheus.yml",
            )

    def _receiver(self) -> tuple[str | None, Component | None]:
        """Where Alertmanager sends notifications, and the receiver the stack runs there:
        the configuration's URL when it is on this machine (or --webhook-port), none when
        the notifications go elsewhere."""
        options = self.options
        if options.webhook_url is not None:
            return options.webhook_url, None
        configured = webhook_url(options.alertmanager_config)
        if options.webhook_port is not None:
            configured = f"http://127.0.0.1:{options.webhook_port}/"
        parts = urllib.parse.urlsplit(configured or "")
        if parts.scheme != "http" or parts.hostname not in LOOPBACK or parts.port is None:
            return configured, None
        logs = options.data_dir / "logs"
        receiver = Component(
            "webhook-receiver",
            [sys.executable, str(WEBHOOK_LOG), "127.0.0.1", str(parts.port)],
            f"http://127.0.0.1:{parts.port}",
            None,
            # The notifications alone, one JSON line each; the receiver's own errors apart.
            logs / "notifications.log",
            stderr_path=logs / "webhook-receiver.log",
        )
        return configured, receiver

    def _prometheus(self, name: str, address: str, config: str) -> Component:
        data = self.options.data_dir
        return Component(
            name,
            [
                "prometheus",
                f"--config.file={data / config}",
                f"--storage.tsdb.path={data / name}",
                f"--web.listen-address={address}",
                "--web.enable-lifecycle",
            ],
            f"http://{address}",
            "/-/ready",
            data / "logs" / f"{name}.log",
        )

    def _replica(self, index: int, extra_args: tuple[str, ...] = ()) -> Component:
        port = self.options.replica_ports[index]
        name = f"replica-{index + 1}"
        return Component(
            name,
            [
                sys.executable, "-m", "example_service",
                "--host", "127.0.0.1", "--port", str(port),
                # Nothing load-balances in front of the local replicas: no drain needed.
                "--drain-delay", "0", "--access-log", "off",
                *self.options.replica_args,
                *extra_args,
            ],
            f"http://127.0.0.1:{port}",
            "/readyz",
            self.options.data_dir / "logs" / f"{name}.log",
        )  # fmt: skip

    @property
    def components(self) -> list[Component]:
        receiver = [self.receiver] if self.receiver else []
        optional = [self.global_prometheus] if self.global_prometheus else []
        return [
            *self.replicas, self.pushgateway, *receiver, self.alertmanager, self.prometheus,
            *optional,
        ]  # fmt: skip

    def restart_replica(
        self, index: int, extra_args: tuple[str, ...] = (), wait: bool = True
    ) -> Component:
        """Stop replica index and start it again with extra flags (e.g. fault injection)."""
        self.replicas[index].stop()
        replica = self.replicas[index] = self._replica(index, extra_args)
        replica.start()
        if wait:
            replica.wait_ready(READY_TIMEOUT)
        return replica

    def break_replica(self, index: int, fault: Fault) -> Component:
        """Restart replica index with that fault (Fault() restores it), as a rollout would;
        ready unless it is made to crash."""
        return self.restart_replica(index, fault.args(), wait=not fault.crash)

    def write_configs(self) -> None:
        options = self.options
        options.data_dir.mkdir(parents=True, exist_ok=True)
        rule_files = sorted(options.rules_dir.glob("*.yml"))
        if not rule_files:
            raise FileNotFoundError(f"no rule files in {options.rules_dir}")
        addresses = Addresses(
            replicas=[_address(r) for r in self.replicas],
            prometheus=_address(self.prometheus),
            alertmanager=_address(self.alertmanager),
            pushgateway=_address(self.pushgateway),
        )
        (options.data_dir / "prometheus.yml").write_text(
            prometheus_config(addresses, rule_files, options.intervals)
        )
        if self.global_prometheus:
            (options.data_dir / "global-prometheus.yml").write_text(
                federation_config(addresses.prometheus, options.intervals)
            )
        configured = webhook_url(options.alertmanager_config)
        replaced = self.notification_url if self.notification_url != configured else None
        (options.data_dir / "alertmanager.yml").write_text(
            alertmanager_config(options.alertmanager_config, replaced)
        )

    def start(self) -> None:
        """Start every component and wait until each is ready; on failure stop them all."""
        check_binaries()
        self.write_configs()
        try:
            for component in self.components:
                component.start()
            for component in self.components:
                component.wait_ready(READY_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Prometheus first, so it records no scrape failures of replicas stopping on purpose.
        for component in reversed(self.components):
            component.stop()

    def dead(self) -> list[Component]:
        return [c for c in self.components if c.process is not None and not c.running()]


def _address(component: Component) -> str:
    return component.url.removeprefix("http://")
