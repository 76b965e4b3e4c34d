"""Every gatelab model is a transformers model: save/load, Auto classes, the labels convention, and generate
through the mixers' own states."""
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from gatelab.hf import GatelabConfig, GatelabForCausalLM, save_run_model
from gatelab.models import DecoderLM, ModelConfig
from gatelab.models.config import decoder_mixers
from gatelab.tasks.text import ByteTokenizer

DECODER_MIXERS = decoder_mixers()   # decoders are causal


def small(mixer: str, **kw) -> DecoderLM:
    torch.manual_seed(0)
    return DecoderLM(ModelConfig(**{"vocab_size": 40, "d_model": 16, "n_layers": 2, "n_heads": 2, **kw},
                                 mixer=mixer)).eval()


@pytest.mark.parametrize("tie", [True, False])
def test_save_and_load_through_the_auto_classes_gives_identical_logits(tmp_path, tie):
    model = small("gla,attn", short_conv=3, tie_embeddings=tie)
    save_run_model(model, tmp_path, ByteTokenizer())
    assert (tmp_path / "model.safetensors").exists()
    assert isinstance(AutoConfig.from_pretrained(tmp_path), GatelabConfig)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True).eval()
    assert isinstance(loaded, GatelabForCausalLM)
    x = torch.randint(0, 40, (2, 9))
    assert torch.equal(loaded(x).logits, model(x).logits)
    assert (loaded.model.head.weight.data_ptr() == loaded.model.embed.weight.data_ptr()) == tie


SCHEDULES = [dict(mixer=key) for key in DECODER_MIXERS] + [
    dict(mixer="gdn,gdn,gdn,gated_attn", n_layers=4),
    dict(mixer="retnet:mamba=1:1", short_conv=3, channel="mlp", norm="layernorm", tie_embeddings=False),
]


@pytest.mark.parametrize("options", SCHEDULES, ids=lambda o: o["mixer"])
def test_every_mixer_and_hybrid_reloads_bit_identical_in_float64(tmp_path, options):
    """save_pretrained + AutoModelForCausalLM.from_pretrained in float64: every weight and every derived buffer
    (retnet's decays, which are not in the checkpoint) comes back, in float64, and the logits are equal bit for bit."""
    model = small(**options).double()
    save_run_model(model, tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True).eval()
    assert {t.dtype for t in loaded.model.state_dict().values() if t.is_floating_point()} == {torch.float64}
    for (name, ours), (_, theirs) in zip(model.named_buffers(), loaded.model.named_buffers(), strict=True):
        assert torch.equal(ours, theirs), name
    x = torch.randint(0, 40, (2, 9))
    assert torch.equal(loaded(x).logits, model(x).logits)


@pytest.mark.parametrize("through", ["wrapper", "model"])
def test_a_grown_model_saves_its_grown_shapes(tmp_path, through):
    """Growth through the wrapper or on its DecoderLM: save_pretrained writes the grown config, and the loaded
    model gives the same logits."""
    base = small("tokenformer", channel="pattention").double()
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(base.config)).double()
    hf.model.load_state_dict(base.state_dict())
    grown = hf.grow(qkv=2, ffn=3) if through == "wrapper" else hf.model.grow(qkv=2, ffn=3)
    assert grown is (hf if through == "wrapper" else hf.model)
    hf.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True, dtype=torch.float64).eval()
    assert loaded.config.gatelab_model["mixer_options"]["tokenformer"] == {"qkv_grown": 2, "proj_grown": 0}
    assert loaded.model.blocks[0].channel.pattention.n_tokens == 4 * 16 + 3
    x = torch.randint(0, 40, (2, 9))
    assert torch.equal(loaded(x).logits, hf.eval()(x).logits)


@pytest.mark.parametrize("mixer", DECODER_MIXERS)
def test_every_buffer_left_out_of_the_checkpoint_is_recomputed_after_loading(mixer):
    """A non-persistent buffer holds uninitialised memory after from_pretrained (it builds on the meta device); the
    hook transformers calls on each module after loading must recompute it, so a new buffer without
    ``reset_buffers`` fails here even if the garbage happened to hold the right values."""
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(small(mixer).config))
    saved = set(hf.state_dict())
    derived = {name: buf.clone() for name, buf in hf.named_buffers() if name not in saved}
    for name in derived:
        buf = hf.get_buffer(name)
        buf.fill_(float("nan") if buf.is_floating_point() else -1)
    for module in hf.modules():
        hf._init_weights(module)
    for name, value in derived.items():
        assert torch.equal(hf.get_buffer(name), value), name


def test_labels_follow_the_transformers_convention():
    model = small("attn")
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(model.config))
    hf.model.load_state_dict(model.state_dict())
    x = torch.randint(0, 40, (2, 9))
    ours = model(x[:, :-1], labels=x[:, 1:]).loss
    assert torch.allclose(hf(x, labels=x).loss, ours)


@pytest.mark.parametrize("mixer", DECODER_MIXERS)
def test_cached_generation_equals_the_full_forward(mixer):
    """Greedy generate (prefill, then one decoding step per token through each mixer's state) must produce the
    logits a full forward pass gives on the final sequence, for every registered mixer."""
    model = small(mixer).double()
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(model.config)).double()
    hf.model.load_state_dict(model.state_dict())
    hf.eval()
    prompt = torch.randint(0, 40, (2, 7))
    out = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False,
                      output_logits=True, return_dict_in_generate=True, pad_token_id=0)
    cached = torch.stack(out.logits, dim=1)                                   # (B, 6, vocab), stored as float32
    full = hf(out.sequences).logits[:, prompt.shape[1] - 1:-1]                # the same 6 positions, float64
    torch.testing.assert_close(cached, full.float(), rtol=1e-6, atol=1e-6)
    assert torch.equal(out.sequences, model.generate(prompt, 6))


def test_sampling_is_seeded_and_respects_top_k():
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(small("gla").config)).eval()
    prompt = torch.randint(0, 40, (3, 5))
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        runs.append(hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=True,
                                top_k=1, temperature=2.0, pad_token_id=0))
    assert torch.equal(runs[0], runs[1])
    greedy = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
                         pad_token_id=0)
    assert torch.equal(runs[0], greedy)  # top_k=1 sampling is greedy decoding


def test_padding_and_overlong_inputs_are_refused():
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(small("attn", max_seq_len=8).config))
    x = torch.randint(0, 40, (2, 5))
    with pytest.raises(ValueError, match="padded batches"):
        hf(x, attention_mask=torch.tensor([[1] * 5, [0] + [1] * 4]))
    with pytest.raises(ValueError, match="max_seq_len=8"):
        hf(torch.randint(0, 40, (1, 9)))
