"""``vidsr bench``: inference-only against end-to-end speed, in one run, on a clip made for the purpose.

Both numbers use the same upscaler on the same frames, so their ratio is the pipeline's own overhead (decode,
colour conversion, encode and the queues between them). The clip is synthetic (moving gradients and texture) so
the encoder does real work and the benchmark needs no data files.
"""

from __future__ import annotations

import resource
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from vidsr.frames.pipeline import UpscaleJob, upscale_video
from vidsr.frames.stages import FrameUpscaler
from vidsr.frames.upscaler import Upscaler
from vidsr.models.flops import gflop_per_output_mp
from vidsr.runtime.cpu import cpu_model, default_threads
from vidsr.video.colour import tags_of, working_format
from vidsr.video.writer import EncodeOptions


def synthetic_frame(i: int, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([(xx + 2 * i) / w, yy / h, 0.5 + 0.5 * np.sin((xx + yy + 5 * i) / 7)], axis=2) * 200
    img += rng.normal(0, 6, img.shape)  # texture, so neither the codec nor the model sees flat areas only
    return np.clip(img, 0, 255).astype(np.uint8)


def make_bench_clip(path: Path, w: int, h: int, frames: int, rate: int = 25) -> Path:
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"crf": "18", "preset": "ultrafast"}
        v.codec_context.time_base = Fraction(1, rate)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(synthetic_frame(i, w, h, rng), format="rgb24").reformat(
                format="yuv420p")
            frame.pts = i
            for packet in v.encode(frame):
                c.mux(packet)
        for packet in v.encode(None):
            c.mux(packet)
    return path


def decoded_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return list(c.decode(video=0))


def _frame_upscaler(upscaler: Upscaler, first: av.VideoFrame) -> FrameUpscaler:
    fmt = working_format(first.format.name)
    return FrameUpscaler(upscaler, fmt, fmt, tags_of(first, None), first.width, first.height)


def infer_only(upscaler: Upscaler, frames: list[av.VideoFrame], batch: int) -> tuple[float, int]:
    """Seconds to run the network on every frame, fed exactly as the pipeline feeds it, nothing else counted (a
    recurrent engine's alignment, the flow and the warps of its state, is counted: it is part of its cost)."""
    sr = _frame_upscaler(upscaler, frames[0])
    batches = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    inputs = [(sr.network_input(b), [sr.planes(f)[0] for f in b], b) for b in batches]
    upscaler(packed_alone(upscaler, inputs[0][0][:1]))  # warm-up: first-call allocations are not steady state
    t = time.perf_counter()
    for x, lumas, b in inputs:
        sr.infer(x, lumas, b)
    return time.perf_counter() - t, len(frames)


def packed_alone(upscaler: Upscaler, x: Any) -> Any:
    """``x`` as the network takes it on its own: a recurrent network's input with a fresh (zero) state."""
    import torch

    if not upscaler.arch.recurrent:
        return x
    zero = x.new_zeros(x.shape[0], upscaler.features, *x.shape[-2:])
    return torch.cat([x, zero, x], 1)


def network_only(upscaler: Upscaler, frames: list[av.VideoFrame], batch: int) -> float:
    """Seconds per frame of the network on input already on its device: no copies, no colour work. What the
    pipeline's overlap has to keep up with on a GPU (on a CPU it is inference only)."""
    import torch

    x = packed_alone(upscaler, _frame_upscaler(upscaler, frames[0]).network_input(frames[:batch]))
    x = x.to(upscaler.runtime.device)
    upscaler(x)
    torch.cuda.synchronize()
    calls = max(1, len(frames) // batch)
    t = time.perf_counter()
    for _ in range(calls):
        upscaler(x)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / (calls * x.shape[0])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_bench(upscaler: Upscaler, engine: Any, size: tuple[int, int], frames: int, batch: int,
              encode: EncodeOptions, temporal_filter: bool = False) -> dict[str, Any]:
    w, h = size
    s = upscaler.scale
    on_gpu = str(getattr(upscaler.runtime, "device", "cpu")).startswith("cuda")
    with tempfile.TemporaryDirectory(prefix="vidsr-bench-") as tmp:
        clip = make_bench_clip(Path(tmp) / "in.mkv", w, h, frames)
        decoded = decoded_frames(clip)
        infer_s, n = infer_only(upscaler, decoded, batch)
        job = UpscaleJob(str(clip), str(Path(tmp) / "out.mkv"), upscaler, encode=encode, batch=batch,
                         temporal_filter=temporal_filter)
        stats = upscale_video(job)
    infer_fps, e2e_fps = n / infer_s, stats.frames / stats.seconds
    # On a GPU, also the network alone on device-resident input: the pace the overlapped pipeline should reach.
    network = 1 / network_only(upscaler, decoded, batch) if on_gpu else None
    gflop_frame = gflop_per_output_mp(engine, s) * (w * s) * (h * s) / 1e6
    return {
        "model": engine.id, "scale": s, "size": f"{w}x{h}", "output_size": f"{w * s}x{h * s}", "frames": n,
        "batch": batch, "runtime": upscaler.runtime.name, "precision": upscaler.runtime.precision,
        "threads": getattr(upscaler.runtime, "threads", 0) or default_threads(), "cpu": cpu_model(),
        "infer_fps": round(infer_fps, 4), "e2e_fps": round(e2e_fps, 4),
        "overhead_ratio": round(infer_fps / e2e_fps, 4),
        "seconds_per_frame_infer": round(1 / infer_fps, 3),
        "gflop_per_frame": round(gflop_frame, 4), "gflops": round(gflop_frame * infer_fps, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        # Busy time of each stage; decode and encode run in their own threads, overlapped with inference.
        "stage_seconds": stats.clock.rounded(), "e2e_seconds": round(stats.seconds, 3), "codec": encode.codec,
        "preset": encode.preset, "bound_by": stats.clock.bound_by(),
        "temporal_filter": temporal_filter,
    } | ({"network_fps": round(network, 4), "e2e_over_network": round(e2e_fps / network, 4)} if network else {})
