"""Progress as JSON lines on stderr, the one format a parent process reads from any vidsr child: the web server's
queue from ``vidsr upscale --progress-json`` and from its own tasks alike."""

from __future__ import annotations

import json
import sys
import time


class JsonProgress:
    """``{"frame": n, "frames": total, "fps": f}`` lines, at most one every ``every_s`` seconds, plus the last."""

    def __init__(self, every_s: float = 0.25):
        self.every_s = every_s
        self.total = 0
        self.n = 0
        self.t0 = self.last = 0.0

    def start(self, total: int) -> None:
        self.total = total
        self.t0 = time.perf_counter()
        self._line(0)

    def frame(self, n: int) -> None:
        self.n = n
        if time.perf_counter() - self.last >= self.every_s:
            self._line(n)

    def stop(self) -> None:
        if self.t0:
            self._line(self.n)

    def _line(self, n: int) -> None:
        self.last = time.perf_counter()
        elapsed = self.last - self.t0
        fps = n / elapsed if elapsed > 0 else 0.0
        sys.stderr.write(json.dumps({"frame": n, "frames": self.total, "fps": round(fps, 3)}) + "\n")
        sys.stderr.flush()
