"""Linear-attention mixers on the scalar-decay and GLA ops: ``retnet``, ``linear_attn``, ``hgrn2``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ...ops.gla import chunk_gla, recurrent_gla
from ...ops.simple_gla import chunk_simple_gla, recurrent_simple_gla
from ...registry import MIXERS
from ..base import Probe, require
from ..rope import RotaryEmbedding
from .gla import expanded_dims, head_split
from .recurrent import GatedRMSNorm, RecurrentMixer, RecurrentOptions, bounded_log_forget


@dataclass(kw_only=True)
class RetNetConfig(RecurrentOptions):
    """Options of ``retnet`` (flash-linear-attention's MultiScaleRetention defaults: expand_k 1, expand_v 2)."""

    d_model: int
    n_heads: int = 4
    expand_k: float = 1.0
    expand_v: float = 2.0
    rope_base: float = 10000.0

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "expand_k": "(0, inf)", "expand_v": "(0, inf)", "rope_base": "(1, inf)"}


@MIXERS.register("retnet")
class MultiScaleRetention(RecurrentMixer):
    """Retention (Sun et al. 2023, arXiv 2307.08621): linear attention with a fixed decay per head,
    ``gamma_h = 1 - 2^(-5 - h)``, RoPE on q and k, per-head RMSNorm with a swish output gate, o_proj.

    Parameters, with ``K = d_model * expand_k`` and ``V = d_model * expand_v``: ``2 * d_model * K`` (q/k_proj)
    + ``2 * d_model * V`` (v_proj, g_proj) + ``V / H`` (o_norm) + ``V * d_model`` (o_proj).
    """

    description = "retention: linear attention with a fixed per-head decay (no input-dependent gate)"
    paper = "Sun et al. 2023, arXiv 2307.08621"
    Config = RetNetConfig
    chunk_op, recurrent_op = staticmethod(chunk_simple_gla), staticmethod(recurrent_simple_gla)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.key_dim, self.value_dim, self.head_k, self.head_v = expanded_dims(cfg)
        require(self.head_k % 2 == 0, f"RoPE needs an even key head dim; got {self.head_k}")
        self.config = cfg
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.g_proj = nn.Linear(d_model, self.value_dim, bias=False)
        self.o_norm = GatedRMSNorm(self.head_v, cfg.norm_eps)
        self.o_proj = nn.Linear(self.value_dim, d_model, bias=False)
        self.rope = RotaryEmbedding(self.head_k, cfg.rope_base)
        self.register_buffer("log_decay", torch.empty(cfg.n_heads), persistent=False)                   # (H,)
        self.reset_buffers()

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Recompute the non-persistent ``log_decay [H] = log(1 - 2^(-5 - h))``, in float32 whatever the buffer's
        dtype (so a model built, cast and reloaded in any dtype holds the same decays). Loading that builds the
        model on the meta device (``from_pretrained``) calls this after the weights are in."""
        heads = torch.arange(self.config.n_heads, dtype=torch.float32, device=self.log_decay.device)
        self.log_decay.copy_(torch.log1p(-(2.0 ** (-5.0 - heads))))

    def features(self, x, conv_state, offset):
        B, T, _ = x.shape
        H = self.config.n_heads
        q = self.rope(self.q_proj(x).view(B, T, H, self.head_k), offset)                 # (B, T, H, K/H)
        k = self.rope(self.k_proj(x).view(B, T, H, self.head_k), offset)
        v = self.v_proj(x).view(B, T, H, self.head_v)                                    # (B, T, H, V/H)
        g = self.log_decay.to(x.dtype).expand(B, T, H)                                   # (B, T, H)
        return (q, k, v), {"g": g}, self.g_proj(x).view(B, T, H, self.head_v), None

    def output(self, o, gate, x):
        return self.o_proj(self.o_norm(o, gate).flatten(2))

    def state_size(self, seq_len: int) -> int:
        return self.config.n_heads * self.head_k * self.head_v

    def expected_num_params(self) -> int:
        d, K, V = self.config.d_model, self.key_dim, self.value_dim
        return 2 * d * K + 2 * d * V + self.head_v + V * d


@dataclass(kw_only=True)
class LinearAttentionConfig(RecurrentOptions):
    """Options of ``linear_attn``. ``eps`` keeps the normaliser away from zero."""

    d_model: int
    n_heads: int = 4
    eps: float = 1e-6

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "eps": "(0, inf)"}


@MIXERS.register("linear_attn")
class LinearAttention(RecurrentMixer):
    """Ungated linear attention (Katharopoulos et al. 2020, arXiv 2006.16236) with the ``elu + 1`` feature map:
    ``o_t = phi(q_t) S_t / (phi(q_t) z_t)``, ``S_t = sum_j phi(k_j)^T v_j``, ``z_t = sum_j phi(k_j)``.
    The normaliser rides along as an extra value column of ones. Parameters: ``4 * d_model^2`` (q/k/v/o_proj).
    """

    description = "linear attention (elu+1 feature map, normalised), no gate, no decay"
    paper = "Katharopoulos et al. 2020, arXiv 2006.16236"
    Config = LinearAttentionConfig
    chunk_op, recurrent_op = staticmethod(chunk_simple_gla), staticmethod(recurrent_simple_gla)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.head_dim = head_split(d_model, d_model, cfg.n_heads, "d_model")
        self.config = cfg
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(d_model, d_model, bias=False)
                                                              for _ in range(4))

    def features(self, x, conv_state, offset):
        B, T, _ = x.shape
        H, D = self.config.n_heads, self.head_dim
        q = F.elu(self.q_proj(x).view(B, T, H, D)) + 1                                   # (B, T, H, D) > 0
        k = F.elu(self.k_proj(x).view(B, T, H, D)) + 1
        v = self.v_proj(x).view(B, T, H, D)
        v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)                        # (B, T, H, D + 1)
        return (q, k, v1), {"scale": 1.0}, None, None

    def output(self, o, gate, x):
        o = o[..., :-1] / (o[..., -1:] + self.config.eps)                                # (B, T, H, D)
        return self.o_proj(o.flatten(2))

    def state_size(self, seq_len: int) -> int:
        return self.config.n_heads * self.head_dim * (self.head_dim + 1)

    def expected_num_params(self) -> int:
        return 4 * self.config.d_model**2


@dataclass(kw_only=True)
class HGRN2Config(RecurrentOptions):
    """Options of ``hgrn2``. ``expand_ratio``: the forget-gate (key) width per head; default ``d_model //
    n_heads``. Unlike flash-linear-attention, it never overrides ``n_heads``. ``lower_bound``: take the
    per-layer forget-gate lower bound from the model (HGRN's; False drops it, the gate is then a plain sigmoid)."""

    d_model: int
    n_heads: int = 4
    expand_ratio: int | None = None
    lower_bound: bool = True

    RANGES: ClassVar[dict[str, str]] = {**RecurrentOptions.RANGES, "d_model": "[1, inf)", "n_heads": "[1, inf)",
                                        "expand_ratio": "[1, inf)"}


@MIXERS.register("hgrn2")
class HGRN2(RecurrentMixer):
    """HGRN2 (Qin et al. 2024, arXiv 2404.07904), as flash-linear-attention's HGRN2Attention: GLA whose input gate
    is tied to its forget gate. With the layer's lower bound ``lb [K]`` in [0, 1) (HGRN, Qin et al. 2023,
    arXiv 2311.04823: ``f = lb + (1 - lb) * sigmoid(x W_f)``, computed in log space as
    ``g = min(0, logaddexp(log lb, log(1 - lb) + logsigmoid(x W_f)))``), ``k = 1 - e^g``, ``q = silu(x W_q)``,
    ``v = x W_i``, queries unscaled; RMSNorm over all ``d_model`` channels of the output and o_proj. (The paper's
    standalone code, hgru2-pytorch, differs: sigmoid on q, SiLU on v, biases; gatelab follows fla.)

    The bounds come from the model (``DecoderLM.lower_bounds``, ``[n_layers, K]``, zeros: softmax over the layers,
    cumulative sum, minus the first row, so the first layer's bound is 0 and higher layers forget less). A layer
    used on its own, like the first layer, has no bound. ``lower_bound_dim`` is K, or 0 with ``lower_bound=False``.

    Parameters, with ``K = H * expand_ratio``: ``2 * d_model * K`` (q_proj, f_proj) + ``d_model^2`` (i_proj)
    + ``d_model`` (o_norm) + ``d_model^2`` (o_proj); the model adds K per layer (its lower_bounds). The forget
    gates pass through ``forget_gate_probe``."""

    description = "HGRN2: GLA with the input gate tied to the forget gate (k = 1 - forget), per-layer lower bound"
    paper = "Qin et al. 2024, arXiv 2404.07904"
    Config = HGRN2Config
    chunk_op, recurrent_op = staticmethod(chunk_gla), staticmethod(recurrent_gla)

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        self.head_v = head_split(d_model, d_model, cfg.n_heads, "d_model")
        cfg.expand_ratio = cfg.expand_ratio or self.head_v
        self.config = cfg
        self.key_dim = cfg.n_heads * cfg.expand_ratio
        self.lower_bound_dim = self.key_dim if cfg.lower_bound else 0
        self.q_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.f_proj = nn.Linear(d_model, self.key_dim, bias=False)
        self.i_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_norm = nn.RMSNorm(d_model, eps=cfg.norm_eps)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.forget_gate_probe = Probe()

    def features(self, x, conv_state, offset, lower_bound: torch.Tensor | None = None):
        B, T, _ = x.shape
        H, E = self.config.n_heads, self.config.expand_ratio
        g = bounded_log_forget(self.f_proj(x), lower_bound)                               # (B, T, K)
        g = g.view(B, T, H, E)                                                           # (B, T, H, E)
        if self.forget_gate_probe.active:
            self.forget_gate_probe(g.exp())
        q = F.silu(self.q_proj(x)).view(B, T, H, E)
        k = -torch.expm1(g)                                                              # 1 - e^g, tied input gate
        v = self.i_proj(x).view(B, T, H, self.head_v)
        return (q, k, v), {"g": g, "scale": 1.0}, None, None

    def output(self, o, gate, x):
        return self.o_proj(self.o_norm(o.flatten(2)))                                    # (B, T, d_model)

    def state_size(self, seq_len: int) -> int:
        return self.key_dim * self.head_v

    def expected_num_params(self) -> int:
        d = self.config.d_model
        return 2 * d * self.key_dim + d * d + d + d * d
