"""``gatelab reproduce initial-state``: LoRA at the initial states' parameter count, the learning-rate choice, the
smoke mode end to end, and bad input."""
import dataclasses
import itertools
import json
import random
import re

import pytest
import torch

from gatelab.cli import main
from gatelab.config import ConfigError
from gatelab.models import ModelConfig
from gatelab.models.lm import DecoderLM
from gatelab.reproduce.initial_state_report import chosen_lrs, edge_note
from gatelab.train.finetune import LoRAConfig, add_lora
from gatelab.train.finetune.matched import initial_state_params, lora_params, matched_lora

from .test_reproduce import assert_table_rows_whole
from .utils import write_corpus


def model_config(mixer: str, d_model: int = 16, n_heads: int = 2) -> ModelConfig:
    return ModelConfig(d_model=d_model, n_layers=2, n_heads=n_heads, mixer=mixer, channel="swiglu", vocab_size=256)


def test_lora_matches_the_initial_states_count_as_peft_and_the_model_count_it():
    cfg = model_config("gla")
    match = matched_lora(cfg)
    # GLA, d_model 16, 2 heads: a [1, 2, 4, 8] state per layer; v_proj and o_proj (16 -> 16) at rank 1: 2 * 32 each
    assert (match.rank, match.targets, match.params, match.budget) == (1, ("mixer.v_proj", "mixer.o_proj"), 128, 128)
    assert match.exact
    torch.manual_seed(0)
    model = add_lora(DecoderLM(cfg), LoRAConfig(rank=match.rank, alpha=2.0, targets=list(match.targets)))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == match.params
    states = DecoderLM(dataclasses.replace(cfg, learned_initial_state=True))
    assert sum(p.numel() for n, p in states.named_parameters() if n.startswith("initial_states.")) == match.budget


def test_among_equally_close_choices_more_layers_at_a_lower_rank_and_lora_s_preferred_layers_win():
    # d_model 64, 4 heads: 512 per layer; v, g and o (64 -> 64) at rank 4 alone, or two of them at rank 2, all match
    match = matched_lora(model_config("gla", 64, 4))
    assert (match.rank, match.targets, match.exact) == (2, ("mixer.v_proj", "mixer.o_proj"), True)


def test_where_no_lora_has_the_count_the_closest_is_taken_and_said_to_differ():
    cfg = model_config("mamba2")
    match = matched_lora(cfg)
    budget = initial_state_params(cfg)        # [1, 2, 16, 16] per layer (expand 2: 32 channels, d_state 16)
    assert match.budget == budget == 1024 and not match.exact
    with torch.device("meta"):
        model = DecoderLM(cfg)
    layers = ("mixer.in_proj", "mixer.out_proj")
    counts = [lora_params(model, t, r) for n in (1, 2) for t in itertools.combinations(layers, n) for r in range(1, 40)]
    assert budget not in counts
    assert abs(match.params - budget) == min(abs(c - budget) for c in counts)
    assert (match.rank, match.targets, match.params) == (11, ("mixer.out_proj",), 1056)


def test_a_mixer_without_a_recurrent_memory_has_no_initial_state_to_match():
    with pytest.raises(ConfigError, match="'attn' keeps no recurrent memory"):
        matched_lora(model_config("attn"))


def test_each_arm_s_learning_rate_is_chosen_on_valid_perplexity_never_on_test():
    records = [{"mixer": "gla", "arm": "lora", "lr": lr, "seed": s, "valid_ppl": v, "test_ppl": t}
               for lr, vs, t in ((0.01, (10.0, 12.0), 5.0), (0.03, (10.5, 10.9), 50.0),
                                 (0.1, (float("inf"), 9.0), 1.0))
               for s, v in enumerate(vs)]
    assert chosen_lrs(records) == {("gla", "lora"): 0.03}     # means 11.0, 10.7 and inf (one seed diverged)


def test_a_rate_chosen_at_the_edge_of_its_grid_is_said_to_be():
    grids = {"initial_state": (1.0, 10.0, 30.0), "lora": (0.01, 0.03, 0.1), "full": (0.003,)}
    note = edge_note({("gla", "initial_state"): 30.0, ("gla", "lora"): 0.03, ("gla", "full"): 0.003}, grids)
    assert note.endswith("gla initial_state at 30.") and "lora" not in note and "full" not in note
    assert edge_note({("gla", "lora"): 0.03}, grids) == ""


def target_corpus(folder):
    """A small corpus in Shakespeare's alphabet: capitals and punctuation that PTB's bytes lack."""
    rng = random.Random(0)
    words = ["Thou", "art", "the", "KING,", "and", "I", "am", "thy", "fool!", "What", "say", "you,", "Sir?", "Nay:",
             "good", "night."]
    return write_corpus(folder, "\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(300)))


def test_reproduce_initial_state_runs_end_to_end_in_smoke_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    argv = ["reproduce", "initial-state", "--smoke", "--seeds", "2", "--data", str(target_corpus(tmp_path / "t")),
            "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    report = (out / "report.md").read_text()
    assert "Smoke mode" in report and "Lina-Speech" in report
    assert_table_rows_whole(report)
    assert_table_rows_whole(capsys.readouterr().out)
    claims = [line for line in report.split("## Claims")[1].splitlines() if line.startswith("| ") and "**" in line]
    assert len(claims) == 6 and all(re.search(r"\*\*(reproduced|not reproduced|inconclusive|untestable here)\*\*", c)
                                    for c in claims)
    records = json.loads((out / "records.json").read_text())
    params = {(r["mixer"], r["arm"]): r["trainable_params"] for r in records}
    assert params["gla", "initial_state"] == params["gla", "lora"] == 128           # exactly equal
    assert (params["mamba2", "initial_state"], params["mamba2", "lora"]) == (1024, 1056)   # the closest
    assert params["gla", "full"] > 10_000 and params["gla", "untuned"] == 0
    assert "no rank and set of the mixer's projections gives exactly 1024" in report
    assert {(r["arm"], r["seed"]) for r in records if r["mixer"] == "gla"} == {
        (arm, s) for arm in ("untuned", "initial_state", "lora", "full") for s in (0, 1)}
    untuned = {r["seed"]: r["test_ppl"] for r in records if r["variant"] == "gla untuned"}
    for r in records:
        if r["mixer"] == "gla" and r["lr"] is not None:
            assert r["ppl_reduction"] == pytest.approx(1 - r["test_ppl"] / untuned[r["seed"]])
    assert re.search(r"byte values of .*'s test split \('!,:\?[A-Z]+'\) never occur in PTB's training split", report)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}
    assert len(stamps) == 2 * 2 * 4 and main(argv) == 0          # resumes: nothing retrained
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/result.json")}


@pytest.mark.parametrize(("data", "message"), [
    ("ptb", "--data ptb: the source models train on ptb"),
    ("/no/such/corpus", "/no/such/corpus"),
])
def test_bad_target_corpora_are_refused_before_anything_trains(data, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    out = tmp_path / "out"
    assert main(["reproduce", "initial-state", "--smoke", "--data", data, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().out
    assert "error:" in err and message in err and "Traceback" not in err
    assert not (out / "runs").exists()
