"""Beam-search speed on E2E test MRs: the decoding settings side by side, in one process.

    python -m experiments.perf.decode_speed                      # SmolLM2-135M, 16 MRs, CPU
    python -m experiments.perf.decode_speed --mrs 32 --batch-sizes 8,16,32 --threads 2

Each configuration decodes the same test MRs (paper settings: beam 10, length penalty
0.9, no repeated 4-grams) with :func:`experiments.core.generation.beam_decode` on
SmolLM2-135M with LoRA r=4 on W_q, W_v (B drawn at random so ΔW ≠ 0): unmerged (the
LoRA branch runs beside W0) and merged (W0 + BA, §4.1), at each MR batch size. The
configurations run round-robin (:func:`experiments.perf.timing.interleave`), so drift
hits all alike; it prints MRs/s per configuration and its ratio to the first.
"""

from __future__ import annotations

import argparse
import os

import torch
from omegaconf import OmegaConf

from experiments.core.generation import SequenceFormat, beam_decode
from experiments.core.models import load_model, load_tokenizer
from experiments.e2e.data import group_by_mr, load_e2e
from experiments.perf.timing import interleave, paired_ratio
from lora.inject import merge_lora, unmerge_lora
from lora.methods import LoraConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="conf/model/smollm2-135m.yaml", help="model config")
    parser.add_argument("--data-dir", default=os.environ.get("LORA_DATA_DIR"))
    parser.add_argument("--mrs", type=int, default=16, help="test MRs per configuration")
    parser.add_argument("--batch-sizes", default="16,32", help="MRs per generate() call")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model_cfg = OmegaConf.load(args.model)
    tokenizer, model = load_tokenizer(model_cfg), load_model(model_cfg, "causal_lm")
    LoraConfig(r=4, lora_alpha=32, targets=["q", "v"]).apply(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    fmt = SequenceFormat.for_tokenizer(tokenizer)
    contexts = [c for c, _ in group_by_mr(load_e2e(args.data_dir, True)["test"])][: args.mrs]
    settings = dict(num_beams=10, length_penalty=0.9, no_repeat_ngram_size=4,
                    max_new_tokens=args.max_new_tokens)  # fmt: skip

    def config(merged: bool, batch_size: int):
        decode = OmegaConf.create({**settings, "batch_size": batch_size})

        def call():
            (merge_lora if merged else unmerge_lora)(model)
            beam_decode(model, tokenizer, fmt, contexts, decode, 8192)

        return call

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    fns = {"unmerged, batch 16": config(False, 16)}
    fns.update({f"merged, batch {b}": config(True, b) for b in sizes})
    times = interleave(fns, trials=args.trials, warmup=0, device=torch.device("cpu"))
    base = "unmerged, batch 16"
    print(f"{args.mrs} MRs, beam 10, <= {args.max_new_tokens} new tokens, "
          f"{args.threads} thread(s), {args.trials} rounds")  # fmt: skip
    for name, ms in times.items():
        ratio, se = paired_ratio(times[base], ms)
        print(f"  {name:20s} {1000 * args.mrs / (sum(ms) / len(ms)):.3f} MRs/s  "
              f"speed-up x{ratio:.2f} ± {se:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
