"""Experiment tracking: TensorBoard and MLflow receive every metrics.jsonl line (each numeric key at its step,
read back exactly) and the resolved config; a resumed run appends without repeating a step; a missing package is
an error naming the extra before anything trains."""
import importlib.util
import json

import pytest

import gatelab.train.loop as loop
from gatelab.cli import main
from gatelab.config import ConfigError, from_dict
from gatelab.models import ModelConfig
from gatelab.train import MQARTaskConfig, TrainConfig, train
from gatelab.train.tracking import flat_config, mlflow_key

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")


def config(**kw) -> TrainConfig:
    base = dict(batch_size=8, max_steps=6, eval_every=3, target_accuracy=2.0)
    return TrainConfig(mqar=MQARTaskConfig(vocab_size=32, seq_lens=[16], num_kv_pairs=[2], train_examples=64,
                                           test_examples=16),
                       model=ModelConfig(d_model=8, n_layers=1, n_heads=1, mixer="attn", channel="none"),
                       **{**base, **kw})


def expected(run) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as ``{key: [(step, value), ...]}``."""
    out: dict[str, list[tuple[int, float]]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for key, value in record.items():
            if key != "step":
                out.setdefault(key, []).append((record["step"], float(value)))
    return out


def tensorboard_values(run) -> tuple[dict[str, list[tuple[int, float]]], dict, dict]:
    """The scalars of ``run/tensorboard`` as TensorBoard serves them (orphaned steps purged), the config text and
    the hparams."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    from tensorboard.util.tensor_util import make_ndarray

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    plugin = {tag: acc.SummaryMetadata(tag).plugin_data.plugin_name for tag in acc.Tags()["tensors"]}
    scalars = {tag: [(e.step, make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]
               for tag, name in plugin.items() if name == "scalars"}
    assert plugin["config/text_summary"] == "text"
    text = make_ndarray(acc.Tensors("config/text_summary")[0].tensor_proto).item().decode()
    start = plugin_data_pb2.HParamsPluginData.FromString(acc.PluginTagToContent("hparams")[
        "_hparams_/session_start_info"]).session_start_info
    hparams = {k: getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    return scalars, json.loads(text.removeprefix("```json\n").removesuffix("\n```")), hparams


def mlflow_values(out, run_name: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name(out.name).experiment_id],
                                  filter_string=f"attributes.run_name = '{run_name}'")
    history = {key: [(m.step, m.value) for m in sorted(client.get_metric_history(found.info.run_id, key),
                                                        key=lambda m: m.step)]
               for key in found.data.metrics}
    return found, history


def test_tensorboard_and_mlflow_mirror_every_metric_and_the_config(tmp_path):
    run = tmp_path / "sweep" / "runs" / "tiny-attn"
    train(config(log=["tensorboard", "mlflow"]), run, progress=False)
    want = expected(run)
    assert set(want) >= {"loss", "lr", "eval/accuracy"} and len(want["loss"]) == 6 and len(want["eval/loss"]) == 2
    stored = json.loads((run / "config.json").read_text())

    scalars, tb_config, hparams = tensorboard_values(run)
    assert scalars == want
    assert tb_config == stored and hparams == flat_config(stored) and hparams["model.d_model"] == 8

    found, history = mlflow_values(tmp_path / "sweep", "tiny-attn")     # experiment: the sweep folder's name
    assert history == {mlflow_key(k): v for k, v in want.items()}
    assert mlflow_key("eval/accuracy/len16-kv2") == "eval/accuracy.len16-kv2" and mlflow_key("loss") == "loss"
    assert found.data.params == {k: str(v) for k, v in flat_config(stored).items()}
    assert found.data.params["model.mixer"] == "attn" and found.info.status == "FINISHED"


def test_a_resumed_run_appends_each_step_once(tmp_path, monkeypatch):
    """Killed at step 5 after a checkpoint at step 4, the trackers held steps 1..5; the resumed run trains step 5
    again and both trackers end with one value per step, equal to metrics.jsonl."""
    cfg = config(log=["tensorboard", "mlflow"], checkpoint_every=2)
    real_lr_at = loop.lr_at

    def killed(step, total, optim):
        if step == 5:
            raise KeyboardInterrupt
        return real_lr_at(step, total, optim)

    run = tmp_path / "out" / "killed"
    monkeypatch.setattr(loop, "lr_at", killed)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run, progress=False)
    monkeypatch.setattr(loop, "lr_at", real_lr_at)
    train(cfg, run, progress=False, resume=True)
    train(cfg, tmp_path / "out" / "whole", progress=False)
    assert expected(run) == expected(tmp_path / "out" / "whole")
    assert tensorboard_values(run)[0] == expected(run)
    found, history = mlflow_values(tmp_path / "out", "killed")
    assert history == {mlflow_key(k): v for k, v in expected(run).items()} and found.info.status == "FINISHED"


def test_a_run_that_raises_marks_its_mlflow_run_failed_at_once(tmp_path, monkeypatch):
    """Not at garbage collection or process exit: the traceback that propagates keeps the run folder alive."""
    def broken(step, total, optim):
        raise RuntimeError("broken at step 0")

    monkeypatch.setattr(loop, "lr_at", broken)
    with pytest.raises(RuntimeError, match="broken at step 0") as raised:
        train(config(log=["mlflow"]), tmp_path / "out" / "broken", progress=False)
    found, _ = mlflow_values(tmp_path / "out", "broken")
    assert found.info.status == "FAILED" and raised.value is not None


def test_tracking_added_on_resume_is_not_another_configuration(tmp_path):
    run = tmp_path / "out" / "run"
    train(config(checkpoint_every=3, max_steps=3), run, progress=False)
    train(config(checkpoint_every=3, max_steps=3, log=["tensorboard"]), run, progress=False, resume=True)
    assert json.loads((run / "config.json").read_text())["log"] == ["tensorboard"]
    assert (run / "tensorboard").is_dir()


def test_a_missing_package_names_the_extra_before_anything_is_written(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(ConfigError, match=r"gatelab\[mlflow\]"):
        train(config(log=["mlflow"]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    code = main(["train", "--out", str(tmp_path / "cli"), "--log", "mlflow", "--set", "max_steps=1", "--no-progress"])
    assert code == 2 and "pip install 'gatelab[mlflow]'" in capsys.readouterr().out
    assert not (tmp_path / "cli").exists()


def test_an_unknown_tracker_is_refused():
    with pytest.raises(ConfigError, match=r"log\[0\].*'tensorboard', 'mlflow'"):
        from_dict(TrainConfig, {"log": ["wandb"]})
    assert main(["train", "--log", "wandb"]) == 2
