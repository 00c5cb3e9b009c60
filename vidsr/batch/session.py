"""A batch session: which files to run, the journal's transitions, and the retry policy, apart from any command
line, so that ``vidsr batch`` and a server's queue drive the same rules.

Transitions: ``pending`` -> ``running`` -> ``done`` | ``failed`` | back to ``pending`` (a retry, or an interrupted
run: Ctrl-C or SIGTERM of the batch is not the file's fault, so resume redoes it, as after kill -9).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vidsr.batch.inputs import Item
from vidsr.batch.journal import Journal
from vidsr.errors import UsageError
from vidsr.files import sweep_partials

# Exit statuses of a child stopped by a signal: 128 + signal as vidsr reports it, or -signal as Popen reports it.
INTERRUPTED = {128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM}


@dataclass(frozen=True)
class Task:
    key: str  # the journal key: the output's path relative to OUTDIR
    src: str
    dst: str


@dataclass
class JobResult:
    """What one child run of a file reported."""

    ok: bool
    seconds: float = 0.0
    sha256: str | None = None
    frames: int | None = None
    frames_lost: int | None = None
    error: str | None = None
    exit_code: int | None = None

    @property
    def interrupted(self) -> bool:
        return self.exit_code in INTERRUPTED

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BatchSession:
    """Plans a batch from its journal and records every transition there."""

    def __init__(self, journal: Journal, retries: int = 0, log: Callable[[str], None] = lambda line: None):
        self.journal = journal
        self.retries = retries
        self.log = log
        self.stopping = False  # set when the batch itself is interrupted: running files go back to pending
        self._baseline: dict[str, int] = {}  # attempts each file had before this session

    def plan(self, items: list[Item], outdir: Path, retry_failed: bool = False, skip_existing: bool = False,
             overwrite: bool = False) -> list[Task]:
        """The files still to run; sweeps their dead partials, marks pre-existing outputs skipped (or refuses)."""
        todo = []
        for item in items:
            entry = self.journal.files[item.rel]
            final = outdir / item.rel
            if entry["state"] == "done" and final.is_file() and entry.get("sha256"):
                continue
            if entry["state"] == "skipped" or (entry["state"] == "failed" and not retry_failed):
                continue
            if final.parent.is_dir():
                sweep_partials(final)
            if final.exists() and entry["state"] in ("pending", "failed") and not overwrite:
                if skip_existing:
                    self.journal.update(item.rel, state="skipped", output=item.rel)
                    continue
                raise UsageError(f"{final} exists and is not from this batch; add --skip-existing or -y")
            final.parent.mkdir(parents=True, exist_ok=True)
            self._baseline[item.rel] = entry.get("attempts", 0)
            todo.append(Task(item.rel, str(item.src), str(final)))
        return todo

    def started(self, key: str) -> None:
        self.journal.update(key, state="running", attempts=self.journal.files[key].get("attempts", 0) + 1)
        self.log(f"{key}: running")

    def finished(self, key: str, result: JobResult) -> bool:
        """Record ``result``; True when the file should run again now (a retry)."""
        if result.ok:
            self.journal.update(key, state="done", output=key, sha256=result.sha256, frames=result.frames,
                                frames_lost=result.frames_lost, seconds=result.seconds, error=None)
            lost = f", {result.frames_lost} frames lost" if result.frames_lost else ""
            self.log(f"{key}: done ({result.frames} frames{lost}, {result.seconds} s)")
            return False
        if self.stopping or result.interrupted:
            self.journal.update(key, state="pending", error=None, interrupted=True)
            self.log(f"{key}: interrupted; --resume redoes it")
            return False
        tries = self.journal.files[key].get("attempts", 0) - self._baseline.get(key, 0)
        again = tries <= self.retries
        self.journal.update(key, state="pending" if again else "failed", error=result.error,
                            frames_lost=result.frames_lost)
        self.log(f"{key}: failed: {result.error}" + (" (retrying)" if again else ""))
        return again
