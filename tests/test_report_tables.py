"""The per-cell summary of a sweep: the best learning rate of each seed, then statistics over seeds."""
import pytest

from gatelab.report import summarize
from gatelab.report.tables import decimals_for, score_text


def record(seed, lr, accuracy, tokens_per_second=100.0):
    return {"mixer": "gla", "d_model": 32, "seq_len": 128, "seed": seed, "lr": lr, "accuracy": accuracy,
            "num_params": 10, "state_size": 20, "tokens_per_second": tokens_per_second}


def test_summary_takes_each_seeds_best_lr_then_mean_std_and_range_over_seeds():
    records = [record(0, 1e-3, 0.2), record(0, 1e-2, 0.9, 50.0), record(1, 1e-3, 0.5, 70.0), record(1, 1e-2, 0.1),
               record(2, 1e-3, 0.3), record(2, 1e-2, 0.4, 90.0)]
    (row,) = summarize(records)
    assert row["seeds"] == 3 and row["best_lrs"] == "0.001 0.01"
    assert row["accuracy_mean"] == pytest.approx(0.6)
    assert row["accuracy_std"] == pytest.approx(0.2645751311)
    assert (row["accuracy_min"], row["accuracy_max"]) == (0.4, 0.9)
    assert row["tokens_per_second"] == 70.0


def test_the_best_lr_of_a_seed_is_one_that_did_not_diverge_and_diverged_seeds_are_counted():
    from gatelab.report.tables import markdown_table

    records = [{**record(0, 1e6, 0.0), "diverged": True}, record(0, 1e-3, 0.001),          # below chance, kept
               {**record(1, 1e6, 0.0), "diverged": True}, {**record(1, 1e-3, 0.0), "diverged": True},
               record(2, 1e-3, 0.5)]
    (row,) = summarize(records)
    assert row["seeds"] == 3 and row["diverged"] == 1 and row["best_lrs"] == "0.001"
    assert row["accuracy_mean"] == pytest.approx(0.2505)
    assert score_text(row, "accuracy") == "0.3 ± 0.4 (1 of 3 seeds diverged)"   # 2 seeds: SE 0.25
    assert "1 of 3 seeds diverged" in markdown_table([row])
    (row,) = summarize([{**record(0, 1e6, 0.0), "diverged": True}])
    assert score_text(row, "accuracy") == "diverged" and row["best_lrs"] == ""
    assert "| diverged | 1 | - |" in markdown_table([row])


@pytest.mark.parametrize("std,seeds,decimals", [(0.11, 3, 2), (0.002, 3, 3), (0.0001, 4, 3), (0.4, 2, 1), (0.0, 3, 3),
                                                (0.3, 1, 3), (0.03, 9, 2), (0.009, 9, 3)])
def test_mqar_scores_print_to_the_first_digit_of_their_standard_error(std, seeds, decimals):
    assert decimals_for(std, seeds, most=3) == decimals
    row = {"accuracy_mean": 0.51234, "accuracy_std": std, "seeds": seeds, "diverged": 0}
    assert score_text(row, "accuracy") == f"{0.51234:.{decimals}f} ± {std:.{decimals}f}"
