"""How every system reading reads a file, and how it records what went wrong.

A reading never raises for a file it cannot read: it has no value for it, and a problem that
names the file and the reason, unless the file is simply absent."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

# These mean "nothing to read here (any more)", not "broken": a disk unplugged between listing
# and reading (ENOENT, ENODEV), a driver with no value right now (iwlwifi answers ENODATA while
# its radio is off), a file this kernel or this cgroup does not offer.
_ABSENT = frozenset({errno.ENOENT, errno.ENODEV, errno.ENODATA, errno.ENOTDIR})

_CHUNK = 65536
_SHOWN_TEXT = 40


def read_file(name: str, dir_fd: int | None = None) -> str:
    """Return a file's text. Every reading goes through here: one place to keep cheap and to
    break in tests. os.open/os.read skip the buffered-file machinery, which costs more than
    the read itself for these tiny files; opening relative to a directory's descriptor saves
    walking the long sysfs path (and its links) again for each file."""
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        chunks = [os.read(fd, _CHUNK)]
        # sysfs and cgroupfs answer a whole file in one read; loop only for a larger one.
        while len(chunks[-1]) == _CHUNK:
            chunks.append(os.read(fd, _CHUNK))
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


class Directory(NamedTuple):
    """An open directory: its path, for messages, and its descriptor, to read within it."""

    path: str
    fd: int


def _path(within: Directory | None, name: str) -> str:
    return name if within is None else f"{within.path}/{name}"


def _fd(within: Directory | None) -> int | None:
    return None if within is None else within.fd


class Reads:
    """The reads of one reading, and the problems they met.

    A name is read within an open Directory, or is a whole path when within is None. Each
    method returns None when there is no value, and notes why unless the file is simply
    absent (see _ABSENT)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def note(self, problem: str) -> None:
        self.problems.append(problem)

    def _failed(self, path: str, error: OSError) -> None:
        if error.errno not in _ABSENT:
            self.problems.append(f"{path}: {error.strerror or error}")

    @contextmanager
    def directory(
        self, name: str, within: Directory | None = None, *, required: bool = False
    ) -> Iterator[Directory | None]:
        """The open directory, or None; a missing directory is a problem only when required."""
        path = _path(within, name)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=_fd(within))
        except OSError as error:
            if required and error.errno in _ABSENT:
                self.problems.append(f"{path}: {error.strerror}")
            else:
                self._failed(path, error)
            yield None
            return
        try:
            yield Directory(path, fd)
        finally:
            os.close(fd)

    def listing(self, directory: Directory) -> list[str]:
        try:
            return os.listdir(directory.fd)
        except OSError as error:
            self._failed(directory.path, error)
            return []

    def text(self, name: str, within: Directory | None = None) -> str | None:
        try:
            return read_file(name, _fd(within))
        except OSError as error:
            self._failed(_path(within, name), error)
            return None

    def link(self, name: str, within: Directory) -> str | None:
        try:
            return os.readlink(name, dir_fd=within.fd)
        except OSError as error:
            self._failed(_path(within, name), error)
            return None

    def integer(
        self, name: str, within: Directory | None = None, *, base: int = 10, minimum: int = 0
    ) -> int | None:
        text = self.text(name, within)
        if text is None:
            return None
        return self.parse_integer(_path(within, name), text, base=base, minimum=minimum)

    def parse_integer(
        self, path: str, text: str, *, base: int = 10, minimum: int = 0
    ) -> int | None:
        try:
            value = int(text, base)
        except ValueError:
            self.problems.append(f"{path}: not a number: {text[:_SHOWN_TEXT]!r}")
            return None
        if value < minimum:
            self.problems.append(f"{path}: {value} is below {minimum}")
            return None
        return value

    def keyed(self, path: str) -> dict[str, int] | None:
        """A "key value" per line file (cpu.stat, memory.stat, memory.events, ...)."""
        text = self.text(path)
        if text is None:
            return None
        values: dict[str, int] = {}
        try:
            for line in text.splitlines():
                key, value = line.split()
                values[key] = int(value)
        except ValueError:
            self.problems.append(f"{path}: not 'key value' lines: {text[:_SHOWN_TEXT]!r}")
            return None
        return values
