"""The package's layout as docs/design.md describes it: the top holds the entry points and the
settings, every stage or concern is a subpackage, no module grows past what a reader takes in
at once, and no two modules import each other, directly or around a loop."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "example_service"
README = PACKAGE.parents[1] / "README.md"
TOP_MODULES = {"__init__.py", "__main__.py", "cli.py", "settings.py"}
SUBPACKAGES = {"server", "workload", "logs", "metrics", "system", "stack", "load"}
MAX_LINES = 400
README_MAX_LINES = 300


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (symlinked assets are not modules)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "assets" in path.parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that this one imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in targets if target in known and target != name}


def test_the_top_holds_the_entry_points_settings_and_subpackages_only() -> None:
    entries = {p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "__pycache__"))}
    top = {name for name in entries if name.endswith(".py")}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert top == TOP_MODULES
    assert folders == SUBPACKAGES


def test_no_module_is_longer_than_a_reader_takes_in() -> None:
    long = {
        name: lines
        for name, path in modules().items()
        if (lines := len(path.read_text("utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycle() -> None:
    found = modules()
    # A package's __init__ importing its own modules is how a package exposes them: not a
    # cycle of the code's stages.
    graph = {
        name: {t for t in imports(name, path, set(found)) if not t.startswith(name + ".")}
        for name, path in found.items()
    }
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "import cycle: " + " -> ".join([*visiting, name])
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_the_readme_is_a_front_door() -> None:
    assert len(README.read_text("utf-8").splitlines()) <= README_MAX_LINES
