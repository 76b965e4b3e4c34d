"""ProbSparse self-attention (Informer, Zhou et al. 2021, arXiv 2012.07436), fast form: the sampled measurement in
blocks of queries, the active queries gathered into one small attention, the lazy queries' values by a (cumulative)
mean. The math and the two selection rules are in README.md; ``ref.py`` is the readable reference.

Legend: B batch, Tq queries (the last Tq positions of the Tk keys), H heads, D head dim, U sampled keys per query,
n active queries (padded to the most any head has).
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from .sampling import n_active, n_samples, sample_keys

Selection = Literal["online", "informer"]
MeanOver = Literal["keys", "samples"]
Lazy = Literal["mean", "sum"]

BLOCK_ELEMENTS = 1 << 20  # elements of one block of gathered keys


def sparsity_measure(q: torch.Tensor, k: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor,
                     denom: torch.Tensor) -> torch.Tensor:
    """``M_i = max_j q_i . k_{idx_ij} - (sum_j q_i . k_{idx_ij}) / denom_i`` over the valid samples j (unscaled, as
    Informer's ``_prob_QK``; a positive scale would not change any ranking).

    q ``[B, H, Tq, D]``, k ``[B, H, Tk, D]``, idx and valid ``[B or 1, Tq, U]`` (int64 indices into Tk, bool),
    denom ``[B or 1, Tq]``. Returns ``M [B, H, Tq]``. Computed in blocks of queries so that the gathered keys
    ``[B, H, block, U, D]`` stay bounded."""
    B, H, Tq, D = q.shape
    U = idx.shape[-1]
    block = max(1, BLOCK_ELEMENTS // max(1, B * H * U * D))
    out = []
    for a in range(0, Tq, block):
        i, ok = idx[:, a:a + block], valid[:, None, a:a + block]                          # (B', C, U), (B', 1, C, U)
        C = i.shape[1]
        ks = k.gather(2, i.reshape(i.shape[0], 1, C * U, 1).expand(B, H, C * U, D)).view(B, H, C, U, D)
        s = torch.einsum("bhcd,bhcud->bhcu", q[:, :, a:a + block], ks)                    # (B, H, C, U)
        top = s.masked_fill(~ok, float("-inf")).amax(-1)                                  # (B, H, C)
        total = s.masked_fill(~ok, 0.0).sum(-1)                                           # (B, H, C)
        out.append(top - total / denom[:, None, a:a + block])
    return torch.cat(out, 2)                                                              # (B, H, Tq)


def select_informer(m: torch.Tensor, n: torch.Tensor, factor: int) -> torch.Tensor:
    """Informer's rule: the top ``u(n_b) = min(n_b, c ceil(ln n_b))`` queries by ``m [B, H, T]`` among the first
    ``n_b`` (``n [B]``, the real length) of each sequence. Returns the active mask ``[B, H, T]``."""
    T = m.shape[-1]
    real = torch.arange(T, device=m.device) < n[:, None]                                 # (B, T)
    u = n_active(n, factor)                                                               # (B,)
    top = m.masked_fill(~real[:, None], float("-inf")).topk(int(u.max()), dim=-1).indices  # (B, H, umax), sorted
    keep = (torch.arange(top.shape[-1], device=m.device) < u[:, None])[:, None].expand_as(top)
    return torch.zeros_like(m, dtype=torch.bool).scatter(-1, top, keep)


def select_online(measures: torch.Tensor, Tq: int, factor: int) -> torch.Tensor:
    """The causal rule: the query at position p is active when fewer than ``u(p + 1)`` earlier queries measured
    strictly more, i.e. it is among the top ``u(p + 1)`` of the ``p + 1`` queries seen so far. ``measures
    [B, H, Tk]`` holds every query's M (the earlier ones from the decoding state); returns the mask of the last Tq
    ``[B, H, Tq]``."""
    pos = torch.arange(measures.shape[-1] - Tq, measures.shape[-1], device=measures.device)  # (Tq,)
    return earlier_greater(measures, Tq) < n_active(pos + 1, factor)


def earlier_greater(measures: torch.Tensor, Tq: int) -> torch.Tensor:
    """``#{s < p : m_s > m_p}`` ``[B, H, Tq]`` for the last Tq positions p of ``measures [B, H, Tk]``, in
    ``Tq (Tk / S) log S + Tq S`` steps rather than ``Tq Tk`` comparisons: the positions in blocks of
    ``S = 2 isqrt(Tk)``; each whole block before p's own is sorted once and searched (``S`` minus the entries
    <= m_p), p's own block is compared entry by entry."""
    B, H, Tk = measures.shape
    S = 2 * math.isqrt(Tk)
    nb = -(-Tk // S)
    blocks = F.pad(measures, (0, nb * S - Tk), value=float("-inf")).view(B, H, nb, S)     # (B, H, nb, S)
    pos = torch.arange(Tk - Tq, Tk, device=measures.device)                               # (Tq,)
    m = measures[..., Tk - Tq:]                                                           # (B, H, Tq)
    at_most = torch.searchsorted(blocks.sort(-1).values, m[:, :, None].expand(B, H, nb, Tq).contiguous(),
                                 right=True)                                              # (B, H, nb, Tq)
    whole_before = torch.arange(nb, device=m.device)[:, None] < (pos // S)                 # (nb, Tq)
    ranks = ((S - at_most) * whole_before).sum(2)                                         # (B, H, Tq)
    own = blocks[:, :, pos // S]                                                          # (B, H, Tq, S)
    earlier = (pos // S * S)[:, None] + torch.arange(S, device=m.device) < pos[:, None]   # (Tq, S)
    return ranks + ((own > m[..., None]) & earlier).sum(-1)


def lazy_values(v: torch.Tensor, Tq: int, causal: bool, lazy: Lazy, n: torch.Tensor | None) -> torch.Tensor:
    """What a lazy query outputs, ``[B, H, Tq, D]`` from v ``[B, H, Tk, D]``: the mean of the real values
    (``causal=False``; ``n [B]`` real lengths), or the cumulative ``lazy='mean'`` (``sum_{j<=p} v_j / (p + 1)``)
    or Informer's cumulative ``'sum'`` (``sum_{j<=p} v_j``) at position p."""
    Tk = v.shape[2]
    if not causal:
        return (v.sum(2, keepdim=True) / n[:, None, None, None]).expand(-1, -1, Tq, -1)  # pads were zeroed
    total = v.cumsum(2)[:, :, Tk - Tq:]                                                  # (B, H, Tq, D)
    if lazy == "sum":
        return total
    pos = torch.arange(Tk - Tq + 1, Tk + 1, device=v.device, dtype=v.dtype)             # (Tq,)
    return total / pos[:, None]


def attend_active(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, active: torch.Tensor, base: torch.Tensor,
                  causal: bool, n: torch.Tensor | None, scale: float) -> torch.Tensor:
    """``base [B, H, Tq, D]`` with the rows of the active queries (``active [B, H, Tq]``) replaced by their softmax
    attention over the keys they see (``j <= p``; without causal ``j < n_b``)."""
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    count = active.sum(-1)                                                                # (B, H)
    order = torch.argsort((~active).to(torch.int8), dim=-1, stable=True)[..., :int(count.max())]  # (B, H, n)
    slot_ok = torch.arange(order.shape[-1], device=q.device) < count[..., None]          # (B, H, n)
    qa = q.gather(2, order[..., None].expand(-1, -1, -1, D))                             # (B, H, n, D)
    keys = torch.arange(Tk, device=q.device)
    sees = keys <= (order + Tk - Tq)[..., None] if causal else (keys < n[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(qa, k, v, attn_mask=sees, scale=scale)          # (B, H, n, D)
    target = torch.where(slot_ok, order, Tq)                                              # unused slots: a spare row
    spare = torch.cat([base, base.new_zeros(B, H, 1, D)], 2)                             # (B, H, Tq + 1, D)
    return spare.scatter(2, target[..., None].expand(-1, -1, -1, D), out.to(base.dtype))[:, :, :Tq]


def probsparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, factor: int = 5,
                         causal: bool = True, selection: Selection = "online", mean_over: MeanOver = "keys",
                         lazy: Lazy = "mean", seed: int = 0, lengths: torch.Tensor | None = None,
                         past_measures: torch.Tensor | None = None, scale: float | None = None,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """ProbSparse self-attention.

    Args:
        q: ``[B, Tq, H, D]``, the last Tq positions of k, v ``[B, Tk, H, D]`` (``Tq < Tk`` only when decoding
            with the online rule: the first ``Tk - Tq`` keys and values come from the cache).
        factor: Informer's c: ``U = c ceil(ln n)`` sampled keys per query, ``u = c ceil(ln n)`` active queries.
        causal: keys after a query's position are masked; lazy queries get the cumulative value.
        selection: ``'online'`` (causal only; continues across calls) or ``'informer'`` (top-u of the whole
            sequence; the query measured against keys sampled from the whole sequence even when causal).
        mean_over: the measurement's mean divides the sampled sum by the number of ``'keys'`` (Informer's code)
            or of ``'samples'`` (the sample mean).
        lazy: with causal, the lazy value is the cumulative ``'mean'`` or Informer's cumulative ``'sum'``.
        seed: picks the sampled keys (``sampling.sample_keys``).
        lengths: ``[B]`` int64 real lengths of right-padded sequences (informer rule): pads are never sampled,
            selected or attended to, and lazy means are over the real values. The online rule is causal, so
            right padding never reaches a real position and ``lengths`` changes nothing.
        past_measures: ``[B, H, Tk - Tq]``, the measurements of the cached queries (online rule).
        scale: of the attention scores; default ``D ** -0.5``.

    Returns:
        ``o [B, Tq, H, D]`` and the measurements ``[B, H, Tk]`` of every query (the online rule's next
        ``past_measures``). No gradient flows through the (discrete) selection.
    """
    B, Tq, H, D = q.shape
    Tk = k.shape[1]
    if selection == "online" and not causal:
        raise ValueError("probsparse_attention: selection='online' is causal; use selection='informer'")
    if selection == "informer" and (Tq != Tk or past_measures is not None):
        raise ValueError("probsparse_attention: selection='informer' selects among the whole sequence; it needs "
                         "Tq == Tk and no past measurements")
    if (Tk - Tq) != (0 if past_measures is None else past_measures.shape[-1]):
        raise ValueError(f"probsparse_attention: {Tk - Tq} cached keys need as many past measurements")
    if lengths is not None and (lengths.shape != (B,) or lengths.min() < 1 or lengths.max() > Tk):
        raise ValueError(f"probsparse_attention: lengths must be [B] = [{B}] integers in [1, {Tk}]")
    scale = D ** -0.5 if scale is None else scale
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))                                  # (B, H, T, D)
    pos = torch.arange(Tk - Tq, Tk, device=q.device)                                     # (Tq,)
    if selection == "online":
        n = None
        U = n_samples(pos + 1, factor)                                                    # (Tq,)
        idx = sample_keys(seed, pos, (pos + 1)[:, None], int(U.max()))[None]             # (1, Tq, Umax)
        valid = (torch.arange(idx.shape[-1], device=q.device) < U[:, None])[None]         # (1, Tq, Umax)
        denom = (pos + 1 if mean_over == "keys" else U)[None]                            # (1, Tq)
    else:
        n = lengths if lengths is not None else torch.full((B,), Tk, device=q.device)    # (B,)
        U = n_samples(n, factor)                                                          # (B,)
        idx = sample_keys(seed, pos, n[:, None, None], int(U.max()))                     # (B, Tq, Umax)
        valid = (torch.arange(idx.shape[-1], device=q.device) < U[:, None, None]).expand_as(idx)
        denom = (n if mean_over == "keys" else U)[:, None].expand(B, Tq)                 # (B, Tq)
    if lengths is not None and n is not None:  # zero the pads: nothing of theirs may reach a real position
        pad = (torch.arange(Tk, device=q.device) >= n[:, None])[:, None, :, None]         # (B, 1, Tk, 1)
        kt, vt = kt.masked_fill(pad, 0.0), vt.masked_fill(pad, 0.0)
    with torch.no_grad():
        m = sparsity_measure(qt, kt, idx, valid, denom.to(q.dtype))                      # (B, H, Tq)
    if selection == "online":
        measures = m if past_measures is None else torch.cat([past_measures.to(m.dtype), m], -1)  # (B, H, Tk)
        active = select_online(measures, Tq, factor)
    else:
        measures, active = m, select_informer(m, n, factor)
    base = lazy_values(vt, Tq, causal, lazy, n)                                          # (B, H, Tq, D)
    o = attend_active(qt, kt, vt, active, base, causal, n, scale)                       # (B, H, Tq, D)
    return o.transpose(1, 2), measures
