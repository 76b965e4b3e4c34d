"""Long Range Arena tasks (Tay et al., ICLR 2021): configs and pure, seeded builders."""
from .listops import ListOpsConfig, listops  # noqa: F401
from .pathfinder import PathfinderConfig, pathfinder, pathfinder_images  # noqa: F401
