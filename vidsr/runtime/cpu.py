"""CPU facts that decide how we run torch: thread count, bf16 support and the allocator."""

from __future__ import annotations

import ctypes
import functools
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


@functools.lru_cache(maxsize=1)
def tune_allocator() -> bool:
    """Keep glibc malloc off its mmap path for big tensors.

    Eager torch frees and re-allocates the same large activations every layer; with glibc's default thresholds each
    one is a fresh mmap plus page faults, which measured 1.7x to 3x slower here. mallopt works in-process, so users
    need not set MALLOC_MMAP_MAX_ themselves.

    One arena, too: the pipeline runs inference on its own thread, and a thread's own arena (64 MB heaps) cannot
    hold a 130 MB activation, so every one fell back through the slow path. EDSR at 960x540 measured 1.4-1.6x
    slower on a worker thread than on the main thread until all threads shared the main arena.
    Returns False where there is no glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        # -1 becomes SIZE_MAX inside glibc: never give the heap back. VDSR at 1080p frees more than the largest
        # positive int (2 GB) at once, and each trim made the next frame fault ~10 GB of pages back in.
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, -1) == 1
        ok &= libc.mallopt(_M_ARENA_MAX, 1) == 1
        return bool(ok)
    except (OSError, AttributeError):
        return False


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def has_fast_bf16() -> bool:
    """True where the CPU does bf16 dot products natively; elsewhere torch emulates bf16 and is far slower than fp32
    (measured on a Zen 3 with AVX2 only: 13 GFLOP/s bf16 against 115 GFLOP/s fp32)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def default_threads() -> int:
    """``$VIDSR_THREADS`` (set by ``vidsr batch`` to share cores between jobs), else every core we may use."""
    env = os.environ.get("VIDSR_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
