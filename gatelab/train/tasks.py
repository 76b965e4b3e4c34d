"""What the training loop asks of a task: batches, an evaluation, and the metric that decides early stops."""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator

import torch

from ..models.lm import DecoderLM
from ..tasks.base import TaskData
from ..tasks.mqar import mqar
from ..tasks.text import bos_id, tokenized_corpus
from ..tasks.text.windows import random_windows, windows
from .config import TrainConfig


class MQARTask:
    """MQAR: shuffled epochs over a fixed training set; accuracy by slice on a held-out set (Zoology's metric)."""

    metric, higher_is_better = "accuracy", True

    def __init__(self, cfg: TrainConfig):
        self.train = TaskData.concat([mqar(s, cfg.seed, "train") for s in cfg.mqar.slices("train")])
        self.test = TaskData.concat([mqar(s, cfg.seed, "test") for s in cfg.mqar.slices("test")])
        self.vocab_size, self.max_len = cfg.mqar.vocab_size, self.train.inputs.shape[1]

    def batches(self, generator: torch.Generator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            order = torch.randperm(len(self.train), generator=generator)
            for i in range(0, max(1, len(order) - batch_size + 1), batch_size):   # a short set: one short batch
                idx = order[i:i + batch_size]
                yield self.train.inputs[idx], self.train.labels[idx]

    @torch.no_grad()
    def evaluate(self, model: DecoderLM, batch_size: int, device: str) -> dict[str, float]:
        """Per example, the fraction of scored positions whose argmax is the label; then the mean over examples,
        overall (``accuracy``) and per slice (``accuracy/<slice>``). Also the test loss."""
        data = self.test
        per_example, losses = [], []
        for i in range(0, len(data), batch_size):
            x, y = data.inputs[i:i + batch_size].to(device), data.labels[i:i + batch_size].to(device)
            out = model(x, labels=y)
            scored = y != -100
            hits = (out.logits.argmax(-1) == y) & scored
            per_example.append((hits.sum(1).float() / scored.sum(1).clamp(min=1)).cpu())
            losses.append(out.loss.item() * x.shape[0])
        acc = torch.cat(per_example)
        result = {"accuracy": acc.mean().item(), "loss": sum(losses) / len(data)}
        by_slice: dict[str, list[int]] = defaultdict(list)
        for i, name in enumerate(data.slices):
            by_slice[name].append(i)
        for name, idx in sorted(by_slice.items()):
            result[f"accuracy/{name}"] = acc[idx].mean().item()
        return result


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


class LMTask:
    """Language modelling on a corpus: random windows of the training stream; valid and test perplexity."""

    metric, higher_is_better = "valid/ppl", False

    def __init__(self, cfg: TrainConfig):
        self.tokenizer, streams = tokenized_corpus(cfg.lm.data, cfg.lm.tokenizer, cfg.lm.vocab_size, cfg.lm.cache)
        self.train_stream = streams["train"]
        self.bos = bos_id(self.tokenizer) if cfg.lm.bos else None
        self.eval_windows = {s: windows(streams[s], cfg.lm.seq_len, cfg.lm.eval_tokens, self.bos)
                             for s in ("valid", "test")}
        self.seq_len = cfg.lm.seq_len
        self.vocab_size, self.max_len = self.tokenizer.vocab_size, cfg.lm.seq_len
        if len(self.train_stream) <= self.seq_len + 1:
            raise ValueError(f"the training split of {cfg.lm.data!r} has {len(self.train_stream)} tokens, fewer than "
                             f"one window of lm.seq_len={self.seq_len} + 1")

    def batches(self, generator: torch.Generator, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        stream, T = self.train_stream, self.seq_len
        while True:
            starts = torch.randint(0, len(stream) - T - 1, (batch_size,), generator=generator).numpy()
            yield random_windows(stream, starts, T, self.bos)

    def evaluate(self, model: DecoderLM, batch_size: int, device: str) -> dict[str, float]:
        return {f"{s}/ppl": perplexity(model, *self.eval_windows[s], batch_size, device) for s in ("valid", "test")}


def build_task(cfg: TrainConfig) -> MQARTask | LMTask:
    return MQARTask(cfg) if cfg.task == "mqar" else LMTask(cfg)
