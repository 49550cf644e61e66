"""Podman with a configuration and a storage of the test session's own.

The machine's containers.conf and storage.conf stay untouched: CONTAINERS_CONF and
CONTAINERS_STORAGE_CONF name files in a directory of the session's own, which also holds the
image storage, the volumes and the network definitions; the run state and the events log go
to a second directory under /run, as podman's own defaults do. remove() takes everything
down (containers, pods, networks, storage) and deletes both.

The run directory's path must stay short: conmon makes unix sockets under it, and once those
paths pass the kernel's limit podman 4.3 waits 20 s for every container's exit.

What the configuration sets, and why (Debian 12's podman 4.3, as root, on cgroups v1):
- runtime runc: crun fails with "cgroups in hybrid mode not supported";
- cgroupfs and a file events logger: no systemd to delegate cgroups or collect events to;
- default ulimits within the hard limit (`ulimit -Hn`): podman's defaults raise the limit of
  open files above it, which needs CAP_SYS_RESOURCE, and root in a sandbox may lack it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.binaries import require

# Image stores that podman only reads: the cached base image lives in one (base_image.py).
ImageStores = tuple[Path, ...]


def _toml_strings(values: list[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def write_configuration(
    directory: Path, run_directory: Path, image_stores: ImageStores = ()
) -> dict[str, str]:
    """containers.conf and storage.conf under directory; the environment that names them."""
    hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = "1048576" if hard_nofile == resource.RLIM_INFINITY else str(hard_nofile)
    containers_conf = directory / "containers.conf"
    containers_conf.write_text(
        f"""[containers]
default_ulimits = {_toml_strings([f"nofile={nofile}:{nofile}", "nproc=4096:4096"])}

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{run_directory / "engine"}"
volume_path = "{directory / "volumes"}"

[network]
network_config_dir = "{directory / "networks"}"
""",
        encoding="utf-8",
    )
    storage_conf = directory / "storage.conf"
    storage_conf.write_text(
        f"""[storage]
driver = "overlay"
graphroot = "{directory / "storage"}"
runroot = "{run_directory / "storage"}"

[storage.options]
additionalimagestores = {_toml_strings([str(store) for store in image_stores])}
""",
        encoding="utf-8",
    )
    return {
        "CONTAINERS_CONF": str(containers_conf),
        "CONTAINERS_STORAGE_CONF": str(storage_conf),
    }


@dataclass
class Podman:
    """One podman configuration and the state it owns, in directory and run_directory."""

    directory: Path
    run_directory: Path
    image_stores: ImageStores = ()
    binary: str = field(default_factory=lambda: require("podman", "podman"))
    environment: dict[str, str] = field(init=False)
    _networks: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        configuration = write_configuration(self.directory, self.run_directory, self.image_stores)
        self.environment = {**os.environ, **configuration}

    @classmethod
    def create(cls, parent: Path, image_stores: ImageStores = ()) -> Podman:
        """A podman of its own, its state in a fresh directory under parent."""
        require("runc", "runc")
        if os.geteuid() != 0:
            pytest.fail(
                "the container tests need root (cgroup v1 limits, kube play's bridge): run "
                "them as root, or leave them out with -m 'not container'"
            )
        parent.mkdir(parents=True, exist_ok=True)
        return cls(
            Path(tempfile.mkdtemp(prefix="podman-", dir=parent)),
            Path(tempfile.mkdtemp(prefix="example-service-podman-", dir="/run")),
            image_stores,
        )

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run one podman command; with check, fail the test with its output if it fails."""
        completed = subprocess.run(
            [self.binary, *args],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            pytest.fail(
                f"podman {' '.join(args)} exited {completed.returncode}:\n"
                f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
            )
        return completed

    def create_network(self, name: str) -> str:
        """A bridge network of this session's own, removed by remove(): the host's default
        network (and its bridge) stays as it was."""
        self("network", "create", name)
        self._networks.append(name)
        return name

    def remove_network(self, name: str) -> None:
        """Remove the network, its bridge and the address bookkeeping CNI kept for it."""
        self("network", "rm", "--force", name, check=False)
        with contextlib.suppress(ValueError):
            self._networks.remove(name)
        shutil.rmtree(Path("/var/lib/cni/networks") / name, ignore_errors=True)

    def remove(self) -> None:
        """Everything this podman made, then its directories; safe to call after a failure,
        and after the directory was moved away (base_image.py moves it into its cache)."""
        if self.directory.exists():
            self("pod", "rm", "--all", "--force", "--time", "0", check=False, timeout=180)
            self("rm", "--all", "--force", "--time", "0", check=False, timeout=180)
            for network in list(self._networks):
                self.remove_network(network)
        # Removing the containers unmounted their layers; a crashed podman may have left one.
        for directory in (self.run_directory, self.directory):
            for mount_point in reversed(mounts_under(directory)):
                subprocess.run(["umount", "--lazy", mount_point], check=False, capture_output=True)
            shutil.rmtree(directory, ignore_errors=True)


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below directory, in the order they were mounted."""
    prefix = str(directory.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def process_status(pid: int) -> dict[str, str]:
    """/proc/PID/status of a container's process, seen from the host."""
    text = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def root_mount_options(pid: int) -> set[str]:
    """The mount options of the process's root file system (its mount namespace's /)."""
    for line in Path(f"/proc/{pid}/mountinfo").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields[4] == "/":
            return set(fields[5].split(","))
    raise AssertionError(f"no root mount in /proc/{pid}/mountinfo")
