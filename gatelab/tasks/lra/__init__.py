"""Long Range Arena tasks (Tay et al. 2021): configs and builders of classification splits."""
from .image import LRAImageConfig, lra_image
from .listops import ListOpsConfig, listops
from .text import LRATextConfig, lra_text

__all__ = ["LRAImageConfig", "LRATextConfig", "ListOpsConfig", "listops", "lra_image", "lra_text"]
