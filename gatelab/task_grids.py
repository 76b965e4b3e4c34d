"""The compare grids of the tasks beyond MQAR and language modelling: a CPU-sized protocol per task and the base
config the task reproductions build on."""
from __future__ import annotations

from .models.lm import ModelConfig
from .train.config import TrainConfig

# Mixers whose heads decay at different rates (RetNet's fixed multi-scale decays; Mamba2's per-head A, initialised
# over [1, 16]): with one head their multi-scale mechanism is gone, so the MQAR grids give them several.
MULTI_SCALE_MIXERS = ("retnet", "mamba2")
MULTI_SCALE_HEADS = 4
# gated_attn has QK-norm by default (its paper's Qwen3 models do); in every grid attn gets it too, so the two differ
# by the gate alone.
ATTN_AS_GATED = {"attn": {"qk_norm": True}}


def grid_mixer_options() -> dict[str, dict]:
    """The per-mixer options every grid starts from."""
    return {**ATTN_AS_GATED, **{key: {"n_heads": MULTI_SCALE_HEADS} for key in MULTI_SCALE_MIXERS}}


def task_base(task: str, steps: int, batch_size: int, eval_every: int, bidirectional: bool,
               pooling: str = "mean", lr: float = 1e-3) -> TrainConfig:
    """Classification, forecasting and synthetic next-token tasks at CPU scale: 2 pre-norm layers of mixer +
    SwiGLU, d_model 64, 4 heads (the multi-scale mixers keep theirs), no short convolution; a bidirectional
    backbone where the task's papers use an encoder (LRA, forecasting)."""
    cfg = TrainConfig(
        task=task,
        model=ModelConfig(n_layers=2, d_model=64, n_heads=4, channel="swiglu", short_conv=0,
                          mixer_options=grid_mixer_options(), bidirectional=bidirectional),
        batch_size=batch_size, max_steps=steps, eval_every=eval_every, target_accuracy=2.0,
    )
    cfg.classifier.pooling, cfg.optim.lr = pooling, lr
    return cfg


# Each task's grid: mixers, training length and base, sized so a seed of a grid trains in minutes on 2 CPU cores
# (LRA: ListOps up to 2k tokens, text 4k, image and Pathfinder 1k; Mamba: copying 4k; see each task's config);
# "<task>-quick" runs the same pipeline in seconds.
LRA_MIXERS = ["attn", "gated_attn", "gla", "gdn", "mamba", "linear_attn", "based"]


def task_grid(task: str, quick: bool) -> tuple[list[str], int, TrainConfig, int]:
    """``task``'s grid: its mixers, training length, base config and seeds (``quick``: the seconds-long one)."""
    if task == "lra-listops":
        mixers, T, base = LRA_MIXERS, 100, task_base(task, 600, 32, 200, True, pooling="cls")
        base.listops.valid_examples = base.listops.test_examples = 500
    elif task == "lra-text":
        mixers, T, base = ["attn", "gla", "linear_attn"], 256, task_base(task, 400, 16, 200, True)
        base.lra_text.valid_examples, base.lra_text.test_examples = 500, 1000
    elif task == "lra-pathfinder":
        mixers, T, base = ["attn", "gla", "linear_attn", "vig"], 1024, task_base(task, 300, 16, 150, True)
        base.pathfinder.valid_examples, base.pathfinder.test_examples = 500, 1000
    elif task == "lra-image":
        mixers, T, base = ["attn", "gla", "linear_attn", "vig"], 784, task_base(task, 300, 16, 150, True)
        base.lra_image.valid_examples, base.lra_image.test_examples = 500, 1000
    elif task == "selective-copying":
        mixers, T, base = ["mamba", "gla", "retnet", "base_conv", "attn"], 128, \
            task_base(task, 600, 32, 600, False)
    elif task == "induction-heads":
        mixers, T, base = ["mamba", "attn", "gla"], 64, task_base(task, 1000, 32, 1000, False, lr=3e-3)
        base.induction_heads.extrapolate, base.induction_heads.test_examples = [1, 2, 4, 16, 64], 100
        base.induction_heads.score = "final"     # (see gatelab.reproduce.mamba_synthetic: INDUCTION_LR)
    else:
        mixers, T, base = ["attn", "probsparse", "gla"], 24, task_base(task, 600, 32, 200, True)
        base.forecast.eval_windows = 2000
    if quick:
        base.max_steps, base.eval_every, base.batch_size = 4, 2, 4
        T = {"lra-listops": 60, "lra-text": 64, "lra-pathfinder": 1024, "lra-image": 784, "selective-copying": 32,
             "induction-heads": 16, "forecast": 24}[task]
        _shrink(base)
        mixers, base.model.d_model = mixers[:2], 16
    return mixers, T, base, 1 if quick else 2


def _shrink(base: TrainConfig) -> None:
    """A quick grid's data: a few examples of each split, so a whole grid runs in seconds."""
    base.listops.min_len, base.listops.train_examples = 20, 64
    base.listops.valid_examples = base.listops.test_examples = 16
    base.lra_text.train_examples, base.lra_text.valid_examples, base.lra_text.test_examples = 32, 16, 16
    base.pathfinder.train_examples = 32
    base.pathfinder.valid_examples = base.pathfinder.test_examples = 16
    base.lra_image.train_examples, base.lra_image.valid_examples, base.lra_image.test_examples = 32, 16, 16
    base.selective_copying.num_tokens, base.selective_copying.train_examples = 4, 64
    base.selective_copying.test_examples = 16
    base.induction_heads.train_examples, base.induction_heads.test_examples = 64, 16
    base.induction_heads.extrapolate = [1, 2]
    base.forecast.train_windows = 64
    base.forecast.eval_windows = 32
    base.forecast.lookback = 48
