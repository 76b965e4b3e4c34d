import pytest

from gatelab.config import ConfigError, apply_overrides, from_dict, to_dict
from gatelab.train import TrainConfig


def test_round_trip():
    cfg = TrainConfig()
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_unknown_key_names_it_and_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown config key 'model.d_modle'.*valid keys: .*d_model"):
        from_dict(TrainConfig, {"model": {"d_modle": 3}})


def test_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="model.d_model: expected an integer"):
        from_dict(TrainConfig, {"model": {"d_model": "big"}})
    with pytest.raises(ConfigError, match="batch_size: expected an integer"):
        from_dict(TrainConfig, {"batch_size": 3.5})


def test_overrides():
    cfg = apply_overrides(TrainConfig(), ["model.d_model=32", "optim.lr=3e-3", "mqar.seq_lens=[64,128]",
                                          "model.mixer_options.gla.expand_k=1.0", "model.mixer=gla"])
    assert cfg.model.d_model == 32 and cfg.optim.lr == 3e-3 and cfg.mqar.seq_lens == [64, 128]
    assert cfg.model.mixer_options == {"gla": {"expand_k": 1.0}}
    with pytest.raises(ConfigError, match="unknown config key 'modle'"):
        apply_overrides(TrainConfig(), ["modle.d_model=3"])
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(TrainConfig(), ["model.d_model"])
