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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a glibc setting")
def test_sweep_workers_take_on_the_memory_policy_of_the_sweep_process():
    code = """
import multiprocessing, os
from concurrent.futures import ProcessPoolExecutor
from gatelab.memory import keep_freed_memory, keeps_freed_memory
from gatelab.train.executors.local import _start_worker
if __name__ == "__main__":
    context = multiprocessing.get_context("spawn")
    for keep in (False, True):
        if keep:
            keep_freed_memory()
        with ProcessPoolExecutor(1, mp_context=context, initializer=_start_worker,
                                 initargs=(os.getpid(), keeps_freed_memory(), context.Queue())) as pool:
            print(pool.submit(keeps_freed_memory).result())
"""
    assert run(code).split() == ["False", "True"]
