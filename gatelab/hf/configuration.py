"""``GatelabConfig``: a Hugging Face config that carries a gatelab ``ModelConfig`` (and the tokenizer's
fingerprint, so a model is never paired with ids it was not trained on)."""
from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

from ..config import from_dict, to_dict
from ..models.lm import ModelConfig


class GatelabConfig(PretrainedConfig):
    """``gatelab_model`` holds the fields of ``gatelab.models.ModelConfig``; ``vocab_size``, ``hidden_size``,
    ``num_hidden_layers`` and ``tie_word_embeddings`` mirror it for code that reads the usual names.
    ``tokenizer_fingerprint`` is the fingerprint of the tokenizer the model was trained with ("" if unknown)."""

    model_type = "gatelab"

    def __init__(self, gatelab_model: dict[str, Any] | None = None, tokenizer_fingerprint: str = "", **kwargs):
        model = from_dict(ModelConfig, gatelab_model or {})
        self.gatelab_model = to_dict(model)
        self.tokenizer_fingerprint = tokenizer_fingerprint
        self.vocab_size, self.hidden_size, self.num_hidden_layers = model.vocab_size, model.d_model, model.n_layers
        kwargs["tie_word_embeddings"] = model.tie_embeddings
        self.use_cache = kwargs.pop("use_cache", True)
        super().__init__(**kwargs)

    @classmethod
    def from_model_config(cls, model: ModelConfig, tokenizer_fingerprint: str = "") -> GatelabConfig:
        return cls(gatelab_model=to_dict(model), tokenizer_fingerprint=tokenizer_fingerprint)

    def model_config(self) -> ModelConfig:
        return from_dict(ModelConfig, self.gatelab_model)
