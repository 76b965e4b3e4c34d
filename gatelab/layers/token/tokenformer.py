"""TokenFormer's attention (``tokenformer``): softmax attention whose four projections are token-parameter
attention layers (Pattention), growable by appending parameter tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...registry import MIXERS
from ..base import require
from ..channel.pattention import Pattention, Theta, wang_std
from .attention import AttentionConfig, SoftmaxAttention


@dataclass(kw_only=True)
class TokenFormerConfig(AttentionConfig):
    """Options of ``tokenformer``: those of ``attn`` for the attention between the projections (heads, GQA,
    QK-norm, RoPE, clipped softmax, ``causal``; the paper's models rotate a quarter of each head, its ``rotary_pct``:
    ``rotary_fraction=0.25``; gatelab's attention default rotates all), plus:
    ``qkv_slots`` parameter tokens in each of the q, k, v Pattentions and ``proj_slots`` in the output one (None:
    d_model, as the paper's models: 768 at d_model 768), ``qkv_grown`` / ``proj_grown`` more appended by growth
    (``DecoderLM.grow`` records them here), ``theta`` (see ``gatelab.layers.channel.pattention.modified_softmax``),
    the key-token init std ``key_std`` and ``init_n_layers``, the depth in the value tokens' std
    ``2 / (init_n_layers sqrt(d_model))`` (the official ``wang_init``; None: a model sets it to its
    ``n_layers``, and a layer built alone takes 1, the depth of a one-layer model).
    ``n_chains`` must stay 1 and attn's reductions (``qk_merged``, ``symmetric``, ``no_value``, ``no_output``)
    stay off: they act on nn.Linear projections. SSA (``ssa_rate``) only masks scores and works as in ``attn``."""

    qkv_slots: int | None = None
    proj_slots: int | None = None
    qkv_grown: int = 0
    proj_grown: int = 0
    theta: Theta = "l2_norm_gelu"
    key_std: float = 0.02
    init_n_layers: int | None = None

    RANGES: ClassVar[dict[str, str]] = {**AttentionConfig.RANGES, "qkv_slots": "[1, inf)", "proj_slots": "[1, inf)",
                                        "qkv_grown": "[0, inf)", "proj_grown": "[0, inf)", "key_std": "(0, inf)",
                                        "init_n_layers": "[1, inf)"}

    def check(self) -> None:
        require(self.n_chains == 1, f"tokenformer: n_chains={self.n_chains} is not offered (its Pattentions are not "
                "split into chains); use attn, gated_attn, swa or liger with model.chains > 1")
        for name in ("qk_merged", "symmetric", "no_value", "no_output"):
            require(not getattr(self, name), f"tokenformer.{name}=True is not offered: the reductions of attn "
                    "replace or drop nn.Linear projections, and tokenformer's projections are Pattentions (q, k, v "
                    "and o are each always one); use attn for the reductions")


@MIXERS.register("tokenformer")
class TokenFormer(SoftmaxAttention):
    """TokenFormer's attention layer (Wang et al. 2024, "TokenFormer: Rethinking Transformer Scaling with Tokenized
    Model Parameters", arXiv 2410.23168; Haiyang-W/TokenFormer ``megatron/model/tokenformer.py``,
    ``ParallelSelfAttention``): q, k and v are each a ``Pattention`` over ``qkv_slots`` parameter tokens
    (``Θ(x K_Pᵀ) V_P``, no bias), then causal multi-head softmax attention with RoPE, then an output
    Pattention over ``proj_slots`` tokens (the paper's models: RoPE on a quarter of each head,
    ``rotary_fraction=0.25``). Its FFN is the channel mixer ``pattention``: a TokenFormer model is
    ``mixer=tokenformer, channel=pattention``. The paper's blocks normalise with a LayerNorm without parameters,
    which gatelab does not offer: its blocks use the model's norm (``model.norm``, RMSNorm or LayerNorm, each with
    a learned scale).

    Input and output ``[B, T, d_model]``; q ``[B, T, H, D]``, k and v ``[B, T, Hkv, D]``; the state is the KV cache,
    as ``attn`` (``causal=False``: attention in both directions, ``lengths`` masking padded keys). Parameters, with
    ``Nq = qkv_slots + qkv_grown`` and ``No = proj_slots + proj_grown``: ``Nq (d_model + H D)`` (q_proj)
    ``+ 2 Nq (d_model + Hkv D)`` (k_proj, v_proj) ``+ No (H D + d_model)`` (o_proj) ``+ 2 D`` with QK-norm.

    Progressive scaling: ``grow(qkv, proj)`` appends parameter tokens with zero keys (``Pattention.grow``); the
    output is the same function (equal up to the rounding of sums over more tokens), because Θ's scale keeps the
    slot count it was built with (the official code's scale follows the token count, so there growing from n to
    n' tokens multiplies every old normalised score by ``sqrt(n' / n)``). Differences from the official code:
    the attention is gatelab's (its options above); grown tokens have zero keys and freshly drawn values (the
    paper's rule; the official incremental runs load the old tokens into a fresh random init instead); Θ's L2
    norms are floored at 1e-12.
    """

    description = "TokenFormer: attention whose q/k/v/out projections attend to learnable parameter tokens"
    paper = "Wang et al. 2024, arXiv 2410.23168"
    Config = TokenFormerConfig

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, **options)   # options, RoPE, QK-norm, probes; its nn.Linear q/k/v/o replaced here
        c = self.config
        c.qkv_slots, c.proj_slots = c.qkv_slots or d_model, c.proj_slots or d_model
        c.init_n_layers = c.init_n_layers or 1
        value_std = wang_std(c.init_n_layers, d_model)

        def pattention(d_in: int, d_out: int, slots: int, grown: int) -> Pattention:
            return Pattention(d_in, d_out, slots, grown, c.theta, c.key_std, value_std)

        H, Hkv, D = c.n_heads, c.n_kv_heads, c.head_dim
        self.q_proj = pattention(d_model, H * D, c.qkv_slots, c.qkv_grown)
        self.k_proj = pattention(d_model, Hkv * D, c.qkv_slots, c.qkv_grown)
        self.v_proj = pattention(d_model, Hkv * D, c.qkv_slots, c.qkv_grown)
        self.o_proj = pattention(H * D, d_model, c.proj_slots, c.proj_grown)

    def check_growth(self, qkv: int, proj: int) -> None:
        """Raise a ConfigError unless ``grow(qkv, proj)`` keeps the function (see ``Pattention.check_growth``)."""
        self.q_proj.check_growth(qkv, "qkv")
        self.o_proj.check_growth(proj, "proj")

    def grow(self, qkv: int = 0, proj: int = 0) -> dict[str, int]:
        """Append ``qkv`` parameter tokens to each of q_proj, k_proj, v_proj and ``proj`` to o_proj (zero keys: the
        output is unchanged); returns the options that record the new shape. Rebuild the optimizer afterwards."""
        self.check_growth(qkv, proj)
        for layer in (self.q_proj, self.k_proj, self.v_proj):
            layer.grow(qkv)
        self.o_proj.grow(proj)
        self.config.qkv_grown += qkv
        self.config.proj_grown += proj
        return {"qkv_grown": self.config.qkv_grown, "proj_grown": self.config.proj_grown}

    def expected_num_params(self) -> int:
        c = self.config
        nq, no = c.qkv_slots + c.qkv_grown, c.proj_slots + c.proj_grown
        q_width, kv_width = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
        return (nq * (c.d_model + q_width) + 2 * nq * (c.d_model + kv_width) + no * (q_width + c.d_model)
                + (2 * c.head_dim if c.qk_norm else 0))
