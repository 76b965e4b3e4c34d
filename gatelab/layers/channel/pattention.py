"""TokenFormer's token-parameter attention (``Pattention``), its modified softmax, and the Pattention FFN as a
channel mixer (``pattention``)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ConfigError
from ...registry import CHANNEL_MIXERS
from .mlp import DenseConfig, DenseMixer

Theta = Literal["l2_norm_gelu", "gelu_l2_norm", "softmax"]


def modified_softmax(scores: torch.Tensor, theta: Theta, n: int) -> torch.Tensor:
    """TokenFormer's Θ over the last dim of ``scores [..., slots]``, with ``n`` the slot count of its scale (the
    official code's ``norm_activation_type``; there n is always the number of slots):

    - ``l2_norm_gelu`` (the paper's models): ``GELU(S / ||S||_2 * sqrt(n))``;
    - ``gelu_l2_norm``: ``GELU(S) / ||GELU(S)||_2 * sqrt(n)``;
    - ``softmax``: ``exp(S) / ||exp(S)||_1 * n``, computed as ``softmax(S) * n`` (no overflow).

    The L2 norms are floored at 1e-12 (``F.normalize``), so an all-zero row gives zeros, not NaN (the official code
    divides by the bare norm). Returns ``[..., slots]``."""
    if theta == "l2_norm_gelu":
        return F.gelu(F.normalize(scores, dim=-1) * math.sqrt(n))
    if theta == "gelu_l2_norm":
        return F.normalize(F.gelu(scores), dim=-1) * math.sqrt(n)
    return torch.softmax(scores, dim=-1) * n


def wang_std(n_layers: int, d_model: int) -> float:
    """The std of GPT-NeoX's ``wang_init``, ``2 / (n_layers sqrt(d_model))``: TokenFormer's value-token init."""
    return 2 / (n_layers * math.sqrt(d_model))


class Pattention(nn.Module):
    """Token-parameter attention (Wang et al. 2024, TokenFormer, arXiv 2410.23168, eq. 5-6): the input tokens
    attend to ``n`` learnable key/value parameter tokens, ``K_P [n, d_in]`` (``key_tokens``) and ``V_P [n, d_out]``
    (``value_tokens``): ``out = Θ(X K_Pᵀ) V_P`` (scale 1, no bias), Θ the modified softmax of ``theta``.

    ``x [..., d_in]`` -> ``[..., d_out]``. ``slots`` tokens are built, plus ``grown`` appended by ``grow``; Θ's
    scale uses ``n = slots`` whatever ``grown`` is (see ``grow``). Init as the official code: keys
    ``N(0, key_std)`` (GPT-NeoX ``normal``, 0.02), values ``N(0, value_std)`` (``wang_init``: ``wang_std``).
    Parameters: ``(slots + grown) * (d_in + d_out)``.
    """

    def __init__(self, d_in: int, d_out: int, slots: int, grown: int = 0, theta: Theta = "l2_norm_gelu",
                 key_std: float = 0.02, value_std: float = 0.02):
        super().__init__()
        self.slots, self.theta, self.value_std = slots, theta, value_std
        self.key_tokens = nn.Parameter(torch.randn(slots + grown, d_in) * key_std)          # (n, d_in)
        self.value_tokens = nn.Parameter(torch.randn(slots + grown, d_out) * value_std)     # (n, d_out)

    @property
    def n_tokens(self) -> int:
        """Parameter tokens held: ``slots`` plus those grown."""
        return self.key_tokens.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = x @ self.key_tokens.T                                                     # (..., n)
        return modified_softmax(scores, self.theta, self.slots) @ self.value_tokens         # (..., d_out)

    def check_growth(self, n_new: int, option: str) -> None:
        """Raise a ConfigError unless ``grow(n_new)`` keeps this layer's function (``option``: the caller's name of
        n_new, for the message)."""
        if isinstance(n_new, bool) or not isinstance(n_new, int) or n_new < 0:
            raise ConfigError(f"grow: {option}={n_new!r} must be an integer >= 0 (the parameter tokens to append)")
        if n_new and self.theta == "softmax":
            raise ConfigError(f"grow: {option}={n_new} with theta='softmax': a zero key token scores exp(0) = 1, "
                              "which changes every other token's weight, so growth would change the function; "
                              "grow layers with theta='l2_norm_gelu' or 'gelu_l2_norm' (GELU(0) = 0)")

    def grow(self, n_new: int) -> None:
        """Append ``n_new`` parameter tokens: keys zero, values drawn as at construction (the paper's progressive
        scaling zero-initialises the new keys). A zero key scores 0 and Θ gives it GELU(0) = 0, so the output is
        unchanged (up to the rounding of sums over more tokens); its key gets gradients at once through its non-zero
        value (zero values as well would leave both at zero gradient under the GELU forms). Θ's scale keeps
        ``n = slots``: the official code takes the current token count, so there ``sqrt(n)`` rises with growth and
        rescales every old score (a different function). New Parameter objects replace the old ones: rebuild the
        optimizer afterwards."""
        self.check_growth(n_new, "n_new")
        if n_new == 0:
            return
        k, v = self.key_tokens.detach(), self.value_tokens.detach()
        new_values = torch.randn(n_new, v.shape[1], dtype=v.dtype, device=v.device) * self.value_std
        self.key_tokens = nn.Parameter(torch.cat([k, k.new_zeros(n_new, k.shape[1])]))     # (n + n_new, d_in)
        self.value_tokens = nn.Parameter(torch.cat([v, new_values]))                        # (n + n_new, d_out)

    def extra_repr(self) -> str:
        return f"slots={self.slots}, tokens={self.n_tokens}, theta={self.theta!r}"


@dataclass(kw_only=True)
class PattentionConfig(DenseConfig):
    """Options of ``pattention``: ``d_ff`` parameter tokens (default ``4 * d_model``, as the paper's models: 3072
    at d_model 768), ``grown`` more appended by growth (``DecoderLM.grow`` records them here), ``theta`` (see
    ``modified_softmax``), the key-token init std ``key_std`` and ``init_n_layers``, the depth in the value tokens'
    std ``2 / (init_n_layers sqrt(d_model))`` (the official ``wang_init`` takes the model's depth; None: a model
    sets it to its ``n_layers``, and a layer built alone takes 1, the depth of a one-layer model)."""

    grown: int = 0
    theta: Theta = "l2_norm_gelu"
    key_std: float = 0.02
    init_n_layers: int | None = None

    RANGES: ClassVar[dict[str, str]] = {**DenseConfig.RANGES, "grown": "[0, inf)", "key_std": "(0, inf)",
                                        "init_n_layers": "[1, inf)"}


@CHANNEL_MIXERS.register("pattention")
class PattentionFFN(DenseMixer):
    """TokenFormer's FFN: one ``Pattention`` from d_model to d_model with ``d_ff`` parameter tokens (Wang et al.
    2024, arXiv 2410.23168, eq. 8; the official ``ParallelTokenformerLayer.mlp``), in place of the up/down pair:
    ``y = Θ(x K_Pᵀ) V_P``. A TokenFormer model is ``mixer=tokenformer, channel=pattention``.

    x, y ``[B, T, d_model]``. Parameters: ``2 * d_model * (d_ff + grown)``.
    """

    description = "TokenFormer's FFN: token-parameter attention over d_ff key/value parameter tokens"
    paper = "Wang et al. 2024, arXiv 2410.23168"
    Config = PattentionConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options):
        super().__init__(d_model, d_ff, options)
        c = self.config
        c.init_n_layers = c.init_n_layers or 1
        self.pattention = Pattention(d_model, d_model, self.d_ff, c.grown, c.theta, c.key_std,
                                     wang_std(c.init_n_layers, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pattention(x)

    def check_growth(self, ffn: int) -> None:
        self.pattention.check_growth(ffn, "ffn")

    def grow(self, ffn: int) -> dict[str, int]:
        """Append ``ffn`` parameter tokens (``Pattention.grow``); returns the options that record the new shape."""
        self.pattention.grow(ffn)
        self.config.grown += ffn
        return {"grown": self.config.grown}

    def expected_num_params(self) -> int:
        return 2 * self.d_model * (self.d_ff + self.config.grown)
