"""How a second `example-service stack break|restore` reaches the running stack.

The running stack listens on a unix socket in its data directory (only who can write there can
use it); a client sends one JSON line and reads one back. The stack's own loop carries out
each request, so everything that starts and stops components happens in one thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import socketserver
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOCKET_NAME = "control.sock"
# sun_path holds 108 bytes, the terminating NUL included.
_MAX_SOCKET_PATH = 107
# Restarting a replica and waiting for it to be ready fits easily.
REPLY_TIMEOUT = 60.0
# One request is one short JSON line.
MAX_REQUEST_BYTES = 4096


class ControlError(Exception):
    """No running stack to talk to, or it refused the request."""


@dataclass
class Request:
    body: dict[str, Any]
    reply: dict[str, Any] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    # A client that connects and sends nothing holds a thread only this long.
    timeout = 5.0

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST_BYTES)
        except TimeoutError:
            return
        try:
            body = json.loads(line)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            reply: dict[str, Any] = {"ok": False, "message": "not a JSON object on one line"}
        else:
            request = Request(body)
            self.server.requests.put(request)
            if request.done.wait(REPLY_TIMEOUT):
                reply = request.reply
            else:
                reply = {"ok": False, "message": "the stack did not answer in time"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, requests: queue.Queue[Request]) -> None:
        self.requests = requests
        super().__init__(str(path), _Handler)


class ControlServer:
    """Serves the socket in a thread; the stack's loop takes requests from `requests`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / SOCKET_NAME
        if len(os.fsencode(self.path)) > _MAX_SOCKET_PATH:
            raise ControlError(
                f"{self.path} is too long for a unix socket ({_MAX_SOCKET_PATH} bytes at most); "
                "give a shorter --data-dir"
            )
        self.requests: queue.Queue[Request] = queue.Queue()
        if _answers(self.path):
            raise ControlError(f"a stack already runs with the data directory {data_dir}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left behind by a stack that was killed
        self._server = _Server(self.path, self.requests)
        # Whoever can connect can restart replicas: the stack's own user only.
        self.path.chmod(0o600)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="stack-control", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def send(data_dir: Path, body: dict[str, Any]) -> dict[str, Any]:
    """One request to the stack running with data_dir; its reply."""
    path = data_dir / SOCKET_NAME
    with socket.socket(socket.AF_UNIX) as connection:
        try:
            connection.connect(str(path))
        except OSError:
            raise ControlError(
                f"no stack is running with the data directory {data_dir} (nothing answers "
                f"on {path}); start one with `example-service stack`, or give its --data-dir"
            ) from None
        connection.settimeout(REPLY_TIMEOUT + 5)
        connection.sendall(json.dumps(body).encode() + b"\n")
        answer = connection.makefile("rb").readline()
    if not answer:
        raise ControlError("the stack stopped before it answered")
    reply: dict[str, Any] = json.loads(answer)
    return reply
