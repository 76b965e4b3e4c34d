"""Long Range Arena tasks (Tay et al., ICLR 2021): configs and pure, seeded builders of classification splits."""
from .image import LRAImageConfig, lra_image
from .listops import ListOpsConfig, listops
from .pathfinder import PathfinderConfig, pathfinder, pathfinder_images
from .text import LRATextConfig, lra_text

__all__ = ["LRAImageConfig", "LRATextConfig", "ListOpsConfig", "PathfinderConfig", "listops", "lra_image",
           "lra_text", "pathfinder", "pathfinder_images"]
