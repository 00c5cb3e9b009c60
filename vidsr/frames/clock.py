"""Wall time per pipeline stage, for ``vidsr bench`` and ``--json``: where a frame's time goes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

STAGES = ("decode", "prepare", "infer", "finish", "encode")
# The pipeline's threads and the stages each runs (vidsr.frames.pipeline.run_threads): they overlap, so the busiest sets
# the pace of the whole run.
THREADS = {"decode": ("decode",), "upscale": ("prepare", "infer", "finish"), "encode": ("encode",)}


@dataclass
class StageClock:
    # Each stage is timed by one thread only, so plain float updates need no lock.
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t

    def timed(self, stage: str, items: Iterator) -> Iterator:
        """Yields from ``items``, counting the time spent producing each one against ``stage``."""
        while True:
            t = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self.seconds[stage] += time.perf_counter() - t
                return
            self.seconds[stage] += time.perf_counter() - t
            yield item

    def bound_by(self) -> dict[str, Any]:
        """Which thread bounds the run (the busiest of the three), the stage in it that took longest (``finish``
        holds the temporal filter), and each thread's busy seconds: where to look when a run is slow."""
        busy = {thread: sum(self.seconds[s] for s in stages) for thread, stages in THREADS.items()}
        thread = max(busy, key=lambda t: busy[t])
        stage = max(THREADS[thread], key=lambda s: self.seconds[s])
        return {"thread": thread, "stage": stage, "busy_seconds": {t: round(v, 3) for t, v in busy.items()}}

    def rounded(self, digits: int = 3) -> dict[str, float]:
        return {k: round(v, digits) for k, v in self.seconds.items()}
