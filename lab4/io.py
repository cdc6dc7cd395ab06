"""Files that nothing can leave half-written: atomic writes, a folder lock, disk errors in one line.

Every file lab4 writes goes through `atomic_path`: a temporary file beside the target, written,
flushed to disk, then renamed over the target, the folder flushed too. A reader (or a process
killed at any moment) sees the old file or the new one, never a mix; a kill can only leave a
hidden `.<name>.<random>.tmp`, which `remove_stale_temps` clears under the folder's lock.
"""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

# Testing the commit order: LAB4_FAULT_AT_WRITE=N ends the process at the Nth atomic write
# (counted from when the variable is first seen), after its temporary file is written and before
# the rename, as `kill -9` would: no clean-up runs, and the temporary file stays.
FAULT_ENV = "LAB4_FAULT_AT_WRITE"
FAULT_EXIT = 86
_writes_seen = 0

# mkstemp's names: the prefix we give, 8 random characters, the suffix.
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

# Errors a user fixes by freeing space or changing a folder's permissions, told in one line.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _fault_point() -> None:
    global _writes_seen
    at = os.environ.get(FAULT_ENV)
    if not at:
        return
    _writes_seen += 1
    if _writes_seen == int(at):
        os._exit(FAULT_EXIT)


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:  # read without changing it (os.umask sets it)
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    if os.name != "posix":  # no fsync of a read-only handle or of a folder there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one step.

    The new file gets the permissions of any file created under the umask (mkstemp's are 0600),
    and it and its folder reach the disk before and after the rename, so neither a kill nor a
    power loss leaves a renamed but empty file. A failure to write raises OSError naming `path`
    (not the temporary file) and leaves the old `path` as it was."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        _fault_point()
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as exc:
        # Name the file the user knows, not its temporary stand-in.
        if exc.filename is None or Path(exc.filename).name.startswith(f".{path.name}."):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_link(source: Path, path: Path) -> None:
    """Make `path` hold what `source` holds, in one step: a hard link (no copy) where the file
    system has them, else a copy. Sharing the file is safe because nothing is ever rewritten in
    place here: every write replaces its file by a rename."""
    with atomic_path(path) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise
            shutil.copyfile(source, tmp)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in `folder`; only call with the folder locked."""
    removed = []
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.is_file() and _TEMP_NAME.match(entry.name):
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


def describe_os_error(exc: OSError) -> str:
    """One line for a full disk, a read-only folder or a permission error: what failed, where,
    and what to free or change."""
    target = Path(exc.filename) if exc.filename else None
    folder = target.parent if target is not None else Path.cwd()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    what = f"writing {target}" if target is not None else "writing a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free"
        except OSError:
            free = "free space unknown"
        quota = "the disk quota" if exc.errno == errno.EDQUOT else "the disk"
        return (f"{quota} holding {folder} is full ({free}) while {what}: free space there, or choose a "
                "folder on another disk; files saved before were left as they were")
    if exc.errno == errno.EROFS:
        return (f"{folder} is on a read-only file system ({what}): choose a writable folder, or remount it "
                "read-write; nothing there was changed")
    return (f"no permission ({exc.strerror}) {what.replace('writing', 'for')}: change the permissions of "
            f"{folder} (or its owner), or choose another folder; nothing there was changed")


class FolderBusy(FileExistsError):
    """Another live process holds the folder's lock; the message names it."""


class FolderLock:
    """An exclusive lock on a folder, held as long as this object (or the process) lives.

    flock on an open file: the system releases it when the holder dies, however it dies, so a
    lock can never outlive its process. The file records the holder (pid, host, command, since
    when) for the refusal message, and is emptied on a clean release, so a record found under a
    free lock tells of a holder that died."""

    def __init__(self, path: Path, holder: IO[str], note: str | None):
        self.path = path
        self._holder: IO[str] | None = holder
        self.note = note  # set when a dead holder's lock was taken over

    @classmethod
    def acquire(cls, path: Path, purpose: str) -> "FolderLock":
        path = Path(path)
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return cls(path, open(os.devnull, "r+"), None)
        handle = open(os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "r+")  # the umask applies
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                # A file system without locks (some network mounts): go on, and say so.
                return cls(path, handle, f"note: {path.parent}: this file system cannot lock files ({exc.strerror}); "
                                         "make sure no other process writes this folder")
            other = _read_holder(handle)
            handle.close()
            pid = other.get("pid")
            stop = f"wait for it to finish or stop it (kill {pid})" if pid else "wait for it to finish"
            raise FolderBusy(f"{path.parent} is in use by {_describe_holder(other)}; {stop}, "
                             "or choose another folder") from None
        previous = _read_holder(handle)
        note = None
        if previous.get("pid"):
            note = (f"note: {path.parent} was locked by {_describe_holder(previous)}, which ended without "
                    "releasing it; taking the lock over")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": platform.node(), "purpose": purpose,
                                 "command": " ".join(sys.argv),
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
        handle.flush()
        return cls(path, handle, note)

    def release(self) -> None:
        if self._holder is None:
            return
        try:
            self._holder.seek(0)
            self._holder.truncate()
        except (OSError, ValueError):
            pass
        self._holder.close()  # closing the last handle releases the flock
        self._holder = None

    def __enter__(self) -> "FolderLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(handle: IO[str]) -> dict[str, Any]:
    try:
        handle.seek(0)
        value = json.loads(handle.read() or "{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _describe_holder(info: dict[str, Any]) -> str:
    if not info.get("pid"):
        return "another process"
    where = f" on {info['host']}" if info.get("host") and info["host"] != platform.node() else ""
    text = f"{info.get('purpose', 'a process')} (pid {info['pid']}{where}"
    if info.get("command"):
        text += f", `{info['command']}`"
    if info.get("since"):
        text += f", since {info['since']}"
    return text + ")"


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def strict_json(value: Any) -> str:
    """JSON text that every parser reads: NaN and infinities (a score half with no sequences,
    SSIM on frames under its window) become null instead of Python's non-standard NaN."""
    return json.dumps(_finite_or_none(value), indent=2, allow_nan=False) + "\n"
