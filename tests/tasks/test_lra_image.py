import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.tasks.lra import LRAImageConfig, lra_image
from gatelab.tasks.lra.image import DEFAULT_PATH, FILES, read_idx, write_standin


def handmade_idx(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, written from its definition."""
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_reads_handmade_idx_files_gzipped_or_not(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28).astype(np.uint8)
    labels = np.array([4, 0, 9], dtype=np.uint8)
    for split, n in (("train", 3), ("test", 3)):
        (tmp_path / FILES[split][0]).write_bytes(handmade_idx(images[:n]))
        (tmp_path / (FILES[split][1] + ".gz")).write_bytes(gzip.compress(handmade_idx(labels[:n])))
    data = lra_image(LRAImageConfig(path=str(tmp_path), valid_examples=1), 0, "test")
    assert data.inputs.shape == (3, 784) and data.labels.tolist() == [4, 0, 9]
    assert data.inputs[1, 0] == (784 % 256) + 1 and data.inputs[0, 29] == 29 + 1   # row-major, pixel + 1
    assert torch.equal(data.inputs, torch.from_numpy(images.reshape(3, -1).astype(np.int64) + 1))
    assert (data.lengths() == 784).all()


def test_splits_from_a_standin(tmp_path):
    folder = write_standin(tmp_path / "fm", train=40, test=20, gz=False)
    cfg = LRAImageConfig(path=str(folder), valid_examples=10, train_examples=25, test_examples=15)
    train, valid, test = (lra_image(cfg, 0, s) for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (25, 10, 15)
    all_train = read_idx(folder / FILES["train"][0]).reshape(40, -1).astype(np.int64) + 1
    assert np.array_equal(train.inputs.numpy(), all_train[:25])            # the first images
    assert np.array_equal(valid.inputs.numpy(), all_train[30:])            # the last valid_examples
    everything = lra_image(LRAImageConfig(path=str(folder), valid_examples=10), 0, "train")
    assert len(everything) == 30 and np.array_equal(everything.inputs.numpy(), all_train[:30])
    assert torch.equal(lra_image(cfg, 0, "test").inputs, lra_image(cfg, 3, "test").inputs)   # fixed split
    assert test.labels.tolist() == [i % 10 for i in range(15)]


def test_missing_data_says_how_to_install_it(tmp_path):
    with pytest.raises(ConfigError, match=r"(?s)apt-get install dataset-fashion-mnist.*lra_image\.path"):
        lra_image(LRAImageConfig(path=str(tmp_path)), 0, "train")


def test_damaged_files_are_errors(tmp_path):
    folder = write_standin(tmp_path, train=20, test=5, gz=False)
    with pytest.raises(ConfigError, match="lra_image.valid_examples"):
        lra_image(LRAImageConfig(path=str(folder), valid_examples=20), 0, "train")
    (folder / FILES["test"][1]).write_bytes(handmade_idx(np.array([1, 2, 3, 4, 12], dtype=np.uint8)))
    with pytest.raises(ConfigError, match="labels must be 0-9"):
        lra_image(LRAImageConfig(path=str(folder)), 0, "test")
    (folder / FILES["test"][0]).write_bytes(handmade_idx(np.zeros((5, 28, 28), np.uint8))[:-1])
    with pytest.raises(ConfigError, match="declares shape"):
        lra_image(LRAImageConfig(path=str(folder)), 0, "test")
    (folder / FILES["test"][0]).write_bytes(b"\x00\x00\x0d\x03")
    with pytest.raises(ConfigError, match="not an IDX file"):
        lra_image(LRAImageConfig(path=str(folder)), 0, "test")


@pytest.mark.parametrize("kw,match", [
    (dict(valid_examples=0), "lra_image.valid_examples"),
    (dict(train_examples=0), "lra_image.train_examples"),
    (dict(test_examples=0), "lra_image.test_examples"),
])
def test_bad_settings_name_the_field(kw, match):
    with pytest.raises(ConfigError, match=match):
        lra_image(LRAImageConfig(**kw), 0, "test")


@pytest.mark.skipif(not Path(DEFAULT_PATH).is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_the_installed_fashion_mnist():
    test = lra_image(LRAImageConfig(), 0, "test")
    assert test.inputs.shape == (10000, 784) and test.labels.bincount().tolist() == [1000] * 10
    assert test.inputs.min() >= 1 and test.inputs.max() <= 256
    assert len(lra_image(LRAImageConfig(), 0, "valid")) == 5000
