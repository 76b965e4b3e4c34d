"""Fine-tuning runs: init_from (weights, config, fingerprint), tune=full|lora|initial_state, lm.tokenizer=model."""
import dataclasses
import json
import random

import pytest
import torch
from safetensors.torch import load_file, save_file

from gatelab.config import ConfigError, apply_overrides
from gatelab.hf import load_run
from gatelab.models import ModelConfig
from gatelab.tasks.text.assets import data_home
from gatelab.tasks.text.cache import corpus_key
from gatelab.tasks.text.tokenizers import fingerprint
from gatelab.train import LMTaskConfig, TrainConfig, evaluate, train
from gatelab.train.config import check_buildable
from gatelab.train.finetune import LoRAConfig, Tuning
from gatelab.train.sweep import finished_result
from gatelab.train.tasks import build_task

from ..utils import write_corpus

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while",
         "birds", "sing", "in", "tall", "green", "trees", "by", "the", "river"]


def corpus(folder, seed):
    rng = random.Random(seed)
    return str(write_corpus(folder, "\n".join(" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(200))))


def base_config(data, mixer="gla") -> TrainConfig:
    return TrainConfig(task="lm", lm=LMTaskConfig(data=data, seq_len=16, eval_tokens=256),
                       model=ModelConfig(d_model=32, n_layers=2, n_heads=2, mixer=mixer, channel="swiglu"),
                       batch_size=8, max_steps=8, eval_every=4)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished gla run on one corpus and a second corpus (the adaptation target)."""
    root = tmp_path_factory.mktemp("finetune")
    cfg = base_config(corpus(root / "a", 0))
    result = train(cfg, root / "src", progress=False)
    return {"root": root, "run": root / "src", "result": result, "cfg": cfg, "target": corpus(root / "b", 1)}


def tuned(source, tune="full", **kw) -> TrainConfig:
    """A fine-tuning config: the source's model from init_from, the target corpus, its saved tokenizer."""
    lm = LMTaskConfig(data=source["target"], seq_len=16, eval_tokens=256, tokenizer="model")
    return TrainConfig(**{"task": "lm", "lm": lm, "init_from": str(source["run"]), "tune": tune, "batch_size": 8,
                          "max_steps": 6, "eval_every": 3, **kw})


def test_init_from_reproduces_the_source_models_evaluation(source):
    cfg = dataclasses.replace(source["cfg"], init_from=str(source["run"]), model=TrainConfig().model)
    task = build_task(cfg)
    cfg = cfg.resolved(task.vocab_size)
    assert cfg.model == source["cfg"].resolved(task.vocab_size).model    # the folder's model config
    metrics, _ = evaluate(Tuning(task.model(cfg), cfg).model, task, 2 * cfg.batch_size, "cpu")
    assert metrics == pytest.approx(source["result"]["final"], rel=1e-6)


def test_a_run_from_init_from_trains_resumes_and_records_the_weights_sha256(source, tmp_path):
    import gatelab.train.loop as loop

    cfg = tuned(source, checkpoint_every=2)
    whole = train(cfg, tmp_path / "whole", progress=False)
    stored = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert stored["init_from"] == str(source["run"]) and len(stored["init_from_sha256"]) == 64
    assert stored["model"]["mixer"] == "gla" and stored["model"]["d_model"] == 32
    real = loop.lr_at

    def killed(step, total, c):
        if step == 4:
            raise KeyboardInterrupt
        return real(step, total, c)

    loop.lr_at = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tmp_path / "killed", progress=False)
    finally:
        loop.lr_at = real
    resumed = train(cfg, tmp_path / "killed", progress=False, resume=True)
    assert resumed["final"] == whole["final"]


def test_changed_starting_weights_invalidate_a_finished_run(source, tmp_path):
    src = tmp_path / "src"
    model_dir = src / "model"
    model_dir.mkdir(parents=True)
    for f in (source["run"] / "model").iterdir():
        (model_dir / f.name).write_bytes(f.read_bytes())
    cfg = dataclasses.replace(tuned(source), init_from=str(src), checkpoint_every=3)
    train(cfg, tmp_path / "run", progress=False)
    assert finished_result(tmp_path / "run", cfg) is not None
    weights = load_file(model_dir / "model.safetensors")
    weights["model.norm.weight"] = weights["model.norm.weight"] * 1.5
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    assert finished_result(tmp_path / "run", cfg) is None           # a sweep trains it again
    with pytest.raises(ConfigError, match="init_from_sha256"):
        train(cfg, tmp_path / "run", progress=False, resume=True)
    pinned = cfg.resolved()
    weights["model.norm.weight"] = weights["model.norm.weight"] * 2
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="starting weights changed"):
        pinned.resolved()


def test_lora_trains_only_the_adapters_and_saves_them_merged(source, tmp_path):
    cfg = tuned(source, "lora", lora=LoRAConfig(rank=2, alpha=4.0, targets=["q_proj", "mixer.v_proj"]),
                checkpoint_every=3, keep_checkpoints=True)
    cfg.optim.lr = 0.05
    task = build_task(cfg)
    cfg = cfg.resolved(task.vocab_size)
    tuning = Tuning(task.model(cfg), cfg)
    trainable = [n for n, p in tuning.model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_" in n and ("q_proj" in n or "v_proj" in n) for n in trainable)
    # (q_proj 32 -> 16 and v_proj 32 -> 32, two layers: rank 2 * (in + out) each)
    assert tuning.trainable_params() == 2 * 2 * ((32 + 16) + (32 + 32))

    result = train(cfg, tmp_path / "run", progress=False)
    assert result["trainable_params"] == tuning.trainable_params()
    before = load_run(source["run"])[0].model.state_dict()
    after, tok = load_run(tmp_path / "run")
    changed = {k for k, v in after.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {f"blocks.{i}.mixer.{p}.weight" for i in (0, 1) for p in ("q_proj", "v_proj")}
    assert tok is not None and fingerprint(tok) == fingerprint(load_run(source["run"])[1])
    kept = load_file(tmp_path / "run" / "checkpoints" / "step-000006.safetensors")     # (merged, as saved)
    assert set(kept) == set(after.model.state_dict()) - {"head.weight"}
    assert torch.equal(kept["blocks.0.mixer.q_proj.weight"], after.model.state_dict()["blocks.0.mixer.q_proj.weight"])


def test_the_merged_lora_model_gives_the_adapted_models_logits(source):
    cfg = tuned(source, "lora").resolved()
    tuning = Tuning(build_task(cfg).model(cfg), cfg)
    with torch.no_grad():
        for name, p in tuning.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.1)
    x = torch.randint(0, cfg.model.vocab_size, (2, 12))
    merged = tuning.saved()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    adapted = tuning.model(x).logits
    assert (merged(x).logits - adapted).abs().max() < 1e-5
    assert (merged(x).logits - Tuning(build_task(cfg).model(cfg), cfg).model(x).logits).abs().max() > 1e-3


def test_initial_state_trains_only_the_states_and_the_saved_model_keeps_them(source, tmp_path):
    cfg = tuned(source, "initial_state")
    cfg.optim.lr = 0.05
    result = train(cfg, tmp_path / "run", progress=False)
    # gla, 2 heads of key width 8 and value width 16 in each of the 2 layers: [1, 2, 8, 16] each
    assert result["trainable_params"] == 2 * 2 * 8 * 16
    hf, _ = load_run(tmp_path / "run")
    model = hf.model
    assert model.config.learned_initial_state
    before = load_run(source["run"])[0].model.state_dict()
    states = {k for k in model.state_dict() if k.startswith("initial_states.")}
    assert states == {"initial_states.0", "initial_states.1"}
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items() if k not in states)
    assert all(model.state_dict()[k].abs().sum() > 0 for k in states)
    cfg = cfg.resolved()
    task = build_task(cfg)
    assert evaluate(model, task, 16, "cpu")[0] == pytest.approx(result["final"], rel=1e-6)


def test_lm_tokenizer_model_caches_tokens_under_the_tokenizers_fingerprint(source):
    cfg = tuned(source)
    task = build_task(cfg)
    folder = data_home() / "tokens" / corpus_key(source["target"])
    assert (folder / f"word-{fingerprint(task.tokenizer)}-v1" / "meta.json").exists()
    assert fingerprint(task.tokenizer) == fingerprint(load_run(source["run"])[1])


def test_a_model_given_besides_init_from_must_agree_with_it(source):
    tuned(source, model=dataclasses.replace(TrainConfig().model, mixer="gla", dropout=0.1)).resolved()
    assert tuned(source, model=ModelConfig(d_model=32)).resolved().model.n_heads == 2    # defaults are not given
    with pytest.raises(ConfigError, match=r"model\.d_model: 48 given, 32 in the folder; model\.n_layers: 3"):
        tuned(source, model=dataclasses.replace(TrainConfig().model, d_model=48, n_layers=3)).resolved()


def test_the_cli_takes_the_folders_model_instead_of_its_lm_defaults(source, tmp_path):
    from gatelab.cli import main

    main(["train", "--task", "lm", "--data", source["target"], "--out", str(tmp_path / "run"), "--no-progress",
          "--set", f"init_from={source['run']}", "--set", "lm.tokenizer=model", "--set", "max_steps=2",
          "--set", "batch_size=4", "--set", "lm.seq_len=16", "--set", "lm.eval_tokens=64", "--set", "tune=lora"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"]["d_model"] == 32


@pytest.mark.parametrize(("overrides", "message"), [
    (["tune=lora"], r"tune=lora trains a part of a trained model .* init_from"),
    (["lm.tokenizer=model"], r"lm\.tokenizer=model .* init_from, which is not set"),
    (["init_from_sha256=abc"], r"init_from_sha256 pins the weights of init_from"),
    (["task=mqar", "init_from=x"], r"init_from applies to language models \(task=lm\)"),
    (["lora.targets=[]"], r"lora\.targets must not be empty|lora\.targets=\[\]"),
    (["lm.tokenizer=model", "lm.vocab_size=100", "init_from=x"], r"lm\.vocab_size=100: lm\.tokenizer=model"),
])
def test_bad_fine_tuning_settings_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(TrainConfig(task="lm"), overrides)


def test_bad_init_from_folders_and_settings(source, tmp_path):
    with pytest.raises(ConfigError, match=r"init_from='.*nowhere': no saved model .* not a folder"):
        tuned(source, init_from=str(tmp_path / "nowhere")).resolved()
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ConfigError, match=r"init_from=.*not a saved gatelab model \(model_type 'llama'\)"):
        tuned(source, init_from=str(tmp_path / "llama")).resolved()
    words = dataclasses.replace(tuned(source), lm=LMTaskConfig(data=source["target"], seq_len=16, eval_tokens=256))
    with pytest.raises(ConfigError, match=r"was trained with tokenizer \w+, but the task's word tokenizer is \w+.*"
                                          r"lm\.tokenizer=model"):
        train(words, progress=False)                 # (same vocabulary size: the words of the other corpus)
    words.lm.tokenizer = "byte"
    with pytest.raises(ConfigError, match=r"has a vocabulary of 20 ids, but the task's tokenizer has 256.*"
                                          r"lm\.tokenizer=model"):
        train(words, progress=False)
    with pytest.raises(ConfigError, match=r"lora\.targets: 'wq' names no linear layer .* mixer\.q_proj"):
        check_buildable(tuned(source, "lora", lora=LoRAConfig(targets=["q_proj", "wq"])))
    with pytest.raises(ConfigError, match=r"lora\.targets selects head, whose weight is the embedding's"):
        check_buildable(tuned(source, "lora", lora=LoRAConfig(targets=["head"])))


def test_initial_state_tuning_needs_a_recurrent_layer(source, tmp_path):
    cfg = base_config(source["cfg"].lm.data, mixer="attn")
    cfg.max_steps = 1
    train(cfg, tmp_path / "attn", progress=False)
    with pytest.raises(ConfigError, match=r"tune=initial_state learns the initial state of recurrent layers, but "
                                          r"the model of init_from=.* \(mixer 'attn'\) has none"):
        tuned(source, "initial_state", init_from=str(tmp_path / "attn")).resolved()
