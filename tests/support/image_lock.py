"""The image's hashed locks (deploy/container/*requirements.txt), as pip reads them."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "deploy" / "container" / "requirements.txt"
BUILD_LOCK = REPO / "deploy" / "container" / "build-requirements.txt"


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: tuple[str, ...]
    marker: Marker | None

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        """Whether pip installs it where environment (PEP 508 names) holds; here if None."""
        return self.marker is None or self.marker.evaluate(environment)


def pins(path: Path) -> dict[str, Pin]:
    """Canonical name -> pin, for a requirements file in hash-checking mode."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    found: dict[str, Pin] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, _, options = line.partition(" --hash=")
        options = "--hash=" + options if options else ""
        specifier, _, marker = requirement.partition(";")
        name, separator, version = specifier.strip().partition("==")
        assert separator, f"{specifier}: not pinned with =="
        hashes = tuple(o.removeprefix("--hash=sha256:") for o in shlex.split(options))
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), line
        found[canonicalize_name(name)] = Pin(
            version.strip(), hashes, Marker(marker.strip()) if marker.strip() else None
        )
    return found
