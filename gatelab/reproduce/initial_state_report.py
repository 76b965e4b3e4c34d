"""The claims and the report of ``gatelab reproduce initial-state`` (the runs are ``initial_state.py``)."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import by_variant, mean_cell, mode_note, verdicts, write_report
from .verdict import Claim, Precondition

if TYPE_CHECKING:
    from ..train.finetune.matched import LoRAMatch
    from .initial_state import Protocol

SHIFT_FLOOR = 0.10      # full fine-tuning must lower the untuned source's test perplexity by a tenth
MARGIN = 0.02           # "at least as well": test perplexity at most 2% above the control's

# What the paper says, as far as could be read here: its title and abstract (v1); its tables were not readable
PAPER = {
    "lora": "no comparison with LoRA read here; the title calls GLA with initial-state tuning a "
            "\"parameter-efficient learner\" (speech, voice cloning)",
    "untuned": "premise of the method: tuning the state alone adapts the model to a speaker (abstract, v1); no "
               "perplexity reported",
    "full": "\"comparable to fine-tuned baselines\" with 3 to 15 minutes of a speaker's speech (abstract, v1)",
}


def chosen_lrs(records: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Each (mixer, arm)'s learning rate: the lowest mean valid perplexity over seeds (a diverged run counts as
    infinite); test perplexity never chooses."""
    valid: dict[tuple[str, str, float], list[float]] = {}
    for r in records:
        valid.setdefault((r["mixer"], r["arm"], r["lr"]), []).append(r["valid_ppl"])
    best: dict[tuple[str, str], float] = {}
    for m, arm, lr in sorted(valid, key=lambda k: statistics.fmean(valid[k])):
        best.setdefault((m, arm), lr)
    return best


def edge_note(chosen: dict[tuple[str, str], float], grids: dict[str, tuple[float, ...]]) -> str:
    """The (mixer, arm) pairs whose chosen rate is the largest or smallest of a grid of more than one: the best
    rate may lie outside it, and that arm may be handicapped."""
    edges = [f"{m} {arm} at {lr:g}" for (m, arm), lr in sorted(chosen.items())
             if len(grids[arm]) > 1 and lr in (min(grids[arm]), max(grids[arm]))]
    return ("Chosen at an edge of its learning-rate grid (the best rate may lie beyond it): " + ", ".join(edges)
            + ".") if edges else ""


def claims(mixers: tuple[str, ...], chosen: dict[tuple[str, str], float]) -> list[Claim]:
    """Per mixer, at each arm's chosen learning rate: initial-state tuning against LoRA at equal parameters and
    against full fine-tuning (no loss beyond ``MARGIN``), and against the untuned source (lower); each needs the
    domain shift."""
    out = []
    for m in mixers:
        ist, lora, full = (f"{m} {arm} lr={chosen[m, arm]:g}" for arm in ("initial_state", "lora", "full"))
        shift = Precondition("a domain shift that tuning can close", "ppl_reduction", full, SHIFT_FLOOR,
                             f"full fine-tuning lowers the untuned source's test perplexity by at least "
                             f"{SHIFT_FLOOR:.0%}, five times the {MARGIN:.0%} margin of the no-loss claims: without a "
                             "shift every arm stays near the source and the comparison says nothing")
        out += [
            Claim(f"{m}: initial-state tuning adapts at least as well as LoRA at equal trainable parameters (test "
                  f"ppl at most {MARGIN:.0%} above LoRA's)", "test_ppl", lora, ist, "lower", PAPER["lora"], shift,
                  margin=MARGIN),
            Claim(f"{m}: initial-state tuning lowers test ppl against the untuned source", "test_ppl",
                  f"{m} untuned", ist, "lower", PAPER["untuned"], shift),
            Claim(f"{m}: initial-state tuning comes within {MARGIN:.0%} of full fine-tuning's test ppl", "test_ppl",
                  full, ist, "lower", PAPER["full"], shift, margin=MARGIN),
        ]
    return out


COLUMNS = {"trainable_params": "trainable params", "test_ppl": "test ppl", "bpb": "bits per byte",
           "valid_ppl": "valid ppl", "ppl_reduction": "test ppl reduction vs untuned", "train_seconds": "train s"}


def _cell(metric: str, values: list[float] | None, arm: str) -> str:
    """Mean ± std over seeds; trainable parameters as a count; nothing trained or reduced for the untuned source."""
    if not values or arm == "untuned" and metric in ("ppl_reduction", "train_seconds"):
        return "–"
    if metric == "trainable_params":
        return " to ".join(dict.fromkeys(f"{int(n):,}" for n in (min(values), max(values))))
    return mean_cell(values)


def arm_table(records: list[dict[str, Any]], chosen: dict[tuple[str, str], float],
              judged: list[tuple[Claim, Any]]) -> list[str]:
    """One row per mixer, arm and learning rate (grouped by mixer): mean ± std over seeds of each column, the chosen
    learning rate marked, and the verdicts of the claims whose treatment the row is."""
    header = ["mixer", "arm", "lr", "seeds", *COLUMNS.values(), "verdicts"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    mixers = list(dict.fromkeys(r["mixer"] for r in records))
    for v in sorted(dict.fromkeys(r["variant"] for r in records), key=lambda v: mixers.index(v.split()[0])):
        rows = [r for r in records if r["variant"] == v]
        first = rows[0]
        lr = "–" if first["lr"] is None else f"{first['lr']:g}"
        if first["lr"] is not None and chosen.get((first["mixer"], first["arm"])) == first["lr"]:
            lr = f"**{lr}** (chosen)"
        cells = [first["mixer"], first["arm"], lr, str(len(rows))]
        cells += [_cell(metric, by_variant(records, metric).get(v), first["arm"]) for metric in COLUMNS]
        cells.append("; ".join(f"vs {c.control.split()[1]}: **{verdict.verdict}**"
                               for c, verdict in judged if c.treatment == v) or "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def match_note(mixer: str, m: LoRAMatch) -> str:
    where = ", ".join(m.targets)
    if m.exact:
        return f"- {mixer}: LoRA rank {m.rank} on {where}: {m.params} trainable parameters, the initial states' count."
    return (f"- {mixer}: LoRA rank {m.rank} on {where}: {m.params} trainable parameters against the initial states' "
            f"{m.budget} ({m.params / m.budget - 1:+.1%}); no rank and set of the mixer's projections gives exactly "
            f"{m.budget} (each adapter's count is its rank times its layer's in + out), this is the closest.")


def report(out: Path, mode: str, seeds: int, data: str, command: str, p: Protocol, records: list[dict[str, Any]],
           source_records: list[dict[str, Any]], matches: dict[str, LoRAMatch], shift: dict[str, Any]) -> Path:
    mixers = tuple(matches)
    tuned = [r for r in records if r["lr"] is not None]
    chosen = chosen_lrs(tuned)
    claim_list = claims(tuple(m for m in mixers if (m, "initial_state") in chosen), chosen)
    sources = [f"{m} {mean_cell([r['test_ppl'] for r in source_records if r['mixer'] == m])} "
               f"({max(r['num_params'] for r in source_records if r['mixer'] == m)} parameters)" for m in mixers]
    notes = mode_note(mode) + [
        *[f"Source run {r['run']} diverged: its seed has no untuned or tuned rows." for r in source_records
          if r["diverged"]],
        "Each arm's learning rate (**chosen**) has the lowest mean valid perplexity over seeds on the target's "
        "valid split; the claims compare test perplexity at the chosen rates. Every run starts from its seed's "
        "source model, so the seed std includes the source's training noise.",
        edge_note(chosen, p.lrs),
        "\n".join(["Trainable parameters at equal count (`gatelab.train.finetune.matched`):",
                   *[match_note(m, matches[m]) for m in mixers]]),
        f"The shift is partly one of alphabet: PTB is lower-case with almost no punctuation, and {shift['values']} "
        f"byte values of {data}'s test split ({shift['shown']!r}) never occur in PTB's training split; they make up "
        f"{shift['fraction']:.1%} of its test bytes. Their embeddings (tied to the output head) never trained; full "
        "fine-tuning trains them, LoRA on the mixer's projections and the initial states leave them as they are.",
        "The paper's setting is not ours: Lina-Speech tunes the initial states of a 169M-parameter GLA "
        "text-to-speech model (audio codec tokens, cross-attention to text) on 3 to 15 minutes of one speaker and "
        "judges the voice (speaker similarity, word error rate, listening tests); here a small byte-level LM "
        "adapts from news text (PTB) to another corpus, judged by test perplexity. Its code learns each layer's "
        "state with Adam at lr 0.1, no weight decay, from 0.02 x Gaussian noise (or as a low-rank product); here "
        "the states start at zeros, so every arm starts from the untuned source's predictions.",
        "Every evaluation window starts from the (learned) initial state, so the state acts on the first bytes of "
        f"each {p.scale.seq_len}-byte window, where the untuned model has no context.",
    ]
    s = p.scale
    settings = [
        f"- source: {', '.join(mixers)} LMs on PTB read as UTF-8 bytes (256 ids, no BOS token), {s.n_layers} "
        f"layers, d_model {s.d_model}, {s.n_heads} heads, pre-norm blocks with RMSNorm and SwiGLU; {s.steps} steps "
        f"of batch {s.batch_size} x {s.seq_len} bytes, AdamW lr {s.lr:g} (weight decay 0.1), warmup and cosine "
        f"decay; one source per seed. Source PTB test ppl: {'; '.join(sources)}",
        f"- adaptation to {data}: {p.tune_steps} steps of batch {s.batch_size} x {s.seq_len} bytes for every arm "
        "(same data order per seed), AdamW without weight decay, warmup and cosine decay, gradient clipping 1.0; "
        "LoRA alpha twice its rank; learning rates "
        + "; ".join(f"{arm} {', '.join(f'{lr:g}' for lr in lrs)}" for arm, lrs in p.lrs.items())
        + " (grids from a one-seed probe at the quick scale, listed in `gatelab/reproduce/initial_state.py`)",
        f"- measured on the first {s.eval_tokens} bytes of the valid and test splits (disjoint windows of "
        f"{s.seq_len}); bits per byte = log2 of the per-byte perplexity; {seeds} seeds",
    ]
    table = arm_table(records, chosen, verdicts(records, claim_list))
    return write_report(out, "Reproduction: initial-state tuning (Lemerle et al. 2024, Lina-Speech)", command,
                        records, COLUMNS, claim_list, [n for n in notes if n], settings, table)
