"""Owner-only files: the cache root check, atomic writes and reads that never follow symlinks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
import zlib
from pathlib import Path

from mcp_lifecycle.errors import InsecurePathError
from mcp_lifecycle.files import kernel


def validate_cache_ownership(path: Path) -> None:
    """Refuse a cache root that is a symlink, not a directory, not ours, or writable by others,
    or that lies under a folder someone else could swap (see `check_parents`).

    A directory others can write to lets them plant a snapshot or PID file we would trust.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise InsecurePathError(
            f"cache root {path} does not exist", hint="run `start` once to create it"
        ) from None
    if stat.S_ISLNK(st.st_mode):
        raise InsecurePathError(
            f"cache root {path} is a symlink; refusing to follow it",
            hint="point cache_root at a real directory you own",
        )
    if not stat.S_ISDIR(st.st_mode):
        raise InsecurePathError(
            f"cache root {path} is not a directory", hint="remove it or choose another cache_root"
        )
    uid = os.getuid()
    if st.st_uid != uid:
        raise InsecurePathError(
            f"cache root {path} is owned by uid {st.st_uid}, but you are uid {uid}",
            hint="use a cache_root you own (set MCP_SERVER_CACHE_ROOT)",
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InsecurePathError(
            f"cache root {path} is writable by others (mode {stat.S_IMODE(st.st_mode):03o})",
            hint=f"run `chmod 700 {path}`",
        )
    check_parents(path)


# A folder that the environment declares safe although others may write to it: a container's
# volume (Kubernetes makes every emptyDir mode 0777) in a pod with no other user. Only whoever
# sets our environment can name it, and they could point cache_root anywhere anyway.
TRUSTED_FOLDER_ENV = "MCP_LIFECYCLE_TRUSTED_FOLDER"


def check_parents(path: Path, what: str = "the cache root") -> None:
    """Refuse `path` if another user could replace one of the folders above it.

    As OpenSSH checks the path of `authorized_keys`: each folder from `/` down, on the path as
    given and on the path its symlinks lead to, must be owned by us or root and not writable by
    group or others, unless it is sticky (as /tmp is: there only an entry's owner may rename or
    remove it, so our folder inside it stays ours). A symlink on the way must be ours or
    root's too: in a sticky folder, its owner may replace it.
    """
    uid = os.getuid()
    trusted = os.environ.get(TRUSTED_FOLDER_ENV)
    absolute = Path(os.path.abspath(path))
    folders = {*absolute.parents, *Path(os.path.realpath(absolute)).parents}
    for folder in sorted(folders, key=lambda p: len(p.parts)):
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            continue  # a missing folder of the path as given: its real path is checked instead
        if trusted and os.path.abspath(trusted) == str(folder):
            continue
        problem = _swappable(st, uid, allow_sticky=True)
        if problem is not None:
            raise InsecurePathError(
                f"{folder}, a folder above {what} {path}, {problem}: they could swap what "
                "lies below it",
                hint=f"choose a path whose every folder is yours or root's and not writable by "
                f"others (`chmod go-w {folder}`)",
            )


def _swappable(st: os.stat_result, uid: int, *, allow_sticky: bool) -> str | None:
    """Why another user could change what a folder (or symlink) with this `lstat` holds."""
    if st.st_uid not in (0, uid):
        return f"is owned by uid {st.st_uid}"
    if stat.S_ISLNK(st.st_mode):
        return None  # a symlink's own mode means nothing; who may replace it is its folder's
    sticky = allow_sticky and st.st_mode & stat.S_ISVTX
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky:
        return f"is writable by others (mode {stat.S_IMODE(st.st_mode):03o})"
    return None


def ensure_cache_root(path: Path) -> Path:
    """Create the cache root owner-only if missing, then validate it."""
    if not os.path.lexists(path):
        check_parents(path)  # nothing is created under a folder someone else controls
        _make_private_folders(path)
    validate_cache_ownership(path)
    return path


def ensure_private_folder(path: Path) -> None:
    """mkdir -p with every new folder private."""
    if not os.path.lexists(path):
        _make_private_folders(path)


def _make_private_folders(path: Path) -> None:
    """mkdir -p, every new folder 0700 whatever the umask (a umask of 002 would otherwise make
    the new parents group-writable, and then refused)."""
    missing = []
    folder = Path(os.path.abspath(path))
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
            os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask


def open_folder(path: Path) -> int:
    """A file descriptor on the folder at `path`, never through a symlink, checked again once
    open: between the checks of its path and this open, it could have been swapped."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    problem = "is not yours" if st.st_uid != os.getuid() else None
    problem = problem or _swappable(st, os.getuid(), allow_sticky=False)
    if problem is not None:
        os.close(fd)
        raise InsecurePathError(
            f"the cache root {path} {problem} (it changed while being opened)",
            hint="check who else can write to the folders above it",
        )
    return fd


def same_folder(fd: int, path: Path, *, follow: bool = False) -> bool:
    """Whether `path` still names the folder open as `fd`."""
    try:
        on_disk = os.stat(path, follow_symlinks=follow)
    except OSError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def through_fd(fd: int, path: Path) -> Path:
    """A path that reaches the folder open as `fd` whatever later happens at `path`.

    On Linux, /proc/self/fd/N resolves to the folder the descriptor holds (as openat does), so
    every file call made through it stays in that folder after a rename or swap at `path`.
    Where /proc is missing, `path` itself.
    """
    if not kernel.PROC:
        return path
    anchored = Path(f"/proc/self/fd/{fd}")
    return anchored if same_folder(fd, anchored, follow=True) else path


def not_a_file(path: Path) -> InsecurePathError:
    return InsecurePathError(
        f"{path} is not a regular file (a directory or device is in its place)",
        hint=f"move it out of the way: mv {path} {path}.bad",
    )


def refuse_symlink(path: Path) -> None:
    if os.path.islink(path):
        raise InsecurePathError(
            f"{path} is a symlink; refusing to follow it", hint=f"remove it: rm {path}"
        )


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Publish `data` at `path` so no reader ever sees a torn file.

    A unique temp file in the same folder, fsync, then `os.replace`. On any failure the temp
    file is removed and the old file is left whole.
    """
    refuse_symlink(path)
    fd, tmp = _unique_temp_file(path)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _unique_temp_file(path: Path) -> tuple[int, str]:
    """A new file beside `path` (0600, never through a link), as `tempfile.mkstemp` makes one.

    Not mkstemp itself: `tempfile` imports shutil, bz2, lzma and random, ~1 MiB that the
    supervisor and every server would hold only for the name of a file."""
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{os.urandom(6).hex()}.tmp")
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue  # 48 random bits taken: someone else's file, or a planted one
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def open_no_follow(path: Path, flags: int, mode: int = 0o600) -> int:
    """os.open that never follows a symlink (InsecurePathError) and names a directory in a
    file's place (InsecurePathError); other errors, FileNotFoundError included, as they are."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InsecurePathError(
                f"{path} is a symlink; refusing to follow it", hint=f"remove it: rm {path}"
            ) from None
        if exc.errno == errno.EISDIR:
            raise not_a_file(path) from None
        raise


def check_log_folder(path: Path) -> None:
    """Refuse a log file whose folder others may write to, even a sticky one: they could plant
    its rotations (`<log>.1`, ...) there, and a folder above it that others could swap."""
    folder = path.parent
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        check_parents(folder, "the log folder")
        return
    problem = _swappable(st, os.getuid(), allow_sticky=False)
    if problem is not None:
        raise InsecurePathError(
            f"the folder of the log file {path} {problem}: others could plant its rotations",
            hint="log into a folder of your own (log_file)",
        )
    check_parents(folder, "the log folder")


def open_private_append(path: Path) -> int:
    """Open a log file for appending, created 0600 from its first byte.

    Refused (InsecurePathError) unless it is a regular file of ours with no other name: a
    symlink or hard link planted at `path` must never send our output into another file.
    """
    # O_NONBLOCK: a FIFO planted at `path` must not hang the open (it fails with ENXIO).
    try:
        fd = open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):
            raise not_a_file(path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_a_file(path)
        if st.st_uid != os.geteuid():
            raise InsecurePathError(
                f"{path} is owned by uid {st.st_uid}, not by you (uid {os.geteuid()})",
                hint=f"remove it, or log elsewhere: rm {path}",
            )
        if st.st_nlink > 1:
            raise InsecurePathError(
                f"{path} has {st.st_nlink} names (a hard link); refusing to write to it",
                hint=f"remove it: rm {path}",
            )
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def flock_exclusive(fd: int, wait_seconds: float) -> bool:
    """Take an exclusive flock on `fd`, retrying until `wait_seconds` pass; False if another
    holder keeps it. Never blocks indefinitely: a stuck holder must not hang us."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        else:
            return True


def read_no_follow(path: Path, max_bytes: int) -> bytes | None:
    """Read at most `max_bytes` of a regular file; None if it does not exist.

    Raises InsecurePathError for a symlink and IsADirectoryError for anything not a regular file.
    """
    try:
        fd = open_no_follow(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(errno.EISDIR, "not a regular file", str(path))
        return os.read(fd, max_bytes)
    finally:
        os.close(fd)


def digest(data: bytes) -> str:
    """A short digest of `data` for file names and cache keys (not for security)."""
    # zlib, not hashlib: hashlib loads OpenSSL, 2 ms of every `status`.
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"
