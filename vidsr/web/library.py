"""The server's files: where each lives under ``--data``, how an upload becomes media, and the sweep after a crash.

Layout (every name below ``--data`` is the server's own; a user's file name is only ever shown):

    vidsr.db             SQLite: media and jobs
    media/<id>/          one folder per media: its file, thumb.jpg, and copy.mp4 (the browser copy) when needed
    uploads/             uploads while they stream in (partials)
    work/<job id>/       a job's output until it succeeds and moves into media/
    serve.lock           held by the one server that owns this folder
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from vidsr.errors import UsageError
from vidsr.web.db import Database, Media, new_id
from vidsr.web.probe import THUMB_WIDTH

ID = re.compile(r"^[0-9a-f]{16}$")
PROBE_TIMEOUT_S = 120
THUMB = "thumb.jpg"
COPY = "copy.mp4"


class LimitError(Exception):
    """An upload that would break a limit the server was started with (HTTP 413 or 507)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class NotMediaError(Exception):
    """Content that FFmpeg cannot decode as video or image (HTTP 415)."""


@dataclass(frozen=True)
class Limits:
    max_upload: int | None = None  # bytes; None: no cap
    min_free: int = 512 * 2**20  # bytes the data disk keeps free


def parse_bytes(text: str) -> int:
    """``500M``, ``2G``, ``1.5T`` or plain bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.I)
    if not m:
        raise UsageError(f"bad size {text!r}; use bytes or a number with K, M, G or T")
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))


def safe_name(name: str) -> str:
    """A user's file name as shown and offered for download: no folders, no control characters."""
    name = Path(name.replace("\\", "/")).name
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip() or "upload"
    return name[:200]


class Library:
    def __init__(self, root: Path, db: Database, limits: Limits = Limits()):
        self.root = root.resolve()
        self.db = db
        self.limits = limits
        for folder in ("media", "uploads", "work"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self._lock: IO[bytes] | None = None

    def lock(self) -> None:
        """One server per data folder: a second would sweep the first one's live files."""
        self._lock = open(self.root / "serve.lock", "wb")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"{self.root}: another vidsr serve is using this data folder") from None

    # paths: from ids the server made, checked to stay inside the data folder
    def folder(self, media_id: str) -> Path:
        if not ID.match(media_id):
            raise FileNotFoundError(media_id)
        return self.root / "media" / media_id

    def path(self, media: Media, which: str = "file") -> Path:
        """The media's file, thumbnail or browser copy; FileNotFoundError for anything else, and for a symlink
        or a path that leaves the data folder (nothing in a request reaches here but a row's id)."""
        name = {"file": media.file, "thumbnail": THUMB, "copy": media.proxy}.get(which)
        if not name:
            raise FileNotFoundError(which)
        path = self.folder(media.id) / name
        if path.is_symlink() or not path.is_file() or self.root not in path.resolve().parents:
            raise FileNotFoundError(name)
        return path

    def work_dir(self, job_id: str) -> Path:
        folder = self.root / "work" / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # uploads
    def check_space(self, incoming: int) -> None:
        if self.limits.max_upload is not None and incoming > self.limits.max_upload:
            raise LimitError(f"the upload is larger than this server's limit of {_human(self.limits.max_upload)}",
                             413)
        free = shutil.disk_usage(self.root).free
        if free - incoming < self.limits.min_free:
            raise LimitError(f"not enough free disk space: {_human(free)} free, and this server keeps "
                             f"{_human(self.limits.min_free)} free", 507)

    def new_upload(self) -> tuple[IO[bytes], Path]:
        fd, name = tempfile.mkstemp(prefix=".upload.", suffix=".partial", dir=self.root / "uploads")
        return os.fdopen(fd, "wb"), Path(name)

    def ingest(self, partial: Path, name: str) -> Media:
        """Probe an upload by its content (in a child process), then file it as media; NotMediaError otherwise,
        and the upload is gone either way but as media."""
        media_id = new_id()
        folder = self.folder(media_id)
        try:
            folder.mkdir()
            probe = _probe(partial, folder / THUMB)
            final = folder / f"source{probe['suffix']}"
            os.replace(partial, final)
            media = Media(media_id, safe_name(name), probe["kind"], final.stat().st_size, final.name, probe["info"],
                          probe["playable"])
            self.db.add_media(media)
            return media
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            partial.unlink(missing_ok=True)

    def add_result(self, output: Path, name: str, source: Media, job_id: str, extra: dict[str, Any]) -> Media:
        """File a job's output (already complete, in work/) as new media made from ``source``."""
        media_id = new_id()
        folder = self.folder(media_id)
        folder.mkdir()
        try:
            final = folder / f"result{output.suffix}"
            os.replace(output, final)
            if final.suffix == ".zip":
                kind, playable, info = "frames", False, extra
                _zip_thumbnail(final, folder / THUMB)
            else:
                probe = _probe(final, folder / THUMB)
                kind, playable, info = probe["kind"], probe["playable"], probe["info"] | extra
            media = Media(media_id, safe_name(name), kind, final.stat().st_size, final.name, info, playable,
                          source=source.id, job=job_id)
            self.db.add_media(media)
            return media
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def delete(self, media_id: str) -> None:
        self.db.delete_media(media_id)
        shutil.rmtree(self.folder(media_id), ignore_errors=True)

    def sweep(self) -> list[str]:
        """After a crash: remove partial uploads, every job's unfinished output, and media folders that no row
        names (an ingest killed between its copy and its commit). Runs before any job starts."""
        removed = []
        for path in (self.root / "uploads").iterdir():
            _remove(path)
            removed.append(f"uploads/{path.name}")
        for path in (self.root / "work").iterdir():
            _remove(path)
            removed.append(f"work/{path.name}")
        known = {m.id for m in self.db.all_media()}
        for path in (self.root / "media").iterdir():
            if path.name not in known:
                _remove(path)
                removed.append(f"media/{path.name}")
            else:
                for partial in path.glob(".*.partial*"):
                    partial.unlink(missing_ok=True)
                    removed.append(f"media/{path.name}/{partial.name}")
        return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _probe(path: Path, thumb: Path) -> dict[str, Any]:
    """vidsr.web.probe in a child: a file that crashes or hangs FFmpeg costs that child, not the server."""
    try:
        proc = subprocess.run([sys.executable, "-m", "vidsr.web.probe", str(path), str(thumb)], capture_output=True,
                              text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise NotMediaError(f"reading it took over {PROBE_TIMEOUT_S} s") from None
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        report = {"error": f"the probe died (exit {proc.returncode})"}
    if proc.returncode != 0 or "error" in report:
        raise NotMediaError(f"not a video or image: {report.get('error', 'unreadable')}")
    return report


def _zip_thumbnail(path: Path, thumb: Path) -> None:
    with zipfile.ZipFile(path) as z:
        first = min(z.namelist())
        bgr = cv2.imdecode(np.frombuffer(z.read(first), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise NotMediaError(f"{first} in the frame set does not decode")
    height = max(1, round(bgr.shape[0] * THUMB_WIDTH / bgr.shape[1]))
    cv2.imwrite(str(thumb), cv2.resize(bgr, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA))


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def data_home() -> Path:
    """``--data``'s default: $XDG_DATA_HOME/vidsr, else ~/.local/share/vidsr."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vidsr"
