"""``report.md`` of ``gatelab linearize``: teacher and linearized students' perplexity, the recovered fraction, and
the decoding state against context length."""
from __future__ import annotations

from pathlib import Path
from typing import Any

PAPER_NOTE = (
    "The paper (Lan et al. 2025, arXiv 2503.01496) reports Liger recovering about 93% of its Llama-3 teacher with "
    "0.02% of the pre-training tokens, as the ratio of mean zero-shot accuracies (PIQA, ARC-e, ARC-c, HellaSwag, "
    "WinoGrande, MMLU through lm-eval-harness) of student and teacher, at 1B-8B parameters. This report measures "
    "perplexity recovery (teacher perplexity / student perplexity on the same test windows) and accuracy recovery "
    "on one local zero-shot cloze task (ptb_lastword, through lm-eval), not the paper's task mix.")


def _acc(row: dict[str, Any], suffix: str) -> str:
    """``acc (recovered ± SE)`` of a cloze score, blank when none was measured."""
    acc, ratio, se = (row.get(f"{k}{suffix}") for k in ("cloze_acc", "recovered_acc", "recovered_acc_se"))
    if acc is None:
        return ""
    if ratio is None:
        return f"{acc:.3f}"
    return f"{acc:.3f} ({_pct(ratio)}" + ("" if se is None else f" ± {100 * se:.1f}") + ")"


def _ppl(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def report_markdown(results: dict[str, Any], command: str) -> str:
    opts, teacher = results["options"], results["teacher"]
    lines = [f"# Linearization of {results['source']}", "", f"`{command}`", "",
             f"Fine-tuning: {opts['steps']} steps of batch {opts['batch_size']} x {results['seq_len']} tokens "
             f"({opts['grad_accum']} micro-batches) on "
             f"{opts['data']}, LoRA rank {opts['lora_rank']} on q/k/v, lr {opts['lr']:g}, seed {opts['seed']}; "
             f"evaluation: {results['eval']['tokens']:,} test tokens in {results['eval']['windows']} windows of "
             f"{results['seq_len']}.", "",
             "| model | mixer | test ppl before tuning | test ppl after tuning | recovered before | recovered after | "
             "cloze acc before (recovered) | cloze acc after (recovered) | trainable params | tuning tokens |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| teacher | attn | {_ppl(teacher['test_ppl'])} | | | | {_acc(teacher, '')} | | "
             f"{teacher['params']:,} (all, trained) | "
             f"{'' if teacher['train_tokens'] is None else format(teacher['train_tokens'], ',')} |"]
    for to, r in results["targets"].items():
        after = f"diverged at step {r['steps']}" if r["diverged"] else _ppl(r["test_ppl_tuned"])
        lines.append(f"| {to} | {r['mixer']} | {_ppl(r['test_ppl_linearized'])} | {after} | "
                     f"{_pct(r['recovered_linearized'])} | {'' if r['diverged'] else _pct(r['recovered'])} | "
                     f"{_acc(r, '_linearized')} | {_acc(r, '')} | {r['trainable_params'] or 0:,} | {r['tokens']:,} |")
    cloze = results.get("cloze")
    accuracy = (f" Cloze: the first {cloze['items']:,} items of {cloze['task']}, greedy accuracy; recovered = student "
                "accuracy / teacher accuracy, ± its standard error over the items (paired bootstrap)." if cloze else "")
    lines += ["", f"Recovered = {results['recovered_definition']}.{accuracy}", "", PAPER_NOTE, "",
              "## Decoding state against context length", "",
              "Bytes held by the per-layer decoding states after a context, and the median time of one decoding step "
              "there (one sequence, this machine). The teacher's KV cache grows with the context; the linearized "
              "models' states are bounded: the recurrent state is constant and a sliding window's cache keeps at "
              "most max(16, 2 (window - 1)) token slots.", ""]
    contexts = [s["context"] for s in teacher["state"]]
    lines += ["| model | " + " | ".join(f"state bytes @ {n:,}" for n in contexts) + " | "
              + " | ".join(f"ms/token @ {n:,}" for n in contexts) + " |",
              "|---|" + "---:|" * (2 * len(contexts))]
    models = {"teacher": teacher["state"], **{to: r["state"] for to, r in results["targets"].items() if "state" in r}}
    for name, state in models.items():
        lines.append(f"| {name} | " + " | ".join(f"{s['state_bytes']:,}" for s in state) + " | "
                     + " | ".join(f"{s['decode_ms']:.2f}" for s in state) + " |")
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], out: str | Path, command: str) -> Path:
    path = Path(out) / "report.md"
    staging = path.with_name("report.md.tmp")
    staging.write_text(report_markdown(results, command))
    staging.replace(path)
    return path
