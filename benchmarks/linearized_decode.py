"""Decoding speed and state memory of a linearized model against its teacher at long contexts (CPU float32).

    python -m benchmarks.linearized_decode [--source smollm2|FOLDER] [--to liger,gla] [--lengths 2048,4096]
                                           [--repeats 16] [--out runs/benchmarks/linearized_decode] [--smoke]

The teacher is a gatelab run or model folder, or a pretrained model (``smollm2``, a Hugging Face folder, a GGUF)
converted as ``gatelab convert`` does; each target is its linearization (``gatelab.pretrained.linearize``, not
tuned: a step's time does not depend on the weights' values). Every model prefills the same random context of
every length, then decodes one token at a time through its state, all models and lengths taking turns token by
token so that the machine's drift hits them alike. Reported per model and context: the median milliseconds per
token, ``speedup`` (the teacher's time over the model's: above 1 is faster) and the bytes its states hold after
the context.
``--smoke``: a tiny random attention model, one repeat.
"""
from __future__ import annotations

import sys
from pathlib import Path

if not __package__:   # run as a file: import this checkout's benchmarks and gatelab
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import functools

import torch

from benchmarks.common import benchmark_parser, int_list, median_times, start, write_rows
from gatelab.analysis.state import state_bytes
from gatelab.models import DecoderLM, ModelConfig
from gatelab.pretrained.linearize import linearize


def load_teacher(source: str) -> DecoderLM:
    """The teacher as a gatelab ``DecoderLM``: a gatelab folder's model, else the pretrained model converted."""
    from gatelab.lmeval.load import is_gatelab_folder

    path = Path(source)
    if path.is_dir() and is_gatelab_folder(path):
        from gatelab.hf import load_run

        return load_run(path)[0].model.float()
    from gatelab.pretrained.convert import to_gatelab
    from gatelab.pretrained.source import load_pretrained

    return to_gatelab(load_pretrained(source).model)


@torch.no_grad()
def measure(models: dict[str, DecoderLM], lengths: list[int], new_tokens: int) -> list[dict]:
    """One row per model and context length: median ms per decoded token (all interleaved), speedup, and the bytes
    of the states right after the context."""
    vocab = next(iter(models.values())).config.vocab_size
    context = torch.randint(0, vocab, (1, max(lengths)), generator=torch.Generator().manual_seed(0))
    lines, held = {}, {}
    for name, model in models.items():
        for n in lengths:
            out = model(context[:, :n])
            lines[name, n], held[name, n] = (out.states, out.logits[:, -1:].argmax(-1)), state_bytes(out.states)

    def step(name: str, n: int) -> None:
        states, token = lines[name, n]
        out = models[name](token, states=states, step=True)
        lines[name, n] = (out.states, out.logits[:, -1:].argmax(-1))

    times = median_times({f"{name}@{n}": functools.partial(step, name, n) for name, n in lines}, new_tokens)
    return [{"model": name, "mixer": models[name].config.mixer, "context": n,
             "ms_per_token": round(times[f"{name}@{n}"] * 1e3, 3),
             "speedup": round(times[f"teacher@{n}"] / times[f"{name}@{n}"], 3), "state_bytes": held[name, n]}
            for name, n in lines]


def build_parser() -> argparse.ArgumentParser:
    parser = benchmark_parser("linearized_decode", __doc__, repeats=16)
    parser.add_argument("--source", default="smollm2", help="the teacher: a gatelab run or model folder, smollm2, a "
                        "Hugging Face causal-LM folder or a .gguf (default smollm2)")
    parser.add_argument("--to", default="liger", help="comma-separated linearize targets (liger, gla, swa, "
                        "linear_attn; default liger)")
    parser.add_argument("--lengths", type=int_list, default=[2048, 4096],
                        help="comma-separated context lengths (default 2048,4096)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    start(args)
    if args.smoke:
        torch.manual_seed(0)
        teacher, lengths = DecoderLM(ModelConfig(vocab_size=64, d_model=32, n_layers=2, n_heads=4)).eval(), [16, 32]
    else:
        teacher, lengths = load_teacher(args.source).eval(), args.lengths
    models = {"teacher": teacher, **{to: linearize(teacher, to).eval() for to in args.to.split(",")}}
    rows = measure(models, lengths, new_tokens=args.repeats)
    for row in rows:
        print(f"{row['model']:12s} context {row['context']:5d}: {row['ms_per_token']:8.2f} ms/token "
              f"(speedup {row['speedup']:.2f}x), state {row['state_bytes'] / 2**20:8.3f} MiB", flush=True)
    write_rows(rows, args.out)


if __name__ == "__main__":
    main()
