"""``gatelab analyze --hf`` on tiny randomly initialised Hugging Face causal LMs (and on SmolLM2 when it is present,
marked slow): attention probabilities read by hooks, the quantization and the report end to end."""
import json
from pathlib import Path

import pytest
import torch

from gatelab.analysis.analyze import AnalysisConfig, quantization
from gatelab.analysis.hf_analyze import analyze_hf, encode_prefix
from gatelab.analysis.hf_modules import eager_attention, head_name, hf_module_names, linear_types
from gatelab.analysis.measure import measure
from gatelab.analysis.metrics import SinkMeter
from gatelab.analysis.quant import Site, quantized
from gatelab.cli import main
from gatelab.tasks.text.windows import windows

from ..pretrained import tiny
from ..utils import write_corpus

TEXT = "the cat sat on the mat and the dog ate the log while a bird sang in the old tree\n" * 60
SMOLLM2 = Path("/work/wt/smollm2")


def tiny_model(kind: str = "llama"):
    """A tiny random causal LM (``tests.pretrained.tiny``; GPT-2 here) with tied embeddings, BOS id 0."""
    if kind != "gpt2":
        return tiny.tiny_model(kind, tie_word_embeddings=True)
    import transformers

    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=tiny.VOCAB, n_embd=32, n_layer=2, n_head=4,
                                                                n_positions=64, bos_token_id=0, eos_token_id=0)).eval()


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gpt2"])
def test_f_attn_from_the_hooks_equals_the_one_from_output_attentions(kind):
    model = tiny_model(kind)
    x = torch.randint(0, tiny.VOCAB, (3, 12))
    names = hf_module_names(model)
    assert len(names.attention) == len(names.blocks) == len(names.ffn) == len(names.out_proj) == 2
    assert model.config._attn_implementation != "eager"
    with eager_attention(model):
        result = measure(model, x, torch.randint(0, tiny.VOCAB, (3, 12)), batch_size=2, names=names)
        reference = SinkMeter()
        for i, probs in enumerate(model(x, output_attentions=True).attentions):
            reference(str(i), probs)
    assert model.config._attn_implementation != "eager"   # restored
    expected = [v for _, v in sorted(reference.result().items())]
    assert list(result["f_attn"]["per_layer"].values()) == pytest.approx(expected, rel=1e-6)
    assert list(result["m_act"]["per_layer"]) == [0, 1] and result["gate_score"]["per_probe"] == {}


def test_without_eager_attention_the_probabilities_are_missing_and_the_error_says_so():
    model = tiny_model()
    model.set_attn_implementation("sdpa")
    x = torch.randint(0, tiny.VOCAB, (1, 8))
    with pytest.raises(ValueError, match="attn_implementation='eager'"):
        measure(model, x, x, names=hf_module_names(model))


def test_quantization_at_16_bits_is_the_float_perplexity():
    model = tiny_model()
    stream = torch.randint(2, tiny.VOCAB, (2000,))
    x, y = windows(stream, 32, 256, bos=0)
    cfg = AnalysisConfig(batch_size=4, calibration_batches=2, bits=((16, 16), (4, 4)), quant_scope="linear")
    with eager_attention(model):
        q = quantization(model, x, y, stream, 32, cfg, 0, skip=(head_name(model),), linears=linear_types())
    assert q["W16A16"] == pytest.approx(q["float"], rel=5e-3)   # std 0.3 weights: a peaked model (ppl ~2000)
    assert abs(q["W4A4"] - q["float"]) > 10 * abs(q["W16A16"] - q["float"])


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_quantization_rounds_every_linear_layer_but_the_tied_head(kind):
    model = tiny_model(kind)
    x = torch.randint(2, tiny.VOCAB, (2, 16))
    head = head_name(model)
    with quantized(model, [x], w_bits=4, a_bits=4, skip=(head,), linears=linear_types()) as q:
        q(x)
        layers = {n: m for n, m in q.named_modules() if isinstance(m, linear_types()) and n != head}
        assert len(layers) == (7 if kind == "llama" else 4) * 2   # q k v o gate up down / c_attn c_proj c_fc c_proj
        for name, m in layers.items():
            assert m.weight.unique().numel() <= 15, name
            assert q.quant_state.calls[Site(name, "input")] == 1, name
    assert torch.equal(q.get_output_embeddings().weight, model.get_output_embeddings().weight)


def test_encode_prefix_returns_the_leading_tokens_of_the_whole_texts_encoding():
    tok = tiny.tiny_tokenizer()
    whole = encode_prefix(tok, TEXT)
    assert torch.equal(encode_prefix(tok, TEXT, 50), whole[:51])
    assert tok.decode(whole.tolist()) == TEXT


def test_analyze_hf_from_the_cli_writes_the_report(tmp_path):
    tiny.save_tiny(tmp_path / "model", tiny_model())
    data = write_corpus(tmp_path / "corpus", TEXT)
    out = tmp_path / "report"
    assert main(["analyze", "--hf", str(tmp_path / "model"), "--data", str(data), "--seq-len", "16",
                 "--eval-tokens", "128", "--batch-size", "4", "--calibration-batches", "2", "--bits", "8:8,4:8",
                 "--out", str(out)]) == 0
    result = json.loads((out / "analysis.json").read_text())
    assert result["architecture"] == "LlamaForCausalLM" and result["eval"]["bos"] == 0
    assert set(result["quantization"]) == {"float", "W8A8", "W4A8"}
    assert list(result["extrapolation"]["as_trained"]) == ["16", "32", "64"]   # 128 > max_position_embeddings
    assert result["eval"]["skipped_lengths"] == [128]
    assert result["extrapolation"]["as_trained"]["16"] == pytest.approx(result["ppl"], rel=1e-5)
    assert result["state"]["state_floats"] == 2 * 2 * 2 * 8 * 16   # K and V, 2 layers, 2 KV heads of 8, 16 tokens
    assert result["model"] == "model" and result["source"] == str(tmp_path / "model")
    assert 0 <= result["f_attn"]["mean"] <= 1 and list(result["f_attn"]["per_layer"]) == ["0", "1"]
    report = (out / "analysis.md").read_text()
    assert "Model: `" in report and "Lengths skipped (past max_position_embeddings = 64): 128." in report
    assert "This model has no gates." in report
    for name in ("layers.png", "gates.png", "outliers.png", "extrapolation.png"):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.parametrize("args,words", [
    (["--hf", "{empty}/nothing"], ["{empty}/nothing", "config.json"]),
    (["--hf", "{empty}"], ["no config.json and no .gguf"]),
    (["--hf", "{empty}", "--data", "nowhere"], ["--data", "nowhere"]),
    (["--hf", "{empty}", "--data", ""], ["--data ''"]),
    (["{empty}", "--hf", "{empty}"], ["drop {empty}"]),
    (["--hf", "{model}", "--quant-scope", "full"], ["--quant-scope full", "linear"]),
    (["--hf", "{model}", "--seq-len", "65"], ["--seq-len 65", "64"]),
    (["{empty}", "--seq-len", "16"], ["--seq-len applies to --hf"]),
    ([], ["--hf PATH"]),
])
def test_bad_hf_input_is_a_one_line_error(tmp_path, capsys, args, words):
    fill = {"empty": str(tmp_path / "empty"), "model": str(tiny.save_tiny(tmp_path / "hf"))}
    (tmp_path / "empty").mkdir()
    data = ["--data", str(write_corpus(tmp_path / "corpus", TEXT))] if "--hf" in args and "--data" not in args else []
    assert main(["analyze", *[a.format(**fill) for a in args], *data]) == 2
    err = capsys.readouterr().out.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w.format(**fill) in err, err


def smollm2_source() -> str:
    """The installed SmolLM2 GGUF (``gatelab install-data smollm2``), else one in ``SMOLLM2``; skip when neither."""
    from gatelab.pretrained.source import smollm2_file

    try:
        return str(smollm2_file())
    except FileNotFoundError:
        ggufs = sorted(SMOLLM2.glob("*.gguf"))
        if not ggufs:
            pytest.skip(f"SmolLM2 is not installed and {SMOLLM2} holds no .gguf")
        return str(ggufs[0])


@pytest.mark.slow
def test_smollm2_has_an_attention_sink_and_massive_activations():
    """SmolLM2-135M-Instruct (GGUF, dequantised to float32) on 2,048 PTB test tokens in windows of 256, BOS first:
    measured mean F-Attn 0.33 (0.64 in layer 25), max abs(h) 24,926 from layer 11 on against a median of 1.7."""
    from gatelab.pretrained import load_pretrained

    hf = load_pretrained(smollm2_source())
    cfg = AnalysisConfig(eval_tokens=2048, batch_size=8, calibration_batches=1, bits=((8, 8),), quant_scope="linear",
                         factors=(1,))
    r = analyze_hf(hf.model, hf.tokenizer, "ptb", 256, cfg, "smollm2")
    f_attn, m_act = r["f_attn"]["per_layer"], r["m_act"]["per_layer"]
    assert len(f_attn) == 30 and r["f_attn"]["mean"] > 0.25 and max(f_attn.values()) > 0.5   # uniform: 0.02
    assert [i for i, v in m_act.items() if v["max"] > 10_000][0] == 11
    assert max(v["max_over_median"] for v in m_act.values()) > 5_000
    assert r["ppl"] < 200 and r["quantization"]["W8A8"] > r["ppl"]


def test_a_gatelab_model_is_measured_through_its_probes_and_sees_the_attention_the_hooks_see(tmp_path):
    """The tiny Llama converted to a gatelab DecoderLM (equal logits) has the F-Attn that the hooks read from the
    original, and its analysis adds what gatelab's probes allow (RoPE scaling curves)."""
    from gatelab.hf import GatelabConfig, GatelabForCausalLM
    from gatelab.pretrained import to_gatelab

    model, tok = tiny_model(), tiny.tiny_tokenizer()
    lm = to_gatelab(model)
    wrapped = GatelabForCausalLM(GatelabConfig.from_model_config(lm.config)).eval()
    wrapped.model.load_state_dict(lm.state_dict())
    data = str(write_corpus(tmp_path / "corpus", TEXT))
    cfg = AnalysisConfig(eval_tokens=64, batch_size=2, calibration_batches=1, bits=((8, 8),), factors=(1, 2),
                         quant_scope="linear")
    ours, theirs = analyze_hf(wrapped, tok, data, 16, cfg), analyze_hf(model, tok, data, 16, cfg)
    assert ours["f_attn"]["per_layer"] == pytest.approx(theirs["f_attn"]["per_layer"], rel=1e-4)
    assert ours["ppl"] == pytest.approx(theirs["ppl"], rel=1e-4)
    assert set(ours["extrapolation"]) == {"as_trained", "ntk", "yarn"}
    assert set(theirs["extrapolation"]) == {"as_trained"}
    assert ours["architecture"] == "DecoderLM" and "gatelab model" in ours["notes"][0]
