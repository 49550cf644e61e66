"""The stack itself: which components run, in what order they start and stop."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from example_service.stack.config import Intervals, alertmanager_config, prometheus_config
from example_service.stack.processes import Component

# Debian's names: the alertmanager binary is packaged as prometheus-alertmanager.
BINARIES = {"prometheus": "prometheus", "prometheus-alertmanager": "prometheus-alertmanager"}
READY_TIMEOUT = 30.0


class MissingBinaries(Exception):
    def __init__(self, packages: list[str]) -> None:
        super().__init__(
            "missing " + ", ".join(packages) + "; install with: sudo apt-get install -y "
            + " ".join(packages)
        )  # fmt: skip


@dataclass(frozen=True)
class StackOptions:
    replicas: int = 2
    first_port: int = 5565
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    data_dir: Path = Path("stack-data")
    rules_dir: Path = Path("deploy/prometheus/rules")
    alertmanager_config: Path = Path("deploy/alertmanager/alertmanager.yml")
    webhook_url: str | None = None
    intervals: Intervals = field(default_factory=Intervals)
    replica_args: tuple[str, ...] = ()


def check_binaries() -> None:
    missing = sorted({pkg for binary, pkg in BINARIES.items() if shutil.which(binary) is None})
    if missing:
        raise MissingBinaries(missing)


class Stack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        data = options.data_dir
        self.replicas = [self._replica(i) for i in range(options.replicas)]
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
        self.prometheus = Component(
            "prometheus",
            [
                "prometheus",
                f"--config.file={data / 'prometheus.yml'}",
                f"--storage.tsdb.path={data / 'prometheus'}",
                f"--web.listen-address={prom}",
                "--web.enable-lifecycle",
            ],
            f"http://{prom}",
            "/-/ready",
            data / "logs" / "prometheus.log",
        )

    def _replica(self, index: int) -> Component:
        port = self.options.first_port + index
        name = f"replica-{index + 1}"
        return Component(
            name,
            [
                sys.executable, "-m", "example_service",
                "--host", "127.0.0.1", "--port", str(port),
                # Nothing load-balances in front of the local replicas: no drain needed.
                "--drain-delay", "0", "--access-log", "off",
                *self.options.replica_args,
            ],
            f"http://127.0.0.1:{port}",
            "/readyz",
            self.options.data_dir / "logs" / f"{name}.log",
        )  # fmt: skip

    @property
    def components(self) -> list[Component]:
        return [*self.replicas, self.alertmanager, self.prometheus]

    def write_configs(self) -> None:
        options = self.options
        options.data_dir.mkdir(parents=True, exist_ok=True)
        rule_files = sorted(options.rules_dir.glob("*.yml"))
        if not rule_files:
            raise FileNotFoundError(f"no rule files in {options.rules_dir}")
        (options.data_dir / "prometheus.yml").write_text(
            prometheus_config(
                [r.url.removeprefix("http://") for r in self.replicas],
                self.alertmanager.url.removeprefix("http://"),
                rule_files,
                options.intervals,
            )
        )
        (options.data_dir / "alertmanager.yml").write_text(
            alertmanager_config(options.alertmanager_config, options.webhook_url)
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
