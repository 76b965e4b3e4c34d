"""``flowformer``: Flowformer's flow attention (conservation, competition, allocation), linear in time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...config import ConfigError
from ...ops.flow_attn import FlowState, empty_flow_state, flow_attention
from ...registry import MIXERS
from ..base import TokenMixer, resolve_head_dim


@dataclass(kw_only=True)
class FlowformerConfig:
    """Options of ``flowformer``. ``causal`` (default): the causal flow attention of Flowformer's language model
    (``Flow_Attention_Causal``); ``causal=False``: its non-causal form (an encoder). ``eps``: added to features and
    flow sums (Flowformer's 1e-6). ``clamp``: the conserved source is clipped to ``[-clamp, clamp]`` before the
    competition (1 in ``Flow_Attention.py``, 5 in Flowformer's fairseq language model). ``bias`` on the four
    projections (Flowformer's ``nn.Linear`` have it; off by default, as gatelab's attention). ``chunk_size``: chunk
    of the causal read-out."""

    d_model: int
    n_heads: int = 4
    head_dim: int | None = None
    causal: bool = True
    eps: float = 1e-6
    clamp: float = 1.0
    bias: bool = False
    chunk_size: int = 64

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "head_dim": "[1, inf)",
                                        "eps": "(0, 0.01]", "clamp": "(0, 20]", "chunk_size": "[1, inf)"}


@MIXERS.register("flowformer")
class Flowformer(TokenMixer):
    """Flow attention (Wu et al. 2022, "Flowformer: Linearizing Transformers with Conservation Flows", ICML,
    arXiv 2202.06258; thuml/Flowformer ``Flow_Attention.py``), multi-head, on ``gatelab.ops.flow_attn``.

    Per head, with ``phi = sigmoid`` on the projected queries and keys, attention is a flow network: each query
    (sink) receives the incoming flow ``I_i = 1 / (phi(q_i) . sum_j phi(k_j))`` and each key (source) sends
    ``O_j = 1 / (phi(k_j) . sum_i phi(q_i))``. Fixing the flows conserves them; the conserved flows
    ``I^_i = phi(q_i) . sum_j O_j phi(k_j)`` and ``O^_j = phi(k_j) . sum_i I_i phi(q_i)`` then drive a competition
    among sources (``C = softmax(O^) * n``: the values are reweighted) and an allocation to sinks
    (``A = sigmoid(I^)``: the outputs are gated): ``o_i = A_i (phi(q_i) I_i) sum_j phi(k_j)^T (C_j v_j)``.

    Causal (the default), every sum runs over the tokens so far; as Flowformer's causal code the flows are
    multiplied by the position count ``t + 1`` and the conserved flows divided by it, the competition is
    ``exp(O^_t) / sum_{j <= t} exp(O^_j) * (t + 1)`` and the allocation ``sigmoid(I^_t)``. The decoding state is
    the running sums (``FlowState``: ``4 H D + H + H D^2`` floats, constant in T). ``causal=False`` is the
    non-causal form and takes ``lengths [B]``: padded positions are neither queries nor keys.

    Not reproduced: the dropout (0.05) Flowformer applies after its output projection (gatelab's blocks own
    dropout). Input and output ``[B, T, d_model]``. Parameters: ``4 d_model H D`` (q/k/v/o_proj), plus
    ``3 H D + d_model`` with ``bias``."""

    description = "Flowformer: flow attention, conservation with competition and allocation, linear time"
    paper = "Wu et al. 2022, arXiv 2202.06258"
    Config = FlowformerConfig
    directions = "both"

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        cfg.head_dim = resolve_head_dim(d_model, cfg.n_heads, cfg.head_dim)
        self.config = cfg
        width = cfg.n_heads * cfg.head_dim
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, width, bias=cfg.bias) for _ in range(3))
        self.o_proj = nn.Linear(width, d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor, state: FlowState | None = None, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, FlowState | None]:
        """``x [B, T, d_model]`` -> ``y [B, T, d_model]`` and the running sums (causal; None otherwise)."""
        c = self.config
        if state is not None and not c.causal:
            raise self._no_state()
        B, T, _ = x.shape
        q = torch.sigmoid(self.q_proj(x).view(B, T, c.n_heads, c.head_dim))             # (B, T, H, D)
        k = torch.sigmoid(self.k_proj(x).view(B, T, c.n_heads, c.head_dim))
        v = self.v_proj(x).view(B, T, c.n_heads, c.head_dim)
        o, state = flow_attention(q, k, v, causal=c.causal, eps=c.eps, clamp=c.clamp,
                                  lengths=None if c.causal else lengths, initial_state=state,
                                  output_final_state=c.causal, chunk_size=c.chunk_size)
        return self.o_proj(o.flatten(2)), state                                           # (B, T, d_model)

    def _no_state(self) -> ConfigError:
        return ConfigError("flowformer with causal=False reads the whole sequence: it has no decoding state; "
                           "use causal=True to decode")

    def init_state(self, batch_size: int) -> FlowState:
        if not self.config.causal:
            raise self._no_state()
        c, like = self.config, self._param_like()
        return empty_flow_state(batch_size, c.n_heads, c.head_dim, c.head_dim, like.new_zeros(()))

    def state_size(self, seq_len: int) -> int:
        """Causal: the running sums, ``4 H D + H + H D^2`` (constant in T); non-causal: the keys and values it
        reads, ``2 T H D``."""
        c = self.config
        if not c.causal:
            return 2 * seq_len * c.n_heads * c.head_dim
        return c.n_heads * (4 * c.head_dim + 1 + c.head_dim * c.head_dim)

    def expected_num_params(self) -> int:
        c = self.config
        width = c.n_heads * c.head_dim
        return 4 * c.d_model * width + (3 * width + c.d_model if c.bias else 0)
