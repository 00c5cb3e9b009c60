import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from media import make_engines, scene

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def engines(tmp_path_factory) -> Path:
    return make_engines(tmp_path_factory.mktemp("engines"))


@pytest.fixture()
def env(engines, monkeypatch) -> dict:
    monkeypatch.setenv("VIDSR_ENGINES", str(engines))
    e = dict(os.environ)
    e["VIDSR_ENGINES"] = str(engines)
    return e


@pytest.fixture()
def vidsr(env):
    """Runs the real console script in a subprocess: real exit codes, real stdout/stderr separation."""

    def run(*args, input=None, check=None, **kw):
        p = subprocess.run([sys.executable, "-m", "vidsr", *map(str, args)], input=input, capture_output=True,
                           env=env, timeout=kw.pop("timeout", 300), **kw)
        if check is not None:
            assert p.returncode == check, p.stderr.decode(errors="replace")
        return p

    return run


needs_ffprobe = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="FFmpeg's ffprobe is not installed")
needs_data = pytest.mark.skipif(not (DATA / "test" / "Set5").is_dir(),
                                reason="../shared/data (Set5/Set14/T91/BSD200) is not beside this checkout")


@pytest.fixture()
def data(tmp_path, monkeypatch):
    """A tiny training tree (train/pics, test/val) of real PNGs, with its own pair cache."""
    monkeypatch.setenv("VIDSR_CACHE", str(tmp_path / "cache"))
    for folder, n, size in (("train/pics", 3, 72), ("test/val", 2, 48)):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(tmp_path / "data" / folder / f"{i}.png"), scene(i * 5, size + 8 * i, size))
    return tmp_path / "data"
