"""Whether this machine could have built the compiled workload."""

from __future__ import annotations

import shutil
import sysconfig


def c_compiler_present() -> bool:
    """The compiler the package's build would call (Python's configured CC) is installed."""
    command = sysconfig.get_config_var("CC") or "cc"
    return shutil.which(command.split()[0]) is not None
