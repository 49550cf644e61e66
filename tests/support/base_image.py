"""The base image for the test suite's builds, made from the distribution's own packages.

No registry is reachable from the test machine, so the official Python image cannot be
pulled. mmdebstrap installs a minimal system with python3, its venv module and the CA
certificates from the host's own apt sources (the mirror the host already reaches), and
`podman import` turns that file system into an image. The Dockerfile takes it as BASE_IMAGE.

Making it costs a minute or more, so the image is kept in a store of the cache
(~/.cache/example-service/base-image/KEY, support/image_cache.py), keyed by everything that
goes into it: the mmdebstrap command, the apt sources and podman's version (which writes the
store). Delete the directory to make it afresh, for example to pick up security updates.

Alertmanager's image is made the same way from Debian's prometheus-alertmanager package
(alertmanager_image()), for `podman kube play` of the monitoring's Alertmanager pod: the
upstream image the manifests name cannot be pulled here. Its entrypoint is the binary, as
upstream's is, so the pod runs with the manifest's own arguments.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.binaries import require
from support.image_cache import cache_key, cached_store
from support.podman import Podman

PACKAGES = ("python3", "python3-venv", "ca-certificates")
NAME = "localhost/example-service-base"
ALERTMANAGER_PACKAGES = ("prometheus-alertmanager",)
ALERTMANAGER_NAME = "localhost/alertmanager"
# Upstream's image runs /bin/alertmanager as its entrypoint, the manifests give the arguments.
ALERTMANAGER_CHANGES = ('ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]', "USER 65534:65534")
# Debian 12's sources are deb822; older systems (and Ubuntu before 24.04) have the one-line
# list.
SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


@dataclass(frozen=True)
class BaseImage:
    store: Path
    name: str


def host_release() -> str:
    """The host's release codename (bookworm): the base is the host's own distribution."""
    for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if name == "VERSION_CODENAME" and value:
            return value.strip('"')
    pytest.fail("/etc/os-release names no VERSION_CODENAME: not a Debian-like host")


def mmdebstrap_command(packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The command that writes an image's file system as a tarball to stdout."""
    command = [
        require("mmdebstrap", "mmdebstrap"),
        "--variant=minbase",
        f"--include={','.join(packages)}",
        # No fsync per file: the tree is thrown away if anything fails.
        "--dpkgopt=force-unsafe-io",
        "--quiet",
        host_release(),
        "-",
    ]
    sources = next((path for path in SOURCES if path.is_file()), None)
    return [*command, str(sources)] if sources else command


def base_image() -> BaseImage:
    """The cached base image, made first if no cache holds it."""
    return debian_image("base-image", NAME, PACKAGES, ('CMD ["python3"]',))


def alertmanager_image() -> BaseImage:
    """The cached image of Debian's Alertmanager, made first if no cache holds it."""
    changes = ALERTMANAGER_CHANGES
    return debian_image("alertmanager-image", ALERTMANAGER_NAME, ALERTMANAGER_PACKAGES, changes)


def debian_image(
    kind: str, name: str, packages: tuple[str, ...], changes: tuple[str, ...]
) -> BaseImage:
    """An image of the host's release with packages installed, its configuration set by
    `podman import --change`s, kept in the cache's KIND stores."""
    command = mmdebstrap_command(packages)
    podman = require("podman", "podman")
    sources = [path.read_text(encoding="utf-8") for path in SOURCES if path.is_file()]
    version = subprocess.run(
        [podman, "--version"], capture_output=True, text=True, check=True
    ).stdout
    # The base's one change (its CMD) is constant: its key is the command, sources, podman.
    extra = [list(changes)] if kind != "base-image" else []
    key = cache_key(command[1:], sources, version, *extra)
    tagged = f"{name}:{key}"
    store = cached_store(kind, key, lambda maker: make(command, maker, tagged, changes))
    return BaseImage(store=store, name=tagged)


def make(command: list[str], podman: Podman, name: str, changes: tuple[str, ...]) -> None:
    """mmdebstrap's tarball piped straight into `podman import`."""
    log = podman.directory / "mmdebstrap.log"
    with (
        log.open("wb") as errors,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as bootstrap,
    ):
        assert bootstrap.stdout is not None
        importer = subprocess.Popen(
            [
                podman.binary,
                "import",
                "--quiet",
                *(option for change in changes for option in ("--change", change)),
                "-",
                name,
            ],
            stdin=bootstrap.stdout,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=podman.environment,
            text=True,
        )
        # Only podman holds the pipe now: if it dies, mmdebstrap's next write fails.
        bootstrap.stdout.close()
        _, import_errors = importer.communicate(timeout=900)
    if bootstrap.returncode != 0 or importer.returncode != 0:
        pytest.fail(
            f"making the base image failed: {' '.join(command)} exited {bootstrap.returncode}, "
            f"podman import {importer.returncode}:\n{log.read_text(errors='replace')[-3000:]}\n"
            f"{import_errors[-3000:]}"
        )
    log.unlink()
