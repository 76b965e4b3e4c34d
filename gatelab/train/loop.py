"""The training loop: seeded, evaluated on the task's metric, early-stopping, resumable, data-parallel under
``torchrun``, writing a run folder."""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel

from ..config import ConfigError, to_dict
from ..models.lm import DecoderLM
from ..tasks.text import check_same_tokenizer
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint, save_weights
from .config import TrainConfig
from .diagnostics import first_nonfinite_module
from .distributed import World, close_world, init_world, mean_across, shard
from .optim import build_optimizer, lr_at
from .run import RunDir, write_json_atomic
from .tasks import LMTask, MQARTask, build_task


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def evaluate(model: DecoderLM, task: MQARTask | LMTask, batch_size: int, device: str) -> dict[str, float]:
    """The task's evaluation with the model in eval mode."""
    model.eval()
    try:
        return task.evaluate(model, batch_size, device)
    finally:
        model.train()


def autocast_for(precision: str, device: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked for, or under ``auto`` on a GPU that supports it; float32 otherwise."""
    kind = torch.device(device).type
    bf16 = precision == "bf16" or (precision == "auto" and kind == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(kind, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def stop_on_nonfinite(model: DecoderLM, x: torch.Tensor, y: torch.Tensor, step: int, loss: torch.Tensor,
                      run: RunDir | None) -> None:
    """Save the batch that produced a non-finite loss and stop, naming the first layer that went non-finite."""
    where = first_nonfinite_module(model, x) or "the loss itself (every layer output was finite)"
    saved = ""
    if run:
        torch.save({"step": step + 1, "inputs": x.cpu(), "labels": y.cpu()}, run.path / "nonfinite_batch.pt")
        saved = f"; the batch is saved in {run.path / 'nonfinite_batch.pt'}"
    raise FloatingPointError(f"non-finite training loss ({loss.item()}) at step {step + 1}: first non-finite output "
                             f"in {where}{saved}")


def check_split(cfg: TrainConfig, world: World) -> None:
    parts = world.size * cfg.grad_accum
    if cfg.grad_accum < 1 or cfg.batch_size % parts:
        raise ConfigError(f"batch_size={cfg.batch_size} must split evenly into {world.size} process(es) x "
                          f"grad_accum={cfg.grad_accum} micro-batches")


def train(cfg: TrainConfig, run_dir: str | Path | None = None, progress: bool = True,
          resume: bool = False) -> dict[str, Any]:
    """Train one model as configured; returns (and, with ``run_dir``, stores) the final metrics.

    MQAR runs stop early once test accuracy reaches ``target_accuracy``; LM runs report valid and test perplexity.
    With ``checkpoint_every`` the run folder keeps an atomically written checkpoint; ``resume=True`` continues
    from it exactly (same batches, same optimiser state), as if the run had never stopped. Launched by
    ``torchrun``, every process trains its share of each batch and rank 0 writes the run folder.
    """
    world, device = init_world(cfg.device)
    try:
        return _train(cfg, run_dir, progress and world.is_main, resume, world, device)
    finally:
        close_world(world)


def _train(cfg: TrainConfig, run_dir: str | Path | None, progress: bool, resume: bool, world: World,
           device: str) -> dict[str, Any]:
    check_split(cfg, world)
    seed_everything(cfg.seed)
    task = build_task(cfg)
    cfg = cfg.resolved(task.vocab_size)
    model = DecoderLM(cfg.model).to(device)
    net = DistributedDataParallel(model) if world.size > 1 else model
    opt = build_optimizer(model, cfg.optim)
    run = RunDir(run_dir) if run_dir is not None and world.is_main else None
    ckpt = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    saved: dict[str, Any] = {"step": 0, "tokens": 0, "train_time": 0.0, "best": {}, "last_eval": {}}
    if resume:
        if ckpt is None or not ckpt.exists():
            raise FileNotFoundError(f"nothing to resume: no {CHECKPOINT} in {run_dir}")
        if isinstance(task, LMTask):
            check_same_tokenizer(json.loads((Path(run_dir) / "tokenizer.json").read_text()), task.tokenizer,
                                 f"the run in {run_dir}")
        RunDir(run_dir).check_config(to_dict(cfg), TrainConfig.stored(Path(run_dir) / "config.json"))
        saved = load_checkpoint(ckpt, model, opt)
        if run:
            run.truncate_log(saved["step"])
    elif run:
        run.start(to_dict(cfg), device)
        if isinstance(task, LMTask):
            write_json_atomic(run.path / "tokenizer.json", task.tokenizer.to_dict())
    batches = task.batches(torch.Generator().manual_seed(cfg.seed), cfg.batch_size)
    for _ in range(saved["step"]):  # the data position: the same batches as an uninterrupted run
        next(batches)
    better = (lambda a, b: a > b) if task.higher_is_better else (lambda a, b: a < b)
    tokens, train_time, start = saved["tokens"], saved["train_time"], saved["step"]
    step = start - 1
    best: dict[str, float] = saved["best"]
    last_eval: dict[str, float] = saved["last_eval"]
    precision = autocast_for(cfg.precision, device)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[info]}"), TimeRemainingColumn(), disable=not progress, transient=True)
    with bar:
        bar_task = bar.add_task(f"train {cfg.model.mixer}", total=cfg.max_steps, completed=start, info="")
        for step in range(start, cfg.max_steps):
            x, y = next(batches)
            lr = lr_at(step, cfg.max_steps, cfg.optim)
            for group in opt.param_groups:
                group["lr"] = lr
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = torch.zeros((), device=device)
            micro = list(zip(shard(x, world).chunk(cfg.grad_accum), shard(y, world).chunk(cfg.grad_accum),
                             strict=True))
            for i, (xm, ym) in enumerate(micro):
                xm, ym = xm.to(device), ym.to(device)
                sync = contextlib.nullcontext() if world.size == 1 or i == len(micro) - 1 else net.no_sync()
                with sync:
                    with precision:
                        out = net(xm, labels=ym)
                        micro_loss = out.loss if out.aux_loss is None else out.loss + out.aux_loss
                    if not bool(mean_across(torch.isfinite(micro_loss).float(), world) == 1):
                        stop_on_nonfinite(model, xm, ym, step, micro_loss, run)
                    (micro_loss / len(micro)).backward()
                loss += micro_loss.detach() / len(micro)
            if cfg.optim.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            train_time += time.perf_counter() - t0
            tokens += x.numel()
            record: dict[str, Any] = {"step": step + 1, "loss": mean_across(loss, world).item(), "lr": lr}
            if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.max_steps:
                last_eval = evaluate(model, task, 2 * cfg.batch_size, device)
                record.update({f"eval/{k}": v for k, v in last_eval.items()})
                if not best or better(last_eval[task.metric], best[task.metric]):
                    best = last_eval
                bar.update(bar_task, info=f"{task.metric} {last_eval[task.metric]:.3f}")
            if run:
                run.log(record)
                if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0:
                    save_checkpoint(ckpt, model, opt, {"step": step + 1, "tokens": tokens, "train_time": train_time,
                                                       "best": best, "last_eval": last_eval})
                    if cfg.keep_checkpoints:
                        save_weights(model, run.path / "checkpoints" / f"step-{step + 1:06d}.safetensors")
            bar.advance(bar_task)
            if "eval/accuracy" in record and record["eval/accuracy"] >= cfg.target_accuracy:
                break
    result = {
        "steps": step + 1,
        "final": last_eval,
        "best": best,
        "num_params": model.num_params(),
        "state_size": model.state_size(task.max_len),
        "train_seconds": train_time,
        "tokens_per_second": tokens / max(train_time, 1e-9),
        "processes": world.size,
        "threads": torch.get_num_threads(),
    }
    if run:
        from ..hf.run import MODEL_DIR, save_run_model

        save_run_model(model, run.path / MODEL_DIR, getattr(task, "tokenizer", None))
        run.finish(result)
    return result
