"""The token-mixer protocol (DESIGN §3), the probe through which analysis reads internals, and config helpers."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ..config import ConfigError, from_dict


class Probe(nn.Identity):
    """An identity module that layers call on internal quantities (gate scores, attention probabilities).

    Analysis code registers forward hooks on probes to read those quantities without editing layers. A layer
    computes a probed quantity that it does not otherwise need (attention probabilities) only while ``active``.
    """

    @property
    def active(self) -> bool:
        return bool(self._forward_hooks)


def build_config(cls: type, owner: str, **options: Any) -> Any:
    """Build ``cls`` (a mixer's Config dataclass) from keyword options with a clear error for unknown keys."""
    try:
        return from_dict(cls, options, where=owner)
    except ConfigError:
        raise
    except TypeError as e:  # a required field is missing
        names = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{owner}: {e}; valid options: {names}") from None


NO_WEIGHT_DECAY = "_no_weight_decay_names"


def no_weight_decay(module: nn.Module, *names: str) -> None:
    """Exempt ``module``'s parameters ``names`` from weight decay: ``build_optimizer`` puts them in its no-decay
    group whatever their shape. For parameters whose paper's official code exempts them (mamba_ssm and
    flash-linear-attention set ``param._no_weight_decay = True`` on A_log, D, dt_bias).

    The mark is kept on the module, as the set of names under ``NO_WEIGHT_DECAY``, rather than on the Parameter
    object: ``copy.deepcopy``, ``to_empty`` and ``load_state_dict(assign=True)`` make new Parameter objects and
    would drop an attribute set on the old one."""
    for name in names:
        if not isinstance(getattr(module, name, None), nn.Parameter):
            raise ValueError(f"{type(module).__name__} has no parameter {name!r} to exempt from weight decay")
    setattr(module, NO_WEIGHT_DECAY, frozenset(getattr(module, NO_WEIGHT_DECAY, ())) | frozenset(names))


def require(condition: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``condition``: for construction-time checks of layer options."""
    if not condition:
        raise ConfigError(message)


def resolve_head_dim(d_model: int, n_heads: int, head_dim: int | None) -> int:
    """``head_dim`` if given, else ``d_model // n_heads``, which must divide evenly (a ConfigError says so)."""
    if head_dim is not None:
        return head_dim
    require(d_model % n_heads == 0, f"d_model={d_model} is not divisible by n_heads={n_heads}; choose n_heads "
            "dividing d_model or set head_dim")
    return d_model // n_heads


class TokenMixer(nn.Module):
    """A layer that mixes information across time.

    Subclasses implement ``forward(x, state=None) -> (y, state)`` with x, y ``[B, T, d_model]``,
    ``init_state(batch_size)`` (the state before any token) and ``state_size(seq_len)`` (floats held per
    sequence after seq_len tokens). Calling forward on a prefix and then on the rest with the returned state
    equals one call on the whole sequence, and equals T calls of ``step`` on single tokens.

    A mixer with ``lower_bound_dim > 0`` (HGRN's forget-gate lower bound) also accepts
    ``forward(x, state, lower_bound=lb)`` and ``step(x, state, lower_bound=lb)`` with ``lb [lower_bound_dim]`` in
    [0, 1): the bound of its layer, which a model computes from parameters it shares across layers
    (``DecoderLM.lower_bounds``). Without one (a layer used on its own, or a model's first layer) the bound is 0.

    Directions (``directions``): ``"causal"`` mixers only look back; a bidirectional model
    (``gatelab.layers.token.bidirectional``) runs them as a forward and a reverse scan. ``"both"`` mixers take a
    ``causal`` option; with ``causal=False`` they attend in both directions themselves (softmax attention without
    its mask). ``"bidirectional"`` mixers exist only in that form (ViG's BiGLA, Sinkhorn attention). A mixer built
    non-causal has no decoding state (``forward(x, state=None, lengths=None) -> (y, None)``) and takes ``lengths``
    ``[B]`` (int64, the unpadded length of each right-padded sequence, or None when nothing is padded): padded
    positions must not change the outputs at real positions.
    """

    description: str = ""
    paper: str = ""
    lower_bound_dim: int = 0
    directions: str = "causal"

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def step(self, x: torch.Tensor, state: Any, **layer_inputs: Any) -> tuple[torch.Tensor, Any]:
        """Process a few new tokens ``[B, T, d_model]`` given the state: the decoding path."""
        return self.forward(x, state, **layer_inputs)

    def init_state(self, batch_size: int) -> Any:
        raise NotImplementedError

    def state_size(self, seq_len: int) -> int:
        raise NotImplementedError

    def configure(self, d_model: int, options: dict[str, Any]) -> Any:
        """This mixer's Config from keyword options: unknown keys, wrong types and numbers outside the Config's
        ``RANGES`` are errors that name the option."""
        return build_config(self.Config, type(self).__name__, d_model=d_model, **options)

    def expected_num_params(self) -> int:
        """The parameter count from the formula in the class docstring (tests check it against the modules)."""
        raise NotImplementedError

    def _param_like(self) -> torch.Tensor:
        return next(self.parameters())
