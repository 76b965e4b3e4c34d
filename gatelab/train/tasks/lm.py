"""Language modelling on a corpus: random windows of the training stream; valid and test perplexity."""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from ...models.lm import DecoderLM
from ...tasks.text import bos_id, tokenized_corpus
from ...tasks.text.windows import random_windows, windows
from ..finetune import source_tokenizer
from .base import Task

if TYPE_CHECKING:
    from ..config import TrainConfig


@torch.no_grad()
def perplexity(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: str = "cpu") -> float:
    """``exp`` of the mean next-token loss of ``model`` over windows ``x`` with targets ``y`` (``[N, T]`` each,
    from ``windows``: every token predicted once, the usual word-level LM protocol); infinity past float range."""
    total = 0.0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size].to(device)).logits.float()
        target = y[i:i + batch_size].to(device)
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="sum").item()
    mean = total / y.numel()
    return math.exp(mean) if mean < 709.0 else math.inf     # (exp overflows a float beyond ~709.78)


class LMTask(Task):
    """Language modelling on a corpus: random windows of the training stream; valid and test perplexity (the
    reported pair is the evaluation with the lowest valid perplexity)."""

    key, field = "lm", "lm"
    description = "next-token perplexity on a text corpus (ptb, shakespeare, kjv, imdb or a folder)"
    metric, higher_is_better = "valid/ppl", False
    score_keys = {"valid_ppl": "valid/ppl", "test_ppl": "test/ppl"}

    def __init__(self, cfg: TrainConfig):
        given = source_tokenizer(cfg.init_from) if cfg.lm.tokenizer == "model" else None
        self.tokenizer, streams = tokenized_corpus(cfg.lm.data, cfg.lm.tokenizer, cfg.lm.vocab_size, cfg.lm.cache,
                                                   given)
        self.train_stream = streams["train"]
        self.bos = bos_id(self.tokenizer) if cfg.lm.bos else None
        self.eval_windows = {s: windows(streams[s], cfg.lm.seq_len, cfg.lm.eval_tokens, self.bos)
                             for s in ("valid", "test")}
        self.seq_len = cfg.lm.seq_len
        self.vocab_size, self.max_len = self.tokenizer.vocab_size, cfg.lm.seq_len
        if len(self.train_stream) <= self.seq_len + 1:
            raise ValueError(f"the training split of {cfg.lm.data!r} has {len(self.train_stream)} tokens, fewer than "
                             f"one window of lm.seq_len={self.seq_len} + 1")

    @classmethod
    def shape(cls, cfg: TrainConfig) -> tuple[int | None, int]:
        return None, cfg.lm.seq_len

    @classmethod
    def set_length(cls, cfg: TrainConfig, T: int) -> None:
        cfg.lm.seq_len = T

    @classmethod
    def length(cls, cfg: TrainConfig) -> int:
        return cfg.lm.seq_len

    def batches(self, generator: torch.Generator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        stream, T = self.train_stream, self.seq_len
        while True:
            starts = torch.randint(0, len(stream) - T - 1, (batch_size,), generator=generator).numpy()
            yield random_windows(stream, starts, T, self.bos)

    def evaluate(self, model: DecoderLM, batch_size: int, device: str) -> dict[str, float]:
        return {f"{s}/ppl": perplexity(model, *self.eval_windows[s], batch_size, device) for s in ("valid", "test")}
