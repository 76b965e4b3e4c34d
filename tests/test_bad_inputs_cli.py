"""Bad inputs on the command line, each a clear error raised before anything trains: ``gatelab.cli.main`` exits
with status 2, prints no traceback, and a one-line message that names the field, flag, file or value and says
what is allowed. ``{name}`` in an argument is a path from ``tests.bad_inputs.make_inputs``."""
from __future__ import annotations

import re

import pytest
import torch

from gatelab.cli import main
from tests.bad_inputs import NEEDS_NO_CUDA, fill, names, one_line, sets

TRAIN = ["train", "--out", "{out}", "--no-progress", "--set", "model.d_model=16", "--set", "max_steps=2",
         "--set", "eval_every=2", "--set", "mqar.train_examples=32", "--set", "mqar.test_examples=8",
         "--set", "mqar.vocab_size=128"]
LM = ["train", "--task", "lm", "--data", "{corpus}", "--out", "{out}", "--no-progress", "--set", "model.d_model=16",
      "--set", "model.n_layers=1", "--set", "max_steps=2", "--set", "eval_every=2", "--set", "lm.seq_len=8",
      "--set", "batch_size=2"]
COMPARE = ["compare", "--quick", "--out", "{out}", "--no-progress"]
GENERATE = ["generate", "--run", "{lm}", "--prompt", "a b"]
SMOKE = ["reproduce", "gated-attention", "--smoke", "--out", "{out}", "--no-progress"]
TASK = ["train", "--out", "{out}", "--no-progress", "--set", "model.d_model=16", "--set", "max_steps=2", "--task"]


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
    ("train-channel-schedule", TRAIN + sets("model.channel=swiglu,moe,mlp"), names("model.channel", "n_layers=2")),
    ("train-channel-options-key", TRAIN + sets("model.channel_options.nope.x=1"), names("channel mixer", "nope")),
    ("train-moe-top_k", TRAIN + sets("model.channel=moe", "model.channel_options.moe.top_k=9"),
     names("top_k", "n_experts")),
    ("train-moe-capacity", TRAIN + sets("model.channel=moe", "model.channel_options.moe.capacity_factor=-1"),
     names("capacity_factor", "-1")),
    ("train-moe-option", TRAIN + sets("model.channel=moe", "model.channel_options.moe.experts=4"), names("experts")),
    ("train-grkan-groups", TRAIN + sets("model.channel=grkan", "model.channel_options.grkan.num_groups=5"),
     names("num_groups", "5")),
    ("train-mohd-groups", TRAIN + sets("model.channel=mohd", "model.channel_options.mohd.n_groups=5"),
     names("n_groups", "5")),
    ("train-acm-learners", TRAIN + sets("model.channel=acm", "model.d_ff=30", "model.channel_options.acm.n_learners=4"),
     names("n_learners", "d_ff=30")),
    ("train-chains-width", TRAIN + sets("model.chains=3", "model.channel=chain"), names("chains", "3")),
    ("train-chains-channel", TRAIN + sets("model.chains=2", "model.channel=moe"), names("moe", "chain")),
    ("train-chains-range", TRAIN + sets("model.chains=0"), names("model.chains", "0")),
    ("train-chains-residual", TRAIN + sets("model.chains=2", "model.channel=chain", "model.residual=gtrxl_gru"),
     names("model.residual", "gtrxl_gru")),
    ("train-residual", TRAIN + sets("model.residual=sum"), names("residual connection", "sum")),
    ("train-residual-bias", TRAIN + sets("model.residual=gtrxl_gru", "model.residual_options.gtrxl_gru.bias=99"),
     names("bias", "99")),
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
    # fine-tuning (init_from, tune, lora)
    *[(f"finetune-{field}={value}", LM + sets(f"{field}={value}"), names(field, value))
      for field, value in [("lora.rank", "0"), ("lora.alpha", "0"), ("lora.dropout", "1.0"), ("tune", "half")]],
    ("finetune-tune-without-init_from", LM + sets("tune=lora"), names("tune=lora", "init_from")),
    ("finetune-model-tokenizer-without-init_from", LM + sets("lm.tokenizer=model"), names("lm.tokenizer=model",
                                                                                         "init_from")),
    ("finetune-init_from-missing", LM + sets("init_from={root}/nothing"), names("init_from", "nothing")),
    ("finetune-init_from-not-a-model", LM + sets("init_from={corpus}"), names("init_from", "no saved model")),
    ("finetune-init_from-vocabulary", ["train", "--task", "lm", "--data", "{corpus}", "--out", "{out}"] +
     sets("init_from={mq}"), names("init_from", "vocabulary of 128 ids")),
    ("finetune-init_from-other-model", LM + sets("init_from={lm}", "lm.tokenizer=model", "model.d_model=32"),
     names("model.d_model", "32 given")),
    ("finetune-lora-target", LM + sets("init_from={lm}", "lm.tokenizer=model", "tune=lora", 'lora.targets=["wq"]'),
     names("lora.targets", "wq")),
    ("finetune-initial-state-on-attention", LM + sets("init_from={lm}", "lm.tokenizer=model", "tune=initial_state"),
     names("tune=initial_state", "recurrent")),
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
    # the tasks beyond language modelling
    *[(f"train-{field}={value}", TASK + [task] + sets(f"{field}={value}"), names(field, value))
      for task, field, value in [
        ("lra-listops", "listops.max_len", "1"), ("lra-listops", "listops.max_args", "1"),
        ("lra-listops", "classifier.hidden", "-1"), ("lra-text", "lra_text.max_len", "0"),
        ("lra-pathfinder", "pathfinder.contour_length", "0"), ("lra-image", "lra_image.valid_examples", "0"),
        ("selective-copying", "selective_copying.num_tokens", "0"),
        ("induction-heads", "induction_heads.vocab_size", "2"),
        ("induction-heads", "induction_heads.extrapolate", "[0]"), ("forecast", "forecast.lookback", "0"),
        ("forecast", "forecast.features", "X"), ("forecast", "forecaster.patch_len", "0"),
        ("forecast", "forecast.split_rule", "monthly"), ("forecast", "forecaster.architecture", "lstm"),
        ("lra-listops", "classifier.pooling", "max"), ("lra-listops", "model.bidirectional_params", "tied"),
        ("lra-listops", "model.bidirectional_combine", "concat"), ("induction-heads", "induction_heads.score", "x")]],
    ("train-task-unknown", TASK + ["foo"], names("foo", "lra-listops")),
    ("train-forecast-horizon", TASK + ["forecast"] + sets("forecast.horizon=100000"),
     names("forecast.horizon", "100000")),
    ("train-forecast-missing-ett", TASK + ["forecast", "--data", "etth1"] + sets("forecast.ett_dir={root}/nothing"),
     names("ETDataset", "install-data --ett")),
    ("train-pathfinder-grid", TASK + ["lra-pathfinder"] + sets("pathfinder.grid=24"), names("pathfinder.grid", "24")),
    ("train-last-pooling-bidirectional", TASK + ["lra-listops"] + sets("classifier.pooling=last",
                                                                       "model.bidirectional=true"),
     names("classifier.pooling=last", "bidirectional")),
    ("train-bidirectional-lm", LM + sets("model.bidirectional=true"), names("model.bidirectional", "language model")),
    ("train-bidirectional-only-mixer", TRAIN + ["--mixer", "vig"], names("vig", "model.bidirectional")),
    ("train-image-missing", TASK + ["lra-image", "--data", "{root}/nothing"],
     names("dataset-fashion-mnist", "lra_image.path")),
    ("train-data-for-listops", TASK + ["lra-listops", "--data", "{corpus}"], names("--data", "forecast")),
    ("reproduce-data-generated", ["reproduce", "lra-listops", "--smoke", "--data", "ptb"],
     names("--data", "generates")),
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



@pytest.mark.parametrize(("argv", "pattern"), [pytest.param(a, p, id=i) for i, a, p in CLI])
def test_cli_bad_input_is_a_clear_error(argv, pattern, bad_input_files, tmp_path, capsys, request):
    if "cuda" in request.node.callspec.id and torch.cuda.is_available():
        pytest.skip(NEEDS_NO_CUDA)
    out = tmp_path / "out"
    assert main(fill(argv, bad_input_files, str(out))) == 2
    captured = capsys.readouterr()
    text = one_line(captured.out + captured.err)
    assert "Traceback" not in text
    assert re.search(pattern, text), text
    assert not out.exists() or not any(out.glob("**/metrics.jsonl"))   # nothing trained
