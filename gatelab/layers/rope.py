"""Rotary position embedding (Su et al. 2021, RoFormer), rotate-half layout as in LLaMA, optionally on a leading
fraction of each head's dims only (partial rotary, as Qwen3-Next's ``partial_rotary_factor``), with optional
context-extension scaling: linear position interpolation (Chen et al. 2023, arXiv 2306.15595), NTK-aware (a larger
base), Llama 3.1's per-frequency interpolation, and YaRN (Peng et al. 2023, arXiv 2309.00071: per-frequency
interpolation plus an attention temperature)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ..config import ConfigError, check_ranges

SCALINGS = ("linear", "ntk", "llama3", "yarn")


@dataclass(frozen=True)
class RopeScaling:
    """How to run a RoPE model beyond its training length ``original_max_len``, by ``factor`` (>= 1).

    ``linear``: every frequency divided by ``factor`` (position interpolation; transformers' ``linear``).
    ``ntk``: base becomes ``base * factor^(D / (D - 2))`` (NTK-aware scaling). ``llama3`` (Llama 3.1): frequencies
    whose wavelength is below ``original_max_len / high_freq_factor`` keep their value, those above
    ``original_max_len / low_freq_factor`` are divided by ``factor``, and in between they are mixed with weight
    ``s = (original_max_len / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)`` on the kept
    value. ``yarn``: frequencies whose wavelength fits ``original_max_len`` more than ``beta_fast`` times keep their
    value, those fitting fewer than ``beta_slow`` times are divided by ``factor``, a linear ramp in between; cos and
    sin are multiplied by ``attention_factor``, by default ``0.1 ln(factor) + 1`` (so the logits by its square).
    All are the identity at factor 1 (yarn with the default attention factor). Options of another kind than the
    one chosen must keep their defaults."""

    kind: Literal["linear", "ntk", "llama3", "yarn"]
    factor: float
    original_max_len: int
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    attention_factor: float | None = None

    RANGES: ClassVar[dict[str, str]] = {"factor": "[1, inf)", "original_max_len": "[1, inf)",
                                        "beta_fast": "(0, inf)", "beta_slow": "(0, inf)",
                                        "low_freq_factor": "(0, inf)", "high_freq_factor": "(0, inf)",
                                        "attention_factor": "(0, inf)"}

    def __post_init__(self) -> None:
        if self.kind not in SCALINGS:
            raise ConfigError(f"rope_scaling.kind={self.kind!r} is not a RoPE scaling; choose one of "
                              f"{', '.join(SCALINGS)}")
        check_ranges(self, "rope_scaling")

    def check(self) -> None:
        """Options only the chosen kind reads must keep their defaults; llama3 and yarn need ordered bounds."""
        own = {"llama3": ("low_freq_factor", "high_freq_factor"),
               "yarn": ("beta_fast", "beta_slow", "attention_factor")}
        defaults = {"beta_fast": 32.0, "beta_slow": 1.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "attention_factor": None}
        for kind, names in own.items():
            for name in names:
                if kind != self.kind and getattr(self, name) != defaults[name]:
                    raise ConfigError(f"rope_scaling.{name}={getattr(self, name)} applies to kind {kind!r} only; "
                                      f"this is kind {self.kind!r} (leave it at {defaults[name]})")
        if self.kind == "llama3" and self.high_freq_factor <= self.low_freq_factor:
            raise ConfigError(f"rope_scaling: high_freq_factor={self.high_freq_factor} must exceed "
                              f"low_freq_factor={self.low_freq_factor}")
        if self.kind == "yarn" and self.beta_fast <= self.beta_slow:
            raise ConfigError(f"rope_scaling: beta_fast={self.beta_fast} must exceed beta_slow={self.beta_slow}")


def _yarn_correction_dim(rotations: float, dim: int, base: float, max_len: int) -> float:
    """The frequency index whose wavelength fits ``max_len`` exactly ``rotations`` times."""
    return dim * math.log(max_len / (rotations * 2 * math.pi)) / (2 * math.log(base))


def _llama3(inv_freq: torch.Tensor, s: RopeScaling) -> torch.Tensor:
    """Llama 3.1's frequencies ``[D/2]`` from the unscaled ones (see ``RopeScaling``)."""
    wavelength = 2 * math.pi / inv_freq                                                   # (D/2,)
    low_wavelength = s.original_max_len / s.low_freq_factor      # longer waves: interpolated by factor
    high_wavelength = s.original_max_len / s.high_freq_factor    # shorter waves: kept
    smooth = (s.original_max_len / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    mixed = (1 - smooth) * inv_freq / s.factor + smooth * inv_freq                        # (D/2,)
    out = torch.where(wavelength > low_wavelength, inv_freq / s.factor, mixed)
    return torch.where(wavelength < high_wavelength, inv_freq, out)


def rope_frequencies(head_dim: int, base: float, scaling: RopeScaling | None, dtype: torch.dtype,
                     device: torch.device | None = None) -> tuple[torch.Tensor, float]:
    """``inv_freq [D/2]`` for a head whose ``D = head_dim`` dims all rotate (pass the rotary dim for a partial
    rotary), and the factor applied to cos and sin."""
    half = head_dim // 2
    idx = torch.arange(half, device=device, dtype=dtype)                                 # (D/2,)
    plain = base ** (-idx / half)                                                         # (D/2,)
    if scaling is None or (scaling.factor == 1.0 and scaling.attention_factor is None):
        return plain, 1.0
    if scaling.kind == "linear":
        return plain / scaling.factor, 1.0
    if scaling.kind == "llama3":
        return _llama3(plain, scaling), 1.0
    if scaling.kind == "ntk":  # a 2-dim head has the one frequency base^0 = 1, whatever the base
        exponent = head_dim / (head_dim - 2) if head_dim > 2 else 0.0
        return (base * scaling.factor ** exponent) ** (-idx / half), 1.0
    interpolated = plain / scaling.factor
    low = max(math.floor(_yarn_correction_dim(scaling.beta_fast, head_dim, base, scaling.original_max_len)), 0)
    high = min(math.ceil(_yarn_correction_dim(scaling.beta_slow, head_dim, base, scaling.original_max_len)),
               head_dim - 1)
    ramp = ((idx - low) / max(high - low, 1e-3)).clamp(0, 1)                              # 0: keep, 1: interpolate
    attention = scaling.attention_factor
    if attention is None:
        attention = 0.1 * math.log(scaling.factor) + 1.0
    return plain * (1 - ramp) + interpolated * ramp, attention


def rotary_dim(head_dim: int, fraction: float) -> int:
    """The number of leading dims of a head that rotate: ``int(head_dim * fraction)`` (as transformers' partial
    rotary), which must be even and at least 2; ``fraction`` in (0, 1]."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"rotary_fraction must lie in (0, 1]; got {fraction}")
    dim = int(head_dim * fraction)
    if dim < 2 or dim % 2:
        raise ConfigError(f"rotary_fraction={fraction} of head_dim={head_dim} rotates {dim} dims; RoPE needs an "
                          "even number of at least 2 (choose the fraction or head_dim accordingly)")
    return dim


class RotaryEmbedding(nn.Module):
    """Rotates pairs ``(x_i, x_{i + R/2})``, ``i < R/2``, of each head by angle ``pos * base^(-2i/R)``, where
    ``R = rotary_dim(D, rotary_fraction)`` (``R = D`` by default), or ``R = rotary_dims`` when that integer is
    given (even, in [2, D]; exact where a fraction times D would round down); dims ``R .. D-1`` pass unchanged.
    Qwen3-Next rotates the first quarter of each head (``rotary_fraction=0.25``), as transformers'
    ``apply_rotary_pos_emb`` with ``partial_rotary_factor``: frequencies, and YaRN's correction range, are those of
    an R-dim head.

    ``forward(x, offset)`` takes ``[B, T, H, D]`` at absolute positions ``offset .. offset + T - 1``.
    No parameters; angles are computed in float32 (float64 for float64 inputs). ``scaling`` (None by default)
    selects a context-extension method for evaluation beyond the training length.
    """

    def __init__(self, head_dim: int, base: float = 10000.0, scaling: RopeScaling | None = None,
                 rotary_fraction: float = 1.0, rotary_dims: int | None = None):
        super().__init__()
        if rotary_dims is None:
            self.rotary_dim = rotary_dim(head_dim, rotary_fraction)
        elif rotary_fraction != 1.0:
            raise ConfigError("give RotaryEmbedding either rotary_fraction or rotary_dims, not both")
        elif not (2 <= rotary_dims <= head_dim and rotary_dims % 2 == 0):
            raise ConfigError(f"rotary_dims={rotary_dims} of head_dim={head_dim}: RoPE needs an even number of "
                              "dims, at least 2 and at most head_dim")
        else:
            self.rotary_dim = rotary_dims
        self.head_dim, self.base, self.scaling = head_dim, base, scaling

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        ct = torch.float64 if x.dtype == torch.float64 else torch.float32
        R = self.rotary_dim
        inv_freq, factor = rope_frequencies(R, self.base, self.scaling, ct, x.device)     # (R/2,)
        pos = torch.arange(offset, offset + x.shape[1], device=x.device, dtype=ct)      # (T,)
        angles = pos.unsqueeze(1) * inv_freq                                              # (T, R/2)
        cos = (angles.cos() * factor)[None, :, None, :]                                  # (1, T, 1, R/2)
        sin = (angles.sin() * factor)[None, :, None, :]
        xc = x.to(ct)
        x1, x2 = xc[..., :R // 2], xc[..., R // 2:R]                                      # (B, T, H, R/2)
        rotated = [x1 * cos - x2 * sin, x2 * cos + x1 * sin]
        return torch.cat(rotated + [xc[..., R:]], dim=-1).to(x.dtype)                   # (B, T, H, D)
