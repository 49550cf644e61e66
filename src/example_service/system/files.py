"""How every system reading reads a file, and how it records what went wrong.

A reading never raises for a file it cannot read: it has no value for it, and a problem that
names the file and the reason, unless the file is simply absent."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import NamedTuple

# These mean "nothing to read here (any more)", not "broken": a disk unplugged between listing
# and reading (ENOENT, ENODEV), a driver with no value right now (iwlwifi answers ENODATA while
# its radio is off), a file this kernel or this cgroup does not offer.
_ABSENT = frozenset({errno.ENOENT, errno.ENODEV, errno.ENODATA, errno.ENOTDIR})

_CHUNK = 65536
_SHOWN_TEXT = 40


def read_at(fd: int) -> str:
    """The text of an open file, read from its start. Every reading goes through here: one
    place to keep cheap and to break in tests. pread at offset 0 makes sysfs and cgroupfs
    write the value anew, so an open descriptor reads like a new open."""
    chunks = [os.pread(fd, _CHUNK, 0)]
    # sysfs and cgroupfs answer a whole file in one read; loop only for a larger one.
    while len(chunks[-1]) == _CHUNK:
        chunks.append(os.pread(fd, _CHUNK, _CHUNK * len(chunks)))
    return b"".join(chunks).decode("utf-8", "replace")


def read_file(name: str, dir_fd: int | None = None) -> str:
    """Return a file's text. os.open and os.pread skip the buffered-file machinery, which costs
    more than the read itself for these tiny files; opening relative to a directory's
    descriptor saves walking the long sysfs path (and its links) again for each file."""
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        return read_at(fd)
    finally:
        os.close(fd)


class OpenFiles:
    """A reader's files kept open from one reading to the next, and read with read_at.

    Opening and closing a file in sysfs or the cgroup tree costs several times reading it
    (the path walked again, the kernel's buffer set up and torn down). A kept descriptor is
    given up, and the file opened again, when reading it fails (the kernel fails reads of a
    removed device's or cgroup's files) or the file has no link left (removed or replaced,
    as in a copied tree). Files a reading did not read are closed at its end; at most limit
    are kept, so that a machine with hundreds of sensors does not spend its descriptors.

    Not for two threads at once: a reader's readings never overlap (system/offloop.py)."""

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._open: dict[str, int] = {}
        self._read: set[str] = set()

    def read(self, path: str, name: str, dir_fd: int | None) -> str:
        """The text of the file at path, opened as name relative to dir_fd when not open."""
        fd = self._open.pop(path, None)
        if fd is not None:
            try:
                if os.fstat(fd).st_nlink > 0:
                    text = read_at(fd)
                    self._keep(path, fd)
                    return text
            except OSError:
                pass
            os.close(fd)
        fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
        try:
            text = read_at(fd)
        except OSError:
            os.close(fd)
            raise
        self._keep(path, fd)
        return text

    def _keep(self, path: str, fd: int) -> None:
        if len(self._open) < self._limit:
            self._open[path] = fd
            self._read.add(path)
        else:
            os.close(fd)

    def reading_done(self) -> None:
        """Closes the files this reading did not read: their devices may be gone."""
        for path in [path for path in self._open if path not in self._read]:
            os.close(self._open.pop(path))
        self._read.clear()


class Directory(NamedTuple):
    """An open directory: its path, for messages, and its descriptor, to read within it."""

    path: str
    fd: int


def _path(within: Directory | None, name: str) -> str:
    return name if within is None else f"{within.path}/{name}"


def _fd(within: Directory | None) -> int | None:
    return None if within is None else within.fd


class Reads:
    """The reads of one reading, and the problems they met; files kept open in files, if given.

    A name is read within an open Directory, or is a whole path when within is None. Each
    method returns None when there is no value, and notes why unless the file is simply
    absent (see _ABSENT)."""

    def __init__(self, files: OpenFiles | None = None) -> None:
        self.problems: list[str] = []
        self._files = files

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

    def entries(self, directory: Directory) -> list[tuple[str, int]]:
        """The listing as (name, inode) pairs: the inode comes with the listing, at no cost,
        and tells an entry from another of the same name that replaced it."""
        try:
            with os.scandir(directory.fd) as listed:
                return [(entry.name, entry.inode()) for entry in listed]
        except OSError as error:
            self._failed(directory.path, error)
            return []

    def text(self, name: str, within: Directory | None = None) -> str | None:
        try:
            if self._files is None:
                return read_file(name, _fd(within))
            return self._files.read(_path(within, name), name, _fd(within))
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

    def keyed_value(self, path: str, key: str) -> int | None:
        """The value of one key in a "key value" per line file, None when the key is absent.
        Only its line is parsed, and checked: memory.stat has some forty lines, read at every
        scrape for one of them."""
        text = self.text(path)
        if text is None:
            return None
        if text.startswith(f"{key} "):
            start = 0
        else:
            start = text.find(f"\n{key} ") + 1
            if not start:
                return None
        end = text.find("\n", start)
        line = text[start:] if end < 0 else text[start:end]
        fields = line.split()
        if len(fields) == 2:
            with suppress(ValueError):
                return int(fields[1])
        self.problems.append(f"{path}: not a 'key value' line: {line[:_SHOWN_TEXT]!r}")
        return None
