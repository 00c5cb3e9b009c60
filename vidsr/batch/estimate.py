"""What a batch will take, said before it starts: the frames in every file still to run (from their headers) and
the time they should take at the speed measured on this machine.

The speed comes from one ``vidsr upscale --dry-run`` of the first video still to run, in a child as every file's
run is, so it names the engine, runtime and precision auto picks there and reads the same cache (a probe of about
a second the first time, then the figure of the last finished run). The other files are assumed to run at the same
seconds per output megapixel: a file whose input calls for another engine (a clean one in a folder of CCTV) will
differ, and the line says so. Each file also pays its child's start-up (imports, engine load, measuring the input),
taken as the dry run's own wall time: seconds that dominate a folder of short clips. ``--jobs`` overlaps those
start-ups but shares the cores, so it divides them and not the frames' time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from vidsr.batch.runner import die_with_parent, dry_run_failure, last_report
from vidsr.batch.session import Task
from vidsr.errors import VidsrError
from vidsr.frames.image import is_image
from vidsr.runtime.speed import duration_text
from vidsr.video.work import work_of_file

PROBE_TIMEOUT_S = 300  # the dry run loads and probes an engine; a file that hangs its decoder must not stall this


@dataclass(frozen=True)
class BatchEstimate:
    """``frames`` to upscale in ``files`` files (``unknown`` more whose headers give no count), about ``seconds``
    at the speed ``engine`` measured on the first video (``sample``)."""

    files: int
    frames: int
    unknown: int
    seconds: float
    startup_seconds: float  # of each file's child, before its first frame
    engine: str
    runtime: str
    source: str
    sample: str

    def line(self) -> str:
        unknown = f" (and {self.unknown} file(s) that do not say)" if self.unknown else ""
        return (f"{self.files} file(s), {self.frames:,} frames{unknown}: expect about {duration_text(self.seconds)} "
                f"with {self.engine} on {self.runtime}, {self.source} (measured for {Path(self.sample).name}; a "
                f"file that calls for another engine differs)")

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"seconds": round(self.seconds, 3), "startup_seconds": round(self.startup_seconds, 3)}


def estimate_batch(tasks: list[Task], args: list[str], scale: int, start: float, duration: float | None,
                   threads: int, jobs: int, env_extra: dict[str, str]) -> BatchEstimate | str:
    """The estimate for ``tasks`` (run with the upscale ``args``), or why there is none, in words."""
    works, unknown = [], 0
    for task in tasks:
        try:
            work = work_of_file(task.src, scale, is_image(task.src), start, duration, None)
        except (VidsrError, OSError, ValueError):
            unknown += 1  # the run itself will say what is wrong with it
            continue
        if work.frames is None:
            unknown += 1
        else:
            works.append(work)
    sample = next((t for t in tasks if not is_image(t.src)), tasks[0] if tasks else None)
    if not works or sample is None:
        return "no file says how many frames it holds"
    t = time.perf_counter()
    report = _dry_run(sample, args, threads, env_extra)
    startup = time.perf_counter() - t
    est = report.get("estimate") or {}
    if not est.get("seconds") or not est.get("frames"):
        return f"the dry run of {Path(sample.src).name} gave no figure ({report.get('error', 'no frame count')})"
    seconds_per_mp = est["seconds"] / (est["frames"] * report["width"] * report["height"] / 1e6)
    frames_time = sum(w.frames * w.output_pixels / 1e6 * seconds_per_mp for w in works if w.frames)
    total = frames_time + len(works) * startup / max(1, min(jobs, len(works)))
    return BatchEstimate(len(works), sum(w.frames or 0 for w in works), unknown, total, startup, report["model"],
                         f"{report['runtime']}/{report['precision']}", est.get("source", ""), sample.src)


def _dry_run(task: Task, args: list[str], threads: int, env_extra: dict[str, str]) -> dict:
    """``vidsr upscale --dry-run --json`` of one file in a child: its summary, or {"error": why} when it fails."""
    env = dict(os.environ) | env_extra | {"VIDSR_THREADS": str(threads), "VIDSR_ERROR_JSON": "1"}
    cmd = [sys.executable, "-m", "vidsr", "upscale", task.src, "-o", task.dst, *args, "--dry-run", "--json", "-q"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=PROBE_TIMEOUT_S,
                              preexec_fn=die_with_parent)
    except subprocess.TimeoutExpired:
        return {"error": f"it took over {PROBE_TIMEOUT_S} s"}
    report = last_report(done.stdout)  # {} where the child printed no JSON
    failure = dry_run_failure(report, done.returncode, done.stderr)
    return {"error": failure} if failure else report
