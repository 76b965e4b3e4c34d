"""The training loop: seeded, evaluated by slice, early-stopping, writing a run folder."""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from safetensors.torch import save_model

from ..config import to_dict
from ..models.lm import DecoderLM
from ..tasks.base import TaskData
from ..tasks.mqar import mqar
from .config import TrainConfig
from .optim import build_optimizer, lr_at
from .run import RunDir


def build_data(cfg: TrainConfig) -> tuple[TaskData, TaskData]:
    """Train and test splits of the configured task, from disjoint seed streams."""
    train = TaskData.concat([mqar(s, cfg.seed, "train") for s in cfg.mqar.slices("train")])
    test = TaskData.concat([mqar(s, cfg.seed, "test") for s in cfg.mqar.slices("test")])
    return train, test


@torch.no_grad()
def evaluate(model: DecoderLM, data: TaskData, batch_size: int, device: str) -> dict[str, float]:
    """Accuracy as in Zoology: per example, the fraction of scored positions whose argmax is the label; then
    the mean over examples, overall (``accuracy``) and per slice (``accuracy/<slice>``). Also the test loss."""
    model.eval()
    per_example, losses = [], []
    for i in range(0, len(data), batch_size):
        x = data.inputs[i:i + batch_size].to(device)
        y = data.labels[i:i + batch_size].to(device)
        out = model(x, labels=y)
        scored = y != -100
        hits = (out.logits.argmax(-1) == y) & scored
        per_example.append((hits.sum(1).float() / scored.sum(1).clamp(min=1)).cpu())
        losses.append(out.loss.item() * x.shape[0])
    model.train()
    acc = torch.cat(per_example)
    result = {"accuracy": acc.mean().item(), "loss": sum(losses) / len(data)}
    by_slice: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(data.slices):
        by_slice[name].append(i)
    for name, idx in sorted(by_slice.items()):
        result[f"accuracy/{name}"] = acc[idx].mean().item()
    return result


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def train(cfg: TrainConfig, run_dir: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train one model as configured; returns (and, with ``run_dir``, stores) the final metrics."""
    cfg = cfg.resolved()
    seed_everything(cfg.seed)
    train_data, test_data = build_data(cfg)
    model = DecoderLM(cfg.model).to(cfg.device)
    opt = build_optimizer(model, cfg.optim)
    run = RunDir(run_dir) if run_dir is not None else None
    if run:
        run.start(to_dict(cfg), cfg.device)
    order_gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(train_data), generator=order_gen)
    cursor, tokens, train_time = 0, 0, 0.0
    best: dict[str, float] = {"accuracy": -1.0}
    last_eval: dict[str, float] = {}
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not progress, transient=True)
    with bar:
        task = bar.add_task(f"train {cfg.model.mixer}", total=cfg.max_steps, info="")
        step = 0
        for step in range(cfg.max_steps):
            if cursor + cfg.batch_size > len(order):
                order, cursor = torch.randperm(len(train_data), generator=order_gen), 0
            idx = order[cursor:cursor + cfg.batch_size]
            cursor += cfg.batch_size
            x, y = train_data.inputs[idx].to(cfg.device), train_data.labels[idx].to(cfg.device)
            lr = lr_at(step, cfg.max_steps, cfg.optim)
            for group in opt.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            out = model(x, labels=y)
            loss = out.loss if out.aux_loss is None else out.loss + out.aux_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            train_time += time.perf_counter() - t0
            tokens += x.numel()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at step {step}")
            record: dict[str, Any] = {"step": step + 1, "loss": loss.item(), "lr": lr}
            done = step + 1 == cfg.max_steps
            if (step + 1) % cfg.eval_every == 0 or done:
                last_eval = evaluate(model, test_data, 2 * cfg.batch_size, cfg.device)
                record.update({f"test/{k}": v for k, v in last_eval.items()})
                if last_eval["accuracy"] > best["accuracy"]:
                    best = last_eval
                bar.update(task, info=f"acc {last_eval['accuracy']:.3f}")
            if run:
                run.log(record)
            bar.advance(task)
            if "test/accuracy" in record and record["test/accuracy"] >= cfg.target_accuracy:
                break
    result = {
        "steps": step + 1,
        "final": last_eval,
        "best": best,
        "num_params": model.num_params(),
        "state_size": model.state_size(train_data.inputs.shape[1]),
        "train_seconds": train_time,
        "tokens_per_second": tokens / max(train_time, 1e-9),
    }
    if run:
        save_model(model, str(run.path / "model.safetensors"))
        run.finish(result)
    return result
