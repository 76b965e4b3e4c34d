"""Accuracy of next-token predictions on labelled positions, per example and per slice (Zoology's metric)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from ...tasks.base import TaskData


@torch.no_grad()
def sequence_accuracy(model: torch.nn.Module, data: TaskData, batch_size: int, device: str) -> dict[str, float]:
    """Per example, the fraction of scored positions (labels != -100) whose argmax is the label; then the mean
    over examples, overall (``accuracy``) and per slice (``accuracy/<slice>``); and the mean test loss."""
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


def final_accuracy(result: dict[str, Any]) -> dict[str, float]:
    """A run's reported scores on an accuracy task: its final evaluation's accuracy, overall and per slice
    (Zoology and the Mamba paper report the last evaluation, not the best); 0 for a diverged run."""
    if result.get("diverged"):
        return {"accuracy": 0.0}
    final = result["final"]
    return {"accuracy": final["accuracy"], **{k: v for k, v in final.items() if k.startswith("accuracy/")}}
