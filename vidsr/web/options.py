"""What ``POST /api/jobs`` may ask, checked before anything is queued, and the child command each job runs.

Upscale takes the names of ``vidsr upscale``'s own options (``model``, ``scale``, ``start``, ``duration``,
``codec``, ``crf``, ...; ``no_audio`` or ``no-audio`` alike) and passes them to it as flags, so the two never drift.
Every value is typed here and every string is a plain token, so that no request can smuggle in a flag or a path.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidsr.web.db import Media

TOKEN = re.compile(r"^[A-Za-z0-9_.:+][A-Za-z0-9_.:+-]{0,63}$")
ACTIONS = ("upscale", "cut", "extract", "merge")
KINDS = {"upscale": ("video", "image"), "cut": ("video",), "extract": ("video",), "merge": ("frames",)}
# name -> type; the flag is --name with dashes.
UPSCALE = {"model": str, "quality": str, "scale": int, "runtime": str, "device": str, "precision": str, "tile": int,
           "degradation": str, "ensemble": bool, "batch": int, "codec": str, "crf": int, "preset": str,
           "pix_fmt": str, "start": str, "duration": str, "no_audio": bool, "no_subtitles": bool,
           "deinterlace": str, "strict": bool, "compare": str, "temporal_filter": str, "format": str}
CUT = {"start": float, "duration": float, "crf": int, "preset": str}
EXTRACT: dict[str, type] = {"every": int}
MERGE = {"fps": float, "audio": bool, "crf": int, "preset": str}
SCHEMAS: dict[str, dict[str, type]] = {"upscale": UPSCALE, "cut": CUT, "extract": EXTRACT, "merge": MERGE}
VIDEO_CONTAINERS = {"mp4": ".mp4", "mkv": ".mkv", "matroska": ".mkv", "webm": ".webm", "mov": ".mov"}
IMAGE_OUT = {"png": ".png", "jpg": ".jpg", "bmp": ".bmp"}


class BadRequest(ValueError):
    """A job request that cannot run (HTTP 400, or 409 when the media is the wrong kind)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class JobRequest:
    action: str
    options: dict[str, Any]


def _typed(name: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | str) or not re.fullmatch(r"-?\d+", str(value)):
            raise BadRequest(f"{name} must be a whole number")
        return int(value)
    if kind is float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BadRequest(f"{name} must be a number") from None
        if isinstance(value, bool) or not number >= 0 or number == float("inf"):
            raise BadRequest(f"{name} must be a number, 0 or more")
        return number
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not TOKEN.match(text):
        raise BadRequest(f"{name}: {value!r} is not a plain value (letters, digits, . : + - _)")
    return text


def parse_request(body: Any, media: Media) -> JobRequest:
    """Check a request body against its action's options and the media's kind."""
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object such as {"media": "...", "action": "upscale"}')
    action = body.get("action")
    if action not in ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(ACTIONS)}")
    if media.kind not in KINDS[action]:
        raise BadRequest(f"{action} takes {' or '.join(KINDS[action])} media; {media.name} is {media.kind}", 409)
    schema = SCHEMAS[action]
    options: dict[str, Any] = {}
    for raw, value in body.items():
        if raw in ("media", "action") or value is None:
            continue
        name = raw.replace("-", "_")
        if name not in schema:
            raise BadRequest(f"{action} has no option {raw!r}; it takes: {', '.join(schema)}")
        options[name] = _typed(name, value, schema[name])
    return JobRequest(action, _defaults(action, options, media))


def _defaults(action: str, options: dict[str, Any], media: Media) -> dict[str, Any]:
    if action == "upscale":
        options.setdefault("scale", 2)
        if options["scale"] not in (2, 3, 4):
            raise BadRequest("scale must be 2, 3 or 4")
        out = IMAGE_OUT if media.kind == "image" else VIDEO_CONTAINERS
        options.setdefault("format", "png" if media.kind == "image" else "mp4")
        if options["format"] not in out:
            raise BadRequest(f"format for {media.kind} output must be one of {', '.join(out)}")
        if options.get("codec") == "ffv1" and options["format"] not in ("mkv", "matroska"):
            raise BadRequest("codec ffv1 (lossless) goes in MKV: choose the MKV container")
        check_upscale(options, media)
    elif action == "cut":
        options.setdefault("start", 0.0)
        options.setdefault("duration", 30.0)
        if options["duration"] <= 0:
            raise BadRequest("duration must be more than 0")
    elif action == "extract":
        options.setdefault("every", 1)
        if options["every"] < 1:
            raise BadRequest("every must be 1 or more")
    elif action == "merge":
        options.setdefault("fps", float(media.info.get("fps") or 25.0))
        options.setdefault("audio", True)
        if not 0 < options["fps"] <= 240:
            raise BadRequest("fps must be more than 0 and at most 240")
    return options


def check_upscale(options: dict[str, Any], media: Media) -> None:
    """The checks ``vidsr upscale`` makes before it starts, with its words: option ranges and choices (click's own
    types, from the command's parameters), times, the engine for the model and scale, and the encoder's options.
    A job the child would refuse is refused here, with 400, before it is queued."""
    import click

    from vidsr.commands.upscale import parse_time, upscale
    from vidsr.errors import UsageError, VidsrError
    from vidsr.models.engine import find_engine
    from vidsr.video.formats import container, default_codec
    from vidsr.video.nvenc import NVENC, nvenc_error
    from vidsr.video.options import check_encode

    params = {p.name: p for p in upscale.params}
    ctx = click.Context(upscale)
    for name, value in options.items():
        param = params.get(name)
        if param is None or isinstance(value, bool) or name == "scale":
            continue
        try:
            param.type.convert(value, param, ctx)
        except click.BadParameter as e:
            raise BadRequest(f"{name}: {e.format_message()}") from None
    try:
        duration = parse_time(options.get("duration"))
        parse_time(options.get("start"))
        if duration is not None and duration <= 0:
            raise UsageError("--duration must be positive")
        find_engine(options.get("model", "auto"), options["scale"])
        if media.kind == "video":
            muxer = container(options["format"])
            codec = options.get("codec") or default_codec(muxer)
            check_encode(codec, options.get("crf", 18), options.get("preset", "medium"), options.get("pix_fmt"),
                         muxer)
            if codec in NVENC and (why := nvenc_error(codec)):
                raise UsageError(f"--codec {codec}: this machine's NVENC does not open ({why})")
    except (UsageError, VidsrError) as e:
        raise BadRequest(str(e)) from None


def result_name(name: str, action: str, options: dict[str, Any], report: dict[str, Any]) -> str:
    """An upscale's result named by what made it: the engine that ran (auto's pick, from the child's report) and
    the options that change the picture, so that three runs of one clip are told apart (they were all
    ``clip-x2.mp4``)."""
    if action != "upscale" or "model" not in report:
        return name
    stem, suffix = name.rsplit(".", 1) if "." in name else (name, "")
    parts = [stem, str(report["model"])]
    defaults = {"crf": 18, "temporal_filter": "auto"}  # vidsr upscale's: left out of the name
    for key, label in (("start", "from"), ("duration", "for"), ("crf", "crf"), ("temporal_filter", "filter")):
        if key in options and options[key] != defaults.get(key):
            parts.append(f"{label}{options[key]}" + ("s" if key in ("start", "duration") else ""))
    return "-".join(parts) + (f".{suffix}" if suffix else "")


def command_args(action: str, options: dict[str, Any], src: Path, work: Path, media: Media,
                 paths: dict[str, str]) -> tuple[Path, str, list[str]]:
    """(output file in ``work``, the result's display name, the child's command line)."""
    stem = Path(media.name).stem
    if action == "upscale":
        suffix = {**VIDEO_CONTAINERS, **IMAGE_OUT}[options["format"]]
        output = work / f"output{suffix}"
        flags: list[str] = []
        for name, value in options.items():
            if name == "format":
                continue
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool):
                flags += [flag] if value else []
            else:
                flags += [flag, str(value)]
        cmd = [sys.executable, "-m", "vidsr", "upscale", str(src), "-o", str(output), *flags, "--json", "-q", "-y",
               "--progress-json"]
        return output, f"{stem}-x{options['scale']}{suffix}", cmd
    output = work / ("output.zip" if action == "extract" else "output.mp4")
    names = {"cut": f"{stem}-cut-{options.get('start', 0):g}s.mp4", "proxy": f"{stem}-copy.mp4",
             "extract": f"{stem}-frames.zip", "merge": f"{stem.removesuffix('-frames')}-merged.mp4"}
    task_options = dict(options)
    if action == "merge" and options.get("audio") and "audio_from" in paths:
        task_options["audio_from"] = paths["audio_from"]
    cmd = [sys.executable, "-m", "vidsr.web.tasks", action, str(src), str(output), json.dumps(task_options)]
    return output, names[action], cmd
