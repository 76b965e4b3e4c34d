"""The README runs as written: its ```python blocks execute (the Hugging Face one against a tiny run that the
README's own ``gatelab train`` line trains, into the folder that line creates), its ``gatelab generate`` line runs
on that folder, and every ``gatelab ...`` and ``python -m benchmarks.X ...`` command in it (fenced or inline)
parses with the real argument parser, so a renamed subcommand, flag or config key fails here."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest

from gatelab.cli import build_parser, main
from gatelab.config import apply_overrides
from gatelab.train.config import TrainConfig

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SEPARATORS = {"&&", "||", ";", "|"}
# What makes the README's language-model run tiny: the folder name comes from the README's own flags.
TINY = ["--no-progress", "--set", "max_steps=2", "--set", "batch_size=2", "--set", "model.d_model=16",
        "--set", "model.n_layers=1", "--set", "model.n_heads=2", "--set", "lm.seq_len=16",
        "--set", "lm.eval_tokens=64", "--set", "lm.cache=false"]


def blocks(lang: str) -> list[tuple[str, str]]:
    """``(README.md:line, code)`` of every fenced block in ``lang``."""
    return [(f"README.md:{TEXT[:m.start()].count(chr(10)) + 2}", m.group(2))
            for m in FENCE.finditer(TEXT) if m.group(1) == lang]


def commands(shell: str) -> list[tuple[str, list[str]]]:
    """``(program, argv)`` of each gatelab or benchmark command in shell text: ``gatelab ...``, ``python -m
    gatelab.cli ...`` (e.g. after torchrun) and ``python -m benchmarks.X ...``, split at ``&&``, ``;`` and pipes."""
    found = []
    for line in shell.splitlines():
        words = shlex.split(line, comments=True)
        segments, current = [], []
        for word in words:
            if word in SEPARATORS:
                segments.append(current)
                current = []
            else:
                current.append(word)
        for seg in [*segments, current]:
            if seg[:1] == ["gatelab"]:
                found.append(("gatelab", seg[1:]))
            elif "-m" in seg and seg.index("-m") + 1 < len(seg):
                module = seg[seg.index("-m") + 1]
                if module == "gatelab.cli" or module.startswith("benchmarks."):
                    found.append((module.replace("gatelab.cli", "gatelab"), seg[seg.index("-m") + 2:]))
    return found


# The placeholders the README's prose uses in inline commands, and a value each stands for.
PLACEHOLDERS = {"NAME": "gated-attention", "RUN_DIR": "runs/x", "N": "1"}
FENCED = [cmd for _, code in blocks("bash") for cmd in commands(code)]
# The result pages the README links to name the commands that produced their tables: those must parse too.
PAGES = [TEXT] + [page.read_text(encoding="utf-8") for page in sorted((README.parent / "docs").glob("*.md"))]
INLINE = [(program, [PLACEHOLDERS.get(word, word) for word in argv])
          for text in PAGES
          for span in re.findall(r"`((?:gatelab|python3? -m benchmarks\.)[^`]*)`", text)
          for program, argv in commands(span)]
DISTINCT = [(program, list(argv)) for program, argv in dict.fromkeys((p, tuple(a)) for p, a in FENCED + INLINE)]


def test_the_readme_has_the_commands_this_file_checks():
    assert len(blocks("python")) >= 2 and len(FENCED) >= 10 and INLINE
    assert any(program.startswith("benchmarks.") for program, _ in INLINE)


@pytest.mark.parametrize("program, argv", DISTINCT, ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_every_readme_command_parses(program, argv):
    """Parse only (nothing runs): the subcommand and every flag exist and take the values shown; a train or
    compare line's ``--set`` overrides name real config fields with values of the right type."""
    parser = build_parser() if program == "gatelab" else importlib.import_module(program).build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{program} {shlex.join(argv)}: does not parse (see the usage message above)")
    if getattr(args, "set", None):
        apply_overrides(TrainConfig(), args.set)


def _readme_lm_train_line() -> list[str]:
    lines = [argv for program, argv in FENCED if program == "gatelab" and argv[:1] == ["train"]
             and {"--task", "lm", "--data", "ptb", "--mixer"} <= set(argv)]
    assert lines, "the README's bash blocks lost their `gatelab train --task lm --data ptb --mixer ...` line"
    return lines[0]


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """A folder in which the README's `gatelab train --task lm --data ptb --mixer ...` line ran (made tiny by
    extra --set flags), with the data folder in a temporary place: the cwd the snippets expect."""
    root = tmp_path_factory.mktemp("readme")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("GATELAB_DATA", str(root / "data"))
        mp.setenv("GATELAB_KEEP_FREED_MEMORY", "0")   # the CLI's memory policy stays out of the test process
        assert main(_readme_lm_train_line() + TINY) == 0
    return root


def test_the_run_folders_the_readme_names_are_the_ones_its_train_line_creates(readme_run, monkeypatch):
    """`gatelab generate --run runs/...` and `gatelab analyze runs/...` point at the folder that the README's
    train line writes by default (the default run folder's name is the code's, not the README's)."""
    named = [word for program, argv in FENCED if program == "gatelab" and argv[:1] in (["generate"], ["analyze"])
             for word in argv if word.startswith("runs/")]
    assert named
    for folder in named:
        assert (readme_run / folder / "model" / "model.safetensors").is_file(), folder
    generate = next(argv for program, argv in FENCED if program == "gatelab" and argv[:1] == ["generate"])
    monkeypatch.chdir(readme_run)
    monkeypatch.setenv("GATELAB_DATA", str(readme_run / "data"))
    monkeypatch.setenv("GATELAB_KEEP_FREED_MEMORY", "0")
    assert main([*generate, "--max-new-tokens", "3"]) == 0


@pytest.mark.parametrize("where, code", blocks("python"), ids=[where for where, _ in blocks("python")])
def test_every_python_block_runs_as_written(where, code, request, monkeypatch):
    if "runs/" in code:
        monkeypatch.chdir(request.getfixturevalue("readme_run"))
    exec(compile(code, where, "exec"), {"__name__": "__readme__"})


def test_the_readme_tables_list_every_registered_mixer_and_channel_mixer():
    from gatelab.registry import CHANNEL_MIXERS, MIXERS

    listed = {key for row in re.findall(r"^\| (`[^|]*`) \|", TEXT, re.MULTILINE) for key in re.findall(r"`(\w+)`", row)}
    assert not set(MIXERS.names()) - listed, "mixers missing from the README's mixers table"
    assert not set(CHANNEL_MIXERS.names()) - listed, "channel mixers missing from the README's table"
