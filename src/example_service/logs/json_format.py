"""Logs as one JSON object per line on stdout, the form log collectors in a cluster expect.

Every line goes through one LogOutput, which writes them in batches from a thread of its own
(writer.py): the access log's lines, formatted without the logging machinery
(access.py), and every other record, through the handler below.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from example_service.logs.writer import LogOutput

# Attributes every LogRecord has; anything else was passed through `extra=` and is data.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds."""
    second = int(created)
    return f"{seconds_text(second)}.{MILLISECONDS[int((created - second) * 1000)]}Z"


def seconds_text(second: int) -> str:
    """The timestamp's date and time to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


# Formatting three digits costs more than looking them up (access lines do it per request).
MILLISECONDS = tuple(f"{n:03d}" for n in range(1000))


class OutputHandler(logging.Handler):
    """Formats a record as JSON and hands the line to the batched output."""

    def __init__(self, output: LogOutput) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._output.write((self.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:  # logging's contract: a failing handler reports, never raises
            self.handleError(record)


def configure(level: str) -> LogOutput:
    """Send every logger, the server's included, as JSON lines to stdout; the output."""
    sys.stdout.flush()
    output = LogOutput(sys.stdout.fileno())
    root = logging.getLogger()
    root.handlers[:] = [OutputHandler(output)]
    root.setLevel(level.upper())
    # Granian says "experimental" and its worker ids on every start: not ours to repeat at info.
    logging.getLogger("_granian").setLevel(logging.WARNING)
    logging.getLogger("granian").setLevel(max(logging.WARNING, root.level))
    return output
