"""Wall time per pipeline stage, for ``vidsr bench`` and ``--json``: where a frame's time goes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

STAGES = ("decode", "prepare", "infer", "finish", "encode")


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

    def rounded(self, digits: int = 3) -> dict[str, float]:
        return {k: round(v, digits) for k, v in self.seconds.items()}
