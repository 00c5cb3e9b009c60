"""Built artefacts (ONNX graphs, TensorRT plans) live in ``$VIDSR_CACHE`` or ``~/.cache/vidsr``, never in the repo.

Every file is named by a hash of everything it depends on and has a JSON sidecar that repeats those facts. A file
whose sidecar is missing or disagrees is stale: it is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from vidsr.files import atomic_write_bytes, atomic_write_json, cache_root
from vidsr.hashing import sha256_bytes

__all__ = ["cache_root"]

ONNX_TOLERANCE = 1e-4  # max |torch - ONNX Runtime| on [0, 1] input, fp32


def key_of(facts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def read_sidecar(artefact: Path) -> dict[str, Any] | None:
    try:
        return json.loads(artefact.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None


def is_fresh(artefact: Path, facts: dict[str, Any]) -> bool:
    """The artefact exists, its sidecar names the same facts, and its bytes are the ones the sidecar recorded."""
    side = read_sidecar(artefact)
    if not artefact.is_file() or side is None or side.get("facts") != facts:
        return False
    return side.get("sha256") == sha256_bytes(artefact.read_bytes())


def store(artefact: Path, data: bytes, facts: dict[str, Any], **extra: Any) -> Path:
    """Write ``data`` and its sidecar, each through a temporary name, so a crash never leaves a half file that
    looks fresh."""
    artefact.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(artefact, data)
    atomic_write_json(artefact.with_suffix(".json"), {"facts": facts, "sha256": sha256_bytes(data), **extra})
    return artefact


def list_artefacts(kind: str | None = None) -> list[dict[str, Any]]:
    """Every cached artefact (``onnx`` or ``tensorrt``) with its sidecar facts, stale ones included."""
    rows = []
    for sub in ("onnx", "tensorrt"):
        if kind and sub != kind:
            continue
        for path in sorted((cache_root() / sub).glob("*.onnx" if sub == "onnx" else "*.plan")):
            side = read_sidecar(path) or {}
            facts = dict(side.get("facts", {}))
            facts |= facts.pop("onnx", {})  # a plan's facts nest those of the graph it was built from
            rows.append({"kind": sub, "path": str(path), "bytes": path.stat().st_size, **facts,
                         **{k: v for k, v in side.items() if k not in ("facts", "sha256")}})
    return rows


def clear(kind: str | None = None) -> int:
    """Remove cached artefacts (one kind, or all); returns how many files went."""
    n = 0
    for sub in ("onnx", "tensorrt"):
        folder = cache_root() / sub
        if (kind and sub != kind) or not folder.is_dir():
            continue
        n += sum(1 for p in folder.iterdir() if p.is_file())
        shutil.rmtree(folder)
    return n
