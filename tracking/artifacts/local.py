"""Artifacts on the local filesystem, walked one directory descriptor at a time.

Every path is opened relative to its parent's file descriptor with ``O_NOFOLLOW``, starting from a
descriptor of the artifact root. A symlink anywhere below the root (planted by another process, or
swapped in between a check and a use) is therefore never followed: the walk refuses it instead of
resolving it and comparing prefixes, which is racy. Uploads go to a temp file in the destination
directory and are renamed into place, so readers never see a partial file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat

from tracking.artifacts.paths import TEMP_PREFIX, ArtifactPath, invalid_path
from tracking.artifacts.repository import ArtifactEntry
from tracking.errors import invalid_parameter, not_found

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in the tree must not hang a worker; it is refused after fstat.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def symlink_refused():
    """400 for a path that passes through a symbolic link."""
    return invalid_path("it passes through a symbolic link, which this server does not follow")


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


class _DirChain:
    """Open descriptors of the root and each directory below it on the way to a location."""

    def __init__(self, root_fd: int):
        self.fds = [root_fd]
        # (index of the parent descriptor, name) for directories this walk created.
        self.created: list[tuple[int, str]] = []

    @property
    def fd(self) -> int:
        """The descriptor of the deepest directory."""
        return self.fds[-1]

    def remove_created(self) -> None:
        """Remove the directories this walk created, if they are still empty (after a failed upload)."""
        for parent, name in reversed(self.created):
            try:
                os.rmdir(name, dir_fd=self.fds[parent])
            except OSError:
                break
        self.created.clear()

    def close(self) -> None:
        """Close every descriptor."""
        while self.fds:
            os.close(self.fds.pop())


class _FileReader:
    """A regular file opened without following symlinks."""

    def __init__(self, fd: int, size: int):
        self._file = os.fdopen(fd, "rb", buffering=0)
        self.size = size

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes."""
        return self._file.read(n)

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class _FileWriter:
    """A temp file next to the destination, renamed over it on commit."""

    def __init__(self, chain: _DirChain, name: str, temp_name: str, fd: int):
        self._chain = chain
        self._name = name
        self._temp_name = temp_name
        self._fd: int | None = fd
        self._finished = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes to the temp file."""
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def commit(self) -> None:
        """Rename the temp file over the destination (atomic within one directory)."""
        os.close(self._fd)
        self._fd = None
        try:
            os.rename(self._temp_name, self._name, src_dir_fd=self._chain.fd, dst_dir_fd=self._chain.fd)
        except IsADirectoryError:
            # Another request created a directory of that name while this upload was streaming.
            raise invalid_parameter("Artifact path refers to a directory, not a file.") from None
        self._finished = True
        self._chain.close()

    def abort(self) -> None:
        """Remove the temp file and any directory this upload created."""
        if self._finished:
            return
        self._finished = True
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp_name, dir_fd=self._chain.fd)
        self._chain.remove_created()
        self._chain.close()


class LocalArtifactRepository:
    """Artifacts stored under one directory of the local filesystem."""

    def __init__(self, root: str):
        self.root = os.path.realpath(root)

    def _walk(self, segments: tuple[str, ...], *, create: bool) -> _DirChain | None:
        """Open each segment as a directory; None when one is missing or a file (and ``create`` is off)."""
        chain = _DirChain(os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        try:
            for segment in segments:
                fd = self._open_dir(chain, segment, create=create)
                if fd is None:
                    chain.close()
                    return None
                chain.fds.append(fd)
        except BaseException:
            chain.remove_created()
            chain.close()
            raise
        return chain

    def _open_dir(self, chain: _DirChain, name: str, *, create: bool) -> int | None:
        for _attempt in range(3):
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=chain.fd)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.mkdir(name, 0o755, dir_fd=chain.fd)
                    chain.created.append((len(chain.fds) - 1, name))
                except FileExistsError:
                    pass  # created concurrently by another upload; open it on the next attempt
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                found = _lstat(name, chain.fd)
                if found is not None and stat.S_ISLNK(found.st_mode):
                    raise symlink_refused() from None
                if create:
                    raise invalid_path("a parent of the destination is a file") from None
                return None
        raise invalid_path("the destination directory keeps changing")

    def list_dir(self, location: ArtifactPath) -> list[ArtifactEntry]:
        """Entries of a directory (symlinks and in-progress uploads are not shown)."""
        chain = self._walk(location.segments, create=False)
        if chain is None:
            return []
        try:
            entries = []
            with os.scandir(chain.fd) as listing:
                for entry in listing:
                    if entry.name.startswith(TEMP_PREFIX) or entry.is_symlink():
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        entries.append(ArtifactEntry(entry.name, True, None))
                    elif entry.is_file(follow_symlinks=False):
                        entries.append(ArtifactEntry(entry.name, False, entry.stat(follow_symlinks=False).st_size))
            return sorted(entries, key=lambda e: e.name)
        finally:
            chain.close()

    def open_reader(self, location: ArtifactPath) -> _FileReader:
        """Open a regular file for reading."""
        missing = not_found(f"Artifact '{location.inner}' does not exist.")
        chain = self._walk(location.segments[:-1], create=False)
        if chain is None:
            raise missing
        try:
            try:
                fd = os.open(location.name, _READ_FLAGS, dir_fd=chain.fd)
            except FileNotFoundError:
                raise missing from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise symlink_refused() from None
                raise
        finally:
            chain.close()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            if stat.S_ISDIR(info.st_mode):
                raise invalid_parameter(f"Artifact path refers to a directory, not a file: '{location.inner}'")
            raise invalid_path("not a regular file")
        return _FileReader(fd, info.st_size)

    def open_writer(self, location: ArtifactPath) -> _FileWriter:
        """Create the parent directories and a temp file for an upload to ``location``."""
        chain = self._walk(location.segments[:-1], create=True)
        try:
            existing = _lstat(location.name, chain.fd)
            if existing is not None:
                if stat.S_ISLNK(existing.st_mode):
                    raise symlink_refused()
                if stat.S_ISDIR(existing.st_mode):
                    raise invalid_parameter(f"Artifact path refers to a directory, not a file: '{location.inner}'")
                if not stat.S_ISREG(existing.st_mode):
                    raise invalid_path("not a regular file")
            temp_name = TEMP_PREFIX + secrets.token_hex(8)
            fd = os.open(temp_name, _TEMP_FLAGS, 0o644, dir_fd=chain.fd)
        except BaseException:
            chain.remove_created()
            chain.close()
            raise
        return _FileWriter(chain, location.name, temp_name, fd)

    def delete(self, location: ArtifactPath) -> None:
        """Remove a file or a directory tree (symlinks inside a removed tree are unlinked, not followed)."""
        chain = self._walk(location.segments[:-1], create=False)
        if chain is None:
            return
        try:
            found = _lstat(location.name, chain.fd)
            if found is None:
                return
            if stat.S_ISLNK(found.st_mode):
                raise symlink_refused()
            if stat.S_ISDIR(found.st_mode):
                # shutil.rmtree with dir_fd walks by descriptors and never follows links (Python 3.11+).
                shutil.rmtree(location.name, dir_fd=chain.fd)
            else:
                os.unlink(location.name, dir_fd=chain.fd)
        finally:
            chain.close()
