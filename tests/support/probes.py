"""A container's startup, liveness and readiness probes, sent as the kubelet sends them.

`podman kube play` runs no probe the way a kubelet does (it ignores readinessProbe and makes
the livenessProbe a healthcheck that nothing runs without systemd), so watch() does the
kubelet's part for one container of a played pod:

- httpGet and tcpSocket go from outside the pod (this host, as the kubelet's node) to the
  pod's IP and the probe's port (a named port resolved against the container's ports);
  httpGet sends the kubelet's User-Agent and Host, and counts 200-399 as success; exec runs
  the command in the container (`podman exec`);
- each probe attempt has the probe's timeoutSeconds, attempts are periodSeconds apart from
  initialDelaySeconds on, and successThreshold/failureThreshold count consecutive results,
  with the Kubernetes defaults where the manifest sets none;
- the startup probe runs first, and liveness and readiness only once it has succeeded;
- one container's probes are sent one at a time, each at its own schedule (a kubelet runs
  them side by side): a probe that times out delays the next one by at most its timeout.

A container must become Ready within its startup budget, counted from its start: the startup
probe's window where it has one, else the liveness probe's (the kubelet restarts the
container once it runs out), and then stay live and ready for the observation time. The
first failure of either makes the verdict, with the probe's last answer.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

# The kubelet's own, from the Kubernetes API's defaults.
DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}
USER_AGENT = "kube-probe/1.33"

Manifest = dict[str, Any]


@dataclass
class Probe:
    kind: str  # startupProbe, livenessProbe, readinessProbe
    spec: Manifest
    next_at: float = 0.0  # on the wall clock
    successes: int = 0
    failures: int = 0
    sent: int = 0
    last: str = ""

    def setting(self, name: str) -> int:
        return setting(self.spec, name)


@dataclass
class Verdict:
    container: str
    ready_after: float | None = None  # seconds from the container's start
    probes_sent: dict[str, int] = field(default_factory=dict)
    failure: str | None = None


@dataclass(frozen=True)
class Target:
    container: Manifest  # the container's spec, as played
    podman_name: str  # the container's name in podman
    pod_ip: str
    started_at: float  # the container's start, on the wall clock (time.time())


def port_number(container: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)


def attempt(target: Target, spec: Manifest, timeout: float, podman: Any) -> tuple[bool, str]:
    """One probe attempt: (succeeded, what it saw)."""
    if "httpGet" in spec:
        http = spec["httpGet"]
        host = http.get("host", target.pod_ip)
        port = port_number(target.container, http["port"])
        scheme = http.get("scheme", "HTTP").lower()
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Host": f"{host}:{port}"}
        headers |= {h["name"]: h["value"] for h in http.get("httpHeaders", [])}
        url = f"{scheme}://{host}:{port}{http.get('path', '/')}"
        try:
            # The kubelet does not verify an HTTPS probe's certificate either.
            response = httpx.get(url, headers=headers, timeout=timeout, verify=False)  # noqa: S501
        except httpx.HTTPError as error:
            return False, f"GET {url}: {error!r}"
        return 200 <= response.status_code < 400, f"GET {url}: {response.status_code}"
    if "tcpSocket" in spec:
        tcp = spec["tcpSocket"]
        address = (tcp.get("host", target.pod_ip), port_number(target.container, tcp["port"]))
        try:
            with socket.create_connection(address, timeout=timeout):
                return True, f"connect {address}: open"
        except OSError as error:
            return False, f"connect {address}: {error!r}"
    if "exec" in spec:
        command = spec["exec"]["command"]
        try:
            done = podman("exec", target.podman_name, *command, check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            return False, f"exec {command}: no exit within {timeout} s"
        return done.returncode == 0, f"exec {command}: exit {done.returncode}"
    raise AssertionError(f"a probe this module does not send: {spec}")


def watch(target: Target, podman: Any, observe: float) -> Verdict:
    """The kubelet's probing of one container until it has been Ready for observe seconds,
    or a probe fails it."""
    container = target.container
    verdict = Verdict(container["name"])
    startup = container.get("startupProbe")
    window = startup or container.get("livenessProbe") or {}
    budget = setting(window, "initialDelaySeconds") + setting(window, "periodSeconds") * setting(
        window, "failureThreshold"
    )
    pending = [Probe("startupProbe", startup)] if startup else []
    running: list[Probe] = []
    if pending:
        pending[0].next_at = target.started_at + pending[0].setting("initialDelaySeconds")
    else:
        running = start_after_startup(container, target.started_at)
    if "readinessProbe" not in container:
        verdict.failure = "no readinessProbe: the kubelet counts it Ready before it serves"
        return verdict
    ready = False
    ready_since = 0.0
    while True:
        probe = min(pending or running, key=lambda p: p.next_at)
        time.sleep(max(0.0, probe.next_at - time.time()))
        sent_at = time.time()
        ok, seen = attempt(target, probe.spec, probe.setting("timeoutSeconds"), podman)
        probe.sent += 1
        probe.last = seen
        verdict.probes_sent[probe.kind] = probe.sent
        probe.next_at = sent_at + probe.setting("periodSeconds")
        probe.successes, probe.failures = (
            (probe.successes + 1, 0) if ok else (0, probe.failures + 1)
        )
        if probe.failures >= probe.setting("failureThreshold") and probe.kind != "readinessProbe":
            verdict.failure = (
                f"{probe.kind} failed {probe.failures} times in a row (the kubelet restarts "
                f"the container): {seen}"
            )
            return verdict
        if probe.kind == "startupProbe" and ok:
            pending = []
            running = start_after_startup(container, time.time())
            continue
        if probe.kind == "readinessProbe":
            if not ready and probe.successes >= probe.setting("successThreshold"):
                ready, ready_since = True, time.time()
                verdict.ready_after = ready_since - target.started_at
            elif ready and probe.failures >= probe.setting("failureThreshold"):
                verdict.failure = f"readinessProbe turned the container unready: {seen}"
                return verdict
        if not ready and time.time() - target.started_at > budget:
            last = "; ".join(f"{p.kind}: {p.last}" for p in [*pending, *running])
            verdict.failure = f"not Ready within its startup budget of {budget} s ({last})"
            return verdict
        if ready and time.time() - ready_since >= observe:
            return verdict


def setting(spec: Manifest, name: str) -> int:
    return int(spec.get(name, DEFAULTS[name]))


def start_after_startup(container: Manifest, started: float) -> list[Probe]:
    """Liveness and readiness, scheduled from when startup succeeded."""
    return [
        Probe(kind, spec, next_at=started + setting(spec, "initialDelaySeconds"))
        for kind in ("livenessProbe", "readinessProbe")
        if (spec := container.get(kind)) is not None
    ]
