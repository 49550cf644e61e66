"""A Python child process in which some installed packages cannot be imported.

A sitecustomize module, first on PYTHONPATH, puts None in sys.modules for each blocked
top-level module: importing it then raises ModuleNotFoundError, the error an uninstalled
package gives. Modules the interpreter imported before sitecustomize ran (from .pth files)
stay as they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def blocking(modules: Iterable[str], directory: Path) -> dict[str, str]:
    """The environment variables that make `modules` unimportable in a child Python process."""
    (directory / "sitecustomize.py").write_text(
        "import sys\n\n"
        f"for _name in {sorted(modules)!r}:\n"
        "    sys.modules.setdefault(_name, None)\n"
    )
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}
