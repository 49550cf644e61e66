"""A webhook receiver that prints each Alertmanager notification as one JSON line.

alertmanager.yml sends every notification to http://127.0.0.1:5001/. This sink runs beside
Alertmanager in its network namespace (a sidecar in the cluster, `network_mode` in Compose),
so the one configuration works everywhere and `kubectl logs` / `docker compose logs` show
what was sent. The standard library only: it runs on any Python image, the service's own
included.

    python webhook_log.py [HOST [PORT]]       (default 127.0.0.1 5001)

GET /healthz answers 200 once the server is serving: the kubelet's probe. The kubelet
connects to the pod's IP, not to its loopback, so in a pod the sink listens on 0.0.0.0 (the
manifests pass it); no NetworkPolicy rule lets another pod reach the port.
"""

from __future__ import annotations

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class Sink(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        # Answered by the serving loop itself: a wedged server fails the probe, where a bare
        # TCP connect would still be accepted by the kernel's backlog.
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        print(self.rfile.read(length).decode("utf-8", "replace").strip(), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """The notifications are the output: no access log besides them."""


def _stop(signum: int, frame: FrameType | None) -> None:
    # As a container's first process, Python would otherwise ignore SIGTERM.
    raise SystemExit(0)


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 5001
    signal.signal(signal.SIGTERM, _stop)
    ThreadingHTTPServer((host, port), Sink).serve_forever()
