"""Where FFmpeg's own messages go: through Python logging, so that -q can silence them."""

from __future__ import annotations

import logging
import sys


def route_ffmpeg_log(debug: bool) -> None:
    """Every FFmpeg message goes through Python logging (PyAV's callback), so that none reaches stderr behind our
    back. They are shown, one prefixed line each, with --debug only: the errors they explain are already one line
    of ours (a damaged file, a missing index), and holes in the input are reported by vidsr itself."""
    import av

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("vidsr: ffmpeg: %(message)s"))
    log = logging.getLogger("libav")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.WARNING if debug else logging.CRITICAL + 1)
    av.logging.set_level(av.logging.WARNING)


def quiet_ffmpeg() -> None:
    logging.getLogger("libav").setLevel(logging.CRITICAL + 1)
