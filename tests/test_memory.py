import subprocess
import sys

import pytest


def run(code: str, **env) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PATH": "", **env}).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc setting")
def test_the_memory_policy_applies_on_linux_and_can_be_turned_off():
    code = "from gatelab.memory import keep_freed_memory; print(keep_freed_memory())"
    assert run(code) == "True"
    assert run(code, GATELAB_KEEP_FREED_MEMORY="0") == "False"
