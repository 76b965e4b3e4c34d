"""The measurements of ``gatelab analyze``, each an accumulator over evaluation batches.

- F-Attn (attention sink, Qiu et al. 2025): attention probability on the first key, mean over heads and query
  positions 1.. (position 0 attends only to itself), per layer; overall = mean over layers.
- M-Act (massive activations): max |h| of each block's output hidden state over the data, per layer; overall =
  mean over layers; also max / median |h| (the median averaged over batches).
- Gate score: mean value of every gate a mixer exposes through a probe (sigmoid gates: lower = sparser), with a
  sample of values for histograms.
- Outliers (Bondarenko et al. 2023, their ``validate_clm.py``): per sample, the output flattened over (T, d);
  infinity norm ``max |x|`` and kurtosis ``mean((x - mu)^4) / (std(x)^4 + 1e-6)`` (unbiased std), averaged over
  samples per module; max infinity norm over modules, mean and max kurtosis over modules. Also per sample the
  infinity norm over the median ``|x|`` of the nonzero entries (how far the largest value stands above a typical
  one, the resolution that a min-max quantization range costs: about 6 for a Gaussian sample of 16k values, 15
  for a Laplace one; exact zeros, which quantize exactly, are left out), averaged over samples, and its max over
  modules.
- Uniform attention reference: the F-Attn of attention spread evenly over each query's prefix, the floor above
  which attention on the first token is a sink.
"""
from __future__ import annotations

from collections import defaultdict

import torch


def inf_norm(x: torch.Tensor) -> torch.Tensor:
    """Per sample: ``max |x|`` over everything but the batch dimension. ``x [B, ...]`` -> ``[B]``."""
    return x.flatten(1).abs().amax(dim=1)


def kurtosis(x: torch.Tensor) -> torch.Tensor:
    """Per sample: ``mean((x - mu)^4) / (std^4 + 1e-6)`` over everything but the batch dimension (unbiased std,
    as in the Quantizable Transformers code). A Gaussian gives about 3. ``x [B, ...]`` -> ``[B]``."""
    flat = x.flatten(1).double()                                     # (B, N)
    centred = flat - flat.mean(dim=1, keepdim=True)
    return centred.pow(4).mean(dim=1) / (flat.std(dim=1).pow(4) + 1e-6)


def uniform_f_attn(seq_len: int) -> float:
    """F-Attn of uniform causal attention over ``seq_len`` positions: query t (1..T-1) puts ``1 / (t + 1)`` on
    token 0; the mean over those queries."""
    if seq_len < 2:
        raise ValueError(f"F-Attn needs at least 2 positions; got seq_len={seq_len}")
    return sum(1 / (t + 1) for t in range(1, seq_len)) / (seq_len - 1)


def peak_over_median(x: torch.Tensor) -> torch.Tensor:
    """Per sample: ``max |x|`` over the median of the nonzero ``|x|`` (0 for a sample of zeros). ``[B, ...]`` ->
    ``[B]``."""
    a = x.flatten(1).abs().double()                                    # (B, N)
    median = a.masked_fill(a == 0, float("nan")).nanmedian(dim=1).values
    return (a.amax(dim=1) / median).nan_to_num(nan=0.0)


class SinkMeter:
    """F-Attn per attention layer, from the probes' probabilities ``[B, H, Tq, Tk]``."""

    def __init__(self):
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def __call__(self, name: str, probs: torch.Tensor) -> None:
        first = probs[:, :, 1:, 0]                                   # (B, H, Tq - 1): mass on key 0
        self.total[name] += first.sum().item()
        self.count[name] += first.numel()

    def result(self) -> dict[str, float]:
        return {n: self.total[n] / self.count[n] for n in self.total}


class ActivationMeter:
    """M-Act per block: running max |h| and the mean over batches of median |h|."""

    def __init__(self):
        self.max: dict[str, float] = defaultdict(float)
        self.medians: dict[str, list[float]] = defaultdict(list)

    def __call__(self, name: str, h: torch.Tensor) -> None:
        a = h.abs().float()
        self.max[name] = max(self.max[name], a.max().item())
        self.medians[name].append(a.median().item())

    def result(self) -> dict[str, dict[str, float]]:
        out = {}
        for n in self.max:
            median = sum(self.medians[n]) / len(self.medians[n])
            out[n] = {"max": self.max[n], "median": median, "max_over_median": self.max[n] / max(median, 1e-12)}
        return out


class GateMeter:
    """Mean of every gate probe's values, and up to ``keep`` values per probe for a histogram."""

    def __init__(self, keep: int = 20000, seed: int = 0):
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self.samples: dict[str, list[torch.Tensor]] = defaultdict(list)
        self.keep = keep
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, name: str, scores: torch.Tensor) -> None:
        s = scores.float().flatten()
        self.total[name] += s.sum().item()
        self.count[name] += s.numel()
        have = sum(t.numel() for t in self.samples[name])
        if have < self.keep:
            pick = torch.randperm(s.numel(), generator=self.generator)[: self.keep - have]
            self.samples[name].append(s[pick])

    def result(self) -> dict[str, float]:
        return {n: self.total[n] / self.count[n] for n in self.total}

    def values(self, name: str) -> torch.Tensor:
        return torch.cat(self.samples[name])


class OutlierMeter:
    """Infinity norm and kurtosis per sample, averaged over samples, for each hooked module."""

    def __init__(self):
        self.norm: dict[str, float] = defaultdict(float)
        self.kurt: dict[str, float] = defaultdict(float)
        self.ratio: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def __call__(self, name: str, x: torch.Tensor) -> None:
        norms = inf_norm(x)
        self.norm[name] += norms.sum().item()
        self.kurt[name] += kurtosis(x).sum().item()
        self.ratio[name] += peak_over_median(x).sum().item()
        self.count[name] += x.shape[0]

    def result(self) -> dict[str, dict[str, float]]:
        return {n: {"inf_norm": self.norm[n] / self.count[n], "kurtosis": self.kurt[n] / self.count[n],
                    "inf_over_median": self.ratio[n] / self.count[n]} for n in self.norm}
