"""A folder on the worker's disk as a store: catalog paths are relative to its root.

Every path component is ``lstat``-ed and symlinks are never followed, so a catalog
path can neither leave the root nor read through a link; a file is opened with
``O_NOFOLLOW`` and checked to be the one that was stat-ed.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections import Counter

from include.backup_integrity.domain.checks import Observation
from include.backup_integrity.domain.stores import LOCAL, StoreSpec
from include.backup_integrity.stores.base import READ_BLOCK_BYTES, FolderListing, Listed, split_path


class UnsafePathError(Exception):
    """A catalog path that would leave the backup root or follow a symlink."""


class LocalBackend:
    """A folder on the worker's disk; catalog paths are relative to ``root``."""

    reports_checksums = False

    def __init__(self, root: str, name: str = "local", path_column: str = "local_path") -> None:
        self.root = root
        self.name = name
        self.spec = StoreSpec(name, LOCAL, path_column, root=root)
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, what: str) -> None:
        with self._lock:
            self.requests[what] += 1

    def list_keys(self, keys: list[str]) -> FolderListing:
        """One ``os.scandir`` per folder the keys live in."""
        folders: dict[str, list[str]] = {}
        for key in keys:
            folder, name = split_path(key)
            folders.setdefault(folder, []).append(name)
        found: dict[str, Listed] = {}
        requests = 0
        for folder, names in folders.items():
            listing = self.list_folder(folder, names)
            requests += listing.requests
            if listing.error:
                return FolderListing(found, requests, listing.error)
            found.update({folder + name: entry for name, entry in listing.entries.items()})
        return FolderListing(found, requests)

    def list_folder(self, folder: str, names: list[str]) -> FolderListing:
        """One ``os.scandir`` of the folder; entries are lstat-ed, symlinks never followed."""
        self._count("scandir")
        wanted = set(names)
        try:
            directory = self._safe_folder(folder)
        except UnsafePathError as exc:
            return FolderListing({n: Listed(None, "", invalid=str(exc)) for n in wanted}, 1)
        except (FileNotFoundError, NotADirectoryError):
            return FolderListing({}, 1)
        except OSError as exc:
            return FolderListing({}, 1, f"cannot stat folder {folder!r} under local_root: {exc.strerror}")
        entries: dict[str, Listed] = {}
        try:
            with os.scandir(directory) as listing:
                for entry in listing:
                    if entry.name not in wanted:
                        continue
                    path = folder + entry.name
                    if entry.is_symlink():
                        entries[entry.name] = Listed(
                            None, "", invalid=f"local path {path!r} is a symlink; symlinks are never followed"
                        )
                        continue
                    info = entry.stat(follow_symlinks=False)
                    if not stat.S_ISREG(info.st_mode):
                        entries[entry.name] = Listed(
                            None, "", invalid=f"local path {path!r} is not a regular file"
                        )
                        continue
                    entries[entry.name] = Listed(info.st_size, local_fingerprint(info))
        except FileNotFoundError:
            return FolderListing({}, 1)
        except OSError as exc:
            return FolderListing({}, 1, f"cannot list folder {folder!r} under local_root: {exc.strerror}")
        return FolderListing(entries, 1)

    def _safe_folder(self, folder: str) -> str:
        """The folder's real location, refusing ``..`` and symlinked components."""
        current = os.path.realpath(self.root)
        parts = [p for p in folder.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise UnsafePathError(f"local folder {folder!r} does not stay inside local_root")
        for part in parts:
            current = os.path.join(current, part)
            if stat.S_ISLNK(os.lstat(current).st_mode):
                raise UnsafePathError(
                    f"local folder {folder!r} passes through a symlink at {current!r}; "
                    "symlinks are never followed"
                )
        return current

    def read(self, path: str, listed: Listed | None) -> Observation:
        self._count("read")
        return self.observe(path, read_content=True)

    def probe(self, path: str) -> Observation:
        self._count("stat")
        return self.observe(path, read_content=False)

    def describe(self, path: str) -> str:
        return os.path.join(self.root, path)

    def open_session(self) -> str | None:
        if not os.path.isdir(self.root):
            return f"local_root {self.root!r} does not exist or is not a folder"
        if not os.access(self.root, os.R_OK | os.X_OK):
            return f"local_root {self.root!r} is not readable"
        return None

    def _walk_to(self, path: str) -> tuple[str, os.stat_result]:
        """lstat every component below the root, refusing symlinks; return the file's stat."""
        current = os.path.realpath(self.root)
        parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise UnsafePathError(f"local path {path!r} does not stay inside local_root")
        info: os.stat_result | None = None
        for part in parts:
            current = os.path.join(current, part)
            info = os.lstat(current)
            if stat.S_ISLNK(info.st_mode):
                raise UnsafePathError(
                    f"local path {path!r} passes through a symlink at {current!r}; "
                    "symlinks are never followed"
                )
        assert info is not None
        return current, info

    def observe(self, path: str, *, read_content: bool) -> Observation:
        try:
            full, info = self._walk_to(path)
        except UnsafePathError as exc:
            return Observation(invalid=str(exc))
        except FileNotFoundError:
            return Observation(exists=False)
        except NotADirectoryError:
            return Observation(exists=False)
        except OSError as exc:
            return Observation(error=f"cannot stat {path!r} under local_root: {exc.strerror}")
        if not stat.S_ISREG(info.st_mode):
            return Observation(invalid=f"local path {path!r} is not a regular file")
        if not read_content:
            return Observation(exists=True, size=info.st_size, fingerprint=local_fingerprint(info))
        try:
            fd = os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return Observation(invalid=f"local path {path!r} became a symlink; not followed")
            if exc.errno == errno.ENOENT:
                return Observation(exists=False)
            return Observation(error=f"cannot open {path!r}: {exc.strerror}")
        try:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                return Observation(invalid=f"local path {path!r} changed while being opened")
            digest, total = hash_fd(fd)
        except OSError as exc:
            return Observation(error=f"reading {path!r} failed: {exc.strerror}")
        finally:
            os.close(fd)
        return Observation(
            exists=True,
            size=opened.st_size,
            content_sha256=digest,
            bytes_read=total,
            fingerprint=local_fingerprint(opened),
        )


def local_fingerprint(info: os.stat_result) -> str:
    """Size, mtime, ctime and inode: any write or replacement changes at least one of them."""
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}:{info.st_ino}"


def hash_fd(fd: int) -> tuple[str, int]:
    """SHA-256 of an open file, read in large blocks into one reused buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(READ_BLOCK_BYTES)
    view = memoryview(buffer)
    total = 0
    while True:
        n = os.readv(fd, [buffer])
        if not n:
            break
        digest.update(view[:n])
        total += n
    return digest.hexdigest(), total
