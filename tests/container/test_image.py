"""The image, built and run for real with podman (docs/image.md).

The session's fixtures build deploy/container/Dockerfile from a clean checkout on a base made
from Debian's packages (no registry here). Then the image runs the way a careful operator
runs it: read-only, as its own non-root user, every capability dropped, no new privileges,
with CPU and memory limits. It must keep the lab's contract, see those limits through its
cgroup, live in a PID namespace of its own, and drain and exit 0 on `podman stop`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.utils import canonicalize_name
from support.image_lock import LOCK, pins
from support.podman import Podman, process_status, root_mount_options
from support.service import ServiceProcess
from support.service_container import Container, StartContainer, sample, start_container

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "example_service"
LAB_REPLY = "there is no env NUM. Computation succeeded\n"
CPUS = 1.5
MEMORY_MIB = 256
LOCKED_DOWN = (
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    f"--cpus={CPUS}",
    f"--memory={MEMORY_MIB}m",
)
# The hardware families, and the reading source behind each.
HARDWARE_FAMILIES = {
    "cpu_temperature_celsius": ("Current temperature of the CPU.", "cpu_temperature"),
    "hd_errors_total": ("Number of hard-disk errors.", "disk_errors"),
}
# What the image's Python reports about itself (to evaluate the lock's markers as pip did),
# where the modules named as arguments come from, and what must not be there: a compiler,
# an installer, the build's tools or its mounts.
INSIDE = """
import importlib.metadata, importlib.util, json, os, platform, shutil, sys
print(json.dumps({
    "origins": {m: importlib.util.find_spec(m).origin for m in sys.argv[1:]},
    "distributions": {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()},
    "environment": {
        "python_version": "%d.%d" % sys.version_info[:2],
        "python_full_version": platform.python_version(),
        "sys_platform": sys.platform,
        "platform_machine": platform.machine(),
        "platform_system": platform.system(),
        "implementation_name": sys.implementation.name,
    },
    "programs": [p for p in ("gcc", "cc", "pip", "pip3") if shutil.which(p)],
    "paths": [p for p in ("/opt/build-tools", "/build", "/wheels", "/etc/pip.conf",
                          "/root/ca-certificates.crt", "/root/.config") if os.path.lexists(p)],
}))
"""


@pytest.fixture(scope="module")
def locked_down(podman: Podman, image: str) -> Iterator[Container]:
    """One locked-down container, shared by the checks that only read from it."""
    container = start_container(podman, image, *LOCKED_DOWN)
    try:
        yield container
    finally:
        podman("rm", "--force", "--time", "0", container.name, check=False)


def test_image_builds_from_a_clean_checkout(podman: Podman, image: str) -> None:
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["example-service"]
    assert "5565/tcp" in config["ExposedPorts"]


def test_image_holds_the_locked_venv_and_nothing_of_the_build(podman: Podman, image: str) -> None:
    compiled = [f"example_service.{source.stem}" for source in PACKAGE.glob("*.pyx")]
    found = json.loads(
        podman(
            "run", "--rm", "--network=none", "--entrypoint=python", image, "-c", INSIDE, *compiled
        ).stdout
    )
    for module, origin in found["origins"].items():
        assert origin.endswith(".so"), f"{module} is not compiled in the image: {origin}"
    expected = {
        name: pin.version for name, pin in pins(LOCK).items() if pin.applies(found["environment"])
    }
    installed = {canonicalize_name(k): v for k, v in found["distributions"].items()}
    assert installed.pop("example-service")
    assert installed == expected, "the image installs exactly the lock"
    assert found["programs"] == [], "no compiler and no installer in the runtime image"
    assert found["paths"] == [], "nothing of the build stage or of the build's mounts"


def test_locked_down_process(locked_down: Container) -> None:
    status = process_status(locked_down.pid)
    assert status["Uid"].split() == ["10001"] * 4, "the image's non-root user"
    assert status["Gid"].split() == ["10001"] * 4
    assert int(status["CapEff"], 16) == 0, "every capability dropped"
    assert status["NoNewPrivs"] == "1"
    assert "ro" in root_mount_options(locked_down.pid), "a read-only root file system"


def test_abc_answers_the_lab_reply(locked_down: Container) -> None:
    response = httpx.get(f"{locked_down.url}/abc", timeout=10)
    assert response.status_code == 200
    assert response.text == LAB_REPLY
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_metrics_has_the_lab_families(locked_down: Container, service: ServiceProcess) -> None:
    httpx.get(f"{locked_down.url}/abc", timeout=10)
    lines = httpx.get(f"{locked_down.url}/metrics", timeout=10).text.splitlines()
    assert "# HELP request_total Number of request processed by this service." in lines
    assert "# HELP request_latency_seconds Time spent in this service." in lines
    assert sample(lines, "request_total") >= 1
    assert sample(lines, "request_latency_seconds_count") >= 1
    # sysfs is not namespaced: the container reads the sensors and disks the host has (this
    # machine may have none), exactly as the service running on the host reads them.
    host = service.get("/metrics").text.splitlines()
    for family, (help_text, source) in HARDWARE_FAMILIES.items():
        assert (f"# HELP {family} {help_text}" in lines) == (f"# HELP {family} {help_text}" in host)
        # The same sample, or none on both (a machine without such a source).
        up = f'example_service_source_up{{source="{source}"}} '
        assert [x for x in lines if x.startswith(up)] == [x for x in host if x.startswith(up)]


def test_cgroup_families_show_the_limits_given_to_podman(locked_down: Container) -> None:
    lines = httpx.get(f"{locked_down.url}/metrics", timeout=10).text.splitlines()
    assert sample(lines, "example_service_cgroup_cpu_quota_cores") == CPUS
    assert sample(lines, "example_service_cgroup_memory_limit_bytes") == MEMORY_MIB << 20


def test_info_shows_a_pid_namespace_other_than_the_hosts(locked_down: Container) -> None:
    info = httpx.get(f"{locked_down.url}/info", timeout=10).json()
    assert info["namespaces"]["pid"] != os.stat("/proc/self/ns/pid").st_ino
    assert info["pid"] == 1, "the service is the first process of its namespace"
    assert info["cpu_limit_cores"] == CPUS
    assert info["memory_limit_bytes"] == MEMORY_MIB << 20


def test_podman_stop_drains_and_exits_0_within_the_grace_period(
    podman: Podman, run_container: StartContainer
) -> None:
    grace = 20
    container = run_container(*LOCKED_DOWN, env={"DRAIN_DELAY": "2"})
    started = time.monotonic()
    podman("stop", "--time", str(grace), container.name, timeout=grace + 30)
    elapsed = time.monotonic() - started
    state = podman("inspect", "--format", "{{.State.ExitCode}}", container.name).stdout
    assert int(state) == 0
    assert elapsed < grace, f"stopped after {elapsed:.1f} s: killed at the grace period's end"
    messages = [line["message"] for line in container.logs(podman)]
    assert "shutdown: draining" in messages
    assert messages[-1] == "shutdown: complete"
    assert messages.index("shutdown: draining") < messages.index("shutdown: complete")
