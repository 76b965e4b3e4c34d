"""Adaptive Computation Modules (``acm``): the FFN as a chain of small learners and a per-token gate that picks how
many of them run (Wójcik et al. 2023, arXiv 2312.10193)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ....registry import CHANNEL_MIXERS
from ...base import require
from ..base import ChannelMixer


@dataclass(kw_only=True)
class ACMConfig:
    """Options of ``acm``. Defaults: the paper's recipe (4 learners, GELU, Gumbel tau 0.8, gate MLP width 16, budget
    loss weight 0.1); ``budget_target`` is our middle of the paper's sweep (0.25, 0.4, 0.6, 0.75)."""

    d_model: int
    d_ff: int
    n_learners: int = 4
    gate: Literal["linear", "mlp"] = "linear"
    gate_hidden: int = 16
    gumbel_tau: float = 0.8
    budget_target: float = 0.5
    budget_coef: float = 0.1

    RANGES: ClassVar[dict[str, str]] = {"d_model": "[1, inf)", "d_ff": "[1, inf)", "n_learners": "[1, inf)",
                                        "gate_hidden": "[1, inf)", "gumbel_tau": "(0, inf)",
                                        "budget_target": "[0, 1]", "budget_coef": "[0, inf)"}

    def check(self) -> None:
        require(self.d_ff % self.n_learners == 0,
                f"ACM: n_learners={self.n_learners} must divide d_ff={self.d_ff} (each learner is d_ff / n_learners "
                "wide); choose a divisor of d_ff")
        require(self.gate == "mlp" or self.gate_hidden == ACMConfig.gate_hidden,
                f"ACM: gate_hidden={self.gate_hidden} has no effect with gate='linear'; set gate='mlp' or leave it")


@CHANNEL_MIXERS.register("acm")
class AdaptiveComputationModule(ChannelMixer):
    """Adaptive Computation Module (Wójcik et al. 2023, arXiv 2312.10193; official code
    bartwojcik/adaptive_computation_modules @ 6760ad6, ``architectures/acm.py``).

    The FFN is split into N learners of width ``w = d_ff / N``: learner j computes
    ``o_j = gelu(x W1_j + b1_j) W2_j`` (``W1_j`` ``[d_model, w]``, ``W2_j`` ``[w, d_model]``: column / row block j of
    the FFN's ``W1`` ``[d_model, d_ff]`` and ``W2`` ``[d_ff, d_model]``). Choice ``k`` in ``0..N`` outputs the prefix
    sum ``o_1 + ... + o_k`` (choice 0 outputs 0: the token skips the FFN; there is no output bias, the recipe's
    ``bias='hidden_only'``). A per-token gate (``gate='linear'``: one linear layer; ``gate='mlp'``: the code's three
    linear layers of width ``gate_hidden``, which like the code have no nonlinearity between them) gives logits over
    the N+1 choices, computed in float32 or wider.

    - Training: a hard Gumbel-softmax sample (``gumbel_tau``) with straight-through gradients picks the choice; the
      output is the masked FFN ``sum_j m_j o_j`` with ``m_j = sum_{k >= j} onehot_k`` (1 for the learners the choice
      runs), so the task loss reaches the gate through the straight-through one-hot. All N learners are computed.
      ``aux["budget"] = budget_coef * |mean_tokens(k) / N - budget_target|``: the code's L1 budget loss with the cost
      of choice k proportional to k.
    - Eval: the argmax choice, and only the chosen learners are computed: tokens are sorted by choice (descending),
      so the tokens that run learner j form a prefix of that order; one matmul pair per learner on its prefix.

    Differences from the paper and its code: the paper converts a pretrained model (stage 1 distils every prefix to
    the pretrained FFN's output, stage 2 trains the gate on labels from the distillation errors, stage 3 fine-tunes
    end to end with the budget loss); here the layer is trained from scratch end to end, stage 3's loss alone (its
    optional entropy and diversity terms are not implemented). The code's end-to-end stage runs the argmax path, so
    its task loss never reaches the gate; here it does, through the straight-through estimator as the paper
    describes. The code's eval path ``forward_gated`` loops over learners ``1 .. max_choice - 1`` and so never runs
    the highest chosen learner; here every chosen learner runs. The code's budget is one L1 term over all layers'
    summed cost; here each layer has its own (the model sums them). Weights use ``nn.Linear``'s initialisation (the
    code applies the same kaiming-uniform to its transposed storage, which swaps the fan-ins).

    Shapes: x, y ``[B, T, d_model]``. d_ff defaults to ``4 * d_model``.
    Parameters: ``2 * d_model * d_ff + d_ff`` (learners) + gate: ``(d_model + 1) * (N + 1)`` (linear) or
    ``(d_model + 1) * h + (h + 1) * h + (h + 1) * (N + 1)`` with ``h = gate_hidden`` (mlp).
    """

    description = "adaptive computation: N FFN learners, a per-token Gumbel gate picks how many run"
    paper = "Wójcik et al. 2023, arXiv 2312.10193"
    Config = ACMConfig

    def __init__(self, d_model: int, d_ff: int | None = None, **options: Any):
        super().__init__()
        cfg = self.configure(d_model, {**options, "d_ff": d_ff or 4 * d_model})
        self.config, self.width = cfg, cfg.d_ff // cfg.n_learners
        self.d_ff, self.d_ff_multiple = cfg.d_ff, cfg.n_learners
        first, second = nn.Linear(d_model, cfg.d_ff), nn.Linear(cfg.d_ff, d_model, bias=False)
        self.w1 = nn.Parameter(first.weight.detach().t().contiguous())                  # [d_model, d_ff]
        self.b1 = nn.Parameter(first.bias.detach().clone())                              # [d_ff]
        self.w2 = nn.Parameter(second.weight.detach().t().contiguous())                 # [d_ff, d_model]
        sizes = [d_model, cfg.n_learners + 1] if cfg.gate == "linear" else \
            [d_model, cfg.gate_hidden, cfg.gate_hidden, cfg.n_learners + 1]
        self.gate = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.reset_stats()

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., d_model] -> [..., N + 1]`` logits over the choices, in float32 or wider."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        z = x.to(dtype)
        for layer in self.gate:
            z = F.linear(z, layer.weight.to(dtype), layer.bias.to(dtype))
        return z

    def masked_forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``sum_j mask_j * o_j(x)``: x ``[..., d_model]``, mask ``[..., N]`` (1 for the learners that run). Computes
        every learner; the training path, and the reference for ``grouped_forward``."""
        h = F.gelu(x @ self.w1 + self.b1)                                                # [..., d_ff]
        h = h.unflatten(-1, (self.config.n_learners, self.width)) * mask.unsqueeze(-1)  # [..., N, w]
        return h.flatten(-2) @ self.w2                                                   # [..., d_model]

    def grouped_forward(self, x: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        """The prefix sum of the first ``choice`` learners, computing only those: x ``[..., d_model]``, choice
        ``[...]`` integers in ``0..N``. Tokens sorted by descending choice make each learner's tokens a prefix."""
        flat, choice = x.reshape(-1, x.shape[-1]), choice.reshape(-1)                  # [M, d_model], [M]
        order = torch.argsort(choice, descending=True, stable=True)
        counts = torch.bincount(choice, minlength=self.config.n_learners + 1)           # [N + 1]
        running = counts.flip(0).cumsum(0).flip(0)[1:].tolist()                         # tokens with choice >= j
        xs, ys = flat[order], torch.zeros_like(flat)
        for j, n in enumerate(running):
            if n == 0:
                break
            cols = slice(j * self.width, (j + 1) * self.width)
            ys[:n] += F.gelu(xs[:n] @ self.w1[:, cols] + self.b1[cols]) @ self.w2[cols]
        return torch.empty_like(flat).index_copy_(0, order, ys).view_as(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.gate_logits(x)                                                     # [B, T, N + 1]
        if not self.training:
            choice = logits.argmax(-1)                                                   # [B, T]
            self.aux = {}
            self._record(choice)
            return self.grouped_forward(x, choice)
        onehot = F.gumbel_softmax(logits, tau=self.config.gumbel_tau, hard=True)         # [B, T, N + 1]
        mask = onehot[..., 1:].flip(-1).cumsum(-1).flip(-1)                              # [B, T, N]
        cost = mask.sum(-1).mean() / self.config.n_learners                             # mean k / N
        self.aux = {"budget": self.config.budget_coef * (cost - self.config.budget_target).abs()}
        self._record(onehot.detach().argmax(-1))
        return self.masked_forward(x, mask.to(x.dtype))

    def _record(self, choice: torch.Tensor) -> None:
        counts = torch.bincount(choice.flatten(), minlength=self.config.n_learners + 1)
        self._choice_counts = counts if self._choice_counts is None else self._choice_counts + counts

    def reset_stats(self) -> None:
        self._choice_counts: torch.Tensor | None = None

    def stats(self) -> dict[str, Any]:
        """``learners_per_token`` (mean choice), ``flops_fraction`` (matmul FLOPs of the chosen learners and the gate
        over those of the full FFN, ``4 * d_model * d_ff`` per token) and ``choices`` (fraction of tokens per choice
        0..N), over the forwards since the last reset."""
        if self._choice_counts is None:
            return {}
        counts = self._choice_counts.double().cpu()
        fractions = counts / counts.sum()
        learners = float((fractions * torch.arange(len(counts), dtype=torch.float64)).sum())
        d, full = self.config.d_model, 4 * self.config.d_model * self.config.d_ff
        gate = 2 * sum(layer.in_features * layer.out_features for layer in self.gate)
        return {"learners_per_token": learners, "flops_fraction": (learners * 4 * d * self.width + gate) / full,
                "choices": fractions.tolist()}

    def active_params(self) -> int:
        """Parameters one token uses on average at the configured budget: the gate plus ``budget_target * N``
        learners (the budget loss drives the mean choice to ``budget_target * N``)."""
        cfg = self.config
        learner = 2 * cfg.d_model * self.width + self.width
        return sum(p.numel() for p in self.gate.parameters()) + round(cfg.budget_target * cfg.n_learners * learner)

    def expected_num_params(self) -> int:
        cfg, d, n = self.config, self.config.d_model, self.config.n_learners + 1
        h = cfg.gate_hidden
        gate = (d + 1) * n if cfg.gate == "linear" else (d + 1) * h + (h + 1) * h + (h + 1) * n
        return 2 * d * cfg.d_ff + cfg.d_ff + gate
