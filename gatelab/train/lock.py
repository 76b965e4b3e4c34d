"""One process at a time in a run folder (or a sweep folder): an exclusive, non-blocking ``flock`` on
``<folder>/.lock``, which holds the owner's process id. The operating system releases the lock when the process
ends, however it ends, so a killed run never leaves its folder locked."""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from ..config import ConfigError
from .files import file_mode

LOCK_FILE = ".lock"


class FolderBusy(ConfigError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "run folder", hint: str = "") -> Iterator[None]:
    """Hold ``folder``'s lock for the block, or raise FolderBusy naming the folder and the process that holds it
    (and ``hint``: what else the user can do)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise FolderBusy(f"the {what} {folder} is in use by another gatelab process (pid {pid}); wait for it "
                             f"to finish or stop it, or use another folder{hint}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)            # (closing the file releases the lock)
