"""Every channel mixer and residual connection inside a DecoderLM: cached decoding equals the full forward (through
DecoderLM and through the Hugging Face generate), auxiliary losses and statistics reach the model's output."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.hf import GatelabConfig, GatelabForCausalLM
from gatelab.models import DecoderLM, ModelConfig
from gatelab.registry import CHANNEL_MIXERS, RESIDUALS

# every layer in its final form: EvoMoE past its spawn (its diversify stage runs one expert)
FINAL = {"evomoe": {"evomoe": {"diversify_steps": 0}}}
CASES = ([pytest.param({"channel": key, "channel_options": FINAL.get(key, {})}, id=f"channel-{key}")
          for key in CHANNEL_MIXERS.names()]
         + [pytest.param({"residual": key}, id=f"residual-{key}") for key in RESIDUALS.names()])


def tiny(**kw) -> DecoderLM:
    cfg = dict(vocab_size=50, d_model=16, n_layers=2, n_heads=2, mixer="gla,attn") | kw
    return DecoderLM(ModelConfig(**cfg)).double().eval()


@pytest.mark.parametrize("options", CASES)
def test_cached_decoding_equals_full_forward(options):
    model = tiny(**options)
    ids = torch.randint(0, 50, (2, 12))
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids[:, :5])
        logits, states = [out.logits], out.states
        for t in range(5, 12):
            out = model(ids[:, t:t + 1], states=states, step=True)
            logits.append(out.logits)
            states = out.states
    torch.testing.assert_close(torch.cat(logits, 1), full, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("options", CASES)
def test_hugging_face_generate_equals_the_full_forward(options):
    model = tiny(**options)
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(model.config)).double().eval()
    hf.model.load_state_dict(model.state_dict())
    prompt = torch.randint(0, 50, (2, 5))
    out = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=4, do_sample=False,
                      output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    cached = torch.stack(out.logits, dim=1)
    full = hf(out.sequences).logits[:, prompt.shape[1] - 1:-1]
    torch.testing.assert_close(cached, full.float(), rtol=1e-6, atol=1e-6)


def test_a_channel_schedule_tiles_over_the_layers():
    model = tiny(channel="swiglu,none", n_layers=4)
    assert [type(b.channel).__name__ if b.channel is not None else None for b in model.blocks] == \
        ["SwiGLU", None, "SwiGLU", None]


@pytest.mark.parametrize("kw,match", [
    ({"channel": "swiglu,mlp,swiglu"}, r"model\.channel schedule .* must divide n_layers=2"),
    ({"residual": "sum"}, r"unknown residual connection 'sum'; registered .*add.*ladder"),
    ({"residual_options": {"nope": {}}}, r"unknown residual connection 'nope'"),
    ({"channel_options": {"nope": {}}}, r"unknown channel mixer 'nope'"),
    ({"residual": "gtrxl_gru", "residual_options": {"gtrxl_gru": {"bias": 50.0}}}, r"bias=50\.0 is out of range"),
    ({"residual": "gtrxl_gru", "residual_options": {"gtrxl_gru": {"gain": 1.0}}}, r"gain"),
])
def test_bad_channel_and_residual_settings_are_named(kw, match):
    with pytest.raises((ConfigError, KeyError), match=match):
        tiny(**kw)


class Counting(torch.nn.Module):
    """A stand-in channel mixer with an auxiliary loss and a statistic, to check the model's plumbing."""

    uses_carry, d_ff = False, 4

    def __init__(self, value: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(value, dtype=torch.float64))
        self.aux, self.calls, self.steps = {}, 0, []

    def forward(self, x):
        self.calls += 1
        self.aux = {"balance": self.w * 2, "z": self.w} if self.training else {}
        return x * self.w

    def stats(self):
        return {"calls": float(self.calls), "load": [0.5, 0.5]}

    def reset_stats(self):
        self.calls = 0

    def on_train_step(self, step, max_steps):
        self.steps.append((step, max_steps))


def test_aux_losses_are_summed_per_name_over_layers_in_training_only():
    model = tiny().train()
    for i, block in enumerate(model.blocks):
        block.channel = Counting(float(i + 1))
    ids = torch.randint(0, 50, (2, 6))
    out = model(ids, labels=ids)
    assert set(out.aux_losses) == {"balance", "z"}
    assert out.aux_losses["balance"].item() == 6.0 and out.aux_losses["z"].item() == 3.0
    assert out.aux_loss.item() == 9.0
    out.aux_loss.backward()
    assert model.blocks[0].channel.w.grad.item() == 3.0
    model.eval()
    assert model(ids).aux_loss is None and model(ids).aux_losses == {}
    assert model.channel_stats() == {"layer0": {"calls": 3.0, "load": [0.5, 0.5]},
                                     "layer1": {"calls": 3.0, "load": [0.5, 0.5]}}
    model.reset_channel_stats()
    model.on_train_step(3, 10)
    assert model.channel_stats()["layer1"]["calls"] == 0.0 and model.blocks[1].channel.steps == [(3, 10)]


@pytest.mark.parametrize("options", CASES)
def test_a_saved_model_loads_back_with_the_same_logits(options, tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny(**options).float()
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(model.config)).eval()
    hf.model.load_state_dict(model.state_dict())
    hf.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 50, (2, 7))
    torch.testing.assert_close(loaded(ids).logits, hf(ids).logits, rtol=0, atol=0)
