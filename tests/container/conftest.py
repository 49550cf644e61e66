"""The session's podman, the local base image, and the image built from a clean checkout.

Everything here is made under a directory of the session's own and removed at the end,
failure or not: containers, pods, networks, images and the storage itself. Only the base
image outlives the session, in its cache (support/base_image.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.base_image import BaseImage, base_image
from support.podman import Podman
from support.service_container import Container, StartContainer, start_container

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/example-service:test"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="session")
def base() -> BaseImage:
    return base_image()


@pytest.fixture(scope="session")
def podman(base: BaseImage) -> Iterator[Podman]:
    engine = Podman.create(Path(tempfile.gettempdir()), image_stores=(base.store,))
    try:
        yield engine
    finally:
        engine.remove()


def clean_checkout(destination: Path) -> Path:
    """The files git would check out (tracked, or new and not ignored), as they are now:
    no venv, no build output, no editable install's compiled module."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # not deleted from the working tree
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def build_volumes(directory: Path) -> list[str]:
    """Build-time mounts that let pip trust the host's CA bundle (a proxy's, on some
    machines). Mounted over /root, which every base has, so no mount point is left behind in
    the image; pip reads /root/.config/pip/pip.conf as the build's root user."""
    if not HOST_CA_BUNDLE.is_file():
        return []
    home = directory / "build-home"
    (home / ".config" / "pip").mkdir(parents=True)
    shutil.copy(HOST_CA_BUNDLE, home / "ca-certificates.crt")
    (home / ".config" / "pip" / "pip.conf").write_text(
        "[global]\ncert = /root/ca-certificates.crt\n", encoding="utf-8"
    )
    return ["--volume", f"{home}:/root:ro"]


@pytest.fixture(scope="session")
def image(podman: Podman, base: BaseImage) -> str:
    """deploy/container/Dockerfile built from a clean checkout on the local base image."""
    context = clean_checkout(podman.directory / "checkout")
    podman(
        "build",
        # pip and apt reach their indexes through the host's network: no bridge needed.
        "--network=host",
        # One layer per stage: a fresh storage has no cache to reuse, and fewer layers are
        # faster to remove at the end.
        "--layers=false",
        "--build-arg",
        f"BASE_IMAGE={base.name}",
        *build_volumes(podman.directory),
        "--file",
        str(context / "deploy" / "container" / "Dockerfile"),
        "--tag",
        IMAGE,
        str(context),
        timeout=900,
    )
    return IMAGE


@pytest.fixture
def run_container(podman: Podman, image: str) -> Iterator[StartContainer]:
    """Start the image (podman run options, env= for variables); removed afterwards."""
    started: list[Container] = []

    def run(*options: str, env: dict[str, str] | None = None) -> Container:
        started.append(start_container(podman, image, *options, env=env))
        return started[-1]

    yield run
    for container in started:
        podman("rm", "--force", "--time", "0", container.name, check=False)
