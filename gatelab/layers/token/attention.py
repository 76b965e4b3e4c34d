"""Softmax attention (``attn``) and gated softmax attention (``gated_attn``) token mixers."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ...config import from_dict
from ...ops.softmax_attn import attention_mix, attention_probs, attention_scores, sdpa_attention
from ...registry import MIXERS
from ..base import Probe, TokenMixer, require, resolve_head_dim
from ..channel.chain import ChainLinear, chain_linear_params
from ..rope import RopeScaling, RotaryEmbedding
from ._minimum import SymmetricMerged, check_reductions, query_key_params
from ._ssa import Pattern, ssa_mask
from .gates import Activation, GateOptions, Granularity, Kind, Mode, Position, Sharing, Source, build_gate
from .kv_cache import KVCache


@dataclass(kw_only=True)
class AttentionConfig:
    """Options of ``attn``. ``n_kv_heads`` < ``n_heads`` is grouped-query attention; ``head_dim`` defaults to
    ``d_model // n_heads``. ``qk_norm`` applies an RMSNorm over head_dim (one weight per norm, shared by the heads)
    to q and k before RoPE, as Qwen3, with epsilon ``qk_norm_eps`` (Qwen3's 1e-6); off in ``attn`` (Vaswani et al.
    have none), on in ``gated_attn``. ``rotary_fraction`` rotates only the first ``int(head_dim * fraction)`` dims
    of each head (Qwen3-Next: 0.25; default 1.0, every dim). ``clip_gamma < 0`` (or ``clip_zeta > 1``) switches
    to the clipped softmax of Quantizable Transformers (``gatelab.ops.clip_gamma_for_length(alpha, T)`` gives
    ``gamma = -alpha / T``). ``rope_scaling`` (a ``RopeScaling``: linear, ntk, llama3 or yarn; none by default)
    changes RoPE's frequencies as a pretrained model that uses it was trained. ``bias``: ``none`` (default), ``qkv``
    (biases on q_proj, k_proj and v_proj, as Qwen2) or ``all`` (on o_proj as well, as Llama's ``attention_bias``).
    ``causal=False`` attends in both directions (an encoder; no decoding state; padded
    keys masked by the ``lengths`` of ``forward``), as a bidirectional model builds it. ``n_chains > 1`` makes it
    Chain-of-Model attention (see ``SoftmaxAttention``): it must
    divide d_model, n_heads and n_kv_heads (a DecoderLM sets it from ``model.chains``). ``qk_merged``,
    ``symmetric``, ``no_value`` and ``no_output`` are the reductions of Bermeitinger et al. 2024 (see
    ``SoftmaxAttention``). ``ssa_rate < 1`` subsamples the keys in training (SSA, ``gatelab.layers.token._ssa``):
    the fraction of the keys drawn, ``ssa_pattern`` ``unstructured`` or ``local_random`` (a window of
    ``ssa_window`` nearest keys always kept as well)."""

    d_model: int
    n_heads: int = 4
    n_kv_heads: int | None = None
    head_dim: int | None = None
    qk_norm: bool = False
    qk_norm_eps: float = 1e-6
    rope: bool = True
    rope_base: float = 10000.0
    rope_scaling: RopeScaling | None = None
    rotary_fraction: float = 1.0
    bias: Literal["none", "qkv", "all"] = "none"
    clip_gamma: float = 0.0
    clip_zeta: float = 1.0
    n_chains: int = 1
    causal: bool = True
    qk_merged: bool = False
    symmetric: bool = False
    no_value: bool = False
    no_output: bool = False
    ssa_rate: float = 1.0
    ssa_pattern: Pattern = "unstructured"
    ssa_window: int = 16

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "n_heads": "[1, inf)", "n_kv_heads": "[1, inf)",
                                        "head_dim": "[1, inf)", "qk_norm_eps": "(0, inf)", "rope_base": "(1, inf)",
                                        "rotary_fraction": "(0, 1]", "clip_gamma": "(-inf, 0]", "clip_zeta": "[1, inf)",
                                        "n_chains": "[1, inf)", "ssa_rate": "(0, 1]", "ssa_window": "[1, inf)"}


@MIXERS.register("attn")
class SoftmaxAttention(TokenMixer):
    """Causal multi-head softmax attention with RoPE (optionally partial), GQA, optional QK-norm and a KV-cache
    state.

    Vaswani et al. 2017 (arXiv 1706.03762); GQA: Ainslie et al. 2023; QK-norm and partial rotary as in Qwen3 and
    Qwen3-Next (off by default here: this is the plain baseline).
    Input and output ``[B, T, d_model]``. Parameters:
    ``d_model * H * D`` (q_proj) + ``2 * d_model * Hkv * D`` (k_proj, v_proj) + ``H * D * d_model`` (o_proj)
    + ``2 * D`` with QK-norm; the reductions below change these terms. The attention probabilities
    ``[B, H, Tq, Tk]`` pass through ``attn_probe`` (formed only while a hook is registered there, or with the
    clipped softmax).
    The scores before the mask ``[B, H, Tq, Tk]`` pass through ``score_probe`` (hooking it also forms them) and
    the attention output ``[B, T, H, D]`` before any gate through ``context_probe``; the layer uses each probe's
    output, so a hook may replace it (simulated quantization does).

    Chain-of-Model attention (``n_chains = n > 1``; Song et al. 2025, arXiv 2505.11820, §3.2.1, Algorithm 2): the
    heads are split evenly over the chains (chain c holds heads ``[c H/n, (c+1) H/n)`` and kv heads
    ``[c Hkv/n, (c+1) Hkv/n)``, so GQA pairs each query head with a kv head of its own chain) and q/k/v/o_proj are
    ``ChainLinear``: head group c reads residual chains <= c, and output chain c reads head groups <= c. Each
    projection's ``d_in * d_out`` above becomes ``d_in * d_out * (n + 1) / (2n)``. The paper's CoLM-Air (keys and
    values from the first chain, shared by all) is not offered.

    The reductions of "Reducing the Transformer Architecture to a Minimum" (Bermeitinger et al. 2024, arXiv
    2410.13732; ``gatelab.layers.token._minimum`` says what each computes and why), off by default (d = d_model):
    ``qk_merged``: one ``d x d`` matrix per head, scores ``x_i W_QK^h x_j^T / sqrt(D)``, key = x (no RoPE, no
    QK-norm); q and k cost ``H * d^2``. ``symmetric``: ``W_K = W_Q`` (``n_kv_heads == n_heads``; q and k cost
    ``d * H * D``, QK-norm ``D``), or with qk_merged each ``W_QK^h`` symmetric: ``H * d (d + 1) / 2``.
    ``no_value``: value head j is slice j of x (``n_kv_heads * D == d_model``; no v_proj). ``no_output``: the
    concatenated heads are the output (``n_heads * D == d_model``; no o_proj). Not offered with ``n_chains > 1``.

    Stochastically subsampled self-attention (Hussain et al. 2023, arXiv 2306.01705; ``_ssa.ssa_mask``), a training
    option with no parameters: with ``ssa_rate < 1`` each forward in training mode lets every sample's queries see
    only ``round(ssa_rate * Tk)`` keys drawn anew (shared by its queries and heads; torch's global generator, so
    seeded runs repeat), plus each query's own key (and with ``ssa_pattern='local_random'`` its ``ssa_window``
    nearest keys); causality and padding masks still apply, and the rows stay normalised over the kept keys. It
    takes the materialised path (scores masked before the softmax). Evaluation (``eval()``) attends to every key.
    """

    description = "causal softmax attention (RoPE, GQA, optional QK-norm), KV-cache state"
    paper = ("Vaswani et al. 2017, arXiv 1706.03762; reductions: Bermeitinger et al. 2024, arXiv 2410.13732; SSA: "
             "Hussain et al. 2023, arXiv 2306.01705")
    Config = AttentionConfig
    directions = "both"

    def __init__(self, d_model: int, **options):
        super().__init__()
        cfg = self.configure(d_model, options)
        cfg.n_kv_heads = cfg.n_kv_heads or cfg.n_heads
        cfg.head_dim = resolve_head_dim(d_model, cfg.n_heads, cfg.head_dim)
        require(cfg.n_heads % cfg.n_kv_heads == 0,
                f"n_heads={cfg.n_heads} must be a multiple of n_kv_heads={cfg.n_kv_heads}")
        require(cfg.qk_norm or cfg.qk_norm_eps == 1e-6, f"qk_norm_eps={cfg.qk_norm_eps} has no effect with "
                "qk_norm=False; set qk_norm=True or leave qk_norm_eps at its default")
        require(cfg.rope or cfg.rotary_fraction == 1.0, f"rotary_fraction={cfg.rotary_fraction} has no effect with "
                "rope=False; set rope=True or leave rotary_fraction at its default")
        require(cfg.rope or cfg.rope_scaling is None, "rope_scaling has no effect with rope=False; set rope=True or "
                "leave rope_scaling unset")
        n = cfg.n_chains
        for name, value in (("d_model", d_model), ("n_heads", cfg.n_heads), ("n_kv_heads", cfg.n_kv_heads)):
            require(value % n == 0, f"{name}={value} is not divisible by n_chains={n}: Chain-of-Model attention "
                    "splits the width and the heads evenly over the chains")
        check_reductions(cfg, d_model)
        require(cfg.ssa_rate < 1 or (cfg.ssa_pattern, cfg.ssa_window) == ("unstructured", 16), f"ssa_pattern="
                f"{cfg.ssa_pattern!r}, ssa_window={cfg.ssa_window} have no effect with ssa_rate=1 (no subsampling); "
                "set ssa_rate in (0, 1) or leave them at their defaults")
        require(cfg.ssa_pattern == "local_random" or cfg.ssa_window == 16, f"ssa_window={cfg.ssa_window} has no "
                "effect with ssa_pattern='unstructured'; set ssa_pattern='local_random' or leave ssa_window at 16")
        self.config = cfg
        H, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        if cfg.qk_merged and cfg.symmetric:
            self.q_proj = SymmetricMerged(d_model, H)
        else:
            self.q_proj = self._linear(d_model, H * (d_model if cfg.qk_merged else D), cfg.bias != "none")
        self.k_proj = None if cfg.qk_merged or cfg.symmetric else self._linear(d_model, Hkv * D, cfg.bias != "none")
        self.v_proj = None if cfg.no_value else self._linear(d_model, Hkv * D, cfg.bias != "none")
        self.o_proj = None if cfg.no_output else self._linear(H * D, d_model, cfg.bias == "all")
        self.q_norm = nn.RMSNorm(D, eps=cfg.qk_norm_eps) if cfg.qk_norm else None
        self.k_norm = nn.RMSNorm(D, eps=cfg.qk_norm_eps) if cfg.qk_norm and not cfg.symmetric else None
        self.rope = RotaryEmbedding(D, cfg.rope_base, cfg.rope_scaling, cfg.rotary_fraction) if cfg.rope else None
        self.attn_probe = Probe()
        self.score_probe, self.context_probe = Probe(), Probe()

    window: int | None = None

    def _linear(self, d_in: int, d_out: int, bias: bool = False) -> nn.Module:
        """A projection: ``nn.Linear``, or a ``ChainLinear`` over the chains with ``n_chains > 1``."""
        n = self.config.n_chains
        return nn.Linear(d_in, d_out, bias=bias) if n == 1 else ChainLinear(d_in, d_out, n, bias=bias)

    @property
    def clipped(self) -> bool:
        return self.config.clip_gamma != 0.0 or self.config.clip_zeta != 1.0

    def _gate(self, position: str, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Hook for gated subclasses: ungated attention leaves every tensor as it is."""
        return y

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q ``[B, T, H, D]``, k and v ``[B, T, Hkv, D]``: QK-normed if so configured, then gated at G4/G3/G2 if so
        configured (after the norm, which would otherwise undo a headwise gate on q or k). With ``qk_merged``, q is
        ``[B, T, H, d_model]`` and k is x, ``[B, T, 1, d_model]``."""
        cfg = self.config
        B, T, d = x.shape
        H, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
        q = self.q_proj(x).view(B, T, H, d if cfg.qk_merged else D)                         # (B, T, H, D or d)
        if cfg.qk_merged:
            k = x.unsqueeze(2)                                                             # (B, T, 1, d)
        else:
            if self.q_norm is not None:
                q = self.q_norm(q)
            k = q if cfg.symmetric else self.k_proj(x).view(B, T, Hkv, D)                  # (B, T, Hkv, D)
            if self.k_norm is not None:
                k = self.k_norm(k)
        v = x if self.v_proj is None else self.v_proj(x)
        v = v.view(B, T, Hkv, D)                                                           # (B, T, Hkv, D)
        return self._gate("g4", q, x), self._gate("g3", k, x), self._gate("g2", v, x)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, state: KVCache | None,
               lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache | None]:
        """RoPE at the right positions, the KV cache, and softmax attention: ``o [B, T, H, D]`` and the new cache
        (None when non-causal, where ``lengths [B]`` masks the padded keys)."""
        cfg = self.config
        T = q.shape[1]
        if not cfg.causal and state is not None:
            raise ValueError(f"{type(self).__name__} with causal=False attends to every position and has no "
                             "decoding state")
        offset = 0 if state is None else state.offset
        if self.rope is not None:
            q, k = self.rope(q, offset), self.rope(k, offset)
        if state is None:
            cache = KVCache.wrap(k, v, T) if cfg.causal else None                         # no copy
        else:
            cache = state.append(k, v)                  # written in place into the cache's preallocated tail
            k, v = cache.k, cache.v                                                        # (B, Tk, Hkv, D) views
        window = self.window
        key_mask = None if lengths is None else torch.arange(k.shape[1], device=k.device) < lengths[:, None]
        scale = None
        if cfg.qk_merged:                      # the cache holds x once; each kv head reads it (a view, no copy)
            k, scale = k.expand(-1, -1, cfg.n_kv_heads, -1), cfg.head_dim ** -0.5          # (B, Tk, Hkv, d)
        ssa = self.training and cfg.ssa_rate < 1
        if ssa or self.clipped or self.attn_probe.active or self.score_probe.active:
            scores = self.score_probe(attention_scores(q, k, scale))                       # (B, H, T, Tk)
            if ssa:                                                        # keys left out of this forward's subset
                keep = ssa_mask(q.shape[0], T, k.shape[1], cfg.ssa_rate, cfg.ssa_pattern, cfg.ssa_window, q.device)
                if key_mask is not None:          # a padded query whose kept keys are all padding keeps every key
                    keep = keep | ~(keep & key_mask[:, None, None, :]).any(-1, keepdim=True)
                scores = scores.masked_fill(~keep, float("-inf"))                          # (B, H, T, Tk)
            probs = self.attn_probe(attention_probs(scores, causal=cfg.causal, window=window, gamma=cfg.clip_gamma,
                                                    zeta=cfg.clip_zeta, key_mask=key_mask))
            o = attention_mix(probs, v)                                                    # (B, T, H, D)
        else:
            o, _ = sdpa_attention(q, k, v, scale=scale, causal=cfg.causal, window=window,
                                  key_mask=key_mask)                                       # (B, T, H, D)
        o = self.context_probe(o)
        if window is not None:
            cache = cache.keep_last(window - 1).compact()
        return o, cache

    def forward(self, x: torch.Tensor, state: KVCache | None = None, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, KVCache | None]:
        q, k, v = self.project(x)
        o, cache = self.attend(q, k, v, state, lengths)
        o = self._gate("g1", o, x).flatten(2)                                             # (B, T, H * D)
        y = o if self.o_proj is None else self.o_proj(o)                                   # (B, T, d_model)
        return self._gate("g5", y.unsqueeze(2), x).squeeze(2), cache

    def init_state(self, batch_size: int) -> KVCache:
        c = self.config
        if not c.qk_merged:
            return KVCache.empty(self._param_like(), batch_size, c.n_kv_heads, c.head_dim)
        like = self._param_like()
        return KVCache.wrap(like.new_zeros(batch_size, 0, 1, c.d_model),
                            like.new_zeros(batch_size, 0, c.n_kv_heads, c.head_dim), 0)

    def state_size(self, seq_len: int) -> int:
        c = self.config
        return seq_len * ((c.d_model if c.qk_merged else c.n_kv_heads * c.head_dim) + c.n_kv_heads * c.head_dim)

    def expected_num_params(self) -> int:
        c = self.config
        if c.qk_merged or c.symmetric or c.no_value or c.no_output:  # (not offered with chains)
            kv = c.n_kv_heads * c.head_dim
            return (query_key_params(c, c.d_model) + (0 if c.no_value else c.d_model * kv)
                    + (0 if c.no_output else c.n_heads * c.head_dim * c.d_model)
                    + ((1 if c.symmetric else 2) * c.head_dim if c.qk_norm else 0))
        def lin(d_in: int, d_out: int) -> int:
            return chain_linear_params(d_in, d_out, c.n_chains)
        biases = ((c.n_heads + 2 * c.n_kv_heads) * c.head_dim if c.bias != "none" else 0) + \
            (c.d_model if c.bias == "all" else 0)
        return (lin(c.d_model, c.n_heads * c.head_dim) + 2 * lin(c.d_model, c.n_kv_heads * c.head_dim)
                + lin(c.n_heads * c.head_dim, c.d_model) + (2 * c.head_dim if c.qk_norm else 0) + biases)


@dataclass(kw_only=True)
class GatedAttentionConfig(AttentionConfig):
    """Options of ``gated_attn``: those of ``attn``, with QK-norm on (the paper's Qwen3 models have it, in the
    baseline and in the gated models), plus the gate (``GateOptions``, each field prefixed ``gate_``)."""

    qk_norm: bool = True
    gate_position: Position = "g1"
    gate_kind: Kind = "gate"
    gate_granularity: Granularity = "elementwise"
    gate_sharing: Sharing = "head_specific"
    gate_mode: Mode = "multiplicative"
    gate_activation: Activation = "sigmoid"
    gate_source: Source = "linear"
    gate_init_prob: float | None = None
    gate_scale: float = 0.5
    gate_norm_eps: float = 1e-6

    RANGES: ClassVar[dict[str, str]] = {**AttentionConfig.RANGES,
                                        **{"gate_" + name: r for name, r in GateOptions.RANGES.items()}}

    def gate_options(self) -> GateOptions:
        fields = {f.name: getattr(self, "gate_" + f.name) for f in dataclasses.fields(GateOptions)}
        return from_dict(GateOptions, fields, where="gated_attn.gate")


@MIXERS.register("gated_attn")
class GatedAttention(SoftmaxAttention):
    """Softmax attention with a gate (Qiu et al. 2025, "Gated Attention for LLMs", arXiv 2505.06708).

    Default: G1, elementwise, head-specific, sigmoid, multiplicative, with QK-norm (eps 1e-6), as the paper's
    Qwen3 models and Qwen3-Next: ``o_proj(SDPA(q, k, v) * sigmoid(x W_g))``. Every variant of ``GateOptions`` is
    available, including the conditional per-head gate of Quantizable Transformers (``gate_source='per_head'``,
    ``gate_granularity='headwise'``, ``gate_init_prob=pi_init``; that paper's models have no QK-norm:
    ``qk_norm=False``) and the paper's controls in place of the gate: ``gate_kind='rmsnorm'`` (SDPA-RMSNorm),
    ``'silu'`` (SDPA-SiLU), ``'scale'`` (``gate_scale`` times the output), and the input-independent gate
    ``gate_source='constant'``. Parameters: those of ``attn`` (with QK-norm: ``+ 2 * D``) plus the gate's, whose
    target at G1/G4 is ``H x D``, at G2/G3 ``Hkv x D``, at G5 ``1 x d_model`` (``n x d``): e.g. elementwise G1
    adds ``d_model * H * D`` and headwise G1 adds ``d_model * H`` (``AttentionGate``); ``rmsnorm`` adds ``d``,
    ``silu`` and ``scale`` add nothing (``GateControl``). The gate scores (the scale's constant) pass through
    ``gate.probe``.

    With ``n_chains > 1`` (Chain-of-Model attention, see ``SoftmaxAttention``; gating it is our combination, the
    Chain-of-Model paper has no gate) a linear gate's projection is a ``ChainLinear``, so the gate of chain c's
    heads (of chain c's channels at G5) reads chains <= c (``d_model * n * w`` above becomes
    ``d_model * n * w * (k + 1) / (2k)`` for k chains). Gates that would mix chains are refused: scores from x
    shared by the heads of several chains (``gate_sharing='head_shared'``, or headwise at G5), and the
    SDPA-RMSNorm control at G5 (one norm over all channels).
    """

    description = "softmax attention with an output gate (G1..G5, elementwise/headwise, ...)"
    paper = ("Qiu et al. 2025, arXiv 2505.06708; Bondarenko et al. 2023, arXiv 2306.12929; SSA: Hussain et al. 2023, "
             "arXiv 2306.01705")
    Config = GatedAttentionConfig

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, **options)
        opts = self.config.gate_options()
        c = self.config
        shared = [name for name in ("qk_merged", "symmetric") if getattr(c, name)]
        require(not (shared and opts.position in ("g3", "g4")), f"gated_attn with "
                f"{', '.join(shared)}: a gate at gate_position={opts.position!r} acts on a query or key the reduced "
                "form does not have (or would make the similarity asymmetric); use g1, g2 or g5")
        n, d = {"g1": (c.n_heads, c.head_dim), "g4": (c.n_heads, c.head_dim), "g2": (c.n_kv_heads, c.head_dim),
                "g3": (c.n_kv_heads, c.head_dim), "g5": (1, d_model)}[opts.position]
        self.gate = build_gate(d_model, n, d, opts)
        if c.n_chains > 1:
            self._chain_gate(n * (d if opts.granularity == "elementwise" else 1))

    def _chain_gate(self, width: int) -> None:
        """Chain-of-Model: refuse a gate that mixes chains; make a linear gate's projection ``[d_model -> width]``
        a ChainLinear (its bias, if any, keeps the gate's initial value)."""
        opts, n = self.gate.opts, self.config.n_chains
        shared = opts.sharing == "head_shared" or (opts.position == "g5" and opts.granularity == "headwise")
        require(not (opts.kind == "gate" and opts.source != "constant" and shared),
                f"gated_attn with n_chains={n}: gate_sharing={opts.sharing!r}, gate_granularity="
                f"{opts.granularity!r} at gate_position={opts.position!r} gives heads (channels) of several chains "
                "one score computed from all chains; use gate_sharing='head_specific' (elementwise at g5) or "
                "gate_source='constant'")
        require(not (opts.kind == "rmsnorm" and opts.position == "g5"), f"gated_attn with n_chains={n}: "
                "gate_kind='rmsnorm' at gate_position='g5' normalises all chains together; use another position")
        if opts.kind == "gate" and opts.source == "linear":
            proj = self._linear(self.config.d_model, width, bias=opts.init_prob is not None)
            if proj.bias is not None:
                with torch.no_grad():
                    proj.bias.copy_(self.gate.proj.bias)
            self.gate.proj = proj

    def _gate(self, position: str, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.gate(y, x) if position == self.gate.opts.position else y

    def expected_num_params(self) -> int:
        c, gate = self.config, self.gate.expected_num_params(self.config.d_model)
        if isinstance(getattr(self.gate, "proj", None), ChainLinear):  # d_model * n * w becomes its chain count
            out = self.gate.n * self.gate.width
            gate += chain_linear_params(c.d_model, out, c.n_chains) - c.d_model * out
        return super().expected_num_params() + gate


@dataclass(kw_only=True)
class SlidingWindowConfig(AttentionConfig):
    """Options of ``swa``: those of ``attn`` plus ``window``, the number of positions each query sees
    (itself included)."""

    window: int = 64

    RANGES: ClassVar[dict[str, str]] = {**AttentionConfig.RANGES, "window": "[1, inf)"}


@MIXERS.register("swa")
class SlidingWindowAttention(SoftmaxAttention):
    """Sliding-window softmax attention (Beltagy et al. 2020, arXiv 2004.05150; as in Based and Liger): causal
    attention over the last ``window`` positions only, so the KV cache stays at ``window - 1`` tokens.
    Parameters: those of ``attn``. Causal only: a bidirectional model runs it as a forward and a reverse scan."""

    description = "sliding-window softmax attention: a KV cache of fixed size"
    paper = "Beltagy et al. 2020, arXiv 2004.05150"
    Config = SlidingWindowConfig
    directions = "causal"

    def __init__(self, d_model: int, **options):
        super().__init__(d_model, **options)
        require(self.config.causal, f"{type(self).__name__}: causal=False is not offered (a bidirectional model "
                "runs this mixer as a forward and a reverse scan)")
        self.window = self.config.window

    def state_size(self, seq_len: int) -> int:
        return 2 * min(seq_len, self.window - 1) * self.config.n_kv_heads * self.config.head_dim
