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

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

# A notification holds every alert of its group: thousands of alerts with their annotations
# stay well under this. Anything larger is refused before it is read, so that no request can
# make the sidecar (32 MiB in its pod) hold it.
MAX_BODY = 4 << 20

# Each request has a thread of its own; print() writes a line and its newline apart, so two
# notifications at once could share a line. One write per line, one writer at a time.
_OUTPUT = threading.Lock()


def one_line(body: bytes) -> str:
    """The notification as one line: as sent when it is one already (Alertmanager's is),
    JSON compacted, anything else with its line breaks made spaces."""
    text = body.decode("utf-8", "replace").strip()
    if len(text.splitlines()) <= 1:
        return text
    try:
        return json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        return " ".join(text.splitlines())


class Sink(BaseHTTPRequestHandler):
    # Seconds a connection may stay silent: a client that never sends its request does not
    # hold a thread for ever.
    timeout = 30

    def do_GET(self) -> None:
        # Answered by the serving loop itself: a wedged server fails the probe, where a bare
        # TCP connect would still be accepted by the kernel's backlog.
        self.send_response(200 if self.path == "/healthz" else 404)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        declared = self.headers.get("content-length", "0")
        if not declared.isdigit():
            self.refuse(400, f"content-length {declared[:40]!r} is not a byte count")
            return
        if int(declared) > MAX_BODY:
            self.refuse(413, f"a body of {declared} bytes is over the {MAX_BODY} accepted")
            return
        line = one_line(self.rfile.read(int(declared))) + "\n"
        with _OUTPUT:
            sys.stdout.write(line)
            sys.stdout.flush()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def refuse(self, status: int, reason: str) -> None:
        """Answer status with the reason, and close: the body was not read."""
        body = f"{reason}\n".encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """The notifications are the output: no access log besides them."""


class Server(ThreadingHTTPServer):
    # Alertmanager sends a receiver's groups at once: the standard library's listen queue of 5
    # would reset the connections past it.
    request_queue_size = 128
    daemon_threads = True


def _stop(signum: int, frame: FrameType | None) -> None:
    # As a container's first process, Python would otherwise ignore SIGTERM.
    raise SystemExit(0)


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 5001
    signal.signal(signal.SIGTERM, _stop)
    Server((host, port), Sink).serve_forever()
