"""SequenceClassifier: pooling over real positions only, CLS placement by direction, two towers, bad pooling."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.models.classifier import ClassifierConfig, SequenceClassifier
from gatelab.models.config import ModelConfig


def model(mixer="gla", bidirectional=False, pooling="mean", pairs=False):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=20, d_model=16, n_layers=2, n_heads=2, mixer=mixer, channel="swiglu",
                      bidirectional=bidirectional)
    return SequenceClassifier(cfg, ClassifierConfig(pooling=pooling), num_classes=3, pairs=pairs).double().eval()


@pytest.mark.parametrize("mixer", ["attn", "gla", "mamba"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["mean", "last", "cls"])
def test_padding_never_changes_the_logits(mixer, bidirectional, pooling):
    if pooling == "last" and bidirectional:
        pytest.skip("refused: see test_last_pooling_with_a_bidirectional_backbone_is_refused")
    m = model(mixer, bidirectional, pooling)
    x = torch.randint(1, 20, (2, 9))
    x[1, 6:] = 0                                            # the second sequence has 6 real tokens
    with torch.no_grad():
        both = m(x).logits
        alone = m(x[1:, :6]).logits
        longer = m(torch.nn.functional.pad(x, (0, 4))).logits
    torch.testing.assert_close(both[1:], alone, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(longer, both, atol=1e-10, rtol=1e-10)


def test_cls_token_sees_the_whole_sequence_in_either_direction():
    for bidirectional in (False, True):
        m = model("gla", bidirectional, "cls")
        emb = m.embed(torch.randint(1, 20, (1, 7))).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(m.summary(emb, torch.tensor([7])).sum(), emb)
        assert (grad.abs().sum(-1) > 0).all(), f"bidirectional={bidirectional}: some token does not reach the CLS"


def test_two_towers_feed_the_head_both_summaries():
    m = model(pairs=True)
    x = torch.randint(1, 20, (3, 2, 8))
    with torch.no_grad():
        out = m(x, labels=torch.tensor([0, 1, 2])).logits
        a, b = m.pooled(x[:, 0]), m.pooled(x[:, 1])
        expected = m.head(torch.cat([a, b, a * b, a - b], -1))
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    with pytest.raises(ValueError, match="pairs"):
        m(x[:, 0])


def test_last_pooling_with_a_bidirectional_backbone_is_refused():
    with pytest.raises(ConfigError, match="classifier.pooling=last"):
        model("gla", bidirectional=True, pooling="last")


def test_loss_and_parameters():
    m = model("attn", pooling="cls")
    x = torch.randint(1, 20, (4, 6))
    out = m(x, labels=torch.tensor([0, 1, 2, 0]))
    assert out.logits.shape == (4, 3) and out.loss.ndim == 0
    d, hidden = 16, 32
    head = d * hidden + hidden + hidden * 3 + 3
    stack = sum(p.numel() for p in m.blocks.parameters()) + sum(p.numel() for p in m.norm.parameters())
    assert m.num_params() == 20 * d + stack + head + d
