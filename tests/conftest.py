import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from media import make_engines

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
