"""ProbSparse self-attention, reference form: one query at a time, with Python lists and the counts re-derived with
``math``. Slow; for tests at tiny sizes. The keys each query samples come from ``sampling.sample_keys`` (the
definition of the sample, not part of what is checked).

Legend: B batch, L length, H heads, D head dim.
"""
from __future__ import annotations

import math

import torch

from .fast import Lazy, MeanOver, Selection
from .sampling import sample_keys


def _samples(n: int, factor: int) -> int:
    return min(n, max(1, factor * math.ceil(math.log(n))))


def _active(n: int, factor: int) -> int:
    return min(n, factor * math.ceil(math.log(n)))


def measure_reference(q: torch.Tensor, k: torch.Tensor, keys: list[int], denom: int) -> torch.Tensor:
    """Informer's sparsity measurement of one query ``q [D]`` from the sampled ``keys`` (indices into
    ``k [L, D]``): the largest sampled score minus the sum of the sampled scores over ``denom``."""
    scores = [torch.dot(q, k[j]) for j in keys]
    return max(scores) - sum(scores) / denom


def probsparse_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, factor: int = 5,
                         causal: bool = True, selection: Selection = "online", mean_over: MeanOver = "keys",
                         lazy: Lazy = "mean", seed: int = 0, lengths: list[int] | None = None) -> torch.Tensor:
    """``o [B, L, H, D]`` from q, k, v ``[B, L, H, D]``, the options of ``probsparse_attention`` (whole
    sequences, no cache). Pad positions (at or after ``lengths[b]``, informer rule) output the lazy value."""
    B, L, H, D = q.shape
    out = torch.zeros_like(v)
    for b in range(B):
        n = L if lengths is None or selection == "online" else lengths[b]
        for h in range(H):
            qs, ks, vs = q[b, :, h], k[b, :n, h], v[b, :n, h]                           # (L, D), (n, D), (n, D)
            measures = []
            for t in range(n):
                pool = t + 1 if selection == "online" else n    # the keys query t samples from
                count = _samples(pool, factor)
                keys = sample_keys(seed, torch.tensor([t]), torch.tensor([[pool]]), count)[0].tolist()
                measures.append(measure_reference(qs[t], ks, keys, pool if mean_over == "keys" else count))
            if selection == "online":
                active = {t for t in range(n)
                          if sum(measures[s] > measures[t] for s in range(t)) < _active(t + 1, factor)}
            else:
                ranked = sorted(range(n), key=lambda t: -measures[t])
                active = set(ranked[:_active(n, factor)])
            for t in range(n):
                seen = range(t + 1) if causal else range(n)
                if t in active:
                    weights = torch.softmax(torch.stack([torch.dot(qs[t], ks[j]) for j in seen]) * D ** -0.5, 0)
                    out[b, t, h] = sum(w * vs[j] for w, j in zip(weights, seen, strict=True))
                elif causal:
                    total = sum(vs[j] for j in seen)
                    out[b, t, h] = total / len(seen) if lazy == "mean" else total
                else:
                    out[b, t, h] = sum(vs[j] for j in seen) / n
    return out
