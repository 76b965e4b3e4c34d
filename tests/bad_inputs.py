"""What the bad-input tables share: message patterns, the files the cases refer to (tiny runs, corpora and
damaged files, built once per session by the ``bad_input_files`` fixture in conftest.py) and how a case's
arguments and output are read."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from gatelab.cli import main

NEEDS_NO_CUDA = "this case needs a machine without CUDA"



def names(field: str, value: str = "") -> str:
    """A message that names ``field`` and, if given, ``value`` (in any order, any case)."""
    value_part = f"(?=.*{re.escape(value)})" if value else ""
    return rf"(?is)(?=.*{re.escape(field)}){value_part}"


def sets(*pairs: str) -> list[str]:
    return [a for pair in pairs for a in ("--set", pair)]




def make_inputs(root: Path) -> dict[str, str]:
    """The files the cases refer to: a tiny corpus, a latin-1 one, one without a valid split, a tiny LM run (with a
    checkpoint, so that --resume would run) and a tiny MQAR run (without one), and copies of the LM run with damaged
    files."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {"root": str(root)}

    def corpus(name: str, text: bytes, splits=("train", "valid", "test")) -> None:
        folder = root / name
        folder.mkdir()
        for s in splits:
            (folder / f"{s}.txt").write_bytes(text)
        paths[name] = str(folder)

    corpus("corpus", b"a b c d e f g h\n" * 40)
    corpus("latin1", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 40)
    corpus("nosplit", b"a b c\n" * 40, splits=("train",))
    corpus("damagedcache", b"x y z\n" * 40)
    from gatelab.tasks.text import tokenized_corpus
    from gatelab.tasks.text.assets import data_home
    from gatelab.tasks.text.cache import corpus_key

    tokenized_corpus(paths["damagedcache"], "word")
    for meta in (data_home() / "tokens" / corpus_key(paths["damagedcache"])).glob("*/meta.json"):
        meta.write_text("{half")
    (root / "empty").mkdir()
    paths["empty"] = str(root / "empty")
    (root / "bad.json").write_text("{not json")
    paths["badjson"] = str(root / "bad.json")
    (root / "unknown.json").write_text(json.dumps({"model": {"d_modle": 3}}))
    paths["unknownjson"] = str(root / "unknown.json")
    lm, mq = root / "lm-run", root / "mq-run"
    tiny = ["--no-progress", "--set", "model.d_model=16", "--set", "max_steps=1", "--set", "eval_every=1"]
    assert main(["train", "--task", "lm", "--data", paths["corpus"], "--out", str(lm), *tiny,
                 "--set", "model.n_layers=1", "--set", "lm.seq_len=8", "--set", "batch_size=2",
                 "--set", "checkpoint_every=1"]) == 0
    assert main(["train", "--out", str(mq), *tiny, "--set", "mqar.train_examples=16", "--set", "mqar.test_examples=8",
                 "--set", "mqar.vocab_size=128"]) == 0
    paths["lm"], paths["mq"] = str(lm), str(mq)
    for name, damaged, how in [("truncated", "model/model.safetensors", "half"),
                               ("badmodelconfig", "model/config.json", "json"),
                               ("badrunconfig", "config.json", "json")]:
        copy = root / name
        shutil.copytree(lm, copy)
        target = copy / damaged
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2] if how == "half" else b"{half")
        paths[name] = str(copy)
    return paths


def fill(argv: list[str], paths: dict[str, str], out: str) -> list[str]:
    return [a.format(out=out, **paths) for a in argv]


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)
