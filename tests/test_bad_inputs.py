"""A table of bad inputs, each of which must be a clear error, raised before anything trains.

CLI cases run ``gatelab.cli.main``: exit status 2, no traceback, and a one-line message that names the field,
flag, file or value and says what is allowed. Python API cases must raise the given exception with a message that
matches. ``{name}`` in an argument is a path from ``make_inputs`` (tiny runs, corpora and damaged files).
"""
from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from gatelab.cli import main
from gatelab.config import ConfigError

NEEDS_NO_CUDA = "this case needs a machine without CUDA"

TRAIN = ["train", "--out", "{out}", "--no-progress", "--set", "model.d_model=16", "--set", "max_steps=2",
         "--set", "eval_every=2", "--set", "mqar.train_examples=32", "--set", "mqar.test_examples=8",
         "--set", "mqar.vocab_size=128"]
LM = ["train", "--task", "lm", "--data", "{corpus}", "--out", "{out}", "--no-progress", "--set", "model.d_model=16",
      "--set", "model.n_layers=1", "--set", "max_steps=2", "--set", "eval_every=2", "--set", "lm.seq_len=8",
      "--set", "batch_size=2"]
COMPARE = ["compare", "--quick", "--out", "{out}", "--no-progress"]
GENERATE = ["generate", "--run", "{lm}", "--prompt", "a b"]
SMOKE = ["reproduce", "gated-attention", "--smoke", "--out", "{out}", "--no-progress"]


def names(field: str, value: str = "") -> str:
    """A message that names ``field`` and, if given, ``value`` (in any order, any case)."""
    value_part = f"(?=.*{re.escape(value)})" if value else ""
    return rf"(?is)(?=.*{re.escape(field)}){value_part}"


def sets(*pairs: str) -> list[str]:
    return [a for pair in pairs for a in ("--set", pair)]


CLI: list[tuple[str, list[str], str]] = [
    # TrainConfig
    *[(f"train-{field}={value}", TRAIN + sets(f"{field}={value}"), names(field, value.strip("[]")))
      for field, value in [
        ("batch_size", "-4"), ("batch_size", "0"), ("batch_size", "3.5"), ("grad_accum", "0"), ("grad_accum", "-2"),
        ("max_steps", "0"), ("max_steps", "-5"), ("eval_every", "0"), ("eval_every", "-10"),
        ("checkpoint_every", "-1"), ("target_accuracy", "-0.5"), ("target_accuracy", "NaN"), ("seed", "-1"),
        ("seed", "99999999999"), ("device", "gpu"), ("precision", "fp16"), ("task", "foo"),
        ("keep_checkpoints", "maybe"),
        ("mqar.vocab_size", "0"), ("mqar.vocab_size", "-1"), ("mqar.seq_lens", "[-64]"), ("mqar.seq_lens", "64"),
        ("mqar.num_kv_pairs", "[-1]"), ("mqar.train_examples", "0"), ("mqar.train_examples", "-5"),
        ("mqar.test_examples", "0"), ("mqar.power_a", "0"), ("mqar.power_a", "-1"), ("mqar.power_a", "nan"),
        ("mqar.random_non_queries", "2"),
        ("model.d_model", "-16"), ("model.d_model", "0"), ("model.n_layers", "0"), ("model.n_heads", "0"),
        ("model.n_heads", "-2"), ("model.d_ff", "-1"), ("model.dropout", "1.0"), ("model.dropout", "-0.1"),
        ("model.dropout", "nan"), ("model.max_seq_len", "0"), ("model.short_conv", "-3"), ("model.norm_eps", "0"),
        ("model.norm_eps", "-1e-05"), ("model.vocab_size", "0"), ("model.norm", "batchnorm"),
        ("optim.lr", "NaN"), ("optim.lr", "inf"), ("optim.lr", "0"), ("optim.lr", "-0.001"),
        ("optim.lr", "big"), ("optim.warmup_frac", "1.0"), ("optim.warmup_frac", "-0.1"), ("optim.grad_clip", "nan"),
        ("optim.grad_clip", "-1"), ("optim.weight_decay", "-0.1"), ("optim.weight_decay", "nan"),
        ("optim.beta1", "1.0"), ("optim.beta1", "-0.1"), ("optim.beta2", "1.5"), ("optim.eps", "0"),
        ("optim.min_lr_ratio", "2"),
    ]],
    ("train-device=cuda", TRAIN + sets("device=cuda"), names("device", "cuda")),
    ("train-optim.lr=Infinity", TRAIN + sets("optim.lr=Infinity"), names("optim.lr", "inf")),
    ("train-split", TRAIN + sets("batch_size=10", "grad_accum=3"), names("grad_accum", "3")),
    ("train-seq_lens-empty", TRAIN + sets("mqar.seq_lens=[]"), r"mqar\.seq_lens must not be empty"),
    ("train-seq_lens-odd", TRAIN + sets("mqar.seq_lens=[63]"), names("seq_len", "63")),
    ("train-seq_lens-above-vocab", TRAIN + sets("mqar.seq_lens=[1024]"), names("seq_len", "1024")),
    ("train-num_kv_pairs-empty", TRAIN + sets("mqar.num_kv_pairs=[]"), r"mqar\.num_kv_pairs must not be empty"),
    ("train-num_kv_pairs-count", TRAIN + sets("mqar.num_kv_pairs=[1,2,3]"), names("num_kv_pairs", "[1, 2, 3]")),
    ("train-num_kv_pairs-too-many", TRAIN + sets("mqar.num_kv_pairs=[40]"), names("kv pairs", "40")),
    ("train-channel", TRAIN + sets("model.channel=relu"), names("channel mixer", "relu")),
    ("train-mixer-key", TRAIN + sets("model.mixer=foo"), names("token mixer", "foo")),
    ("train-options-of-unknown-mixer", TRAIN + sets("model.mixer_options.foo.x=1"), names("token mixer", "foo")),
    ("train-option-value", TRAIN + ["--mixer", "gla"] + sets("model.mixer_options.gla.expand_k=-1"),
     names("expand_k", "-1.0")),
    ("train-option-key", TRAIN + ["--mixer", "gla"] + sets("model.mixer_options.gla.nonsense=1"),
     names("nonsense")),
    ("train-heads-divide", TRAIN + sets("model.n_heads=3"), names("n_heads", "3")),
    ("train-schedule-layers", TRAIN + ["--mixer", "gla,attn,gla"], names("n_layers", "2")),
    ("train-window", TRAIN + ["--mixer", "swa"] + sets("model.mixer_options.swa.window=100000"),
     names("window", "100000")),
    ("train-gate-option", TRAIN + ["--mixer", "gated_attn"] + sets("model.mixer_options.gated_attn.gate_granularity=x"),
     names("granularity", "'x'")),
    # LMTaskConfig
    *[(f"lm-{field}={value}", LM + sets(f"{field}={value}"), names(field, value)) for field, value in [
        ("lm.vocab_size", "-1"), ("lm.seq_len", "0"), ("lm.seq_len", "-8"), ("lm.eval_tokens", "-1"),
        ("lm.tokenizer", "char"), ("lm.cache", "3")]],
    ("lm-fixed-vocabulary", LM + sets("lm.tokenizer=byte", "lm.vocab_size=100"), names("lm.vocab_size", "byte")),
    ("lm-bos-seq_len", LM + sets("lm.bos=true", "lm.seq_len=1"), names("lm.seq_len", "1")),
    ("lm-data-empty-set", LM + sets("lm.data="), r"lm\.data is empty"),
    ("lm-data-empty-flag", ["train", "--task", "lm", "--data", "", "--out", "{out}"], r"lm\.data is empty"),
    ("lm-data-missing", ["train", "--task", "lm", "--data", "{root}/nothing", "--out", "{out}"],
     names("corpus", "nothing")),
    ("lm-data-latin1", ["train", "--task", "lm", "--data", "{latin1}", "--out", "{out}"],
     names("train.txt", "UTF-8")),
    ("lm-data-no-valid-split", ["train", "--task", "lm", "--data", "{nosplit}", "--out", "{out}"],
     names("valid", "nosplit")),
    # --set syntax
    ("set-without-value", TRAIN + ["--set", "batch_size"], names("batch_size", "key.path=value")),
    ("set-unknown-key", TRAIN + sets("foo=1"), names("foo", "valid keys")),
    ("set-misspelt-key", TRAIN + sets("model.d_modle=3"), names("model.d_modle", "valid keys")),
    ("set-section-value", TRAIN + sets("optim=3"), names("optim", "3")),
    ("set-empty-key", TRAIN + ["--set", "=3"], r"unknown config key ''"),
    ("set-into-a-number", TRAIN + sets("model.d_model.x=1"), names("model.d_model.x")),
    # train flags
    ("mixer-empty", TRAIN + ["--mixer", ""], r"mixer schedule is empty"),
    ("mixer-misspelt", TRAIN + ["--mixer", "gated_atn"], names("gated_atn", "registered")),
    ("hybrid-empty", TRAIN + ["--hybrid", ""], r"mixer schedule is empty"),
    ("hybrid-one-count", TRAIN + ["--hybrid", "gdn:attn=3"], names("gdn:attn=3")),
    ("hybrid-zero-count", TRAIN + ["--hybrid", "gdn:attn=0:1"], names("gdn:attn=0:1")),
    ("mixer-and-hybrid", TRAIN + ["--mixer", "gla", "--hybrid", "gla:attn=1:1"], r"--mixer or --hybrid, not both"),
    ("task-unknown", TRAIN + ["--task", "foo"], names("--task", "foo")),
    ("data-for-mqar", TRAIN + ["--data", "{corpus}"], names("--data", "lm")),
    ("config-missing", TRAIN + ["--config", "{root}/missing.json"], names("missing.json")),
    ("config-not-json", TRAIN + ["--config", "{badjson}"], names("bad.json", "JSON")),
    ("config-unknown-key", TRAIN + ["--config", "{unknownjson}"], names("d_modle", "valid keys")),
    ("resume-with-set", ["train", "--resume", "--out", "{lm}"] + sets("max_steps=9"), names("--resume", "--set")),
    ("resume-with-mixer", ["train", "--resume", "--out", "{lm}", "--mixer", "gla"], names("--resume", "--mixer")),
    ("resume-with-task", ["train", "--resume", "--out", "{lm}", "--task", "lm"], names("--resume", "--task")),
    ("resume-with-data", ["train", "--resume", "--out", "{lm}", "--data", "{corpus}"], names("--resume", "--data")),
    ("resume-without-out", ["train", "--resume"], names("--resume", "--out")),
    ("resume-empty-folder", ["train", "--resume", "--out", "{empty}"], names("resume", "config.json")),
    ("resume-no-checkpoint", ["train", "--resume", "--out", "{mq}"], names("resume", "checkpoint")),
    ("resume-damaged-config", ["train", "--resume", "--out", "{badrunconfig}"], names("badrunconfig/config.json")),
    # compare
    *[(f"compare{flag}={value or 'empty'}", COMPARE + [flag, value], names(flag, value)) for flag, value in [
        ("--steps", "0"), ("--steps", "-5"), ("--steps", "ten"), ("--seeds", "0"), ("--seeds", "-1"),
        ("--mixers", "foo"), ("--mixers", "gla:attn=3:0"), ("--lrs", "nan"), ("--lrs", "-0.001"), ("--lrs", "0"),
        ("--lrs", "abc"), ("--seq-lens", "0"), ("--seq-lens", "-64"), ("--seq-lens", "16.5"), ("--d-models", "0"),
        ("--d-models", "-16"), ("--workers", "0"), ("--workers", "-2"), ("--budget-minutes", "-1"),
        ("--budget-minutes", "nan"), ("--preset", "foo")]],
    *[(f"compare{flag}=empty", COMPARE + [flag, ""], names(flag, "empty")) for flag in
      ("--mixers", "--lrs", "--seq-lens", "--d-models")],
    ("compare-mixers-empty-item", COMPARE + ["--mixers", "attn,,gla"], names("--mixers", "attn,,gla")),
    ("compare-lrs-empty-item", COMPARE + ["--lrs", "1e-3,"], names("--lrs", "1e-3,")),
    ("compare-seq-len-odd", COMPARE + ["--seq-lens", "63"], names("seq_len", "63")),
    ("compare-seq-len-above-vocab", COMPARE + ["--seq-lens", "1000"], names("seq_len", "1000")),
    ("compare-width-heads", COMPARE + ["--d-models", "30"] + sets("model.n_heads=4"), names("n_heads", "4")),
    ("compare-schedule-layers", COMPARE + ["--mixers", "gla:attn=2:1"], names("n_layers", "2")),
    ("compare-budget-and-steps", COMPARE + ["--budget-minutes", "1", "--steps", "5"], names("--budget-minutes")),
    ("compare-preset-and-quick", COMPARE + ["--preset", "quick"], r"--preset or --quick, not both"),
    ("compare-preset-task", ["compare", "--preset", "default", "--task", "lm", "--out", "{out}"],
     names("default", "lm")),
    ("compare-data-for-mqar", COMPARE + ["--data", "{corpus}"], names("--data", "lm")),
    ("compare-lm-latin1", COMPARE + ["--task", "lm", "--data", "{latin1}"], names("train.txt", "UTF-8")),
    ("compare-lm-missing", COMPARE + ["--task", "lm", "--data", "{root}/nothing"], names("corpus", "nothing")),
    ("compare-set-steps", COMPARE + sets("max_steps=0"), names("max_steps", "0")),
    ("compare-set-batch", COMPARE + sets("batch_size=-4"), names("batch_size", "-4")),
    ("compare-set-lr", COMPARE + sets("optim.lr=NaN"), names("optim.lr", "nan")),
    ("compare-set-lm-field", COMPARE + sets("lm.seq_len=0"), names("lm.seq_len", "0")),
    ("compare-set-device", COMPARE + sets("device=cuda"), names("device", "cuda")),
    ("compare-gate-option", COMPARE + ["--mixers", "gated_attn"]
     + sets("model.mixer_options.gated_attn.gate_granularity=x"), names("granularity", "'x'")),
    ("compare-report-only-nothing", COMPARE + ["--report-only"], names("nothing to report")),
    # generate
    *[(f"generate{flag}={value}", GENERATE + [flag, value], names(flag, value)) for flag, value in [
        ("--max-new-tokens", "0"), ("--max-new-tokens", "-5"), ("--max-new-tokens", "abc"), ("--temperature", "-1"),
        ("--temperature", "nan"), ("--top-k", "0"), ("--seed", "-1")]],
    ("generate-too-long", GENERATE + ["--max-new-tokens", "5000"], names("max_seq_len", "5000")),
    ("generate-missing-run", ["generate", "--run", "{root}/nothing", "--prompt", "a"], names("nothing", "model")),
    ("generate-mqar-run", ["generate", "--run", "{mq}", "--prompt", "a"], names("tokenizer", "generate")),
    ("generate-truncated-weights", ["generate", "--run", "{truncated}", "--prompt", "a"],
     names("truncated/model/model.safetensors")),
    ("generate-damaged-config", ["generate", "--run", "{badmodelconfig}", "--prompt", "a"],
     names("badmodelconfig/model/config.json")),
    ("generate-empty-prompt", ["generate", "--run", "{lm}", "--prompt", ""], r"prompt is empty"),
    ("generate-no-prompt", ["generate", "--run", "{lm}"], names("--prompt", "required")),
    # analyze
    ("analyze-missing-run", ["analyze", "{root}/nothing"], names("nothing", "config.json")),
    ("analyze-mqar-run", ["analyze", "{mq}"], names("mqar", "lm")),
    ("analyze-truncated-weights", ["analyze", "{truncated}"], names("truncated/model/model.safetensors")),
    *[(f"analyze{flag}={value or 'empty'}", ["analyze", "{lm}", flag, value], names(flag, value)) for flag, value in [
        ("--eval-tokens", "-1"), ("--bits", "8"), ("--bits", "1:8"), ("--bits", "a:b"), ("--bits", ""),
        ("--bits", "8:8,")]],
    # reproduce, install-data, mixers, the command itself
    ("reproduce-seeds-0", SMOKE + ["--seeds", "0"], names("--seeds", "0")),
    ("reproduce-seeds-negative", SMOKE + ["--seeds", "-1"], names("--seeds", "-1")),
    ("reproduce-unknown", ["reproduce", "foo"], names("foo", "invalid choice")),
    ("reproduce-two-modes", SMOKE + ["--quick"], names("--quick", "not allowed")),
    ("reproduce-data-empty", SMOKE + ["--data", ""], r"--data is empty"),
    ("install-data-unknown", ["install-data", "foo"], names("foo", "gpt2")),
    ("mixers-extra-argument", ["mixers", "extra"], names("extra", "unrecognized")),
    ("no-command", [], names("command", "required")),
    ("unknown-command", ["fly"], names("fly", "invalid choice")),
]


def _tensors(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(*s, generator=gen) for s in shapes]


def _ops() -> list[tuple[str, Callable[[], Any], str]]:
    from gatelab import ops

    q, k, v = _tensors((1, 8, 2, 4), (1, 8, 2, 4), (1, 8, 2, 4))
    k3, v3 = _tensors((1, 8, 3, 4), (1, 8, 3, 4))
    pos_channel, pos_head = torch.full((1, 8, 2, 4), 3.0), torch.full((1, 8, 2), 3.0)
    beta = torch.rand(1, 8, 2)
    x, B = _tensors((1, 8, 4), (1, 8, 3))
    dt, A = F.softplus(x), -torch.rand(4, 3)
    return [
        ("chunk_gla-positive-gate", lambda: ops.chunk_gla(q, k, v, g=pos_channel), names("g", "3")),
        ("recurrent_gla-positive-gate", lambda: ops.recurrent_gla(q, k, v, g=pos_channel), names("g", "3")),
        ("chunk_simple_gla-positive-gate", lambda: ops.chunk_simple_gla(q, k, v, g=pos_head), names("g", "3")),
        ("recurrent_simple_gla-positive-gate", lambda: ops.recurrent_simple_gla(q, k, v, g=pos_head),
         names("g", "3")),
        ("chunk_gdr-positive-gate", lambda: ops.chunk_gated_delta_rule(q, k, v, g=pos_head, beta=beta),
         names("g", "3")),
        ("recurrent_gdr-positive-gate", lambda: ops.recurrent_gated_delta_rule(q, k, v, g=pos_head, beta=beta),
         names("g", "3")),
        ("chunk_scan-positive-A", lambda: ops.chunk_selective_scan(x, dt, -A, B, B), names("A", "<= 0")),
        ("recurrent_scan-positive-A", lambda: ops.recurrent_selective_scan(x, dt, -A, B, B), names("A", "<= 0")),
        ("chunk_scan-negative-dt", lambda: ops.chunk_selective_scan(x, -dt, A, B, B), names("dt", ">= 0")),
        ("chunk_scan-B-shape", lambda: ops.chunk_selective_scan(x, dt, A, B[..., :2], B), names("B", "(1, 8, 3)")),
        ("chunk_gla-qk-shapes", lambda: ops.chunk_gla(q, k[..., :3], v, g=-pos_channel), names("q and k")),
        ("chunk_gla-3d", lambda: ops.chunk_gla(q[0], k[0], v[0], g=-pos_channel[0]), names("[B, T, H, D]")),
        ("chunk_gla-chunk_size", lambda: ops.chunk_gla(q, k, v, g=-pos_channel, chunk_size=0),
         names("chunk_size", "0")),
        ("chunk_gla-state-shape", lambda: ops.chunk_gla(q, k, v, g=-pos_channel, initial_state=torch.zeros(1, 2, 4)),
         names("initial_state", "[B, H, K, V]")),
        ("chunk_gla-no-gate", lambda: ops.chunk_gla(q, k, v, g=None), names("g", "None")),
        ("chunk_simple_gla-gate-shape", lambda: ops.chunk_simple_gla(q, k, v, g=-pos_channel), names("g", "[B, T, H]")),
        ("attention-heads", lambda: ops.softmax_attention(q, k3, v3), names("heads", "3")),
        ("clipped_softmax-gamma", lambda: ops.clipped_softmax(torch.zeros(3), gamma=0.5), names("gamma", "0.5")),
        ("clip_gamma-alpha", lambda: ops.clip_gamma_for_length(-1.0, 10), names("alpha", "-1")),
    ]


def _mixer(key: str, **options: Any) -> Callable[[], Any]:
    from gatelab.registry import MIXERS

    return lambda: MIXERS.get(key)(64, **{"n_heads": 4, **options})


def _grid(**changes: Any) -> Callable[[], Any]:
    from gatelab.presets import preset

    def build():
        grid = preset("quick")
        for name, value in changes.items():
            setattr(grid, name, value)
        return grid.runs()

    return build


def _edit(cfg: Any, changes: dict[str, Any]) -> Any:
    """Set ``a__b=value`` (the field ``a.b``) on a config in place, bypassing every check."""
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = cfg
        for p in parents:
            node = getattr(node, p)
        setattr(node, last, value)
    return cfg


def _edited(**changes: Any) -> Callable[[], Any]:
    """A valid TrainConfig edited in place, then resolved (what the training loop does first)."""
    from gatelab.train import TrainConfig

    return lambda: _edit(TrainConfig(), changes).resolved()


def _trained(**changes: Any) -> Callable[[], Any]:
    """``train`` on a tiny MQAR config edited in place: it must stop at once with a ConfigError."""
    from gatelab.train import TrainConfig, train
    from gatelab.train.config import MQARTaskConfig

    def run():
        cfg = TrainConfig(mqar=MQARTaskConfig(vocab_size=128, train_examples=32, test_examples=8), max_steps=2,
                          eval_every=2)
        cfg.model.d_model = 16
        return train(_edit(cfg, changes), progress=False)

    return run


def api_cases(paths: dict[str, str]) -> list[tuple[str, Callable[[], Any], type | tuple[type, ...], str]]:
    """Python API cases: (id, call, expected exception, message pattern)."""
    from gatelab.config import apply_overrides, from_dict
    from gatelab.hf import load_run
    from gatelab.models.lm import DecoderLM, ModelConfig, parse_schedule
    from gatelab.presets import preset
    from gatelab.registry import MIXERS
    from gatelab.tasks.mqar import MQARConfig, mqar
    from gatelab.tasks.text import load_corpus, tokenized_corpus
    from gatelab.tasks.text.cache import build_tokenizer, tokenizer_key
    from gatelab.tasks.text.windows import windows
    from gatelab.train import OptimConfig, TrainConfig
    from gatelab.train.config import LMTaskConfig, MQARTaskConfig

    small = ModelConfig(vocab_size=16, d_model=16, n_layers=1, n_heads=2, max_seq_len=8)
    cases = [
        ("TrainConfig-batch_size", lambda: TrainConfig(batch_size=-4), ConfigError, names("batch_size", "-4")),
        ("TrainConfig-max_steps", lambda: TrainConfig(max_steps=0), ConfigError, names("max_steps", "0")),
        ("TrainConfig-device", lambda: TrainConfig(device="gpu"), ConfigError, names("device", "gpu")),
        ("TrainConfig-split", lambda: TrainConfig(batch_size=6, grad_accum=4), ConfigError, names("grad_accum", "4")),
        ("TrainConfig-nested-optim", lambda: TrainConfig(optim=OptimConfig(lr=math.nan)), ConfigError,
         names("optim.lr", "nan")),
        ("TrainConfig-nested-model", lambda: TrainConfig(model=ModelConfig(d_model=-16)), ConfigError,
         names("model.d_model", "-16")),
        ("edited-batch_size", _edited(batch_size=-4), ConfigError, names("batch_size", "-4")),
        ("edited-eval_every", _edited(eval_every=0), ConfigError, names("eval_every", "0")),
        ("edited-lr", _edited(optim__lr=math.inf), ConfigError, names("optim.lr", "inf")),
        ("edited-dropout", _edited(model__dropout=2.0), ConfigError, names("model.dropout", "2.0")),
        ("edited-seq_lens", _edited(mqar__seq_lens=[]), ConfigError, names("mqar.seq_lens", "empty")),
        ("train-batch_size", _trained(batch_size=-4), ConfigError, names("batch_size", "-4")),
        ("train-eval_every", _trained(eval_every=0), ConfigError, names("eval_every", "0")),
        ("train-lr", _trained(optim__lr=math.nan), ConfigError, names("optim.lr", "nan")),
        ("from_dict-eval_every", lambda: from_dict(TrainConfig, {"eval_every": 0}), ConfigError,
         names("eval_every", "0")),
        ("from_dict-lr", lambda: from_dict(OptimConfig, {"lr": math.nan}), ConfigError, names("lr", "nan")),
        ("from_dict-warmup", lambda: from_dict(OptimConfig, {"warmup_frac": 1.5}), ConfigError,
         names("warmup_frac", "1.5")),
        ("from_dict-grad_clip", lambda: from_dict(OptimConfig, {"grad_clip": math.nan}), ConfigError,
         names("grad_clip", "nan")),
        ("from_dict-dropout", lambda: from_dict(ModelConfig, {"dropout": 1.0}), ConfigError,
         names("dropout", "1.0")),
        ("from_dict-n_layers", lambda: from_dict(ModelConfig, {"n_layers": 0}), ConfigError, names("n_layers", "0")),
        ("from_dict-seq_lens", lambda: from_dict(MQARTaskConfig, {"seq_lens": []}), ConfigError,
         names("seq_lens", "empty")),
        ("from_dict-kv-count", lambda: from_dict(MQARTaskConfig, {"num_kv_pairs": [1, 2], "seq_lens": [64]}),
         ConfigError, names("num_kv_pairs", "[1, 2]")),
        ("from_dict-lm-seq_len", lambda: from_dict(LMTaskConfig, {"seq_len": 0}), ConfigError,
         names("seq_len", "0")),
        ("from_dict-gpt2-vocab", lambda: from_dict(LMTaskConfig, {"tokenizer": "gpt2", "vocab_size": 100}),
         ValueError, names("vocab_size", "gpt2")),
        ("overrides-into-number", lambda: apply_overrides(TrainConfig(), ["model.d_model.x=1"]), ConfigError,
         names("model.d_model")),
        ("overrides-nan", lambda: apply_overrides(TrainConfig(), ["optim.lr=nan"]), ConfigError,
         names("optim.lr", "nan")),
        ("overrides-syntax", lambda: apply_overrides(TrainConfig(), ["batch_size"]), ConfigError,
         names("batch_size", "key.path=value")),
        ("mqar-num_examples", lambda: mqar(MQARConfig(num_examples=0), 0), ConfigError, names("num_examples", "0")),
        ("mqar-power_a-nan", lambda: mqar(MQARConfig(power_a=math.nan), 0), ConfigError, names("power_a", "nan")),
        ("mqar-odd-length", lambda: mqar(MQARConfig(seq_len=63), 0), ConfigError, names("seq_len", "63")),
        ("mqar-num_passes", lambda: mqar(MQARConfig(num_passes=0), 0), ConfigError, names("num_passes", "0")),
        ("mqar-vocab", lambda: mqar(MQARConfig(vocab_size=32, seq_len=64), 0), ConfigError,
         names("vocab_size", "32")),
        ("mqar-split", lambda: mqar(MQARConfig(), 0, split="valid"), ConfigError, names("split", "valid")),
        ("mqar-pairs", lambda: mqar(MQARConfig(num_kv_pairs=20, seq_len=64), 0), ConfigError, names("20", "64")),
        ("schedule-empty", lambda: parse_schedule(""), ConfigError, r"schedule is empty"),
        ("schedule-ratio", lambda: parse_schedule("gla:attn=3"), ConfigError, names("gla:attn=3")),
        ("schedule-key", lambda: parse_schedule("nope"), KeyError, names("nope", "registered")),
        ("registry-key", lambda: MIXERS.get("nope"), KeyError, names("nope", "registered")),
        ("model-schedule", lambda: DecoderLM(ModelConfig(mixer="gla,attn,gla", n_layers=2)), ConfigError,
         names("n_layers", "2")),
        ("model-dropout", lambda: DecoderLM(ModelConfig(dropout=1.5)), ConfigError, names("dropout", "1.5")),
        ("model-options-key", lambda: DecoderLM(ModelConfig(mixer_options={"nope": {}})), KeyError,
         names("nope", "registered")),
        ("model-channel", lambda: DecoderLM(ModelConfig(channel="relu")), KeyError, names("relu", "registered")),
        ("model-too-long", lambda: DecoderLM(small)(torch.zeros(1, 9, dtype=torch.long)), ValueError,
         names("max_seq_len", "9")),
        ("model-generate-too-long", lambda: DecoderLM(small).generate(torch.zeros(1, 4, dtype=torch.long), 5),
         ValueError, names("max_seq_len", "9")),
        ("mixer-gla-expand_k", _mixer("gla", expand_k=-1.0), ConfigError, names("expand_k", "-1.0")),
        ("mixer-gla-unknown", _mixer("gla", nonsense=1), ConfigError, names("nonsense", "valid keys")),
        ("mixer-gla-type", _mixer("gla", n_heads="4"), ConfigError, names("n_heads", "'4'")),
        ("mixer-gla-chunk", _mixer("gla", chunk_size=0), ConfigError, names("chunk_size", "0")),
        ("mixer-gla-normalizer", _mixer("gla", gate_logit_normalizer=-16.0), ConfigError,
         names("gate_logit_normalizer", "-16")),
        ("mixer-attn-heads", _mixer("attn", n_heads=3), ConfigError, names("n_heads", "3")),
        ("mixer-attn-kv-heads", _mixer("attn", n_kv_heads=3), ConfigError, names("n_kv_heads", "3")),
        ("mixer-attn-clip", _mixer("attn", clip_gamma=0.5), ConfigError, names("clip_gamma", "0.5")),
        ("mixer-gated-granularity", _mixer("gated_attn", gate_granularity="foo"), ConfigError,
         names("granularity", "foo")),
        ("mixer-gated-init", _mixer("gated_attn", gate_init_prob=1.5), ConfigError, names("init_prob", "1.5")),
        ("mixer-swa-window", _mixer("swa", window=0), ConfigError, names("window", "0")),
        ("mixer-liger-mix", _mixer("liger", mix=2.0), ConfigError, names("mix", "2.0")),
        ("mixer-mamba-state", _mixer("mamba", d_state=0), ConfigError, names("d_state")),
        ("mixer-hgrn2-expand", _mixer("hgrn2", expand_ratio=-1), ConfigError, names("expand_ratio", "-1")),
        ("mixer-gam-slots", _mixer("gam", num_slots=0), ConfigError, names("num_slots")),
        ("mixer-gdn-conv", _mixer("gdn", conv_size=0), ConfigError, names("conv_size", "0")),
        ("mixer-base_conv-kernel", _mixer("base_conv", kernel_size=0), ConfigError, names("kernel_size", "0")),
        ("mixer-hgrn2-mode", _mixer("hgrn2", mode="foo"), ConfigError, names("mode", "foo")),
        *[(f"op-{name}", call, ValueError, pattern) for name, call, pattern in _ops()],
        ("corpus-unknown", lambda: load_corpus("nope"), ValueError, names("nope", "ptb")),
        ("corpus-no-split", lambda: load_corpus(paths["nosplit"]), FileNotFoundError, names("valid", "nosplit")),
        ("corpus-latin1", lambda: load_corpus(paths["latin1"]), ConfigError, names("train.txt", "UTF-8")),
        ("corpus-damaged-cache", lambda: tokenized_corpus(paths["damagedcache"], "word"), ConfigError,
         names("tokens", "damaged")),
        ("tokenizer-fixed-vocab", lambda: tokenizer_key("byte", 100), ValueError, names("vocab_size", "byte")),
        ("tokenizer-unknown", lambda: build_tokenizer("char", ""), ValueError, names("char", "available")),
        ("windows-bos", lambda: windows(torch.arange(10), 1, bos=0), ValueError, names("seq_len=1", "BOS")),
        ("windows-short", lambda: windows(torch.arange(3), 8), ValueError, names("3 tokens", "8")),
        ("load_run-missing", lambda: load_run(paths["root"] + "/nothing"), (ConfigError, FileNotFoundError),
         names("nothing", "model")),
        ("load_run-truncated", lambda: load_run(paths["truncated"]), ValueError,
         names("truncated/model/model.safetensors")),
        ("preset-unknown", lambda: preset("nope"), ValueError, names("nope", "quick")),
        ("grid-no-mixers", _grid(mixers=[]), ConfigError, r"no mixers"),
        ("grid-mixer-key", _grid(mixers=["nope"]), KeyError, names("nope", "registered")),
        ("grid-seeds", _grid(seeds=0), ConfigError, names("seeds", "0")),
        ("grid-lrs-empty", _grid(lrs=[]), ConfigError, names("lrs", "empty")),
        ("grid-lrs-nan", _grid(lrs=[math.nan]), ConfigError, names("lrs", "nan")),
        ("grid-d_models", _grid(d_models=[0]), ConfigError, names("d_models", "0")),
        ("grid-seq_lens", _grid(seq_lens=[-16]), ConfigError, names("seq_lens", "-16")),
        ("grid-budget", _grid(budget_minutes=-1.0), ConfigError, names("budget_minutes", "-1")),
    ]
    return cases


def make_inputs(root: Path) -> dict[str, str]:
    """The files the cases refer to: a tiny corpus, a latin-1 one, one without a valid split, a tiny LM run (with a
    checkpoint, so that --resume would run) and a tiny MQAR run (without one), and copies of the LM run with damaged
    files."""
    root.mkdir(parents=True, exist_ok=True)
    paths = {"root": str(root)}

    def corpus(name: str, text: bytes, splits=("train", "valid", "test")) -> None:
        folder = root / name
        folder.mkdir()
        for s in splits:
            (folder / f"{s}.txt").write_bytes(text)
        paths[name] = str(folder)

    corpus("corpus", b"a b c d e f g h\n" * 40)
    corpus("latin1", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 40)
    corpus("nosplit", b"a b c\n" * 40, splits=("train",))
    corpus("damagedcache", b"x y z\n" * 40)
    from gatelab.tasks.text import tokenized_corpus
    from gatelab.tasks.text.assets import data_home
    from gatelab.tasks.text.cache import corpus_key

    tokenized_corpus(paths["damagedcache"], "word")
    for meta in (data_home() / "tokens" / corpus_key(paths["damagedcache"])).glob("*/meta.json"):
        meta.write_text("{half")
    (root / "empty").mkdir()
    paths["empty"] = str(root / "empty")
    (root / "bad.json").write_text("{not json")
    paths["badjson"] = str(root / "bad.json")
    (root / "unknown.json").write_text(json.dumps({"model": {"d_modle": 3}}))
    paths["unknownjson"] = str(root / "unknown.json")
    lm, mq = root / "lm-run", root / "mq-run"
    tiny = ["--no-progress", "--set", "model.d_model=16", "--set", "max_steps=1", "--set", "eval_every=1"]
    assert main(["train", "--task", "lm", "--data", paths["corpus"], "--out", str(lm), *tiny,
                 "--set", "model.n_layers=1", "--set", "lm.seq_len=8", "--set", "batch_size=2",
                 "--set", "checkpoint_every=1"]) == 0
    assert main(["train", "--out", str(mq), *tiny, "--set", "mqar.train_examples=16", "--set", "mqar.test_examples=8",
                 "--set", "mqar.vocab_size=128"]) == 0
    paths["lm"], paths["mq"] = str(lm), str(mq)
    for name, damaged, how in [("truncated", "model/model.safetensors", "half"),
                               ("badmodelconfig", "model/config.json", "json"),
                               ("badrunconfig", "config.json", "json")]:
        copy = root / name
        shutil.copytree(lm, copy)
        target = copy / damaged
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2] if how == "half" else b"{half")
        paths[name] = str(copy)
    return paths


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    return make_inputs(tmp_path_factory.mktemp("bad-inputs"))


def fill(argv: list[str], paths: dict[str, str], out: str) -> list[str]:
    return [a.format(out=out, **paths) for a in argv]


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.mark.parametrize(("argv", "pattern"), [pytest.param(a, p, id=i) for i, a, p in CLI])
def test_cli_bad_input_is_a_clear_error(argv, pattern, inputs, tmp_path, capsys, request):
    if "cuda" in request.node.callspec.id and torch.cuda.is_available():
        pytest.skip(NEEDS_NO_CUDA)
    out = tmp_path / "out"
    assert main(fill(argv, inputs, str(out))) == 2
    captured = capsys.readouterr()
    text = one_line(captured.out + captured.err)
    assert "Traceback" not in text
    assert re.search(pattern, text), text
    assert not out.exists() or not any(out.glob("**/metrics.jsonl"))   # nothing trained


def test_the_python_api_cases_are_distinct(inputs):
    ids = [case[0] for case in api_cases(inputs)] + [case[0] for case in CLI]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 150


def _api_ids() -> list[str]:
    return [case[0] for case in api_cases({name: "" for name in ("root", "nosplit", "latin1", "damagedcache",
                                                                    "truncated")})]


@pytest.mark.parametrize("case_id", _api_ids())
def test_python_api_bad_input_is_a_clear_error(case_id, inputs):
    (call, expected, pattern), = [case[1:] for case in api_cases(inputs) if case[0] == case_id]
    with pytest.raises(expected) as info:
        call()
    message = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
    assert re.search(pattern, one_line(message)), message
