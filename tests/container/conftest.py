"""The session's podman, the local base image, the image built from a clean checkout, and
Alertmanager's image from Debian's package.

Everything here is made under a directory of the session's own and removed at the end,
failure or not: containers, pods, networks, images and the storage itself. Only the base
image, Alertmanager's image and the build stage's cached layers outlive the session, in
their cache (support/base_image.py, support/image_build.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.base_image import BaseImage, alertmanager_image, base_image
from support.image_build import build, build_stage_cache
from support.podman import Podman
from support.service_container import Container, StartContainer, start_container

IMAGE = "localhost/example-service:test"


@pytest.fixture(scope="session")
def base() -> BaseImage:
    return base_image()


@pytest.fixture(scope="session")
def alertmanager() -> BaseImage:
    """Debian's Alertmanager as an image, for the monitoring's Alertmanager pod."""
    return alertmanager_image()


@pytest.fixture(scope="session")
def podman(base: BaseImage, alertmanager: BaseImage) -> Iterator[Podman]:
    stores = (base.store, build_stage_cache(base), alertmanager.store)
    engine = Podman.create(Path(tempfile.gettempdir()), image_stores=stores)
    try:
        yield engine
    finally:
        engine.remove()


@pytest.fixture(scope="session")
def image(podman: Podman, base: BaseImage) -> str:
    """deploy/container/Dockerfile built from a clean checkout on the local base image."""
    build(podman, base, "--tag", IMAGE)
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
