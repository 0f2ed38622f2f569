"""Seconds per training step (forward + backward) of a model in fp32 and under bf16 autocast.

    HF_HUB_OFFLINE=1 python benchmarks/train_step.py [--model smollm2-135m-instruct] [--batch 8] [--tokens 150]

Tells whether `mixed_precision: bf16` pays on this machine: it does on GPUs and on CPUs with
native bf16 (AVX512-BF16, AMX); on AVX2-only CPUs it is emulated and much slower than fp32.
"""

import argparse
import time

import torch

from rlhf.config import ModelConfig
from rlhf.models import load_causal_lm


def step_seconds(model, ids, bf16: bool, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first step warms up kernels and allocator
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=150)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    model = load_causal_lm(ModelConfig(name=args.model))
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.tokens))  # (B, T)
    print(f"{args.model}, batch {args.batch} x {args.tokens} tokens, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"native bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}")  # fmt: skip
    fp32 = step_seconds(model, ids, bf16=False, repeats=args.repeats)
    print(f"fp32: {fp32:.2f} s/step")
    bf16 = step_seconds(model, ids, bf16=True, repeats=args.repeats)
    print(f"bf16 autocast: {bf16:.2f} s/step ({bf16 / fp32:.1f}x fp32)")


if __name__ == "__main__":
    main()
