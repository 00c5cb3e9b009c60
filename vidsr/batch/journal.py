"""The batch journal: one JSON file in OUTDIR with each input's state, rewritten atomically on every change.

States: ``pending`` -> ``running`` -> ``done`` (with the output's sha256) or ``failed`` (with the reason);
``skipped`` for outputs that existed before the batch (--skip-existing). A crash at any point leaves either the old
or the new journal, never a torn one; a file found ``running`` on resume was cut off and is redone from scratch.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from vidsr.errors import UsageError
from vidsr.files import atomic_write_json

JOURNAL = ".vidsr-batch.json"
VERSION = 1


class Journal:
    def __init__(self, outdir: Path, options: dict[str, Any], files: dict[str, dict[str, Any]]):
        self.path = outdir / JOURNAL
        self.options = options
        self.files = files
        self._lock = threading.Lock()

    @classmethod
    def open(cls, outdir: Path, options: dict[str, Any], keys: dict[str, str], resume: bool) -> Journal:
        path = outdir / JOURNAL
        if path.is_file():
            if not resume:
                raise UsageError(f"{outdir} holds a batch journal; add --resume to continue that batch, "
                                 "or choose another -o")
            try:
                data = json.loads(path.read_text())
            except ValueError as e:
                raise UsageError(f"{path}: unreadable journal ({e}); move it away to start over") from None
            if data.get("options") != options:
                changed = sorted(k for k in options.keys() | data.get("options", {}).keys()
                                 if options.get(k) != data.get("options", {}).get(k))
                raise UsageError(f"{path} was written with other options ({', '.join(changed)}); resume with "
                                 "the same options, or choose another -o")
            if data.get("version", VERSION) > VERSION:
                raise UsageError(f"{path} was written by a newer vidsr (journal version {data['version']}); "
                                 "upgrade vidsr to resume it")
            files = data["files"]
        else:
            files = {}
        for key, src in keys.items():
            files.setdefault(key, {"src": src, "state": "pending", "attempts": 0})
        journal = cls(outdir, options, files)
        journal.save()
        return journal

    def save(self) -> None:
        data = {"version": VERSION, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "options": self.options,
                "files": self.files}
        # Durable: the data and the rename reach the disk, or a power cut could bring back the old journal.
        atomic_write_json(self.path, data, durable=True)

    def update(self, key: str, **fields: Any) -> None:
        with self._lock:
            entry = self.files[key]
            entry.update(fields)
            for k in [k for k, v in entry.items() if v is None]:
                del entry[k]
            self.save()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.files.values():
            out[entry["state"]] = out.get(entry["state"], 0) + 1
        return out
