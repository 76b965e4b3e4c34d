"""Bad inputs through the Python API, each a clear error: the call raises the given exception with a message
that matches (it names the field, argument or file and what is allowed)."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from tests.bad_inputs import names, one_line
from tests.test_bad_inputs_cli import CLI


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




def test_the_python_api_cases_are_distinct(bad_input_files):
    ids = [case[0] for case in api_cases(bad_input_files)] + [case[0] for case in CLI]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 150


def _api_ids() -> list[str]:
    return [case[0] for case in api_cases({name: "" for name in ("root", "nosplit", "latin1", "damagedcache",
                                                                    "truncated")})]


@pytest.mark.parametrize("case_id", _api_ids())
def test_python_api_bad_input_is_a_clear_error(case_id, bad_input_files):
    (call, expected, pattern), = [case[1:] for case in api_cases(bad_input_files) if case[0] == case_id]
    with pytest.raises(expected) as info:
        call()
    message = info.value.args[0] if isinstance(info.value, KeyError) else str(info.value)
    assert re.search(pattern, one_line(message)), message
