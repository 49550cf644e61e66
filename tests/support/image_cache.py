"""Image stores kept between test sessions, under ~/.cache/example-service/KIND/KEY.

Each store is keyed by everything that goes into it, made once by a podman of its own,
renamed into place in one step (a session running alongside never reads half a store), and
from then on only read: sessions name it in storage.conf's additionalimagestores, so nothing
is copied or imported. A new key replaces the other entries of its kind. Delete the
directory to make everything afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from support.podman import ImageStores, Podman


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "example-service"


def cache_key(*inputs: object) -> str:
    """A short digest of JSON-able inputs."""
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]


def cached_store(
    kind: str, key: str, make: Callable[[Podman], None], image_stores: ImageStores = ()
) -> Path:
    """The graph root of the store KIND/KEY, made first by make(podman) if no cache holds it;
    image_stores are the stores its images build on."""
    cache = cache_directory() / kind
    entry = cache / key
    if not (entry / "complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        maker = Podman.create(cache, image_stores)
        try:
            make(maker)
            (maker.directory / "complete").touch()
            maker.directory.rename(entry)
        except OSError:
            if not (entry / "complete").exists():
                raise
            # Another session made the same entry first.
        finally:
            maker.remove()
        for stale in cache.iterdir():
            # podman-* are makers at work in other sessions.
            if stale != entry and not stale.name.startswith("podman-"):
                shutil.rmtree(stale, ignore_errors=True)
    return entry / "storage"
