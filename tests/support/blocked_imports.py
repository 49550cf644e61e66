"""A Python child process in which some installed packages cannot be imported.

A sitecustomize module, first on PYTHONPATH, puts a finder first on sys.meta_path that
refuses the blocked top-level modules with the error an uninstalled package gives
(ModuleNotFoundError, "No module named 'x'", name "x"). Modules the interpreter imported
before sitecustomize ran (from .pth files) stay as they are.
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
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)


sys.meta_path.insert(0, Uninstalled)
"""


def blocking(modules: Iterable[str], directory: Path) -> dict[str, str]:
    """The environment variables that make `modules` unimportable in a child Python process."""
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(blocked=sorted(modules)))
    path = os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}
