"""Print the README's table of shipped engines from their manifests, next to the papers' bars.

The numbers come only from ``engines/*/manifest.json`` (written by ``vidsr train`` with the ``vidsr eval``
protocol), so the README can be regenerated rather than retyped:

    python benchmarks/engine_table.py            # the eval table
    python benchmarks/engine_table.py --curves   # each engine's Set5 curve against CPU-hours
"""

from __future__ import annotations

import sys

from vidsr.models.engine import list_engines
from vidsr.models.flops import gflop_per_output_mp

# Y-PSNR bars (Set5, Set14) per family and scale: the papers' numbers, as issue 3 sets them. MDSR's bar is
# EDSR-baseline's less 0.1 dB.
BARS = {
    "srcnn": {2: (36.66, 32.42), 3: (32.75, 29.28), 4: (30.48, 27.49)},
    "vdsr": {2: (37.53, 33.03), 3: (33.66, 29.77), 4: (31.35, 28.01)},
    "edsr": {2: (37.90, 33.45), 3: (34.25, 30.15), 4: (31.95, 28.45)},
}
BARS["mdsr"] = {s: (a - 0.1, b - 0.1) for s, (a, b) in BARS["edsr"].items()}


def _cell(entry: dict | None) -> str:
    if not entry:
        return "-"
    return f"{entry['psnr']:.2f} ({entry['bicubic_psnr']:.2f})"


def rows() -> list[str]:
    out = ["| engine | scale | params | GFLOP per output MP | steps | CPU-h | Set5 Y-PSNR (bicubic) | Set14 (bicubic) "
           "| paper bar Set5 / Set14 |", "|---|---|---|---|---|---|---|---|---|"]
    for e in list_engines():
        m = e.manifest
        for s in e.scales:
            ev = m.eval
            # The papers' bars are for clean input; a real engine's are its degraded gains (docs/REAL-FOOTAGE.md).
            bar = BARS.get(e.family, {}).get(s) if e.degradation == "clean" else None
            out.append(f"| {e.id} | x{s} | {m.params:,} | {gflop_per_output_mp(e, s):.1f} | {e.steps_label()} "
                       f"| {e.cpu_hours_label()} | {_cell(ev.get('Set5', {}).get(str(s)))} "
                       f"| {_cell(ev.get('Set14', {}).get(str(s)))} "
                       f"| {f'{bar[0]:.2f} / {bar[1]:.2f}' if bar else '-'} |")
    return out


def curves() -> list[str]:
    out = []
    for e in list_engines():
        m = e.manifest
        points = m.curve
        if not points:
            continue
        out.append(f"{e.id}:")
        for p in points:
            psnrs = " ".join(f"{k} {v:.2f}" for k, v in p.items() if k.startswith("x"))
            out.append(f"  step {p['step']:>6,}  {p['cpu_hours']:>6.2f} CPU-h  {psnrs}")
        for change in m.training.recipe_changes:
            out.append(f"  recipe changed at step {change['step']:,}")
    return out


if __name__ == "__main__":
    print("\n".join(curves() if "--curves" in sys.argv[1:] else rows()))
