"""The server's state in SQLite (stdlib, WAL): the media library and the job queue, as typed records.

One connection behind a lock: every statement is short (the heavy work happens in child processes), and a single
writer is what SQLite wants anyway. WAL lets a reader (an API call) never wait for a writer's fsync, and
``synchronous=NORMAL`` keeps every committed row across a process crash such as kill -9 (only a power cut can lose
the last commits, never corrupt the file).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,        -- what the user called it; shown, never used as a path
    kind TEXT NOT NULL,        -- video | image | frames
    size INTEGER NOT NULL,
    file TEXT NOT NULL,        -- the server's own file name inside media/<id>/
    info TEXT NOT NULL,        -- JSON: streams, codecs, rate, colour tags, duration
    playable INTEGER NOT NULL, -- a browser plays the file itself
    proxy TEXT,                -- else the browser copy's file name, once made
    source TEXT,               -- the media a result was made from
    job TEXT,                  -- the job that made it
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    media TEXT NOT NULL,
    action TEXT NOT NULL,      -- upscale | cut | extract | merge | proxy
    options TEXT NOT NULL,     -- JSON
    state TEXT NOT NULL,       -- queued | running | done | failed | cancelled
    progress REAL NOT NULL DEFAULT 0,
    frame INTEGER NOT NULL DEFAULT 0,
    frames INTEGER NOT NULL DEFAULT 0,
    fps REAL NOT NULL DEFAULT 0,
    eta REAL,
    result TEXT,
    error TEXT,
    note TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
"""

STATES = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = ("done", "failed", "cancelled")


def new_id() -> str:
    """Ids are the server's: 16 hex digits, so that a request can only name a row, never a path."""
    return secrets.token_hex(8)


@dataclass
class Media:
    id: str
    name: str
    kind: str
    size: int
    file: str
    info: dict[str, Any]
    playable: bool
    proxy: str | None = None
    source: str | None = None
    job: str | None = None
    created: float = field(default_factory=time.time)

    def as_api(self) -> dict[str, Any]:
        urls = {"file": f"/api/media/{self.id}/file", "thumbnail": f"/api/media/{self.id}/thumbnail",
                "play": f"/api/media/{self.id}/play"}
        out = {k: v for k, v in asdict(self).items() if k not in ("file", "proxy")}
        return out | {"urls": urls, "browser_copy": self.proxy is not None}


@dataclass
class Job:
    id: str
    media: str
    action: str
    options: dict[str, Any]
    state: str = "queued"
    progress: float = 0.0
    frame: int = 0
    frames: int = 0
    fps: float = 0.0
    eta: float | None = None
    result: str | None = None
    error: str | None = None
    note: str | None = None
    attempts: int = 0
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    def as_api(self) -> dict[str, Any]:
        return asdict(self)


def _row(cls: type, row: sqlite3.Row) -> Any:
    values = dict(row)
    for key in ("info", "options"):
        if key in values:
            values[key] = json.loads(values[key])
    if "playable" in values:
        values["playable"] = bool(values["playable"])
    return cls(**values)


def _columns(record: Any) -> dict[str, Any]:
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    for key in ("info", "options"):
        if key in values:
            values[key] = json.dumps(values[key])
    return values


class Database:
    def __init__(self, path: Path):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _insert(self, table: str, record: Any) -> None:
        values = _columns(record)
        self._run(f"INSERT INTO {table} ({','.join(values)}) VALUES ({','.join('?' * len(values))})",
                  tuple(values.values()))

    def _one(self, table: str, cls: type, row_id: str) -> Any:
        rows = self._run(f"SELECT * FROM {table} WHERE id = ?", (row_id,))
        return _row(cls, rows[0]) if rows else None

    # media
    def add_media(self, media: Media) -> None:
        self._insert("media", media)

    def media(self, media_id: str) -> Media | None:
        return self._one("media", Media, media_id)

    def all_media(self) -> list[Media]:
        return [_row(Media, r) for r in self._run("SELECT * FROM media ORDER BY created DESC")]

    def set_proxy(self, media_id: str, proxy: str) -> None:
        self._run("UPDATE media SET proxy = ? WHERE id = ?", (proxy, media_id))

    def delete_media(self, media_id: str) -> None:
        self._run("DELETE FROM media WHERE id = ?", (media_id,))

    # jobs
    def add_job(self, job: Job) -> None:
        self._insert("jobs", job)

    def job(self, job_id: str) -> Job | None:
        return self._one("jobs", Job, job_id)

    def jobs(self, media_id: str | None = None) -> list[Job]:
        if media_id:
            rows = self._run("SELECT * FROM jobs WHERE media = ? ORDER BY created DESC", (media_id,))
        else:
            rows = self._run("SELECT * FROM jobs ORDER BY created DESC")
        return [_row(Job, r) for r in rows]

    def update_job(self, job_id: str, **values: Any) -> Job | None:
        if values:
            sets = ", ".join(f"{k} = ?" for k in values)
            args = tuple(json.dumps(v) if k == "options" else v for k, v in values.items())
            self._run(f"UPDATE jobs SET {sets} WHERE id = ?", (*args, job_id))
        return self.job(job_id)

    def claim_job(self) -> Job | None:
        """The next queued job, now marked running; browser copies first, since people wait on them to play."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute("SELECT * FROM jobs WHERE state = 'queued' ORDER BY action = 'proxy' DESC, "
                                        "created LIMIT 1").fetchall()
                if rows:
                    self._db.execute("UPDATE jobs SET state = 'running', started = ?, attempts = attempts + 1, "
                                     "progress = 0, frame = 0, fps = 0, eta = NULL WHERE id = ?",
                                     (time.time(), rows[0]["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.job(rows[0]["id"]) if rows else None

    def clear_finished(self) -> list[str]:
        """Forget the jobs that have ended (done, failed, cancelled); their results stay in the library. Returns
        the ids forgotten."""
        rows = self._run("SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled')")
        self._run("DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled')")
        return [r["id"] for r in rows]

    def jobs_in(self, *states: str) -> list[Job]:
        marks = ",".join("?" * len(states))
        return [_row(Job, r) for r in self._run(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY created",
                                                states)]
