"""deploy/container/Dockerfile built with podman from a clean checkout, on the local base.

The build stage's slow steps (the compiler from apt, the build tools, the locked
dependencies) depend only on the base, the Dockerfile and the locks. They are built once
into a store of the cache keyed by those (support/image_cache.py), and every session's
build takes those layers from there, as Docker's layer cache would: the steps that follow,
the source tree and the wheel built from it, run in the session itself.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.base_image import BaseImage
from support.image_cache import cache_key, cached_store
from support.podman import Podman

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = Path("deploy/container/Dockerfile")
# What the build stage's cached steps read, besides the base.
CACHED_INPUTS = (
    DOCKERFILE,
    Path("deploy/container/requirements.txt"),
    Path("deploy/container/build-requirements.txt"),
)
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def clean_checkout(destination: Path) -> Path:
    """The files git would check out (tracked, or new and not ignored), as they are now,
    symbolic links as links: no venv, no build output, no editable install's compiled
    module."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_symlink() or source.is_file():  # not deleted from the working tree
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target, follow_symlinks=False)
    return destination


def build_volumes(home: Path) -> list[str]:
    """Build-time mounts that let pip trust the host's CA bundle (a proxy's, on some
    machines): home is mounted over /root, which every base has, so no mount point is left
    behind in the image; pip reads /root/.config/pip/pip.conf as the build's root user."""
    if not HOST_CA_BUNDLE.is_file():
        return []
    (home / ".config" / "pip").mkdir(parents=True)
    shutil.copy(HOST_CA_BUNDLE, home / "ca-certificates.crt")
    (home / ".config" / "pip" / "pip.conf").write_text(
        "[global]\ncert = /root/ca-certificates.crt\n", encoding="utf-8"
    )
    return ["--volume", f"{home}:/root:ro"]


def build(podman: Podman, base: BaseImage, *options: str) -> None:
    """podman build of a clean checkout with the base as BASE_IMAGE (options: --tag, ...)."""
    context = clean_checkout(podman.directory / "checkout")
    volumes = build_volumes(podman.directory / "build-home")
    try:
        podman(
            "build",
            # pip and apt reach their indexes through the host's network: no bridge needed.
            "--network=host",
            # Each step's result is kept, so that cached steps are found and new ones can be.
            "--layers=true",
            "--build-arg",
            f"BASE_IMAGE={base.name}",
            *volumes,
            "--file",
            str(context / DOCKERFILE),
            *options,
            str(context),
            timeout=900,
        )
    finally:
        # Neither may stay in a cached store: the CA bundle is the host's.
        shutil.rmtree(context)
        shutil.rmtree(podman.directory / "build-home", ignore_errors=True)


def build_stage_cache(base: BaseImage) -> Path:
    """The store holding the build stage's layers for this base, Dockerfile and locks."""
    inputs = [(REPO / path).read_text(encoding="utf-8") for path in CACHED_INPUTS]
    key = cache_key(base.name, inputs)
    return cached_store(
        "build-stage",
        key,
        lambda maker: build(maker, base, "--target", "build"),
        image_stores=(base.store,),
    )
