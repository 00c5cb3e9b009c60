"""``vidsr batch``: a folder with broken files, killed with -9 half-way, resumed; and the same through Ray."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from media import make_clip, probe

JOURNAL = ".vidsr-batch.json"


def make_folder(root: Path, good: int = 4) -> dict[str, int]:
    """``good`` clips (one in a sub-folder) plus two corrupt ones; returns output name -> frame count."""
    want = {}
    for i in range(good):
        rel = f"cam{i % 2}/clip{i}.mp4" if i else f"clip{i}.mkv"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        make_clip(root / rel, 64, 48, frames=6 + i, audio=i % 2 == 0)
        want[rel] = 6 + i
    (root / "garbage.mp4").write_bytes(b"\x00not a video" * 500)
    # A recording cut off mid-way (a camera that lost power): its header promises 3 s, its data holds ~1 s.
    long = make_clip(root.parent / "long.mkv", 64, 48, frames=75, audio=True)
    whole = long.read_bytes()
    (root / "cam1" / "cut.mp4").write_bytes(whole[: len(whole) // 3])
    long.unlink()
    return want


def journal(out: Path) -> dict:
    return json.loads((out / JOURNAL).read_text())["files"]


def check_outputs(out: Path, want: dict[str, int]) -> None:
    files = journal(out)
    for rel, frames in want.items():
        assert files[rel]["state"] == "done", (rel, files[rel])
        info = probe(out / rel)
        assert info["frames"] == frames and (info["width"], info["height"]) == (128, 96)
    for bad in ("garbage.mp4", "cam1/cut.mp4"):
        assert files[bad]["state"] == "failed" and files[bad]["error"]
        assert not (out / bad).exists()
    leftovers = [p for p in out.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]
    assert leftovers == []


def test_batch_survives_kill_9_and_resumes_without_redoing(env, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    want = make_folder(src)
    cmd = [sys.executable, "-m", "vidsr", "batch", str(src), "-r", "-o", str(out), "--no-estimate", "-m", "vdsr",
           "--preset", "ultrafast", "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill once some files are done and one is running
        try:
            states = [e["state"] for e in journal(out).values()]
        except (OSError, ValueError, KeyError):
            states = []
        if states.count("done") >= 2 and "running" in states:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = journal(out)
    done_before = {k for k, e in before.items() if e["state"] == "done"}
    cut_off = {k for k, e in before.items() if e["state"] == "running"}
    assert done_before and cut_off and (before.keys() - done_before - cut_off)
    time.sleep(0.5)
    orphans = subprocess.run(["pgrep", "-f", f"-o {out}"], capture_output=True, text=True).stdout.split()
    assert orphans == []  # children die with the batch; none can finish later and race the resume
    for k in cut_off:
        assert not (out / k).exists()  # never under its final name while unfinished

    p = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, timeout=300)
    assert p.returncode == 1  # two files failed
    summary = json.loads(p.stdout)
    assert summary["counts"] == {"done": len(want), "failed": 2}
    check_outputs(out, want)
    after = journal(out)
    for k in done_before:
        assert after[k]["attempts"] == 1 and after[k]["sha256"] == before[k]["sha256"]  # not redone
    for k in cut_off:
        assert after[k]["attempts"] == 2

    again = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, timeout=120)
    assert again.returncode == 1 and journal(out) == after  # nothing left to do: nothing changes


def test_batch_refuses_a_second_start_and_changed_options(vidsr, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    make_clip(src / "a.mp4", 64, 48, frames=4)
    vidsr("batch", src, "-o", out, "--no-estimate", "-m", "vdsr", "--preset", "ultrafast", check=0)
    p = vidsr("batch", src, "-o", out, "-m", "vdsr", "--preset", "ultrafast", check=2)
    assert b"--resume" in p.stderr and len(p.stderr.splitlines()) == 1
    p = vidsr("batch", src, "-o", out, "-m", "vdsr", "--scale", "3", "--resume", check=2)
    assert b"scale" in p.stderr
    assert vidsr("batch", tmp_path / "nope", "-o", out, check=2).stdout == b""


def test_batch_names_mirror_the_tree_and_skip_existing(vidsr, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "day1").mkdir(parents=True)
    make_clip(src / "day1" / "a.mp4", 64, 48, frames=4)
    make_clip(src / "b.mov", 64, 48, frames=4)
    out.mkdir()
    (out / "b.mov").write_bytes(b"an earlier result")
    p = vidsr("batch", str(src / "**" / "*.mp*"), str(src / "b.mov"), "-o", out, "--no-estimate", "-m", "vdsr",
              "--json", check=2)
    assert b"--skip-existing" in p.stderr
    r = json.loads(vidsr("batch", src, "-r", "-o", out, "--no-estimate", "-m", "vdsr", "--skip-existing", "--json",
                         check=0).stdout)
    assert r["counts"] == {"done": 1, "skipped": 1} and (out / "b.mov").read_bytes() == b"an earlier result"
    assert probe(out / "day1" / "a.mp4")["frames"] == 4
    r = json.loads(vidsr("batch", src / "day1", "-o", tmp_path / "o2", "--no-estimate", "-m", "vdsr", "--codec",
                         "ffv1", "--json", check=0).stdout)
    assert list(r["files"]) == ["a.mkv"] and probe(tmp_path / "o2" / "a.mkv")["frames"] == 4  # mp4 holds no ffv1


@pytest.fixture()
def ray_cluster():
    # Loopback only: Ray otherwise binds to the machine's routable address. Its single-machine mode (the
    # default on macOS and Windows) keeps every service on 127.0.0.1; it is read when ray is first imported.
    # Ray runs workers at nice 15 (RAY_worker_niceness), so beside any busy process (a training run on a dev
    # machine) a 4-frame job took 97 s instead of 4; the test is about the journal, not about Ray's scheduling.
    loopback = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0"}
    saved = {k: os.environ.get(k) for k in [*loopback, "RAY_AUTH_MODE"]}  # ray.init sets the last one
    os.environ.update(loopback)
    ray = pytest.importorskip("ray", reason="Ray is the [cluster] extra: pip install -e '.[dev,cluster]'")
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=80 * 1024 * 1024)
    # Ray 2.59+ turns token authentication on for a local cluster by setting RAY_AUTH_MODE in this process (the
    # token is in ~/.ray/auth_token); a client in another process needs the same setting, as a user's shell does.
    auth = {k: v for k, v in os.environ.items() if k.startswith("RAY_AUTH_")}
    yield ctx.address_info["gcs_address"], loopback | auth
    ray.shutdown()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_batch_on_ray_keeps_the_journal_on_the_driver(env, tmp_path, ray_cluster):
    src, out = tmp_path / "in", tmp_path / "out"
    want = make_folder(src, good=3)
    address, loopback = ray_cluster
    assert address.startswith("127.0.0.1:")
    env = env | loopback | {"RAY_ADDRESS": address}
    cmd = [sys.executable, "-m", "vidsr", "batch", str(src), "-r", "-o", str(out), "--no-estimate", "-m", "vdsr",
           "--preset", "ultrafast", "--ray", "auto", "--json"]
    p = subprocess.run(cmd, env=env, capture_output=True, timeout=400)
    assert p.returncode == 1, p.stderr.decode()[-2000:]
    assert json.loads(p.stdout)["counts"] == {"done": 3, "failed": 2}
    check_outputs(out, want)
    again = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, timeout=300)
    assert again.returncode == 1 and all(e["attempts"] == 1 for e in journal(out).values())


def test_an_image_batch_killed_during_a_save_leaves_no_partial_after_resume(env, tmp_path):
    import cv2
    import numpy as np

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    # Noise compresses slowly, so the 3200x3200 PNG's save takes long enough to be caught mid-way.
    cv2.imwrite(str(src / "still.png"), np.random.default_rng(0).integers(0, 255, (1600, 1600, 3), np.uint8))
    cmd = [sys.executable, "-m", "vidsr", "batch", str(src), "-o", str(out), "--no-estimate", "-m", "srcnn"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, partials = time.time() + 120, []
    while time.time() < deadline and not partials and proc.poll() is None:
        partials = list(out.glob(".still.*partial*")) if out.is_dir() else []
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partials, "the save was never caught in progress"
    time.sleep(0.5)  # the child dies with the batch
    assert list(out.glob(".still.*partial*")), "kill -9 should have left the partial behind"
    p = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (out / "still.png").is_file()
    assert [x.name for x in out.iterdir() if "partial" in x.name] == []


def test_sigterm_of_a_batch_leaves_the_running_file_pending_for_resume(env, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    make_clip(src / "long.mkv", 320, 240, frames=150, audio=False)
    cmd = [sys.executable, "-m", "vidsr", "batch", str(src), "-o", str(out), "--no-estimate", "-m", "vdsr", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if journal(out)["long.mkv"]["state"] == "running":
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and stdout == b""
    entry = journal(out)["long.mkv"]
    assert entry["state"] == "pending" and entry.get("interrupted") and "error" not in entry, entry
    done = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0 and done.stdout == b"", done.stderr  # -q: nothing on stdout, no table
    assert journal(out)["long.mkv"]["state"] == "done" and probe(out / "long.mkv")["frames"] == 150


def test_batch_says_its_frames_and_time_before_it_starts(vidsr, env, tmp_path):
    env["VIDSR_CACHE"] = str(tmp_path / "cache")
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    make_clip(src / "a.mp4", 64, 48, frames=6)
    make_clip(src / "b.mkv", 64, 48, frames=9)
    (src / "garbage.mp4").write_bytes(b"\x00not a video" * 500)
    r = json.loads(vidsr("batch", src, "-o", out, "-m", "srcnn", "--json", check=1).stdout)
    est = r["estimate"]
    assert est["files"] == 2 and est["frames"] == 15 and est["unknown"] == 1  # garbage says nothing
    assert est["engine"].startswith("srcnn") and est["seconds"] > 0 and est["sample"].endswith("a.mp4")
    # Each file pays a child's start-up (it imports torch: never free) besides its frames.
    assert est["seconds"] > 2 * est["startup_seconds"]
    assert est["startup_seconds"] > 0.5
    p = vidsr("batch", src / "b.mkv", "-o", tmp_path / "o3", "-m", "srcnn")
    assert b"9 frames: expect about" in p.stderr and p.stdout == b""
    p = vidsr("batch", src / "garbage.mp4", "-o", tmp_path / "o4", "-m", "srcnn", check=1)  # runs all the same
    assert b"vidsr: no estimate: no file says how many frames it holds" in p.stderr
    r = json.loads(vidsr("batch", src / "b.mkv", "-o", tmp_path / "o5", "--json", "--no-estimate").stdout)
    assert r["estimate"] is None and r["counts"] == {"done": 1}


def test_a_dry_run_child_that_fails_is_read_as_one_line_of_why():
    # The batch estimate and the web page's plan read a failed --dry-run child the same way; the plan once passed a
    # list (the last stderr line, sliced) where the page expects a sentence.
    from vidsr.batch.runner import dry_run_failure

    assert dry_run_failure({"estimate": {"seconds": 1.0}}, 0, "") is None
    assert dry_run_failure({"error": "no video stream", "exit_code": 1}, 1, "noise\n") == "no video stream"
    assert dry_run_failure({}, 1, "vidsr: error: cannot decode\n\n") == "vidsr: error: cannot decode"
    assert dry_run_failure({"model": "srcnn"}, 0, "") == "its report has no estimate"
    assert dry_run_failure({}, -9, "") == "exit -9"
