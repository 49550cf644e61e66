"""Real limits a sandbox or a container puts on the service, applied to the real process.

- a seccomp filter that refuses setpriority with EPERM, as a container runtime's profile may:
  a sitecustomize module, first on PYTHONPATH, loads it (libseccomp, through ctypes) as the
  interpreter starts, before any of the service's code runs;
- a pids cgroup (cgroups v1) whose pids.max refuses the process new threads.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PIDS_HIERARCHY = Path("/sys/fs/cgroup/pids")

_REFUSE_SETPRIORITY = """\
import ctypes
import errno

_seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
_seccomp.seccomp_init.restype = ctypes.c_void_p
_seccomp.seccomp_init.argtypes = [ctypes.c_uint32]
_seccomp.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
_seccomp.seccomp_load.argtypes = [ctypes.c_void_p]
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
_filter = _seccomp.seccomp_init(SCMP_ACT_ALLOW)
_setpriority = _seccomp.seccomp_syscall_resolve_name(b"setpriority")
if _seccomp.seccomp_rule_add(_filter, SCMP_ACT_ERRNO | errno.EPERM, _setpriority, 0) != 0:
    raise SystemExit("seccomp_rule_add failed")
if _seccomp.seccomp_load(_filter) != 0:
    raise SystemExit("seccomp_load failed")
"""


def refusing_setpriority(directory: Path) -> dict[str, str]:
    """The environment variables under which a Python process cannot call setpriority."""
    (directory / "sitecustomize.py").write_text(_REFUSE_SETPRIORITY)
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


def pids_cgroups_available() -> bool:
    return (PIDS_HIERARCHY / "cgroup.procs").exists() and os.access(PIDS_HIERARCHY, os.W_OK)


class PidsLimit:
    """A pids cgroup holding one process; `limit` sets its pids.max."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def current(self) -> int:
        return int((self.path / "pids.current").read_text())

    def limit(self, maximum: int | None) -> None:
        (self.path / "pids.max").write_text("max" if maximum is None else str(maximum))


@contextmanager
def pids_limit(pid: int) -> Iterator[PidsLimit]:
    """Moves pid (every thread of it) into a new pids cgroup; back to the root one after."""
    path = PIDS_HIERARCHY / f"example-service-test-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    try:
        (path / "cgroup.procs").write_text(str(pid))
        yield PidsLimit(path)
    finally:
        # OSError: the process has ended meanwhile.
        with contextlib.suppress(OSError):
            (PIDS_HIERARCHY / "cgroup.procs").write_text(str(pid))
        path.rmdir()
