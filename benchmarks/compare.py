"""Naive loop against ``vidsr bench``, each in a fresh process (so the allocator starts untuned for the naive one),
at the same model, scale, size and frame count. Prints one JSON object with both results and the speedup.

    python benchmarks/compare.py --model edsr --scale 2 --size 960x540 --frames 4
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(cmd: list[str]) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed: {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edsr")
    ap.add_argument("--scale", default="2")
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--frames", default="4")
    a = ap.parse_args()
    common = ["--model", a.model, "--scale", a.scale, "--size", a.size, "--frames", a.frames]
    naive = run([sys.executable, str(Path(__file__).with_name("naive_loop.py")), *common])
    ours = run([sys.executable, "-m", "vidsr", "bench", *common, "--json"])
    print(json.dumps({"naive": naive, "vidsr": ours,
                      "speedup_e2e": round(ours["e2e_fps"] / naive["naive_fps"], 3)}))


if __name__ == "__main__":
    main()
