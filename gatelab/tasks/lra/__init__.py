"""Long Range Arena tasks (Tay et al., ICLR 2021): configs and pure, seeded builders."""
from .listops import ListOpsConfig, listops  # noqa: F401
