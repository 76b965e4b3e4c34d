"""The training loop: seeded, evaluated on the task's metric, early-stopping, resumable, data-parallel under
``torchrun``, writing a run folder."""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel

from ..config import ConfigError, to_dict
from ..models.lm import DecoderLM
from ..models.stack import BlockStack
from ..ops.backend import use_backend
from ..tasks.text import check_same_tokenizer
from .channel_stats import aux_record, mean_stats
from .checkpoint import CHECKPOINT, LEGACY_CHECKPOINT, first_nonfinite, load_checkpoint, save_checkpoint, save_weights
from .config import TrainConfig
from .diagnostics import TrainingDiverged, first_nonfinite_gradient, first_nonfinite_module
from .distributed import World, close_world, init_world, mean_across, shard
from .files import atomic_file, make_readable, read_json, write_json_atomic
from .finetune import Tuning, check_source_tokenizer
from .lock import folder_lock
from .optim import build_optimizer, lr_at
from .progress import RunProgress, reporting
from .run import NONFINITE_BATCH, RunDir, stored_config
from .tasks import LMTask, Task, build_task


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def evaluate(model: torch.nn.Module, task: Task, batch_size: int, device: str,
             channels: BlockStack | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """The task's evaluation with the model (a ``BlockStack`` model, or one compiled) in eval mode, and the channel
    mixers' statistics over it (``channels``: the model itself; by layer, empty for dense layers)."""
    if channels is not None:
        channels.reset_channel_stats()
    model.eval()
    try:
        metrics = task.evaluate(model, batch_size, device)
    finally:
        model.train()
    return metrics, channels.channel_stats() if channels is not None else {}


def compiled(module: torch.nn.Module, on: bool) -> torch.nn.Module:
    """``module`` compiled by ``torch.compile`` (inductor) when ``on``, else ``module`` itself.

    Shapes are static (``dynamic=False``): a run calls the model on a few fixed shapes (its training micro-batch,
    the evaluation batch and the last, shorter evaluation batch), each compiled once, in training and in inference
    mode. The wrapper only runs the module: checkpoints and saved models are written from the module itself, so
    their keys carry no ``_orig_mod.`` prefix."""
    return torch.compile(module, dynamic=False) if on else module


def autocast_for(precision: str, device: str) -> contextlib.AbstractContextManager:
    """bf16 autocast where asked for, or under ``auto`` on a GPU that supports it; float32 otherwise."""
    kind = torch.device(device).type
    bf16 = precision == "bf16" or (precision == "auto" and kind == "cuda" and torch.cuda.is_bf16_supported())
    return torch.autocast(kind, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def save_batch(run: RunDir | None, step: int, x: torch.Tensor, y: torch.Tensor) -> str:
    """Keep the batch a run diverged on as ``nonfinite_batch.safetensors`` (``inputs``, ``labels``; its step in
    the metadata) and say where, for the error message."""
    if run is None:
        return ""
    path = run.path / NONFINITE_BATCH
    with atomic_file(path) as tmp:
        save_file({"inputs": x.detach().cpu().contiguous(), "labels": y.detach().cpu().contiguous()}, str(tmp),
                  metadata={"step": str(step + 1)})
    return f"; the batch is saved in {path}"


def nonfinite_loss(model: BlockStack, x: torch.Tensor, y: torch.Tensor, step: int, loss: torch.Tensor,
                   run: RunDir | None) -> str:
    """Why training stops on a non-finite loss: the first layer that went non-finite (the batch is saved)."""
    where = first_nonfinite_module(model, x) or "the loss itself (every layer output was finite)"
    return (f"non-finite training loss ({loss.item()}) at step {step + 1}: first non-finite output in "
            f"{where}{save_batch(run, step, x, y)}")


def copy_first_row_state(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> None:
    """Give rows 1.. of each parameter (just made copies of row 0: EvoMoE's spawned experts) row 0's optimiser
    moments, so AdamW continues them as it continues row 0 instead of restarting them with a bias correction
    meant for moments that have been accumulating since step 1."""
    for p in params:
        for value in opt.state.get(p, {}).values():
            if torch.is_tensor(value) and value.shape == p.shape:
                value[1:] = value[:1]


def grad_norm(model: BlockStack) -> torch.Tensor:
    """The L2 norm of all gradients together (NaN or infinity if any gradient is not finite)."""
    return torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])


def nonfinite_gradient(model: BlockStack, norm: float, step: int) -> str:
    """Why training stops on a non-finite gradient: the first parameter whose gradient is not finite."""
    bad = first_nonfinite_gradient(model)
    where = f"first in {bad}" if bad else "every gradient is finite, but their norm overflowed"
    return f"non-finite gradient (norm {norm}) at step {step + 1}, {where}; the update was not applied"


def check_split(cfg: TrainConfig, world: World) -> None:
    parts = world.size * cfg.grad_accum
    if cfg.grad_accum < 1 or cfg.batch_size % parts:
        raise ConfigError(f"batch_size={cfg.batch_size} must split evenly into {world.size} process(es) x "
                          f"grad_accum={cfg.grad_accum} micro-batches")


def train(cfg: TrainConfig, run_dir: str | Path | None = None, progress: bool | RunProgress = True,
          resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train one model as configured; returns (and, with ``run_dir``, stores) the final metrics.

    MQAR runs stop early once test accuracy reaches ``target_accuracy``; LM runs report valid and test perplexity.
    With ``checkpoint_every`` the run folder keeps an atomically written checkpoint; ``resume=True`` continues
    from it exactly (same batches, same optimiser state), as if the run had never stopped. Launched by
    ``torchrun``, every process trains its share of each batch and rank 0 writes the run folder.

    The run folder is locked while the run trains (a second process on it gets a ConfigError naming the pid that
    holds it) and belongs to one configuration: a new run clears the outputs of the one before, and one of another
    configuration is refused unless ``overwrite``. A non-finite loss, gradient or weight is never applied nor
    checkpointed: the run stops with TrainingDiverged naming the layer, and its ``result.json`` records that it
    diverged, where and why. ``progress``: True shows bars in a terminal and plain lines otherwise, or pass a
    ``RunProgress`` to receive the reports.
    """
    world, device = init_world(cfg.device)
    try:
        lock = folder_lock(run_dir) if run_dir is not None and world.is_main else contextlib.nullcontext()
        with lock, reporting(progress if world.is_main else False) as reporter, use_backend(cfg.backend), \
                contextlib.ExitStack() as cleanup:
            return _train(cfg, run_dir, reporter, resume, overwrite, world, device, cleanup)
    finally:
        close_world(world)


@dataclass
class RunState:
    """How far a run has got: steps done, tokens trained on, training seconds, best and last evaluation (what a
    checkpoint keeps besides the tensors)."""

    step: int = 0
    tokens: int = 0
    train_time: float = 0.0
    best: dict[str, float] = field(default_factory=dict)
    last_eval: dict[str, float] = field(default_factory=dict)
    channel_stats: dict[str, Any] = field(default_factory=dict)


def _open_run(cfg: TrainConfig, run_dir: str | Path | None, run: RunDir | None, task: Task,
              model: BlockStack, opt: torch.optim.Optimizer, resume: bool, overwrite: bool, device: str) -> RunState:
    """Start the run folder afresh, or continue the run in it from its checkpoint; returns where training starts."""
    if not resume:
        if run:
            run.start(to_dict(cfg), device, overwrite)
            if isinstance(task, LMTask):
                write_json_atomic(run.path / "tokenizer.json", task.tokenizer.to_dict())
        return RunState()
    folder = Path(run_dir) if run_dir is not None else None
    if folder is not None and not (folder / CHECKPOINT).exists() and (folder / LEGACY_CHECKPOINT).exists():
        raise ConfigError(f"{folder / LEGACY_CHECKPOINT} is a checkpoint in the pickle format of older versions, "
                          "which gatelab never loads (unpickling a file can run the code in it); train the run "
                          "again (--overwrite) or delete the file")
    stored = stored_config(folder) if folder is not None else None
    if stored is None or not (folder / CHECKPOINT).exists():
        raise FileNotFoundError(f"nothing to resume: no config.json and {CHECKPOINT} in {run_dir}")
    if isinstance(task, LMTask):
        check_same_tokenizer(read_json(folder / "tokenizer.json"), task.tokenizer, f"the run in {folder}")
    RunDir(folder).check_config(to_dict(cfg), stored)
    saved = RunState(**load_checkpoint(folder / CHECKPOINT, model, opt))
    if run:
        run.resume(saved.step, to_dict(cfg))
    return saved


def save_model(model: torch.nn.Module, task: Task, folder: Path) -> None:
    """A finished run's model: a language model as a Hugging Face model folder (``model/``), any other model as
    ``model.safetensors`` beside the run's config."""
    if isinstance(model, DecoderLM):
        from ..hf.run import MODEL_DIR, save_run_model

        save_run_model(model, folder / MODEL_DIR, getattr(task, "tokenizer", None))
        make_readable(folder / MODEL_DIR)
    else:
        save_weights(model, folder / "model.safetensors")


def _result(state: RunState, model: BlockStack, task: Task, world: World, **extra: Any) -> dict[str, Any]:
    return {
        "steps": state.step,
        "final": state.last_eval,
        "best": state.best,
        "num_params": model.num_params(),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "active_params": model.num_active_params(),
        "state_size": model.state_size(task.max_len),
        "train_seconds": state.train_time,
        "tokens_per_second": state.tokens / max(state.train_time, 1e-9),
        "processes": world.size,
        "threads": torch.get_num_threads(),
        **({"channel_stats": state.channel_stats} if state.channel_stats else {}),
        **extra,
    }


def _train(cfg: TrainConfig, run_dir: str | Path | None, reporter: RunProgress, resume: bool, overwrite: bool,
           world: World, device: str, cleanup: contextlib.ExitStack) -> dict[str, Any]:
    check_split(cfg, world)
    seed_everything(cfg.seed)
    task = build_task(cfg)
    cfg = cfg.resolved(task.vocab_size)
    if cfg.init_from:
        check_source_tokenizer(cfg.init_from, task.tokenizer)
    tuning = Tuning(task.model(cfg), cfg)    # init_from's weights, and what trains (train.tune)
    model = tuning.model.to(device)
    if cfg.compile:
        # this run's model compiles afresh: code compiled for earlier runs of this process (a sweep trains its runs
        # one after another) would count against dynamo's recompile limit, past which it runs eagerly without a word
        torch._dynamo.reset()
    parallel = DistributedDataParallel(model, find_unused_parameters=model.may_skip_parameters()) \
        if world.size > 1 else model
    net = compiled(parallel, cfg.compile)
    eval_net = compiled(model, cfg.compile) if world.size > 1 else net
    opt = build_optimizer(model, cfg.optim)
    run = RunDir(run_dir) if run_dir is not None and world.is_main else None
    if run:
        cleanup.callback(run.close_trackers)     # a run that raises marks its tracker runs failed, now
    state = _open_run(cfg, run_dir, run, task, model, opt, resume, overwrite, device)
    name = Path(run_dir).name if run_dir is not None else f"train {cfg.model.mixer}"

    def stop(reason: str, at: int) -> NoReturn:
        """End a diverged run at step ``at``: its result says so, where and why (a sweep reads it back as a
        result instead of training it again), and TrainingDiverged is raised."""
        result = _result(state, model, task, world, diverged=True, diverged_at=at, reason=reason)
        if run:
            run.finish(result)
        reporter.ended(name, result)
        raise TrainingDiverged(reason)

    batches = task.batches(torch.Generator().manual_seed(cfg.seed), cfg.batch_size)
    for _ in range(state.step):  # the data position: the same batches as an uninterrupted run
        next(batches)
    better = (lambda a, b: a > b) if task.higher_is_better else (lambda a, b: a < b)
    precision = autocast_for(cfg.precision, device)
    reporter.started(name, state.step, cfg.max_steps)
    for step in range(state.step, cfg.max_steps):
        x, y = next(batches)
        lr = lr_at(step, cfg.max_steps, cfg.optim)
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        copy_first_row_state(opt, model.on_train_step(step, cfg.max_steps))
        model.reset_channel_stats()
        loss, aux = torch.zeros((), device=device), {}
        micro = list(zip(shard(x, world).chunk(cfg.grad_accum), shard(y, world).chunk(cfg.grad_accum), strict=True))
        for i, (xm, ym) in enumerate(micro):
            xm, ym = xm.to(device), ym.to(device)
            sync = contextlib.nullcontext() if world.size == 1 or i == len(micro) - 1 else net.no_sync()
            with sync:
                with precision:
                    out = net(xm, labels=ym)
                    micro_loss = out.loss if out.aux_loss is None else out.loss + out.aux_loss
                for key, value in aux_record(out.aux_losses, len(micro)).items():
                    aux[key] = aux.get(key, 0.0) + mean_across(torch.tensor(value, device=device), world).item()
                if not bool(mean_across(torch.isfinite(micro_loss).float(), world) == 1):
                    stop(nonfinite_loss(model, xm, ym, step, micro_loss, run), step + 1)
                (micro_loss / len(micro)).backward()
            loss += out.loss.detach() / len(micro)
        norm = grad_norm(model)          # the same on every process: gradients are averaged by now
        if not bool(torch.isfinite(norm)):
            stop(nonfinite_gradient(model, norm.item(), step) + save_batch(run, step, shard(x, world),
                                                                          shard(y, world)), step + 1)
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grads_with_norm_(model.parameters(), cfg.optim.grad_clip, norm)
        opt.step()
        state.train_time += time.perf_counter() - t0
        state.tokens += x.numel()
        state.step = step + 1
        record: dict[str, Any] = {"step": step + 1, "loss": mean_across(loss, world).item(), "lr": lr, **aux,
                                  **mean_stats(model.channel_stats(), "train")}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.max_steps:
            state.last_eval, state.channel_stats = evaluate(eval_net, task, 2 * cfg.batch_size, device, model)
            record.update({f"eval/{k}": v for k, v in state.last_eval.items()})
            record.update(mean_stats(state.channel_stats, "eval"))
            if not state.best or better(state.last_eval[task.metric], state.best[task.metric]):
                state.best = state.last_eval
        checkpoint = cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0
        if checkpoint and (bad := first_nonfinite(model.state_dict())):
            stop(f"non-finite weights after step {step + 1}, first in {bad}", step + 1)
        if run:
            run.log(record)
            if checkpoint:
                save_checkpoint(run.path / CHECKPOINT, model, opt, dataclasses.asdict(state))
                if cfg.keep_checkpoints:
                    save_weights(tuning.saved(), run.path / "checkpoints" / f"step-{step + 1:06d}.safetensors")
        reporter.stepped(name, step + 1, cfg.max_steps, record["loss"], state.last_eval)
        if "eval/accuracy" in record and record["eval/accuracy"] >= cfg.target_accuracy:
            break
    if bad := first_nonfinite(model.state_dict()):
        stop(f"non-finite weights after step {state.step}, first in {bad}", state.step)
    result = _result(state, model, task, world)
    if run:
        save_model(tuning.saved(), task, run.path)
        run.finish(result)
    reporter.ended(name, result)
    return result
