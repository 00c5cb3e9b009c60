"""Re-measure the ``eval_degraded`` table of every engine trained for degraded input, with today's degradation.

A manifest's table under degradation is measured once, when training ends, on the bytes the degradation code of
that day made. Session 20 made those bytes bit-exact (x264 and x265 without assembly, MPEG-2's integer DCTs,
swscale's exact rounding), which moves every degraded figure by a few thousandths of a dB; auto compares engines
of one kind by these figures, so they must come from the same bytes. The protocol is the manifest's own (fp32
torch, every eval set at every scale under the manifest's ``curve_under`` spec); the manifest then says when,
where and why it was re-measured (``eval_degraded_remeasured``). Weights, curve and training record are untouched.

    python benchmarks/remeasure_degraded.py --data ../shared/data                 # every real and heavy engine
    python benchmarks/remeasure_degraded.py --data ../shared/data vdsr-real       # one
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
from pathlib import Path

import torch

from vidsr.degradation.spec import parse_spec
from vidsr.models.engine import MANIFEST, Engine, list_engines, write_manifest
from vidsr.runtime.cpu import cpu_model
from vidsr.train.manifest import eval_table
from vidsr.train.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]


def remeasure(engine: Engine, data: Path, why: str) -> None:
    manifest = json.loads((engine.path / MANIFEST).read_text())
    recipe = load_recipe(REPO / manifest["recipe"])
    model = engine.build()
    model.load_state_dict(engine.weights())  # checked against the manifest's sha256
    spec = parse_spec(manifest["degradation"]["curve_under"])
    before = manifest.get("eval_degraded", {}).get(spec.spec(), {})
    table = eval_table(model, recipe, data, "cpu", spec, lambda line: print(f"{manifest['id']}: {line}"))
    for name, scales in table.items():
        for s, now in scales.items():
            was = before.get(name, {}).get(s, {})
            print(f"{manifest['id']} {name} x{s}: {was.get('psnr', float('nan')):.4f} -> {now['psnr']:.4f} "
                  f"(bicubic {was.get('bicubic_psnr', float('nan')):.4f} -> {now['bicubic_psnr']:.4f})")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    manifest["eval_degraded"] = {spec.spec(): table}
    manifest["eval_degraded_remeasured"] = {
        "date": datetime.date.today().isoformat(), "commit": commit.stdout.strip(), "why": why,
        "machine": f"{cpu_model()}, {torch.get_num_threads()} threads, fp32 torch",
        "command": "python benchmarks/remeasure_degraded.py --data ../shared/data " + manifest["id"]}
    write_manifest(engine.path, manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("engines", nargs="*", help="engine ids (default: every engine with a degradation)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--why", default="the degradation became bit-exact (session 20): same bytes on every "
                                         "CPU kind and in every process")
    args = parser.parse_args()
    for engine in list_engines():
        if engine.degradation != "clean" and (not args.engines or engine.id in args.engines):
            remeasure(engine, args.data, args.why)


if __name__ == "__main__":
    main()
