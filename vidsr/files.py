"""File safety in one place: atomic writes, the one naming scheme for partial outputs, the cache root, and the
output context manager that every writer of user-visible files goes through.

A partial output is ``.{stem}.{random}.partial{suffix}`` beside its final name (same folder, so the rename is
atomic; same suffix, so FFmpeg and OpenCV pick the same format). Its writer holds an exclusive ``flock`` on it for
as long as it writes, so anyone can tell a live writer's partial from a dead one's: a partial whose lock can be
taken belongs to a process that is gone (kill -9, power cut) and is swept.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vidsr.errors import UsageError, VidsrError

PARTIAL = ".partial"


def cache_root() -> Path:
    """Built artefacts and training caches: ``$VIDSR_CACHE``, else ``~/.cache/vidsr``; never the repo. A
    ``$VIDSR_CACHE`` that cannot hold them is a usage error that names it."""
    env = os.environ.get("VIDSR_CACHE")
    if env:
        path = Path(env)
        if path.exists() and not path.is_dir():
            raise UsageError(f"VIDSR_CACHE={env}: not a folder (it names where vidsr keeps built graphs and caches)")
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"VIDSR_CACHE={env}: the folder is not writable")
        return path
    return Path.home() / ".cache" / "vidsr"


def atomic_write_bytes(path: Path, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half of it. With
    ``durable`` the data and the rename are fsynced, so that they survive a power cut (journals, manifests)."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(name, 0o666 & ~_umask())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` for a writer that wants a path (np.savez, say); renamed onto ``path``
    when the block succeeds, removed otherwise."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(name)
        os.replace(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str, durable: bool = False) -> None:
    atomic_write_bytes(path, text.encode(), durable)


def atomic_write_json(path: Path, obj: Any, durable: bool = False) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n", durable)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_PLACED: list[Path] = []  # outputs this process has completed (renamed into place), for a late signal's message


def placed() -> list[Path]:
    """The outputs this process completed, in order: a signal after them must not say that nothing was written."""
    return list(_PLACED)


def _place_new(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` onto ``final`` only if nothing is there: a hard link fails if the name exists (atomic, unlike
    a check and a rename); where the filesystem has no hard links, the check and the rename it is."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise VidsrError(f"{final} appeared while this run wrote it (another run?); it is kept and this run's "
                         "output is not; -y replaces it") from None
    except OSError:
        if final.exists():
            raise VidsrError(f"{final} appeared while this run wrote it (another run?); it is kept and this run's "
                             "output is not; -y replaces it") from None
        os.replace(tmp, final)


NAME_MAX = 255  # bytes in one file name on Linux's filesystems


def partial_stem(final: Path) -> str:
    """The output's stem as its partials carry it: cut short where the partial's longer name (a dot, 8 random
    characters and ``.partial``) would pass NAME_MAX, so that a legal 250-byte output name still works."""
    room = NAME_MAX - len(f"..12345678{PARTIAL}{final.suffix}".encode())
    stem = final.stem.encode()
    return final.stem if len(stem) <= room else stem[:room].decode(errors="ignore")


def partial_glob(final: Path) -> str:
    """The glob that matches every partial of ``final`` (in its folder); the name's own glob characters
    (``cam[1].mp4``) are escaped."""
    return f".{glob.escape(partial_stem(final))}.*{PARTIAL}{glob.escape(final.suffix)}"


def is_partial_of(path: Path, final: Path) -> bool:
    """Whether ``path`` is named as ``output_file`` names the partials of ``final`` (mkstemp's 8 random characters
    between the name and ``.partial``), so that a user's own file that merely fits the glob is never swept."""
    pattern = rf"\.{re.escape(partial_stem(final))}\.[a-z0-9_]{{8}}{re.escape(PARTIAL)}{re.escape(final.suffix)}"
    return re.fullmatch(pattern, path.name) is not None


def is_special(path: str | Path) -> bool:
    """A FIFO, a device or a socket: something other than a regular file or a folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def sweep_partials(final: Path, keep: tuple[str | Path, ...] = ()) -> list[Path]:
    """Remove the partials of ``final`` whose writer is gone (their lock is free); returns what was removed.
    ``keep``: paths never removed (the run's own input, whatever it is called)."""
    removed = []
    kept = {os.path.realpath(k) for k in keep}
    for path in Path(final).parent.glob(partial_glob(Path(final))):
        if not is_partial_of(path, Path(final)) or os.path.realpath(path) in kept:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live writer holds it
        finally:
            os.close(fd)  # closing the descriptor releases a lock we took
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def output_file(final: str | Path, replace: bool = True, keep: tuple[str | Path, ...] = ()) -> Iterator[Path]:
    """A locked partial beside ``final`` to write to; renamed onto ``final`` when the block succeeds, removed when
    it fails or is interrupted. Stale partials of the same output, left by writers that died, are swept first
    (never one of ``keep``). ``replace=False``: a file that appears at ``final`` meanwhile (another run's) is
    kept, and this one fails, rather than silently replacing it."""
    final = Path(final)
    if not final.parent.is_dir():
        raise UsageError(f"{final.parent}: output folder does not exist")
    if is_special(final):
        raise UsageError(f"{final} is a device or FIFO, not a file: vidsr writes a new file and renames it into "
                         "place, which would replace it; to write into it use -o - with --format and redirect")
    sweep_partials(final, keep)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{partial_stem(final)}.", suffix=f"{PARTIAL}{final.suffix}",
                                    dir=final.parent)
    except PermissionError:
        raise UsageError(f"{final.parent}: the output folder is not writable") from None
    tmp = Path(name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # mkstemp makes the file private (0600); the output should get the permissions any new file gets here.
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        if replace:
            os.replace(tmp, final)
        else:
            _place_new(tmp, final)
        _PLACED.append(final)
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)
