"""Files of a run folder: atomic writes (a temporary file beside the target, then a rename), readable modes, the
clean-up of temporary files a killed process left behind, and JSON reads that name the file they fail on."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import ConfigError

# The temporary names our writers use: ``<name>.<8 characters>.tmp`` (and ``<name>.tmp``, written by older
# versions), for the kinds of file a run writes. Nothing else is ever removed as a leftover.
TEMP_NAME = re.compile(r"^.+\.(json|jsonl|safetensors|pt)(\.[a-z0-9_]{8})?\.tmp$")


def file_mode() -> int:
    """The mode a new file gets under this process's umask (0644 under the usual 022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` for the caller to write; once the block ends without an error,
    the file is synced to disk, given the usual mode (``file_mode``: some writers create 0600 files) and renamed
    over ``path``. A reader never sees half a file, and a failure or kill leaves ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            break
        except FileExistsError:
            continue
    done = False
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so a reader never sees half a file."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


def read_json(path: str | Path) -> Any:
    """A JSON file's content; a file that is not valid JSON is a ConfigError that names it."""
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not a readable JSON file ({e}); it may be truncated or corrupt") from e


def make_readable(folder: str | Path) -> None:
    """Give every file under ``folder`` the usual mode (``file_mode``), as writers that create 0600 files don't."""
    mode = file_mode()
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def remove_orphan_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder`` (those named as our writers name them) and
    return them."""
    folder = Path(folder)
    orphans = [p for p in folder.iterdir() if TEMP_NAME.match(p.name) and p.is_file()] if folder.is_dir() else []
    for path in orphans:
        path.unlink(missing_ok=True)
    return orphans


def file_sha256(path: str | Path) -> str:
    """The sha256 of one file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
