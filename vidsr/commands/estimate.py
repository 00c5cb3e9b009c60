"""What a run will take, said before it starts: ``vidsr upscale`` prints it, ``--dry-run`` prints only it (the web
page asks for it this way before a job is queued), and a finished run refines the figure for the next."""

from __future__ import annotations

from typing import Any

from vidsr.models.engine import Engine
from vidsr.runtime.speed import Estimate, SpeedKey, estimate, probe_speed, speed_key
from vidsr.video.work import Work


def expect(upscaler: Any, engine: Engine, work: Work, pipeline: str = "") -> tuple[Estimate, SpeedKey]:
    """The estimate for ``work`` on ``upscaler`` behind ``pipeline`` (the encoder preset and the temporal filter;
    probed once per key on this machine, then cached), and the key a finished run records its own figure under."""
    key = speed_key(engine, work.scale, upscaler.runtime, pipeline)
    speed = probe_speed(upscaler, engine.input_channels, key)
    return estimate(speed, work.frames, work.output_pixels), key

