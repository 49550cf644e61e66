"""Which filesystem a path is on, from this process's own mount table.

A reading of sysfs counters or of the cgroup tree is served by the kernel from its memory,
and cannot wait on a device; the same path under another filesystem (a copied tree, a network
mount) may. The readings use this to decide where they may be read (metrics/readings.py).
"""

from __future__ import annotations

import os
import re

MOUNTINFO = "/proc/self/mountinfo"
_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # The kernel writes a space, tab, newline or backslash in a mount point as \ooo.
    return _ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def mounts(mountinfo: str = MOUNTINFO) -> dict[str, str]:
    """Each mount point and its filesystem type, the last mounted winning; empty when the
    table cannot be read."""
    table: dict[str, str] = {}
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields, _, after = line.partition(" - ")
                before = fields.split()
                if len(before) >= 5 and after:
                    table[_unescape(before[4])] = after.split()[0]
    except OSError:
        pass
    return table


def filesystem(path: str, table: dict[str, str]) -> str | None:
    """The type of the filesystem path is on (after its links), or None if unknown."""
    real = os.path.realpath(path)
    while True:
        kind = table.get(real)
        if kind is not None:
            return kind
        parent = os.path.dirname(real)
        if parent == real:
            return None
        real = parent
