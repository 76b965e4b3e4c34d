"""``GatelabForCausalLM``: any gatelab DecoderLM as a Hugging Face causal LM (``save_pretrained`` to safetensors,
``from_pretrained`` offline, ``generate`` with greedy or sampling decoding through each mixer's own state)."""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import GenerationMixin, PreTrainedModel
from transformers.utils import ModelOutput

from ..models.lm import DecoderLM
from .configuration import GatelabConfig


class GatelabCache:
    """The decoding state of every layer: a KV cache for softmax-attention layers, a recurrent state (and short-conv
    tail) for the others, plus the number of tokens seen. Its size is the model's ``state_size``, not a list of
    keys and values per position, so it is not a transformers ``Cache``; ``generate`` passes it through as is."""

    def __init__(self, states: list[Any], seen: int):
        self.states, self.seen = states, seen

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Keep the sequences ``beam_idx [B']`` of the batch, in that order (beam search calls this every step)."""
        self.states = reorder_state(self.states, beam_idx)


def reorder_state(state: Any, index: torch.Tensor) -> Any:
    """The decoding state of the sequences ``index`` (every state tensor has the batch first; a state that knows
    better, as ``KVCache``, reorders itself)."""
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if hasattr(state, "reorder"):
        return state.reorder(index)
    if dataclasses.is_dataclass(state):
        return dataclasses.replace(state, **{f.name: reorder_state(getattr(state, f.name), index)
                                             for f in dataclasses.fields(state)})
    if isinstance(state, tuple) and hasattr(state, "_fields"):          # a NamedTuple state (FlowState, ...)
        return type(state)._make(reorder_state(item, index) for item in state)
    if isinstance(state, (tuple, list)):
        return type(state)(reorder_state(item, index) for item in state)
    return state


@dataclass
class GatelabCausalLMOutput(ModelOutput):
    """``logits [B, T, vocab]``; ``loss``: mean next-token cross-entropy when labels are given; ``aux_loss``:
    the channel mixers' auxiliary loss (e.g. MoE balancing), not included in ``loss``; ``cache``: the state after
    the last token."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    cache: GatelabCache | None = None


class GatelabPreTrainedModel(PreTrainedModel):
    config_class = GatelabConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _is_stateful = True   # no assisted decoding: a recurrent state cannot be rewound (beam search reorders it)
    _no_split_modules = ["Block"]

    def _init_weights(self, module: torch.nn.Module) -> None:
        """Weights are initialised by the gatelab layers themselves and loading replaces them all; but a
        non-persistent buffer (a value derived from the config, such as retnet's decays) is not in the checkpoint,
        and ``from_pretrained`` builds the model on the meta device, so it comes back as uninitialised memory.
        transformers calls this on every module after loading: a module that holds such buffers recomputes them in
        its ``reset_buffers()``."""
        reset = getattr(module, "reset_buffers", None)
        if callable(reset):
            reset()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False


class GatelabForCausalLM(GatelabPreTrainedModel, GenerationMixin):
    """A gatelab ``DecoderLM`` (any mixer schedule) behind the transformers causal-LM interface.

    ``forward(input_ids [B, T], labels=None, cache=None)``: ``labels`` follow the transformers convention (the
    same ids as the inputs; the model shifts them, -100 ignored). With ``cache``, the tokens continue the cached
    sequence: one token goes through each mixer's decoding step, several through its chunked form from the state.
    Padding is not supported (every sequence in a batch has the same length).
    """

    def __init__(self, config: GatelabConfig):
        super().__init__(config)
        # One dtype for every weight: the default dtype, which from_pretrained sets to the one it loads in (a layer
        # that builds a tensor in an explicit dtype, as Mamba's A_log in float32, would otherwise load rounded).
        self.model = DecoderLM(config.model_config()).to(torch.get_default_dtype())
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        """transformers' loading, then every CPU weight copied out of the memory-mapped checkpoint into memory the
        model owns: a mapped file rewritten on disk (a run trained again) would change the model under its user,
        and BLAS kernels round differently for operands at unaligned addresses, so the loaded model would not give
        the saved model's logits bit for bit."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded      # (model, loading_info) when asked for
        with torch.no_grad():
            for tensor in itertools.chain(model.parameters(), model.buffers()):
                if tensor.device.type == "cpu":
                    tensor.data = tensor.data.clone()
        return loaded

    def grow(self, qkv: int = 0, proj: int = 0, ffn: int = 0) -> GatelabForCausalLM:
        """``DecoderLM.grow`` on the wrapped model (TokenFormer's progressive scaling: the logits are unchanged),
        with ``config`` brought up to date; returns this model. Rebuild the optimizer afterwards."""
        self.model.grow(qkv, proj, ffn)
        self.sync_config()
        return self

    def sync_config(self) -> None:
        """Copy the wrapped model's ``ModelConfig`` into ``config.gatelab_model``: what ``DecoderLM.grow`` changed
        there (the grown parameter tokens) would otherwise be saved with the old shapes. ``save_pretrained``
        calls it."""
        self.config.gatelab_model = GatelabConfig.from_model_config(self.model.config).gatelab_model

    def save_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        """transformers' saving, with ``config`` first brought up to date with the model (``sync_config``)."""
        self.sync_config()
        return super().save_pretrained(*args, **kwargs)

    @property
    def _tied_weights_keys(self) -> dict[str, str]:
        return {"model.head.weight": "model.embed.weight"} if self.config.tie_word_embeddings else {}

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.model.embed

    def get_output_embeddings(self) -> torch.nn.Linear:
        return self.model.head

    def forward(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor | None = None,
                labels: torch.LongTensor | None = None, cache: GatelabCache | None = None,
                use_cache: bool | None = None, **kwargs: Any) -> GatelabCausalLMOutput:
        if attention_mask is not None and not bool(attention_mask.all()):
            raise ValueError("gatelab models do not take padded batches (attention_mask has zeros): give prompts of "
                             "equal length, or generate one prompt at a time")
        seen = cache.seen if cache is not None else 0
        limit = self.model.config.max_seq_len
        if seen + input_ids.shape[1] > limit:
            raise ValueError(f"{seen} cached + {input_ids.shape[1]} new tokens exceed the model's max_seq_len={limit}")
        step = cache is not None and input_ids.shape[1] == 1
        out = self.model(input_ids, states=cache.states if cache is not None else None, step=step)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(out.logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        new_cache = GatelabCache(out.states, seen + input_ids.shape[1]) if use_cache else None
        return GatelabCausalLMOutput(loss=loss, logits=out.logits, aux_loss=out.aux_loss, cache=new_cache)
