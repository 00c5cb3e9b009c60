"""Seconds per training step of the recipes' models, per device and precision, on random patches.

One step is what `vidsr train` pays apart from batch sampling: forward (bf16 autocast where asked), L1 or MSE
loss, backward and an Adam update, on the recipes' batch and patch sizes. docs/TRAINING.md uses it to say what a
machine with native bf16, or a GPU, would do to the gap between our weights and the papers'.

    python benchmarks/train_step_cost.py                       # every case this machine can run
    python benchmarks/train_step_cost.py --device cpu --threads 1 --dtype fp32
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vidsr.models.registry import PRESETS, architecture

# name: (preset, scale, input batch shape, target batch shape, loss), as in recipes/edsr-baseline-x2, vdsr, srcnn-x2.
CASES = {
    "srcnn-x2": ("srcnn", 2, (128, 1, 33, 33), (128, 1, 33, 33), torch.nn.MSELoss),
    "edsr-baseline-x2": ("edsr-baseline", 2, (16, 3, 48, 48), (16, 3, 96, 96), torch.nn.L1Loss),
    "vdsr": ("vdsr", 2, (32, 1, 41, 41), (32, 1, 41, 41), torch.nn.MSELoss),
}


def seconds_per_step(case: str, device: str, dtype: str, steps: int) -> float:
    preset, scale, x_shape, y_shape, loss_cls = CASES[case]
    arch, config = PRESETS[preset]
    model = architecture(arch).build(config, (scale,)).to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = loss_cls()
    x = torch.rand(x_shape, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.rand(y_shape, device=device).contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            pred = model(x)
        loss = loss_fn(pred.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up: allocator, oneDNN/cuDNN kernel choice
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    ap.add_argument("--dtype", choices=("all", "fp32", "bf16"), default="all")
    ap.add_argument("--threads", type=int, nargs="*", default=[1, torch.get_num_threads()])
    ap.add_argument("--model", choices=("all", *CASES), default="all")
    ap.add_argument("--steps", type=int, default=0, help="timed steps [50 on CUDA, 3 on a CPU]")
    args = ap.parse_args()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if not torch.cuda.is_available():
        devices = [d for d in devices if d != "cuda"]
    dtypes = ["fp32", "bf16"] if args.dtype == "all" else [args.dtype]
    for case in CASES if args.model == "all" else [args.model]:
        for device in devices:
            for threads in ([None] if device == "cuda" else sorted(set(args.threads))):
                if threads:
                    torch.set_num_threads(threads)
                for dtype in dtypes:
                    steps = args.steps or (50 if device == "cuda" else 3)
                    row = {"model": case, "device": device, "dtype": dtype, "threads": threads,
                           "seconds_per_step": round(seconds_per_step(case, device, dtype, steps), 4)}
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
