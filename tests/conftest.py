import os
from pathlib import Path

import pytest
import torch

from gatelab.tasks.text.assets import FILES, data_home


@pytest.fixture(scope="session", autouse=True)
def _data_home(tmp_path_factory):
    """Tests write token caches into a temporary data folder, never into the user's ``~/.cache/gatelab``; the
    installed assets (``gatelab install-data``) are linked into it, so the tests that need them still find them."""
    installed = data_home()
    home = tmp_path_factory.mktemp("gatelab-data")
    for name in FILES.values():
        if (installed / name).exists():
            (home / name).symlink_to(installed / name)
    before = os.environ.get("GATELAB_DATA")
    os.environ["GATELAB_DATA"] = str(home)
    yield Path(home)
    if before is None:
        del os.environ["GATELAB_DATA"]
    else:
        os.environ["GATELAB_DATA"] = before


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def bad_input_files(tmp_path_factory) -> dict[str, str]:
    """The files the bad-input tables refer to (tests/bad_inputs.py), built once for both tables."""
    from tests.bad_inputs import make_inputs

    return make_inputs(tmp_path_factory.mktemp("bad-inputs"))
