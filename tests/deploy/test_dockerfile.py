"""The container image's recipe and its locks, checked from the files.

tests/container builds and runs the image for real; this checks what the recipe promises
for every base and build, quickly and without an engine: one BASE_IMAGE for every stage,
defaulting to a pinned official slim Python; a multi-stage build whose last stage receives
only the installed venv and installs nothing; locked and hashed dependencies; the package
installed as a wheel; a non-root numeric user, port 5565, and an exec-form entrypoint so that
SIGTERM reaches the service. The locks are made by uv (`make lock`): they must hold exactly
what pyproject.toml asks for, within its ranges, and the versions this test suite runs on.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from support.distributions import required_by
from support.image_lock import BUILD_LOCK, LOCK, pins

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "container" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"

PYTHON_BASE = re.compile(r"python:(?P<version>3\.\d+\.\d+)-slim-(?P<debian>bookworm|trixie)")
COMPILERS = ("gcc", "g++", "clang", "build-essential", "cc ", "make ", "python3-dev")


@dataclass
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments removed."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return result


def parse() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each FROM as written."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.arguments.partition("=")
            global_args[name] = default
        elif instruction.keyword == "FROM":
            words = instruction.arguments.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{instruction.keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return global_args, stages


def test_one_base_image_argument_for_every_stage() -> None:
    """BASE_IMAGE is the base of every stage (the venv's python must exist in the runtime
    stage), and its default is the official slim image pinned to a patch version."""
    global_args, stages = parse()
    assert PYTHON_BASE.fullmatch(global_args["BASE_IMAGE"]), global_args["BASE_IMAGE"]
    for stage in stages:
        assert stage.base == "${BASE_IMAGE}", f"stage {stage.name} is FROM {stage.base}"
    assert "latest" not in DOCKERFILE.read_text(encoding="utf-8")


def test_multi_stage_and_the_runtime_stage_gets_only_the_venv() -> None:
    _, stages = parse()
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build.name and runtime.name
    copies = runtime.all("COPY")
    assert copies, "the runtime stage copies the built venv"
    for copy in copies:
        assert copy.startswith(f"--from={build.name} "), f"runtime copies from the build: {copy}"
    # No installer runs in the runtime stage: nothing to leave a cache or a compiler behind.
    for command in runtime.all("RUN"):
        assert "pip" not in command, command
        assert "apt-get" not in command and "apk " not in command, command
        for compiler in COMPILERS:
            assert compiler not in f"{command} ", f"{compiler.strip()} in the runtime: {command}"


def test_the_build_stage_has_a_compiler_for_the_workload() -> None:
    """The compiled workload needs gcc and the Python headers; the official image has the
    headers only, Debian's python3 has neither until python3-dev."""
    _, stages = parse()
    commands = " && ".join(stages[0].all("RUN"))
    assert re.search(r"apt-get install [^&]*--no-install-recommends[^&]*\$packages", commands)
    assert 'packages="gcc libc6-dev"' in commands
    assert '[ -f "$headers/Python.h" ] || packages="$packages python3-dev"' in commands


def test_dependencies_from_the_hashed_lock_and_the_package_as_a_wheel() -> None:
    _, stages = parse()
    build = stages[0]
    commands = " && ".join(build.all("RUN"))
    environment = " ".join(build.all("ENV"))
    assert "PIP_NO_CACHE_DIR=1" in environment or "--no-cache-dir" in commands
    assert re.search(r"install[^&]*--require-hashes[^&]*-r locks/requirements\.txt", commands)
    assert re.search(r"install[^&]*--only-binary=:all:[^&]*-r locks/requirements\.txt", commands)
    assert re.search(r"install[^&]*--require-hashes[^&]*-r locks/build-requirements\.txt", commands)
    # A wheel is built, then that wheel (and nothing from the source tree) is installed.
    assert re.search(r"pip wheel [^&]*--no-deps[^&]*--wheel-dir /wheels \.", commands)
    assert re.search(r"install --no-deps\s+/wheels/example_service-\*\.whl", commands)
    assert "install -e" not in commands and "install --editable" not in commands
    copied = " ".join(build.all("COPY"))
    assert "deploy/container/requirements.txt" in copied
    assert "deploy/container/build-requirements.txt" in copied


def project() -> dict[str, Any]:
    with PYPROJECT.open("rb") as file:
        return tomllib.load(file)


def test_locks_are_made_by_the_lock_tool() -> None:
    for lock in (LOCK, BUILD_LOCK):
        header = lock.read_text(encoding="utf-8").splitlines()[:2]
        assert header == [
            "# This file was autogenerated by uv via the following command:",
            "#    make lock",
        ], f"{lock.name}: regenerate it with `make lock`, never by hand"


def test_lock_holds_exactly_the_servers_dependencies_within_their_ranges() -> None:
    locked = {name: pin for name, pin in pins(LOCK).items() if pin.applies()}
    required = [Requirement(r) for r in project()["project"]["dependencies"]]
    for requirement in required:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} missing from {LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(locked[name].version, prereleases=True), (
            f"{name}=={locked[name].version} is outside {requirement}: run `make lock`"
        )
    # Nothing more: what only an extra needs (the load command's [load]) stays out of the image.
    needed = required_by("example-service") - {"example-service"}
    assert set(locked) == needed, f"{LOCK.name} is stale: run `make lock`"


def test_lock_is_what_the_tests_run() -> None:
    """The test venv installs the lock (Makefile), so the image runs what the suite ran; a
    difference means the venv or the lock is stale."""
    for name, pin in pins(LOCK).items():
        if not pin.applies():
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise AssertionError(f"{name} is locked but not installed: rerun make") from None
        assert installed == pin.version, (
            f"{LOCK.name} locks {name}=={pin.version} but the tests ran {installed}: "
            "rerun make (it reinstalls the lock) or `make lock` after a pyproject.toml change"
        )


def test_build_lock_pins_the_build_system_within_its_ranges() -> None:
    locked = pins(BUILD_LOCK)
    for entry in project()["build-system"]["requires"]:
        requirement = Requirement(entry)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{name} missing from {BUILD_LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(locked[name].version, prereleases=True)


def test_runtime_user_port_and_entrypoint() -> None:
    _, stages = parse()
    runtime = stages[-1]
    (user,) = runtime.all("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: numeric and not root"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    assert "5565" in " ".join(runtime.all("EXPOSE")).split()
    (entrypoint,) = runtime.all("ENTRYPOINT")
    # Exec form (a JSON array): no /bin/sh -c between the runtime and the service, so the
    # service is PID 1 and gets SIGTERM.
    assert json.loads(entrypoint) == ["example-service"]
    for cmd in runtime.all("CMD"):
        assert cmd.startswith("["), f"CMD in exec form: {cmd}"
    assert runtime.all("STOPSIGNAL") in ([], ["SIGTERM"])
    environment = " ".join(runtime.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in environment, "the root file system is read-only"


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or a parent."""
    excluded = False
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) or fnmatch.fnmatchcase(c, pattern) for c in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_what_the_build_copies_and_nothing_else() -> None:
    """The build copies the whole context (`COPY . ./`), so .dockerignore is the list of
    what goes in: the package's build definition, its sources and the locks."""
    _, stages = parse()
    copied = []
    for stage in stages:
        for copy in stage.all("COPY"):
            if not copy.startswith("--from="):
                copied += copy.split()[:-1]
    assert "." in copied
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: no such path"
    for needed in ("pyproject.toml", "setup.py", "README.md", "src/example_service/__init__.py"):
        assert not dockerignore_excludes(needed), f"{needed} is excluded from the context"
    for lock in (LOCK, BUILD_LOCK):
        assert not dockerignore_excludes(str(lock.relative_to(REPO)))
    for local in (".venv", ".git", "tests", "bench", "deploy/kubernetes", "README.md.bak"):
        assert dockerignore_excludes(local), f"{local} would be sent to the build"
    # Local build output: the image compiles its own.
    for built in (
        "src/example_service/__pycache__",
        "src/example_service.egg-info",
        "src/example_service/workload/_fibonacci.c",
        "src/example_service/workload/_fibonacci.cpython-311-x86_64-linux-gnu.so",
    ):
        assert dockerignore_excludes(built), f"{built} would be sent to the build"


def test_links_in_the_package_point_at_files_the_build_copies() -> None:
    """src/ links to files in deploy/ (the stack's package data); a build that did not copy
    them too would build its wheel from dangling links."""
    _, stages = parse()
    sources = [
        Path(source)
        for stage in stages
        for copy in stage.all("COPY")
        if not copy.startswith("--from=")
        for source in copy.split()[:-1]
    ]
    links = [path for path in (REPO / "src").rglob("*") if path.is_symlink()]
    assert links
    for link in links:
        target = link.resolve().relative_to(REPO)
        assert any(target == s or s in target.parents for s in sources), f"{link}: {target}"
        assert not dockerignore_excludes(str(target)), f"{target} is excluded from the context"
