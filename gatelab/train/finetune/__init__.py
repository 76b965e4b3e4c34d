"""Fine-tuning: a run that starts from saved weights (``init_from``) and trains all of them, LoRA adapters or a
learned initial state (``tune``)."""
from .lora import LoRAConfig, add_lora, linear_names, lora_targets, merged_copy
from .source import check_source_tokenizer, load_source_weights, resolve_init_from, source_tokenizer, weights_sha256
from .tune import Tuning

__all__ = ["LoRAConfig", "Tuning", "add_lora", "check_source_tokenizer", "linear_names", "load_source_weights",
           "lora_targets", "merged_copy", "resolve_init_from", "source_tokenizer", "weights_sha256"]
