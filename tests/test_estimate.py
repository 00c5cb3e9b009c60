"""The estimate a run says before it starts: frames from the input as the run reads them, time from a probe of the
engine on this machine, cached under every fact that changes it, then refined by a finished run."""

import json

import pytest
from media import make_clip

from vidsr.runtime.speed import Speed, SpeedKey, cached_speed, duration_text, estimate, record_run


@pytest.fixture()
def clip(tmp_path):
    return make_clip(tmp_path / "clip.mp4", 64, 48, frames=12, audio=True)


@pytest.fixture()
def run(vidsr, env, tmp_path):
    env["VIDSR_CACHE"] = str(tmp_path / "cache")
    return vidsr


def test_dry_run_counts_the_frames_the_run_reads_and_writes_nothing(run, clip, tmp_path):
    p = run("upscale", clip, "-o", tmp_path / "out.mp4", "--model", "srcnn", "--dry-run", "--json", check=0)
    plan = json.loads(p.stdout)
    assert plan["dry_run"] and plan["model"].startswith("srcnn") and (plan["width"], plan["height"]) == (128, 96)
    assert plan["estimate"]["frames"] == 12 and plan["estimate"]["seconds"] > 0
    assert "probe" in plan["estimate"]["source"]
    half = run("upscale", clip, "-o", tmp_path / "out.mp4", "--model", "srcnn", "--dry-run", "--json",
               "--start", "0.2", check=0)
    assert json.loads(half.stdout)["estimate"]["frames"] == 7  # 12 frames at 25 fps, from 0.2 s
    assert sorted(f.name for f in tmp_path.iterdir()) == ["cache", "clip.mp4"]  # no output, no partial
    done = run("upscale", clip, "-o", tmp_path / "out.mp4", "--model", "srcnn", "--json", "--start", "0.2", check=0)
    assert json.loads(done.stdout)["frames"] == 7  # the count the run itself reads
    lines = run("upscale", clip, "-o", tmp_path / "out.mp4", "--model", "srcnn", "--dry-run", check=0)
    assert lines.stdout == b"" and b"would run srcnn" in lines.stderr and b"12 frames, expect about" in lines.stderr


def on_a_terminal(args: list[str], env: dict) -> str:
    """stderr of ``vidsr ARGS`` run with a pseudo-terminal for its stderr, as a person at a shell runs it."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "vidsr", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=120) == 0, seen
    os.close(leader)
    return seen.decode(errors="replace")


def test_a_run_announces_its_estimate_then_refines_it(run, env, clip, tmp_path):
    p = run("upscale", clip, "-o", tmp_path / "out.mp4", "--model", "srcnn", "--json", check=0)
    summary = json.loads(p.stdout)
    assert summary["estimate"]["frames"] == 12 and summary["frames"] == 12
    speeds = json.loads((tmp_path / "cache" / "speed.json").read_text())
    (key, speed), = speeds.items()
    assert json.loads(key)["engine"] == summary["model"] and json.loads(key)["runtime"] == summary["runtime"]
    assert speed["probe"] > 0
    short = run("upscale", clip, "-o", tmp_path / "out2.mp4", "--model", "srcnn", check=0)
    assert b"expect" not in short.stderr  # a run of a second or two is over before a line about it is read
    # This machine slowed down (say): the cached figure is what the next run expects, and it is worth a line.
    slow = json.dumps({key: speed | {"run": 1000.0}})
    (tmp_path / "cache" / "speed.json").write_text(slow)
    piped = run("upscale", clip, "-o", tmp_path / "out3.mp4", "--model", "srcnn", check=0)
    assert b"expect" not in piped.stderr  # stderr to a file or a pipe (a script's log): the line is for people
    # A run of 2 s or more records its own figure, as the piped one does on a loaded machine: set the slow one again.
    (tmp_path / "cache" / "speed.json").write_text(slow)
    loud = on_a_terminal(["upscale", str(clip), "-o", str(tmp_path / "out5.mp4"), "--model", "srcnn"], env)
    line = next(x for x in loud.splitlines() if "expect" in x)
    assert "12 frames, expect about 2 min" in line and "from a finished run" in line  # 12 x 128x96 px x 1000 s/MP
    quiet = run("upscale", clip, "-o", tmp_path / "out4.mp4", "--model", "srcnn", "-q", check=0)
    assert quiet.stderr == b""


def test_a_pipe_cannot_be_dry_run(run, clip, tmp_path):
    p = run("upscale", "-", "-o", tmp_path / "out.mkv", "--dry-run", input=clip.read_bytes(), check=2)
    assert p.stderr.decode().count("\n") == 1 and "pipe" in p.stderr.decode()


def test_estimate_arithmetic_and_words():
    key = SpeedKey("e", "sha", 2, "openvino", "fp32", "cpu", 2, "cpu")
    assert json.loads(key.text)["scale"] == 2
    probed, ran = Speed(probe=1.0), Speed(probe=1.0, run=3.0)
    assert estimate(probed, 10, 2_000_000).seconds == pytest.approx(22.0)  # 2 MP a frame, probe x 1.1
    assert estimate(ran, 10, 2_000_000).seconds == pytest.approx(60.0)  # a finished run's own figure wins
    assert estimate(ran, None, 2_000_000).seconds is None
    assert "fps" in estimate(ran, None, 1_000_000).line("e", "openvino", "fp32")
    assert [duration_text(s) for s in (0.2, 45, 600, 7800, 3 * 86400)] == ["1 s", "45 s", "10 min", "2 h 10 min",
                                                                          "3.0 days"]


def test_a_finished_run_replaces_the_probe_unless_it_was_too_short_to_mean_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSR_CACHE", str(tmp_path))
    key = SpeedKey("e", "sha", 2, "openvino", "fp32", "cpu", 2, "cpu")
    record_run(key, 1.0, 100, 1_000_000)  # start-up dominates a one-second run: not a figure to plan by
    assert cached_speed(key) is None
    record_run(key, 20.0, 100, 1_000_000)  # 100 frames of 1 MP in 20 s: 0.2 s per output megapixel
    assert cached_speed(key).run == pytest.approx(0.2) and cached_speed(key).seconds_per_mp == pytest.approx(0.2)
    other = SpeedKey("e", "sha", 2, "openvino", "bf16", "cpu", 2, "cpu")  # another precision: another figure
    assert cached_speed(other) is None
    # A run behind x264 medium and the temporal filter says nothing of one behind veryfast without it.
    fast = SpeedKey("e", "sha", 2, "openvino", "fp32", "cpu", 2, "cpu", "libx264 veryfast, filter off")
    assert cached_speed(fast) is None
