"""Restarting what exits, as the kubelet restarts a pod's container: after a back-off that
doubles with each exit in a row, up to a cap, and starts over once a run lasted long enough.

The kubelet waits 10 s, then 20 s, 40 s, ... up to 5 minutes, and forgets after 10 minutes
of running (twice the cap). The stack keeps the shape with shorter figures, so that a student
watching a crash loop sees several restarts in a minute.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

from example_service.stack.processes import Component


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    cap: float = 30.0
    # A run at least this long starts the doubling over, as the kubelet's twice-the-cap rule.
    reset_after: float = 60.0

    def delay(self, exits_in_a_row: int) -> float:
        return float(min(self.cap, self.initial * 2 ** (exits_in_a_row - 1)))


@dataclass
class _State:
    exits_in_a_row: int = 0
    # perf_counter() at which to start it again; None while it runs.
    restart_at: float | None = None
    # Started again, its readiness not yet seen (to say on the console when it is back).
    awaiting_ready: bool = False


def exit_reason(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class Supervisor:
    """Called on every tick of the stack's loop; says what it did, one line per event."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self._states: dict[str, _State] = {}

    def reset(self, name: str, awaiting_ready: bool = False) -> None:
        """A component started on request (a break or a restore): a fresh back-off."""
        self._states[name] = _State(awaiting_ready=awaiting_ready)

    def tick(self, components: Iterable[Component], now: float | None = None) -> list[str]:
        now = time.perf_counter() if now is None else now
        events: list[str] = []
        for component in components:
            if component.process is None:
                continue
            state = self._states.setdefault(component.name, _State())
            if component.running():
                if state.awaiting_ready and component.answers():
                    state.awaiting_ready = False
                    events.append(f"{component.name} is back: ready at {component.url}")
                continue
            if state.restart_at is None:
                ran = now - component.started_at
                if ran >= self.backoff.reset_after:
                    state.exits_in_a_row = 0
                state.exits_in_a_row += 1
                delay = self.backoff.delay(state.exits_in_a_row)
                state.restart_at = now + delay
                state.awaiting_ready = False
                events.append(
                    f"{component.name} exited ({exit_reason(component.process.returncode)}) "
                    f"after {ran:.1f} s; restarting in {delay:g} s "
                    f"(back-off, exit {state.exits_in_a_row} in a row; "
                    f"log {component.stderr_path or component.log_path})"
                )
            elif now >= state.restart_at:
                state.restart_at = None
                state.awaiting_ready = True
                component.start()
                events.append(f"{component.name} restarted, pid {component.pid}")
        return events
