"""Informer's self-attention distilling layer: between encoder blocks, halve the sequence."""
from __future__ import annotations

import torch
from torch import nn


class Distilling(nn.Module):
    """``MaxPool(k=3, s=2, pad=1)(ELU(BatchNorm(Conv1d(k=3, circular pad 1)(x))))`` over time (Zhou et al. 2021,
    "Informer", arXiv 2012.07436, Eq. 5; zhouhaoyi/Informer2020 ``models/encoder.py``, ``ConvLayer``).

    ``x [B, L, d_model]`` -> ``[B, (L - 1) // 2 + 1, d_model]`` (``out_length``). The convolution wraps around
    (its first output reads the last position), as Informer's code; the max-pool pads with -inf. BatchNorm's
    statistics run over batch and time, so sequences are expected unpadded (Informer's fixed windows).
    Parameters: ``3 * d_model^2 + d_model`` (conv with bias) ``+ 2 * d_model`` (BatchNorm), and BatchNorm's
    running mean and variance as buffers.
    """

    def __init__(self, d_model: int):
        super().__init__()
        self.d_model = d_model
        self.conv = nn.Conv1d(d_model, d_model, kernel_size=3, padding=1, padding_mode="circular")
        self.norm = nn.BatchNorm1d(d_model)
        self.activation = nn.ELU()
        self.pool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)

    @staticmethod
    def out_length(length: int) -> int:
        """The output length for an input of ``length``: ``(length - 1) // 2 + 1``."""
        return (length - 1) // 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))                                                  # (B, d_model, L)
        y = self.pool(self.activation(self.norm(y)))                                      # (B, d_model, L')
        return y.transpose(1, 2)                                                          # (B, L', d_model)

    def expected_num_params(self) -> int:
        return 3 * self.d_model ** 2 + 3 * self.d_model
