"""One copy of the newest weights per host, for the actors on the learner's own machine.

Streaming a 5M-parameter policy to every actor costs the learner's host one 20 MB message per
actor per version; actors on that host (a sim fleet, `robot-rl fleet` on one machine) can read one
shared copy instead, as Ray's object store or a node-local cache would give them. The learner
writes the newest weights message, exactly as it streams it, to a folder in shared memory
(/dev/shm: RAM, no disk, no fsync) and names the folder and a random key in its Welcome. An actor
that finds that key in the folder's key file is on the same host and sees the same files (not in
another container or machine that happens to have the same path), so it asks for heads only:
each head names a version, and the actor reads the message from the folder. Anything else (no
/dev/shm, another host, a missing or older copy) streams the whole message, as before.

Folders are named after the learner's pid; a learner that starts removes those of learners that
are no longer running, so a killed one leaves its copy behind only until the next one starts.
"""

from __future__ import annotations

import mmap
import os
import secrets
import shutil
import tempfile
import threading
from pathlib import Path

SHM = Path("/dev/shm")
PREFIX = "robot-rl-weights-"
KEY_FILE = "key"
WEIGHTS_FILE = "weights"


def shared_memory_dir() -> Path | None:
    """The host's shared-memory folder, if it has a writable one."""
    return SHM if SHM.is_dir() and os.access(SHM, os.W_OK | os.X_OK) else None


class SharedCopy:
    """The learner's side: a folder holding its key and the newest weights message."""

    def __init__(self, root: Path) -> None:
        _remove_stale(root)
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root))
        self.key = secrets.token_hex(16)
        (self.path / KEY_FILE).write_text(self.key)
        self.version = -1  # of the message in the folder; -1: none yet
        self._lock = threading.Lock()

    def write(self, version: int, message: bytes) -> None:
        """Replace the copy by a newer version's message (renamed into place: a reader sees a
        whole message, the old one or the new)."""
        with self._lock:
            if version <= self.version:
                return
            tmp = self.path / f"{WEIGHTS_FILE}.tmp"
            tmp.write_bytes(message)
            os.replace(tmp, self.path / WEIGHTS_FILE)
            self.version = version

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def same_host_copy(folder: str, key: str) -> Path | None:
    """The actor's side: the folder if it holds this key (the actor shares the learner's files)."""
    if not folder or not key:
        return None
    try:
        found = (Path(folder) / KEY_FILE).read_text()
    except OSError:
        return None
    return Path(folder) if secrets.compare_digest(found, key) else None


def read_copy(folder: Path) -> mmap.mmap:
    """The newest weights message in the folder, mapped read-only (no copy: the tensors read from
    it are views of the shared pages); OSError if there is none. The learner never changes a
    file in place, it renames a new one over it, so a mapping stays whole while it is used."""
    with open(folder / WEIGHTS_FILE, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise OSError(f"{folder / WEIGHTS_FILE} is empty")
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _remove_stale(root: Path) -> None:
    for folder in root.glob(f"{PREFIX}*"):
        pid = folder.name.removeprefix(PREFIX).partition("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: running
        return True
    return True
