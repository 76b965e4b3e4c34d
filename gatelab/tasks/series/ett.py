"""Where ETT's CSVs live, the error that says how to get them, and ``install_ett``, which puts a user's copy into
gatelab's data folder.

ETT (Electricity Transformer Temperature; Zhou et al., Informer, AAAI 2021) is licensed CC BY-ND 4.0 and is not
shipped with gatelab: users download ``ETT-small/ETTh1.csv`` and ``ETTh2.csv`` from the ETDataset repository.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ...config import ConfigError
from ..text.assets import data_home

ETT_URL = "https://github.com/zhouhaoyi/ETDataset"
ETT_FILES = {"etth1": "ETTh1.csv", "etth2": "ETTh2.csv"}
ETT_HEADER = "date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT"
ETT_DIR_ENV = "GATELAB_ETT_DIR"
ETT_HOW_TO = (f"ETT is not shipped with gatelab (CC BY-ND 4.0): download ETT-small/ETTh1.csv and ETTh2.csv from "
              f"{ETT_URL}, then either run `gatelab install-data --ett DIR` once (it copies them into gatelab's data "
              f"folder), or point gatelab at them with `--set forecast.ett_dir=DIR`, `--data PATH/ETTh1.csv` or the "
              f"environment variable {ETT_DIR_ENV}=DIR")


def default_ett_dir() -> Path:
    """``$GATELAB_ETT_DIR`` if set, else the ``ett`` folder of gatelab's data folder (``$GATELAB_DATA``, else
    ``~/.cache/gatelab``)."""
    return Path(os.environ.get(ETT_DIR_ENV) or data_home() / "ett")


def ett_file(name: str, folder: str = "") -> Path:
    """The path of dataset ``name`` (``etth1`` or ``etth2``) in ``folder`` (empty: ``default_ett_dir()``); a
    ConfigError that says where to get ETT when it is not there, or when its header is not ETT's."""
    directory = Path(folder).expanduser() if folder else default_ett_dir()
    path = directory / ETT_FILES[name]
    if not path.is_file():
        if folder:
            where = "forecast.ett_dir"
        else:
            where = f"${ETT_DIR_ENV}" if os.environ.get(ETT_DIR_ENV) else "gatelab's data folder"
        raise ConfigError(f"forecast.data={name!r} needs {path.name}, which is not in {directory} ({where}). "
                          f"{ETT_HOW_TO}")
    check_ett_header(path)
    return path


def check_ett_header(path: Path) -> None:
    """Raise ConfigError unless the first line of ``path`` is ETT's header ``date,HUFL,...,OT``."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline().strip()
    if header != ETT_HEADER:
        raise ConfigError(f"{path} is not an ETT file: its header is {header[:120]!r}, ETT's is {ETT_HEADER!r} "
                          f"(ETT-small/{path.name} of {ETT_URL})")


def install_ett(src_dir: str | Path, dest: str | Path | None = None, link: bool = False, log=print) -> list[Path]:
    """Copy (or, with ``link``, symlink) ETTh1.csv and ETTh2.csv from ``src_dir`` (or its ``ETT-small`` folder, as
    in a clone of ETDataset) into ``dest`` (default: ``default_ett_dir()``). Returns the installed paths.

    Every file found is checked for ETT's header before anything is written; each is written under a temporary
    name and renamed, so an interrupted install leaves no half-written file. A file missing from ``src_dir`` is
    skipped; none at all is a ConfigError.
    """
    src_dir = Path(src_dir).expanduser()
    folders = [src_dir, src_dir / "ETT-small"]
    found = [next((f / n for f in folders if (f / n).is_file()), None) for n in ETT_FILES.values()]
    found = [p for p in found if p is not None]
    if not found:
        raise ConfigError(f"install-data --ett: no {' or '.join(ETT_FILES.values())} in {src_dir} (nor in "
                          f"{src_dir / 'ETT-small'}). {ETT_HOW_TO}")
    for path in found:
        check_ett_header(path)
    dest = Path(dest).expanduser() if dest is not None else default_ett_dir()
    dest.mkdir(parents=True, exist_ok=True)
    installed = []
    for path in found:
        target = dest / path.name
        if target.resolve() == path.resolve():
            log(f"{path.name}: already in {dest}")
        else:
            with tempfile.TemporaryDirectory(dir=dest) as tmp:
                staged = Path(tmp) / path.name
                if link:
                    staged.symlink_to(path.resolve())
                else:
                    shutil.copyfile(path, staged)
                os.replace(staged, target)
            log(f"{path.name}: {'linked' if link else 'copied'} to {target}")
        installed.append(target)
    return installed
