"""A Python child process in which some installed packages or modules cannot be imported.

A sitecustomize module, first on PYTHONPATH, puts a finder first on sys.meta_path that
refuses the blocked modules (a top-level package, or one module of a package, such as a
compiled extension its build may leave out), and everything below them, with the error an
uninstalled one gives (ModuleNotFoundError, "No module named 'x'", name "x"). Modules the
interpreter imported before sitecustomize ran (from .pth files) stay as they are. The
child's own children (multiprocessing's spawned workers) inherit the environment, and the
block with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_SITECUSTOMIZE = """\
import sys

BLOCKED = frozenset({blocked!r})


class Uninstalled:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)


sys.meta_path.insert(0, Uninstalled)
"""


def blocking(modules: Iterable[str], directory: Path) -> dict[str, str]:
    """The environment variables that make `modules` unimportable in a child Python process."""
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(blocked=sorted(modules)))
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}
