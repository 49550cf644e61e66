"""The shell examples of the README and docs/ run as written, against the real stack.

A command is a `$ ` line of a ```console block (with its `\\` continuation lines; the lines up
to the next `$ ` are its output), or a line of a ```sh block. Each page's commands run in
order in one bash session, as a reader pasting them into a terminal would: a
`. .venv/bin/activate` or a `PROM=...` holds for the rest of the page. The session starts
without the venv on its PATH, from a directory that looks like a fresh clone (links to the
repository's files) with `make stack` running: its default ports, in a network namespace of
its own so that nothing else on this machine is in the way.

A command passes when the first line of its documented output matches the first line it
prints (`…` stands for anything, a number for any number), or, without documented output,
when it exits 0; `curl` runs with `--fail-with-body`, so that a URL that answers 404 fails.
`--duration` is cut to 2 s. What does not run here, and why, is in SKIP_BLOCK
(the whole block, since its commands build on each other) and SKIP_COMMAND.
docs/runbook.md's commands are run by tests/e2e/test_runbook.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.lab import REPO
from support.service import EXECUTABLE
from support.waiting import wait_for

pytestmark = pytest.mark.e2e

# docs/runbook.md is left to tests/e2e/test_runbook.py, which gives its commands the $PROM and
# $ALERTMANAGER that the page asks the reader to set.
PAGES = [
    REPO / "README.md",
    *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "runbook.md"),
]
# By the program a block runs: why the whole block cannot run here.
SKIP_BLOCK = {
    "kubectl": "needs a Kubernetes cluster (tests/deploy renders and validates the manifests)",
    "helm": "needs a Kubernetes cluster (tests/deploy/test_helm_chart.py renders the chart)",
    "kind": "creates a Kubernetes cluster",
    "minikube": "needs a minikube cluster",
    "docker": "needs Docker Engine (tests/container runs the image, tests/deploy the Compose file)",
    "podman": "builds the image (tests/container builds and runs it)",
}
# Commands that are the harness itself, skipped alone.
SKIP_COMMAND = {
    "make run": "serves in the foreground; the running stack's replicas stand in for it",
    "make stack": "runs in the foreground; the test starts it before the commands",
    "make test": "the whole suite, this test included",
    "make prometheusrules": "rewrites tracked files (tests/deploy checks they are current)",
    ".venv/bin/pytest": "runs tests of the suite, which runs them itself",
}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
_DURATION = re.compile(r"--duration \S+")
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


@dataclass
class Command:
    page: str
    line: int
    text: str
    output: list[str] = field(default_factory=list)

    @property
    def program(self) -> str:
        words = [w for w in self.text.split() if not _ASSIGNMENT.fullmatch(w)]
        return words[0] if words else ""

    def skipped(self) -> str | None:
        return next(
            (why for start, why in SKIP_COMMAND.items() if self.text.startswith(start)), None
        )


def commands(page: Path) -> tuple[list[Command], list[str]]:
    """The page's commands that run here, and what was skipped with why."""
    text = page.read_text()
    name = str(page.relative_to(REPO))
    runnable: list[Command] = []
    skipped: list[str] = []
    for block in _BLOCK.finditer(text):
        language, body = block.group(1), block.group(2)
        first = text[: block.start()].count("\n") + 2
        found = _console(name, first, body) if language == "console" else []
        if language == "sh":
            found = _script(name, first, body)
        # Named anywhere in a command (`SERVICE_IP=$(kubectl ...)` too), a program skips the block.
        why = next(
            (
                why
                for c in found
                for name, why in SKIP_BLOCK.items()
                if re.search(rf"\b{name}\b", c.text)
            ),
            None,
        )
        for command in found:
            reason = why or command.skipped()
            if reason:
                skipped.append(f"{name}:{command.line}: {command.text.splitlines()[0]} ({reason})")
            else:
                runnable.append(command)
    return runnable, skipped


def _names(command: Command, program: str) -> bool:
    return re.search(rf"\b{re.escape(program)}\b", command.text) is not None


def _console(page: str, first: int, body: str) -> list[Command]:
    found: list[Command] = []
    lines = body.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("$ "):
            command = Command(page, first + index, line[2:])
            while command.text.endswith("\\") and index + 1 < len(lines):
                index += 1
                command.text += "\n" + lines[index]
            found.append(command)
        elif found:
            found[-1].output.append(line)
        index += 1
    return found


def _script(page: str, first: int, body: str) -> list[Command]:
    found: list[Command] = []
    continued = False
    for offset, line in enumerate(body.splitlines()):
        if continued:
            found[-1].text += "\n" + line
        elif line.strip() and not line.lstrip().startswith("#"):
            found.append(Command(page, first + offset, line))
        continued = line.endswith("\\")
    return found


def _expected(line: str) -> re.Pattern[str]:
    pattern = re.escape(line.strip())
    pattern = re.sub(r"\d+", r"\\d+", pattern.replace(re.escape("…"), ".*"))
    return re.compile(pattern)


def fresh_clone(target: Path) -> Path:
    """A directory that reads as the repository, with nothing the stack left behind."""
    target.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in {"stack-data", ".git"}:
            (target / entry.name).symlink_to(entry)
    return target


def shell_env() -> dict[str, str]:
    venv = str(EXECUTABLE.parent)
    path = [p for p in os.environ["PATH"].split(os.pathsep) if p and p != venv]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return env | {"PATH": os.pathsep.join(path)}


def run_page(namespace_pid: int, clone: Path, page: list[Command]) -> list[Outcome]:
    """Every command of a page in one bash session; what each one did."""
    errors = clone.parent / "stderr"
    errors.mkdir(exist_ok=True)
    # A reader sees a 404 page; the test sees curl fail on it (a command with documented
    # output is held to that output instead, an error status included). A command that asks
    # curl to fail already (-f, -fsS, --fail) is run as written: curl refuses both at once.
    script = [
        "curl() { local a; for a; do case $a in --fail|--fail-with-body) ;; --*) continue;;"
        ' -*f*) ;; *) continue;; esac; command curl "$@"; return; done;'
        ' command curl --fail-with-body "$@"; }'
    ]
    for index, command in enumerate(page):
        text = _DURATION.sub("--duration 2s", command.text)
        script += [
            f"printf '\\n@@@ {index}\\n'", "{", text, f"}} 2>{errors / str(index)}",
            'printf \'\\n@@@ %s\\n\' "$?"',
        ]  # fmt: skip
    result = subprocess.run(
        ["nsenter", "-t", str(namespace_pid), "-n", "bash", "-c", "\n".join(script)],
        cwd=clone, env=shell_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=240, check=False,
    )  # fmt: skip
    # ["\n", "0", stdout, status, "", "1", stdout, status, ...]
    parts = re.split(r"\n@@@ (\d+)\n", "\n" + result.stdout)
    outcomes = []
    for index in range(len(page)):
        at = 1 + index * 4
        assert parts[at] == str(index), (page[index].text, result.stdout, result.stderr)
        stderr = (errors / str(index)).read_text()
        outcomes.append(Outcome(int(parts[at + 2]), parts[at + 1], stderr))
    return outcomes


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str

    def first_line(self) -> str:
        """What a reader sees first: stdout's first line, or stderr's if it printed none (a
        terminal hides curl's progress meter, which it writes to stderr into a pipe)."""
        lines = self.stdout.strip("\n").splitlines() or self.stderr.strip("\n").splitlines()
        return lines[0].strip() if lines else ""


@dataclass
class Running:
    pid: int
    clone: Path
    console: list[str]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """`make stack` on its default ports in a network namespace of its own."""
    if os.geteuid() != 0 or not shutil.which("nsenter") or not shutil.which("ip"):
        pytest.skip("a private network namespace needs root, nsenter and ip")
    if subprocess.run(["unshare", "--net", "true"], check=False).returncode != 0:
        pytest.skip("this machine refuses a new network namespace (a container without it?)")
    clone = fresh_clone(tmp_path_factory.mktemp("docs") / "clone")
    process = subprocess.Popen(
        ["unshare", "--net", "sh", "-c",
         # As the README's `make stack` runs it: by the venv's path, from the clone's root.
         "ip link set lo up && exec .venv/bin/example-service stack"],
        cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C stops everything." in line:
            break
    else:
        pytest.fail("the stack did not start:\n" + "".join(lines))
    # Its console goes on (breaks, restarts, notifications): read it so it never blocks.
    threading.Thread(target=lines.extend, args=(process.stdout,), daemon=True).start()
    # A reader looks once Prometheus has scraped both replicas, as the pages assume.
    query = "http://127.0.0.1:9090/api/v1/query?query=sum(up%7Bjob=%22example-service%22%7D)"

    def scraped() -> bool:
        answer = subprocess.run(
            ["nsenter", "-t", str(process.pid), "-n", "curl", "-s", query],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout  # fmt: skip
        return '"2"]' in answer

    wait_for(scraped, 30, "Prometheus' first scrape of both replicas", interval=0.5)
    try:
        yield Running(process.pid, clone, lines)
    finally:
        process.terminate()
        process.wait(60)


def test_make_run_takes_port_and_host() -> None:
    dry_run = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", "PORT=8080", "HOST=127.0.0.1"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert dry_run.splitlines()[-1].endswith("/example-service --host 127.0.0.1 --port 8080")


def test_the_pages_commands_run_as_written(stack: Running) -> None:
    pid, clone = stack.pid, stack.clone
    failures: list[str] = []
    ran = 0
    for path in PAGES:
        page, _ = commands(path)
        if not page:
            continue
        for command, outcome in zip(page, run_page(pid, clone, page), strict=True):
            ran += 1
            documented = [line for line in command.output if line.strip()]
            where = f"{command.page}:{command.line}: {command.text}"
            if documented:
                if not _expected(documented[0]).fullmatch(outcome.first_line()):
                    failures.append(f"{where}\n  expected: {documented[0]}\n  got: {outcome}")
            elif outcome.status != 0:
                failures.append(f"{where}\n  {outcome}")
    assert not failures, "\n".join(failures)
    assert ran >= 15


def test_what_is_skipped_is_what_cannot_run_here() -> None:
    """The skip lists are the whole story: every skip has a reason, and a runnable command
    is never skipped by accident (a page that shows `curl` against a cluster skips it with
    its block, not because curl is listed)."""
    skipped = [line for path in PAGES for line in commands(path)[1]]
    assert all(line.endswith(")") for line in skipped)
    assert not [line for line in skipped if ": curl " in line and "Kubernetes" not in line
                and "Docker" not in line]  # fmt: skip
    runnable = {c.program for path in PAGES for c in commands(path)[0]}
    assert not runnable & set(SKIP_BLOCK)
    assert {"curl", "example-service", ".venv/bin/example-service", "promtool", "amtool"} <= (
        runnable
    )


def test_the_readme_shows_the_stack_as_it_prints_itself(stack: Running) -> None:
    """The README's `make stack` output, line by line, is what the stack prints (numbers
    and column widths aside, `…` for the paths of this machine)."""
    [make_stack] = [c for c in commands(REPO / "README.md")[1] if "make stack" in c]
    readme = REPO.joinpath("README.md").read_text()
    block = readme[readme.index("$ make stack ") :].split("```")[0].splitlines()[1:]
    printed = stack.console[: len(block)]
    assert len(printed) == len(block), make_stack
    for documented, line in zip(block, printed, strict=True):
        pattern = _expected(" ".join(documented.split())).pattern.replace(r"\ ", " ")
        assert re.fullmatch(pattern, " ".join(line.split())), (documented, line)
