"""Alertmanager's notifications, as the stack's console shows them.

The receiver (deploy/alertmanager/webhook_log.py) writes each notification as one JSON line to
a file; the stack reads what was added on each tick of its loop and prints one line per alert.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def describe(notification: dict[str, Any]) -> list[str]:
    """One line per alert: status, name, severity, receiver, summary."""
    receiver = notification.get("receiver", "?")
    lines = []
    for alert in notification.get("alerts", []):
        labels = alert.get("labels", {})
        summary = alert.get("annotations", {}).get("summary", "")
        lines.append(
            f"notification to {receiver}: {str(alert.get('status', '?')).upper()} "
            f"{labels.get('alertname', '?')} ({labels.get('severity', 'no severity')}) {summary}"
        )
    return lines


class NotificationLog:
    """Follows the receiver's log from where it was when the stack started."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._offset = path.stat().st_size
        except FileNotFoundError:
            self._offset = 0
        self._partial = b""

    def read(self) -> list[str]:
        """The console lines for the notifications written since the last call."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        lines = []
        for raw in complete:
            try:
                notification = json.loads(raw)
            except ValueError:
                lines.append(f"notification not in JSON: {raw[:200]!r}")
                continue
            lines += describe(notification) if isinstance(notification, dict) else []
        return lines
