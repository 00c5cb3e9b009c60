"""Where FFmpeg's own messages go: nowhere by default, to stderr (FFmpeg's own lines) with --debug.

FFmpeg logs from its codec threads too. A Python log callback (PyAV's ``av.logging.set_level(LEVEL)``) makes such a
thread wait for the GIL, and when the main thread frees a codec (PyAV's dealloc holds the GIL while FFmpeg joins its
threads) the two wait on each other for good: a failed `vidsr upscale` printed its error and then hung in 3 of 8
runs, deaf to SIGTERM. So no Python callback is ever installed: FFmpeg's own C callback writes, filtered by its own
level, which needs no GIL.
"""

from __future__ import annotations

QUIET = -8  # AV_LOG_QUIET: below PANIC, so FFmpeg prints nothing


def route_ffmpeg_log(debug: bool) -> None:
    """FFmpeg's messages: shown on stderr with --debug (warnings and worse), else none, so that none reaches stderr
    behind our back: the errors they explain are already one line of ours (a damaged file, a missing index), and
    holes in the input are reported by vidsr itself."""
    import av

    av.logging.restore_default_callback()  # FFmpeg's C callback, not PyAV's Python one
    av.logging.set_libav_level(av.logging.WARNING if debug else QUIET)


def quiet_ffmpeg() -> None:
    """-q: FFmpeg says nothing, --debug or not."""
    import av

    av.logging.set_libav_level(QUIET)
