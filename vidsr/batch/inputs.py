"""Which files a batch takes, and where each one's output goes (mirroring the input tree)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from vidsr.errors import UsageError
from vidsr.video.formats import IMAGE_SUFFIXES

VIDEO_EXTS = {".mp4", ".mkv", ".mov", ".avi", ".m4v", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".webm", ".flv",
              ".wmv", ".nut", ".y4m", ".3gp", ".dv", ".mxf", ".vob", ".ogv", ".h264", ".264", ".hevc", ".265"}

MEDIA_EXTS = VIDEO_EXTS | IMAGE_SUFFIXES

# Extension for --format, and the containers that cannot carry a codec (then the output becomes .mkv).
FORMAT_EXT = {"matroska": ".mkv", "mkv": ".mkv", "mp4": ".mp4", "mov": ".mov", "mpegts": ".ts", "ts": ".ts",
              "nut": ".nut", "y4m": ".y4m", "yuv4mpegpipe": ".y4m", "webm": ".webm", "avi": ".avi"}
MP4_LIKE = {".mp4", ".m4v", ".mov", ".3gp"}
MP4_CODECS = {"libx264", "libx265", "libsvtav1", "libaom-av1", "h264_nvenc", "hevc_nvenc", "av1_nvenc",
              "libvpx-vp9", "mpeg4", "prores_ks"}


@dataclass(frozen=True)
class Item:
    src: Path
    rel: str  # output path relative to OUTDIR, and the journal key


def output_suffix(src: Path, codec: str | None, fmt: str | None) -> str:
    """Keep the input's extension unless --format names another container or --codec cannot live in it."""
    if fmt:
        return FORMAT_EXT.get(fmt, f".{fmt}")
    suffix = src.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return src.suffix
    if codec and ((suffix in MP4_LIKE and codec not in MP4_CODECS) or codec == "rawvideo"):
        return ".mkv"
    if suffix in {".y4m", ".h264", ".264", ".hevc", ".265"}:
        return ".mkv"  # raw elementary streams and y4m hold no audio and no timestamps; the result goes in mkv
    return src.suffix


def _is_glob(arg: str) -> bool:
    return any(ch in arg for ch in "*?[")


def collect(inputs: tuple[str, ...], recursive: bool, outdir: Path, codec: str | None,
            fmt: str | None) -> list[Item]:
    """Files named, found in folders (``recursive``: sub-folders too) or matched by globs, in a stable order.
    Anything inside OUTDIR is left out, so that a rerun never feeds on its own outputs."""
    out_root = outdir.resolve()
    found: list[tuple[Path, str]] = []
    for arg in inputs:
        if _is_glob(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            base = Path(os.path.commonpath([os.path.dirname(m) or "." for m in matches])) if matches else Path(".")
            pairs = [(Path(m), os.path.relpath(m, base)) for m in matches if Path(m).is_file()]
            if not pairs:
                raise UsageError(f"{arg}: matches no file")
            found += [(p, r) for p, r in pairs if p.suffix.lower() in MEDIA_EXTS]
        elif Path(arg).is_dir():
            root = Path(arg)
            walker = root.rglob("*") if recursive else root.glob("*")
            found += [(p, str(p.relative_to(root))) for p in sorted(walker)
                      if p.is_file() and p.suffix.lower() in MEDIA_EXTS and not p.name.startswith(".")]
        elif Path(arg).is_file():
            found.append((Path(arg), Path(arg).name))
        else:
            raise UsageError(f"{arg}: no such file or folder")
    items: dict[str, Item] = {}
    inside = 0
    for src, rel in found:
        if src.resolve().is_relative_to(out_root):
            inside += 1
            continue
        rel_out = str(Path(rel).with_suffix(output_suffix(src, codec, fmt)))
        if rel_out in items and items[rel_out].src.resolve() != src.resolve():
            raise UsageError(f"{items[rel_out].src} and {src} would both write {outdir / rel_out}; "
                             "batch them separately")
        items[rel_out] = Item(src, rel_out)
    if not items and inside:
        raise UsageError(f"every media file found ({inside}) is inside the output folder {outdir}, which is left "
                         "out so that a rerun never feeds on its own outputs; give -o another folder")
    if not items:
        raise UsageError("no media files found in " + ", ".join(inputs))
    return list(items.values())
