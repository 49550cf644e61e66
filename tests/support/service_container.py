"""The service's image running in a container of the session's podman."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from support.podman import Podman
from support.ports import free_port
from support.waiting import wait_for


@dataclass(frozen=True)
class Container:
    name: str
    url: str
    pid: int  # the service's process, seen from the host

    def logs(self, podman: Podman) -> list[dict[str, Any]]:
        """The service's JSON log lines (stdout)."""
        output = podman("logs", self.name).stdout
        return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# run_container's signature: podman run options, env= for the service's variables.
StartContainer = Callable[..., Container]


def start_container(
    podman: Podman, image: str, *options: str, env: dict[str, str] | None = None
) -> Container:
    """The image on the host's network (no bridge, no firewall rules), serving on a free
    loopback port; ready when this returns. The caller removes it (podman rm)."""
    port = free_port()
    name = f"example-service-{port}"
    variables = {"HOST": "127.0.0.1", "PORT": str(port), **(env or {})}
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network=host",
        *options,
        *(f"--env={key}={value}" for key, value in variables.items()),
        image,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if podman("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            raise AssertionError(f"{name} stopped: {podman('logs', name, check=False).stderr}")
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200

    try:
        wait_for(ready, 60, f"{url}/readyz of container {name}", interval=0.2)
    except AssertionError:
        podman("rm", "--force", "--time", "0", name, check=False)
        raise
    pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
    return Container(name=name, url=url, pid=pid)


def sample(lines: list[str], name: str) -> float:
    """The value of one sample of a /metrics page (name with labels, exactly as exposed);
    fails when the page has no such sample."""
    for line in lines:
        series, _, value = line.rpartition(" ")
        if series == name:
            return float(value)
    raise AssertionError(f"no sample {name} on /metrics")
