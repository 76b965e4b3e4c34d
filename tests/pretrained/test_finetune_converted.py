"""A converted model is an ordinary gatelab model folder: a fine-tuning run starts from it (``init_from``) with its
own tokenizer (``lm.tokenizer=model``, the ``hf`` kind), evaluates as the original transformers model does before
any step, and trains with LoRA."""
import pytest

from gatelab.hf import load_run
from gatelab.pretrained.export import convert_to_folder
from gatelab.train import LMTaskConfig, TrainConfig, evaluate, train
from gatelab.train.finetune import Tuning
from gatelab.train.tasks import build_task
from gatelab.train.tasks.lm import perplexity
from tests.pretrained.tiny import TEXT, save_tiny, tiny_model
from tests.utils import write_corpus


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("converted")
    convert_to_folder(save_tiny(root / "hf"), root / "gatelab")
    return root


def config(root, **kw):
    data = str(write_corpus(root / "corpus", TEXT.replace("Paris", "Lyon") * 3))
    lm = LMTaskConfig(data=data, seq_len=16, eval_tokens=128, tokenizer="model", bos=True)
    return TrainConfig(task="lm", lm=lm, init_from=str(root / "gatelab"), batch_size=4, max_steps=2, eval_every=2,
                       **kw)


def test_before_training_it_evaluates_as_the_original(converted):
    cfg = config(converted)
    task = build_task(cfg)
    assert task.tokenizer.kind == "hf" and task.bos == 0
    cfg = cfg.resolved(task.vocab_size)
    metrics, _ = evaluate(Tuning(task.model(cfg), cfg).model, task, 8, "cpu")
    x, y = task.eval_windows["valid"]
    assert metrics["valid/ppl"] == pytest.approx(perplexity(tiny_model(), x, y, 8), rel=1e-5)


def test_lora_fine_tuning_of_a_converted_model_runs_and_saves_a_gatelab_model(converted, tmp_path):
    from gatelab.train.finetune import LoRAConfig

    train(config(converted, tune="lora", lora=LoRAConfig(rank=2)), tmp_path / "run", progress=False)
    model, tok = load_run(tmp_path / "run")
    assert tok.kind == "hf" and model.model.config.mixer == "attn"
