"""``vidsr serve``'s HTTP API against a real server (uvicorn on a loopback port), with real uploads of clips the
tests make, real jobs in child processes, and a real SQLite file."""

from __future__ import annotations

import http.client
import io
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile

import av
import httpx
import pytest
from media import make_clip, probe
from web_server import Server, events_until, partials, upload, wait_job


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mkv", 64, 48, 12)


@pytest.fixture(scope="module")
def server(tmp_path_factory, engines):
    import os

    env = dict(os.environ) | {"VIDSR_ENGINES": str(engines), "VIDSR_THREADS": "1"}
    s = Server(tmp_path_factory.mktemp("serve"), env, "--workers", "2").start()
    yield s
    assert s.stop() == 0


@pytest.fixture()
def api(server):
    with server.client() as c:
        yield c


def test_upload_upscale_download_with_range_and_events(server, api, clip, tmp_path):
    r = upload(api, clip)
    assert r.status_code == 201, r.text
    media = r.json()
    assert {"id", "name", "size", "kind", "info"} <= media.keys()
    assert media["kind"] == "video" and media["size"] == clip.stat().st_size and media["name"] == "clip.mkv"
    assert media["info"]["width"] == 64 and media["info"]["fps"] == 25.0
    assert {s["type"] for s in media["info"]["streams"]} == {"video", "audio"}
    assert api.get(f"/api/media/{media['id']}/thumbnail").headers["content-type"] == "image/jpeg"

    seen = []
    listener = threading.Thread(target=lambda: seen.extend(events_until(
        server.url, {}, lambda ev: any(k == "job" and d["job"]["action"] == "upscale" and d["job"]["state"] == "done"
                                       for k, d in ev))), daemon=True)
    listener.start()
    time.sleep(0.5)
    r = api.post("/api/jobs", json={"media": media["id"], "action": "upscale", "scale": 2, "model": "edsr-tiny-x2",
                                    "temporal_filter": "on"})
    assert r.status_code == 202 and r.json()["state"] == "queued"
    job = wait_job(api, r.json()["id"])
    assert job["state"] == "done", job["error"]
    assert job["progress"] == 1.0 and job["frame"] == 12
    listener.join(timeout=30)
    running = [d["job"] for k, d in seen
               if k == "job" and d["job"]["id"] == job["id"] and d["job"]["state"] == "running"]
    assert running, "no progress event was pushed while the job ran"

    result = api.get(f"/api/media/{job['result']}").json()
    # named by what made it: the engine that ran and the options that change the picture
    assert result["source"] == media["id"] and result["name"] == "clip-x2-edsr-tiny-x2-filteron.mp4"
    whole = api.get(result["urls"]["file"])
    assert whole.status_code == 200 and len(whole.content) == result["size"]
    assert "attachment" in whole.headers["content-disposition"]
    part = api.get(result["urls"]["file"], headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]
    out = tmp_path / "down.mp4"
    out.write_bytes(whole.content)
    p = probe(out)
    assert p["frames"] == 12 and (p["width"], p["height"]) == (128, 96)
    assert p["audio"]
    assert api.get(result["urls"]["play"]).status_code == 200  # H.264 in MP4 plays as it is


def test_the_upscale_job_runs_a_recurrent_engine(api, clip, tmp_path):
    media = upload(api, clip).json()
    r = api.post("/api/jobs", json={"media": media["id"], "action": "upscale", "scale": 2, "model": "rvsr-tiny-x2"})
    job = wait_job(api, r.json()["id"])
    assert job["state"] == "done", job["error"]
    result = api.get(f"/api/media/{job['result']}").json()
    out = tmp_path / "rvsr.mp4"
    out.write_bytes(api.get(result["urls"]["file"]).content)
    assert probe(out)["frames"] == 12


def test_options_the_cli_would_refuse_are_refused_before_the_job_is_queued(api, clip):
    # Each was accepted with 202 and failed later (crf 99 even ran, clamped to 51): now 400 with the CLI's words.
    from vidsr.video.nvenc import nvenc_error

    media = upload(api, clip).json()
    before = len(api.get("/api/jobs").json())
    cases = [({"crf": 99}, "crf"), ({"duration": "0"}, "--duration must be positive"), ({"tile": -3}, "tile"),
             ({"model": "nosuchnet"}, "unknown model"), ({"model": "srcnn-tiny-x2", "scale": 3}, "no x3 engine"),
             ({"start": "NaN"}, "bad time"), ({"runtime": "quantum"}, "runtime"),
             ({"codec": "ffv1"}, "MKV")]  # FFV1 went into .mp4
    if nvenc_error("h264_nvenc"):  # a machine where NVENC does not open
        cases.append(({"codec": "h264_nvenc"}, "NVENC"))
    for options, words in cases:
        r = api.post("/api/jobs", json={"media": media["id"], "action": "upscale"} | options)
        assert r.status_code == 400 and words in r.json()["error"], (options, r.status_code, r.text)
    assert len(api.get("/api/jobs").json()) == before


def test_a_plan_names_the_engine_and_the_time_before_anything_is_queued(api, clip):
    # The page said which engine auto runs, and how long a job takes, only once it ran (a 3 s clip took 135 s).
    media = upload(api, clip).json()
    before = len(api.get("/api/jobs").json())
    r = api.post("/api/plan", json={"media": media["id"], "action": "upscale", "model": "srcnn", "duration": "0.2"})
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["engine"].startswith("srcnn") and plan["reason"] == "--model srcnn"
    assert plan["frames"] == 5 and plan["seconds"] > 0 and (plan["width"], plan["height"]) == (128, 96)
    auto = api.post("/api/plan", json={"media": media["id"], "action": "upscale"}).json()
    assert auto["frames"] == 12 and auto["engine"] and auto["reason"] != "--model auto"  # auto says why
    bad = api.post("/api/plan", json={"media": media["id"], "action": "upscale", "crf": 99})
    assert bad.status_code == 400 and "crf" in bad.json()["error"]  # the same words as POST /api/jobs
    assert api.post("/api/plan", json={"media": media["id"], "action": "cut"}).status_code == 400
    assert len(api.get("/api/jobs").json()) == before  # planning queues nothing


def test_an_image_upscales_to_jpeg(api, tmp_path):
    import cv2
    import numpy as np

    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8))
    media = upload(api, photo).json()
    assert media["kind"] == "image"
    job = wait_job(api, api.post("/api/jobs", json={"media": media["id"], "action": "upscale",
                                                    "model": "edsr-tiny-x2", "format": "jpg"}).json()["id"])
    assert job["state"] == "done", job["error"]  # it failed: "its output did not read back"
    result = api.get(f"/api/media/{job['result']}").json()
    assert result["kind"] == "image" and result["info"]["width"] == 64
    assert api.get(f"/api/media/{result['id']}/thumbnail").status_code == 200


def test_every_upscale_option_the_web_takes_is_a_flag_of_vidsr_upscale():
    from vidsr.commands.upscale import upscale
    from vidsr.web.options import UPSCALE

    flags = {opt for param in upscale.params for opt in param.opts}
    assert [name for name in UPSCALE if "--" + name.replace("_", "-") not in flags] == []


def test_garbage_and_corrupt_uploads_get_415_and_nothing_is_kept(server, api, clip, tmp_path):
    before = len(api.get("/api/media").json())
    garbage = tmp_path / "movie.mp4"  # the name lies: content decides
    garbage.write_bytes(b"this is not a video at all\n" * 500)
    r = upload(api, garbage)
    assert r.status_code == 415 and "not a video or image" in r.json()["error"]
    truncated = tmp_path / "cut-short.mkv"
    truncated.write_bytes(clip.read_bytes()[:300])
    r = upload(api, truncated)
    assert r.status_code in (201, 415)
    kept = 1 if r.status_code == 201 else 0
    assert len(api.get("/api/media").json()) == before + kept
    assert list((server.data / "uploads").iterdir()) == []
    assert server.alive()
    assert api.post("/api/media", content=b"x", headers={"content-type": "text/plain"}).status_code == 400


def test_an_upload_cut_off_midway_leaves_nothing(server, api):
    """The page's cancel button aborts the request: whatever arrived is removed, nothing is listed."""
    before = len(api.get("/api/media").json())
    head = (b"POST /api/media HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=xx\r\n"
            b"Content-Length: 4000000\r\n\r\n--xx\r\nContent-Disposition: form-data; name=\"file\"; "
            b"filename=\"big.mkv\"\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.sendall(head + b"\0" * 300_000)
        deadline = time.time() + 10
        while not any((server.data / "uploads").iterdir()) and time.time() < deadline:
            time.sleep(0.05)
        assert any((server.data / "uploads").iterdir()), "the upload did not stream to disk as it arrived"
    deadline = time.time() + 10
    while any((server.data / "uploads").iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    assert list((server.data / "uploads").iterdir()) == []
    assert len(api.get("/api/media").json()) == before and server.alive()


def test_path_tricks_lead_nowhere(server, api, clip):
    media = upload(api, clip).json()
    (server.data / "media" / media["id"] / "thumb.jpg").unlink()
    (server.data / "media" / media["id"] / "thumb.jpg").symlink_to("/etc/passwd")
    for path in ("/api/media/../../etc/passwd", "/api/media/..%2F..%2Fetc%2Fpasswd/file",
                 f"/api/media/{media['id']}/../../vidsr.db", "/api/media//etc/passwd/file", "/static/../vidsr.db",
                 "/static/%2e%2e/db.py", f"/api/media/{media['id']}/thumbnail", "/api/media/0123456789abcdef/file",
                 f"/api/media/{media['id']}%2F..%2F..%2Fvidsr.db/file"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", path)  # sent as written: http.client does not normalise dot segments
        r = conn.getresponse()
        body = r.read()
        conn.close()
        assert r.status == 404, (path, r.status)
        assert b"root:" not in body and b"SQLite" not in body
    r = api.post("/api/jobs", json={"media": "../" + media["id"], "action": "upscale"})
    assert r.status_code == 404
    r = api.post("/api/jobs", json={"media": media["id"], "action": "upscale", "model": "--output=/etc/x"})
    assert r.status_code == 400
    r = api.post("/api/jobs", json={"media": media["id"], "action": "upscale", "output": "/tmp/x.mp4"})
    assert r.status_code == 400 and "no option 'output'" in r.json()["error"]


def test_ten_concurrent_uploads_are_all_listed(api, clip):
    results: list[int] = []

    def one(i: int) -> None:
        with httpx.Client(base_url=str(api.base_url), timeout=120) as c:
            try:
                results.append(upload(c, clip, f"many-{i}.mkv").status_code)
            except httpx.HTTPError as e:
                results.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201] * 10
    names = {m["name"] for m in api.get("/api/media").json()}
    assert {f"many-{i}.mkv" for i in range(10)} <= names


def test_cut_extract_merge_and_delete(api, clip, tmp_path):
    media = upload(api, clip).json()
    cut = wait_job(api, api.post("/api/jobs", json={"media": media["id"], "action": "cut", "start": 0.2,
                                                    "duration": 0.2}).json()["id"])
    assert cut["state"] == "done", cut["error"]
    cut_media = api.get(f"/api/media/{cut['result']}").json()
    (tmp_path / "cut.mp4").write_bytes(api.get(cut_media["urls"]["file"]).content)
    assert probe(tmp_path / "cut.mp4")["times"] == [0.0, 0.04, 0.08, 0.12, 0.16]  # 0.2 s at 25 fps, from 0

    ex = wait_job(api, api.post("/api/jobs", json={"media": media["id"], "action": "extract", "every": 2}).json()["id"])
    assert ex["state"] == "done", ex["error"]
    frames = api.get(f"/api/media/{ex['result']}").json()
    assert frames["kind"] == "frames" and frames["info"]["frames"] == 6
    with zipfile.ZipFile(io.BytesIO(api.get(frames["urls"]["file"]).content)) as z:
        assert sorted(z.namelist()) == [f"frame_{i:06d}.png" for i in range(1, 7)]
    assert api.post("/api/jobs", json={"media": frames["id"], "action": "cut"}).status_code == 409

    mg = wait_job(api, api.post("/api/jobs", json={"media": frames["id"], "action": "merge", "fps": 12.5}).json()["id"])
    assert mg["state"] == "done", mg["error"]
    merged = api.get(f"/api/media/{mg['result']}").json()
    (tmp_path / "merged.mp4").write_bytes(api.get(merged["urls"]["file"]).content)
    p = probe(tmp_path / "merged.mp4")
    assert p["frames"] == 6 and p["audio"]  # the source's audio came along
    with av.open(str(tmp_path / "merged.mp4")) as c:
        assert float(c.streams.video[0].average_rate) == pytest.approx(12.5)

    frame = api.get(f"/api/media/{media['id']}/frame", params={"t": 0.2})
    assert frame.status_code == 200 and frame.content[:4] == b"\x89PNG"
    assert api.delete(f"/api/media/{media['id']}").status_code == 204
    assert api.get(f"/api/media/{media['id']}").status_code == 404
    assert api.get(f"/api/media/{cut['result']}").status_code == 200  # results outlive their source


def test_wmv_gets_a_browser_copy(api, clip, tmp_path):
    wmv = make_clip(tmp_path / "old.wmv", 64, 48, 12, codec="wmv2")
    media = upload(api, wmv).json()
    assert media["kind"] == "video" and not media["playable"]
    copy_job = next(j for j in api.get(f"/api/media/{media['id']}").json()["jobs"] if j["action"] == "proxy")
    assert wait_job(api, copy_job["id"])["state"] == "done"
    r = api.get(f"/api/media/{media['id']}/play")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    (tmp_path / "copy.mp4").write_bytes(r.content)
    assert probe(tmp_path / "copy.mp4")["frames"] == 12


def test_cancel_and_a_crashing_child_fail_only_their_job(server, api, clip):
    media = upload(api, clip).json()
    slow = {"media": media["id"], "action": "upscale", "model": "edsr-tiny-x2", "ensemble": True, "tile": 16}
    jobs = [api.post("/api/jobs", json=slow).json() for _ in range(3)]
    wait_job(api, jobs[0]["id"], states=("running",))
    cancelled = api.delete(f"/api/jobs/{jobs[0]['id']}")
    assert cancelled.status_code == 200
    assert wait_job(api, jobs[0]["id"])["state"] == "cancelled"
    wait_job(api, jobs[1]["id"], states=("running", "done"))
    killed, deadline = False, time.time() + 60
    while not killed and time.time() < deadline and api.get(f"/api/jobs/{jobs[1]['id']}").json()["state"] != "done":
        # the job is marked running a moment before its child exists: kill the child once it does
        killed = subprocess.run(["pkill", "-9", "-f", f"work/{jobs[1]['id']}/"], check=False).returncode == 0
        time.sleep(0.02)
    job = wait_job(api, jobs[1]["id"])
    assert job["state"] == ("failed" if killed else "done"), job
    if killed:
        assert "signal" in job["error"]
    r = api.delete(f"/api/jobs/{jobs[2]['id']}")  # queued, running or already done (409), as the timing falls
    assert (r.status_code == 200 and r.json()["state"] in ("cancelled", "running", "queued")) or (
        r.status_code == 409 and "done" in r.json()["error"])
    assert wait_job(api, jobs[2]["id"])["state"] in ("cancelled", "done")
    assert server.alive()


def test_kill_9_mid_job_then_restart_leaves_nothing_stuck(tmp_path, engines, clip):
    import os

    env = dict(os.environ) | {"VIDSR_ENGINES": str(engines), "VIDSR_THREADS": "1"}
    big = make_clip(tmp_path / "big.mkv", 160, 120, 40)
    s = Server(tmp_path / "data", env).start()
    with s.client() as api:
        media = upload(api, big).json()
        job = api.post("/api/jobs", json={"media": media["id"], "action": "upscale", "model": "edsr-tiny-x2",
                                          "ensemble": True}).json()
        wait_job(api, job["id"], states=("running",))
        deadline = time.time() + 60
        while not partials(s.data) and time.time() < deadline:
            time.sleep(0.05)
    s.stop(signal.SIGKILL)
    time.sleep(0.5)
    assert not [p for p in _processes() if f"work/{job['id']}" in p], "the job's child outlived the server"
    s2 = Server(tmp_path / "data", env, port=s.port).start()
    with s2.client() as api:
        after = api.get(f"/api/jobs/{job['id']}").json()
        assert after["state"] in ("queued", "running", "done")
        assert after["attempts"] == 2 or after["state"] == "done"
        final = wait_job(api, job["id"], timeout=300)
        assert final["state"] == "done", final["error"]
        assert partials(s2.data) == []
        assert not [j for j in api.get("/api/jobs").json() if j["state"] == "running"]
    assert s2.stop() == 0


def _processes() -> list[str]:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()


def test_binding_beyond_loopback_needs_a_token(tmp_path, env):
    p = subprocess.run([sys.executable, "-m", "vidsr", "serve", "--host", "0.0.0.0", "--data", str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2 and "--token" in p.stderr and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1


def test_a_busy_port_and_a_busy_data_folder_are_one_line_each(server, env, tmp_path):
    base = [sys.executable, "-m", "vidsr", "serve"]
    p = subprocess.run([*base, "--data", str(tmp_path / "other"), "--port", str(server.port)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 1 and "choose another --port" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([*base, "--data", str(server.data), "--port", "0"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode == 2 and "another vidsr serve" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert server.alive()


def test_token_origin_host_and_limits(tmp_path, env, clip):
    s = Server(tmp_path / "data", env, "--max-upload", "8K", token="s3cret-token").start()
    try:
        with httpx.Client(base_url=s.url) as anon:
            assert anon.get("/api/media").status_code == 401
            assert anon.get("/", follow_redirects=False).headers["location"] == "/login"
            assert anon.post("/login", data={"token": "wrong"}).status_code == 401
            r = anon.post("/login", data={"token": "s3cret-token"}, follow_redirects=False)
            assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
            assert anon.get("/api/media").status_code == 200  # the cookie now
        with s.client() as api:
            assert api.get("/api/media").json() == []
            big = upload(api, clip)  # 11 KB against an 8 KB cap
            assert big.status_code == 413 and "limit" in big.json()["error"]
            assert list((s.data / "uploads").iterdir()) == [] and api.get("/api/media").json() == []
            evil = api.post("/api/jobs", json={}, headers={"Origin": "https://evil.example"})
            assert evil.status_code == 403
    finally:
        s.stop()
    s = Server(tmp_path / "open", env).start()
    try:
        with s.client() as api:
            r = api.get("/api/media", headers={"Host": "rebind.evil.example"})
            assert r.status_code == 421  # DNS rebinding: a loopback server only answers to loopback names
            r = api.post("/api/jobs", json={}, headers={"Origin": "http://evil.example"})
            assert r.status_code == 403
            r = api.post("/api/jobs", json={}, headers={"Origin": s.url})
            assert r.status_code == 404  # same origin passes, to "no such media"
    finally:
        s.stop()
