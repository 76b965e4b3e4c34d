"""``gatelab reproduce liger``: Liger (Lan et al. 2025, arXiv 2503.01496) turns a trained softmax-attention LM into
a gated recurrent one that reuses its weights (``gatelab linearize``), and claims it recovers about 93% of the
teacher's zero-shot accuracy after LoRA tuning on 0.02% of the pre-training tokens, at 1B-8B parameters. Here: a
teacher (a PTB word-level attention model trained at the mode's scale; SmolLM2-135M in ``full``), linearized to
Liger and, where the mode has them, to its ablations (the gated recurrence alone, the window alone, ungated linear
attention), each tuned with the paper's recipe over seeds, and scored on the same test windows (perplexity) and on
the local cloze task (accuracy, the paper's measure)."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..pretrained.recovery import LinearizeOptions, converted_teacher, run_linearization
from ..train.executors import Executor
from ..train.sweep import SweepRun, run_sweep
from .experiment import SCALES, lm_config
from .report import mode_note, write_report
from .verdict import Claim, Precondition, judge_level

PAPER_LEVEL = 0.93
PAPER = ("~93% of the teacher's mean zero-shot accuracy (PIQA, ARC-e/c, HellaSwag, WinoGrande, MMLU) with 0.02% of "
         "the pre-training tokens, Llama-3 1B-8B (abstract)")
ABLATION = "Liger's hybrid above its parts in the ablation (its numbers were not read here)"
MIN_TEACHER_CORRECT = 25     # cloze items the teacher must get right before a ratio of accuracies means anything


@dataclass(frozen=True)
class Mode:
    """The teacher (``smollm2``, or an attention LM trained here at a ``SCALES`` entry) and the linearization
    settings. Trained teachers read short windows, so their students' window keeps the paper's ratio of window to
    length (64 of 1,024 tokens): a 64-token window would see all of a 128-token one."""

    teacher: str
    options: LinearizeOptions


ALL = ["liger", "gla", "swa", "linear_attn"]
MODES = {
    "smoke": Mode("smoke", LinearizeOptions(targets=ALL, steps=4, batch_size=4, window=4, eval_tokens=256,
                                            contexts=[32], cloze_items=16)),
    # quick: the reproductions' d_model 128 teacher (500 steps of 16 x 128 tokens), window 8 of 128
    "quick": Mode("full", LinearizeOptions(targets=ALL, steps=100, batch_size=8, window=8, eval_tokens=16384,
                                           contexts=[128, 512], cloze_items=1000)),
    # full: about 45 s a step of 8 x 1,024 tokens on 2 CPU cores: 64 steps are about 50 minutes per seed
    "full": Mode("smollm2", LinearizeOptions(targets=["liger"], steps=64, batch_size=8, grad_accum=8, seq_len=1024,
                                             eval_tokens=16384, contexts=[512, 2048], cloze_items=1000)),
}


def teacher_folder(mode: Mode, out: Path, data: str, progress: bool, executor: Executor | None) -> Path:
    """The teacher: SmolLM2 converted into ``out/teacher``, or an attention LM trained on ``data`` at the mode's
    scale under ``out/teacher/runs/attn`` (read back when finished)."""
    if mode.teacher == "smollm2":
        return converted_teacher("smollm2", out, overwrite=False)
    scale = SCALES[mode.teacher]
    run_sweep([SweepRun("attn", {"variant": "teacher", "seed": 0}, lm_config(scale, data, "attn", {}, 0, scale.lr))],
              out / "teacher", progress, executor)
    return out / "teacher" / "runs" / "attn"


def records_of(results: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """One record per target (and the teacher's) of one seed's ``results.json``."""
    teacher = results["teacher"]
    rows = [{"variant": "teacher", "seed": seed, "test_ppl": teacher["test_ppl"], "cloze_acc": teacher.get("cloze_acc"),
             "cloze_correct": round(teacher.get("cloze_acc", 0) * results["cloze"]["items"]) if results["cloze"]
             else None, "params": teacher["params"]}]
    for to, r in results["targets"].items():
        lost = {"recovered": 0.0, "recovered_acc": 0.0, "recovered_acc_se": 0.0} if r["diverged"] else {}
        rows.append({"variant": to, "seed": seed, "test_ppl": r.get("test_ppl_tuned"), "recovered": r.get("recovered"),
                     "recovered_acc": r.get("recovered_acc"), "recovered_acc_se": r.get("recovered_acc_se"),
                     "cloze_acc": r.get("cloze_acc"), "recovered_before": r["recovered_linearized"],
                     "tokens": r["tokens"], "trainable_params": r["trainable_params"],
                     "diverged": bool(r["diverged"]), **lost})
    return rows


def diverged_note(records: list[dict[str, Any]]) -> str:
    """Which tuning runs diverged: they count as recovering nothing, in the table and in every claim."""
    lost = [f"{r['variant']} seed {r['seed']}" for r in records if r.get("diverged")]
    return f"Diverged in tuning, counted as recovering nothing: {', '.join(lost)}." if lost else ""


def level_lines(records: list[dict[str, Any]]) -> list[str]:
    """The paper's headline as a level claim on Liger's recovered accuracy: the mean over seeds against 93%, with a
    standard error that adds the items' (the mean of the per-seed bootstrap variances: the same items every seed)
    to the seeds' spread; untestable when the teacher gets fewer than ``MIN_TEACHER_CORRECT`` items right."""
    liger = [r for r in records if r["variant"] == "liger" and r.get("recovered_acc") is not None]
    correct = [r["cloze_correct"] for r in records if r["variant"] == "teacher" and r.get("cloze_correct") is not None]
    pre = Precondition("a teacher that answers the cloze items", "cloze_correct", "teacher", MIN_TEACHER_CORRECT,
                       "a ratio of accuracies over fewer correct items is mostly noise")
    head = ["## The headline: Liger recovers 93% of the teacher's accuracy", "",
            "| claim | paper | ours (recovered cloze accuracy, mean ± SE) | effect / SE | verdict |",
            "|---|---|---|---|---|"]
    met, sentence = pre.check(correct)
    if not liger:
        return head + [f"| Liger recovers at least 93% | {PAPER} | – | – | **untestable here** (no accuracy ratio: "
                       f"{sentence}) |"]
    values = [r["recovered_acc"] for r in liger]
    items = statistics.fmean([math.nan if r["recovered_acc_se"] is None else r["recovered_acc_se"] ** 2
                              for r in liger])
    se = math.sqrt(items + statistics.variance(values) / len(values)) if len(values) > 1 else None
    v = judge_level(statistics.fmean(values), se, PAPER_LEVEL)
    verdict = (f"**untestable here** ({sentence})" if not met else
               f"**{v.verdict}**" + (" (one seed: the seeds' error is not measured)" if se is None else ""))
    error = "" if se is None else f" ± {100 * se:.1f}"
    return head + [f"| Liger recovers at least 93% | {PAPER} | {100 * v.treatment[0]:.1f}%{error} | {v.z:.1f} | "
                   f"{verdict} |", "",
                   f"Precondition: {pre.describe()}. Verdict: reproduced if the mean exceeds 93% by 2 standard "
                   "errors, not reproduced if it falls short by as much, inconclusive otherwise."]


def claims(targets: list[str]) -> list[Claim]:
    """The ablation's direction on the recovered perplexity: Liger above each of its parts that the mode tunes."""
    parts = {"gla": "its gated recurrence alone", "swa": "its sliding window alone",
             "linear_attn": "ungated linear attention"}
    return [Claim(f"Liger recovers more of the teacher's perplexity than {text}", "recovered", part, "liger",
                  "higher", ABLATION) for part, text in parts.items() if part in targets]


COLUMNS = {"test_ppl": "test ppl (after tuning)", "recovered_before": "recovered before tuning",
           "recovered": "recovered (perplexity)", "cloze_acc": "cloze acc", "recovered_acc": "recovered (accuracy)",
           "trainable_params": "trainable params", "tokens": "tuning tokens"}


def reproduce(mode: str, seeds: int, out: Path, data: str, command: str, progress: bool = True,
              executor: Executor | None = None) -> Path:
    m = MODES[mode]
    if mode == "quick" and data != "ptb":
        raise ConfigError(f"--data {data}: reproduce liger --quick trains its word-level teacher on ptb, whose test "
                          "split holds the cloze items (another corpus's vocabulary would turn their unknown answers "
                          "into <unk>, an easy prediction); --data applies to the SmolLM2 mode")
    teacher = teacher_folder(m, out, data, progress, executor)
    records: list[dict[str, Any]] = []
    for seed in range(seeds):
        opts = replace(m.options, data=data, seed=seed)
        records += records_of(run_linearization(str(teacher), opts, out / f"seed{seed}", progress), seed)
    tokens = next(r["tokens"] for r in records if r["variant"] != "teacher")
    scale = SCALES.get(m.teacher)
    who = ("SmolLM2-135M-Instruct" if scale is None else f"an attention LM of d_model {scale.d_model} and "
           f"{scale.n_layers} layers trained here on {data}: {scale.steps} steps of {scale.batch_size} x "
           f"{scale.seq_len} tokens")
    notes = mode_note(mode) + [diverged_note(records), "\n".join(level_lines(records)), (
        f"Scale: a {records[0]['params']:,}-parameter teacher ({who}), each student tuned on {tokens:,} tokens of "
        f"{data}; the paper linearizes 1B-8B models on 0.02% of their pre-training tokens. Recovered (perplexity) = "
        "teacher / student test perplexity on the same windows; recovered (accuracy) = student / teacher accuracy on "
        "the first items of the local cloze task ptb_lastword (the paper's measure, on its own task mix)."),
        "" if m.teacher != "smollm2" else (
        "With SmolLM2 the students are tuned on the text whose test split scores them; the cloze items come from "
        "PTB's test split, so with --data ptb the students have seen PTB's domain and the teacher has not.")]
    o = m.options
    settings = [f"- {seeds} seeds of tuning per target; LoRA rank {o.lora_rank} on q/k/v, AdamW lr {o.lr:g}, "
                f"{o.steps} steps of batch {o.batch_size} (grad_accum {o.grad_accum}) (the paper's recipe); window "
                f"{o.window} (the paper's 64 at 1,024 tokens{'' if o.window == 64 else ', scaled to the length'})",
                f"- per-seed linearize reports: {out}/seed<k>/report.md"]
    return write_report(out, "Reproduction: Liger linearization", command, records, COLUMNS, claims(m.options.targets),
                        [n for n in notes if n], settings)
