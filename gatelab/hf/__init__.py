"""gatelab models as Hugging Face transformers models. Importing this module registers ``model_type="gatelab"``
with ``AutoConfig`` and ``AutoModelForCausalLM``, so ``AutoModelForCausalLM.from_pretrained(path)`` loads a saved
gatelab model offline."""
from transformers import AutoConfig, AutoModelForCausalLM

from .configuration import GatelabConfig
from .modeling import GatelabCache, GatelabCausalLMOutput, GatelabForCausalLM
from .run import load_run, save_run_model

AutoConfig.register(GatelabConfig.model_type, GatelabConfig, exist_ok=True)
AutoModelForCausalLM.register(GatelabConfig, GatelabForCausalLM, exist_ok=True)

__all__ = ["GatelabCache", "GatelabCausalLMOutput", "GatelabConfig", "GatelabForCausalLM", "load_run", "save_run_model"]
