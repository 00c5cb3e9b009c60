"""``vidsr bench`` reports consistent numbers, and memory stays flat however long the video is."""

import json

from media import make_clip


def test_bench_json_has_the_promised_keys_and_they_agree(vidsr):
    # Pinned to the CPU: on a GPU machine auto picks CUDA and fp16, which the other keys still describe.
    p = vidsr("bench", "-m", "edsr", "--device", "cpu", "--size", "96x64", "--frames", "5", "--json", check=0)
    r = json.loads(p.stdout)
    for key in ("infer_fps", "e2e_fps", "overhead_ratio", "gflops", "peak_rss_mb", "runtime", "precision"):
        assert key in r, key
    assert r["runtime"] == "torch" and r["precision"] in ("fp32", "bf16") and r["frames"] == 5
    assert abs(r["overhead_ratio"] - r["infer_fps"] / r["e2e_fps"]) < 1e-3 * r["overhead_ratio"]
    assert r["gflops"] > 0 and abs(r["gflops"] - r["gflop_per_frame"] * r["infer_fps"]) < 0.05 * r["gflops"] + 0.01
    assert set(r["stage_seconds"]) == {"decode", "prepare", "infer", "finish", "encode"}
    assert r["stage_seconds"]["infer"] > 0 and r["stage_seconds"]["encode"] > 0
    assert r["output_size"] == "192x128" and r["peak_rss_mb"] > 50


def test_bench_onnx_runtime_and_bad_size(vidsr, env, tmp_path):
    env["VIDSR_CACHE"] = str(tmp_path)
    r = json.loads(vidsr("bench", "-m", "vdsr", "--runtime", "onnx", "--size", "64x48", "--frames", "2", "--json",
                         check=0).stdout)
    assert r["runtime"] == "onnx" and r["e2e_fps"] > 0
    p = vidsr("bench", "--size", "0x10", check=2)
    assert p.stdout == b"" and len(p.stderr.splitlines()) == 1


def test_peak_rss_is_flat_for_a_clip_six_times_longer(vidsr, tmp_path):
    # 640x360 -> 1280x720: a leaked output frame costs ~1.4 MB, so holding the extra 50 frames of the long clip
    # would add ~70 MB or more, above the 10% the check allows on a ~300 MB process.
    rss = {}
    for n in (10, 60):
        src = make_clip(tmp_path / f"in{n}.mkv", 640, 360, frames=n, audio=True)
        r = json.loads(vidsr("upscale", src, "-o", tmp_path / f"out{n}.mkv", "-m", "edsr", "--preset", "ultrafast",
                             "--json", "-q", check=0).stdout)
        assert r["frames"] == n
        rss[n] = r["peak_rss_mb"]
    assert rss[60] <= 1.10 * rss[10], rss
