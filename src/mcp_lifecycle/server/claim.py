"""What a running server holds: its cache root, lock, name and PID file.

The server opens its cache root once and does all its I/O through that descriptor, so that
whatever later happens at the path (a rename, a swap for a symlink) cannot redirect its
writes. The heartbeat puts back what someone deletes while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from mcp_lifecycle.errors import AlreadyRunning, CorruptFile, LifecycleError, os_error
from mcp_lifecycle.files import registry
from mcp_lifecycle.files.name_socket import address, name_claim
from mcp_lifecycle.files.paths import ServerPaths
from mcp_lifecycle.files.pidfile import ServerLock, read_pid_file, remove_pid_file, write_pid_file
from mcp_lifecycle.files.private import ensure_cache_root, open_folder, same_folder, through_fd
from mcp_lifecycle.files.supervision import remove_record
from mcp_lifecycle.logs import anchor_output_log
from mcp_lifecycle.server.name_claim import NameSocket

logger = logging.getLogger(__name__)

_CLAIM_ATTEMPTS = 3


class ServerClaim:
    def __init__(
        self, paths: ServerPaths, *, supervised: bool = False, registry: Path | None = None
    ) -> None:
        # `paths` names the files for people and for the name claim; every read and write goes
        # through `files`, which stays in the folder opened at `take`.
        self.paths = paths
        self.files = paths
        self._folder_fds: list[int] = []  # the newest last; older ones stay open until release
        self._lock = ServerLock(paths.lock)
        self._restored_locks: list[ServerLock] = []
        self._name = NameSocket(address(paths.cache_root, paths.server_name))
        # `restore` (heartbeat thread) and `release` (main thread) never interleave.
        self._guard = threading.Lock()
        # A server run by our supervisor works in the cache root; the supervisor holds the
        # lock, the name and the PID file.
        self._supervised = supervised
        # The registry's folder, when the caller knows it (a supervisor is told, so that it
        # needs no platformdirs); `registry.running_dir()` otherwise.
        self._registry = registry

    def take(self) -> None:
        """The cache root, its lock and the name: AlreadyRunning if another server has them;
        a file system error (full, read-only, not a directory) as one line naming it."""
        try:
            ensure_cache_root(self.paths.cache_root)
            self._open_folder()
            if self._supervised:
                return
            self._lock = ServerLock(self.files.lock)
            taken = self._lock.acquire() and self._claim_name()
        except OSError as exc:
            raise os_error(exc, self.paths.cache_root) from exc
        if not taken:
            raise AlreadyRunning(f"{self.paths.server_name} is already running")

    def write_pid_file(self) -> None:
        if self._supervised:
            return
        try:
            write_pid_file(self.files.pid)
        except OSError as exc:
            raise os_error(exc, self.paths.pid) from exc

    def remove_pid_file(self) -> None:
        if not self._supervised:
            remove_pid_file(self.files.pid, os.getpid())

    def register(self, settings: dict[str, Any]) -> None:
        """Tell the registry where this server lives and with which settings (its lifecycle
        fields), so it can be found by name from anywhere; a registry that cannot be written
        costs only that. An earlier supervisor's record goes: this server runs without one."""
        if self._supervised:
            return
        remove_record(self.files.supervision)
        try:
            registry.register(settings, os.getpid(), self._registry)
        except (OSError, LifecycleError) as exc:
            where = self._registry or registry.running_dir()
            logger.warning("could not register in %s: %s", where, exc)

    def unregister(self) -> None:
        if not self._supervised:
            with contextlib.suppress(OSError, LifecycleError):
                registry.unregister(
                    self.paths.server_name, self.paths.cache_root, os.getpid(), self._registry
                )

    def release(self) -> None:
        """Give back the name, the locks and the folder (whatever of them was taken)."""
        with self._guard:
            self._name.release()
            for lock in (self._lock, *self._restored_locks):
                lock.release()
            fds, self._folder_fds = self._folder_fds, []
            if fds:
                # Lines logged after this (the last ones, a user's threads) must not rotate
                # through a descriptor number the process may soon reuse for another folder.
                anchor_output_log(self.paths.cache_root)
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def forget_in_child(self) -> None:
        """In a forked child: drop our copies of the locks and the name, which stay the
        parent's (a child sharing the lock's open file would keep the server "running" after
        the server died)."""
        self._guard = threading.Lock()
        self._lock.forget()
        for lock in self._restored_locks:
            lock.forget()
        self._name.forget()

    def restore(self) -> None:
        """Put back what someone deleted while we run: the cache root, PID file and lock."""
        with self._guard:
            try:
                self._follow_cache_root()
                if not self._supervised:
                    self._restore_pid_file()
                    self._restore_lock()
            except (OSError, LifecycleError) as exc:
                logger.warning("could not restore the server's files: %s", exc)

    def _claim_name(self) -> bool:
        """False if our server already runs under this name (its lock file deleted or moved,
        so our own lock proved nothing). Anyone else holding the name never stops us."""
        name = self.paths.server_name
        for _ in range(_CLAIM_ATTEMPTS):
            if self._name.claim():
                return True
            claim = name_claim(self.paths)
            if claim is None:
                time.sleep(0.01)  # its holder just let go, or does not answer: try again
                continue
            if claim.proven:
                self._lock.release()
                return False
            logger.warning(
                "the name of %s is held by %s; going on without it (`doctor` shows it)",
                name,
                claim.describe(),
            )
            return True
        logger.warning(
            "the name of %s is bound by a process that does not answer; going on without it", name
        )
        return True

    def _open_folder(self) -> None:
        fd = open_folder(self.paths.cache_root)
        # An older descriptor stays open: another thread may be writing through it right now.
        self._folder_fds.append(fd)
        self.files = ServerPaths(self.paths.server_name, through_fd(fd, self.paths.cache_root))
        anchor_output_log(self.files.cache_root)

    def _follow_cache_root(self) -> None:
        """When the cache root's path no longer names our folder, move to what it names now,
        but only if that passes every check a new cache root must pass; else stay put."""
        root = self.paths.cache_root
        if not self._folder_fds or same_folder(self._folder_fds[-1], root):
            return
        if not os.path.lexists(root):
            logger.warning("the cache root %s was removed; restoring it", root)
        ensure_cache_root(root)  # raises InsecurePathError for a swapped-in symlink or stranger
        self._open_folder()

    def _restore_pid_file(self) -> None:
        try:
            recorded = read_pid_file(self.files.pid)
        except CorruptFile:
            recorded = None
        if recorded != os.getpid():
            logger.warning("the PID file %s was removed or changed; restoring it", self.paths.pid)
            write_pid_file(self.files.pid)

    def _restore_lock(self) -> None:
        if any(lock.holds(self.files.lock) for lock in (self._lock, *self._restored_locks)):
            return
        logger.warning("the lock file %s was removed; restoring it", self.paths.lock)
        lock = ServerLock(self.files.lock)
        if lock.acquire(wait_seconds=0):
            self._restored_locks.append(lock)
        else:
            logger.error("another process holds %s; not restored", self.paths.lock)
