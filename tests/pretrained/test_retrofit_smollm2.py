"""The G1 retrofit on the real SmolLM2-135M-Instruct, marked slow (it loads the GGUF; skipped where it is not
installed, see ``test_smollm2``): the retrofitted model's logits equal the converted model's bit for bit on PTB text,
and the model has the attention sink the retrofit is meant to test (F-Attn at least twice uniform attention's).
Run with ``pytest -m slow -s`` to see the numbers."""
import pytest
import torch

from gatelab.analysis.measure import measure
from gatelab.analysis.metrics import uniform_f_attn
from gatelab.pretrained.retrofit import retrofit_gate
from gatelab.tasks.text.windows import windows

from .test_smollm2 import converted, ptb_tokens, smollm2  # noqa: F401  (the fixtures that load SmolLM2 once)

pytestmark = pytest.mark.slow


def test_retrofit_leaves_smollm2_unchanged_and_it_has_a_sink(converted, ptb_tokens):  # noqa: F811
    gated = retrofit_gate(converted)
    assert gated.num_params() == converted.num_params() + 30 * 576 * 9 * 64
    x, y = windows(ptb_tokens, 256, 4 * 256)
    with torch.no_grad():
        assert torch.equal(converted(x[:2]).logits, gated(x[:2]).logits)
    r = measure(gated, x, y, batch_size=2, keep_gate_values=False)
    per_layer = r["f_attn"]["per_layer"]
    top = max(per_layer, key=per_layer.get)
    print(f"\nSmolLM2 + G1 gate at step 0: ppl {r['ppl']:.2f}, F-Attn {r['f_attn']['mean']:.3f} (uniform "
          f"{uniform_f_attn(256):.3f}), layer {top} {per_layer[top]:.3f}, M-Act {r['m_act']['mean']:.1f}, gate score "
          f"{r['gate_score']['per_kind']['gate.probe']:.3f}")
    assert r["gate_score"]["per_kind"]["gate.probe"] == 0.5
    assert r["f_attn"]["mean"] >= 2 * uniform_f_attn(256)
