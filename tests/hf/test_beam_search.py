"""Beam search through the mixers' own states: ``GatelabCache.reorder_cache`` follows the beams, so generating
with the cache picks the same sequences as generating without it (a full forward every step)."""
import pytest
import torch

from gatelab.hf import GatelabConfig, GatelabForCausalLM
from gatelab.models import DecoderLM, ModelConfig
from gatelab.models.config import decoder_mixers

DECODER_MIXERS = decoder_mixers()   # decoders are causal


@pytest.mark.parametrize("mixer", DECODER_MIXERS)
def test_beam_search_with_the_cache_equals_beam_search_without_it(mixer):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, mixer=mixer, short_conv=3)
    hf = GatelabForCausalLM(GatelabConfig.from_model_config(DecoderLM(config).config)).double().eval()
    prompt = torch.randint(0, 40, (2, 5))
    kwargs = dict(attention_mask=torch.ones_like(prompt), max_new_tokens=6, num_beams=3, num_return_sequences=2,
                  do_sample=False, pad_token_id=0, return_dict_in_generate=True, output_scores=True)
    cached = hf.generate(prompt, use_cache=True, **kwargs)
    uncached = hf.generate(prompt, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, atol=1e-6, rtol=1e-6)
