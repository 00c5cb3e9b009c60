"""Run a batch: every file through ``vidsr upscale`` in its own child process, locally or as Ray tasks.

A child process per file is what makes one bad file harmless: a decoder that crashes, hangs or eats memory on a
corrupt recording takes its own process down, never the batch. It also gives each job its own thread budget.
Children die with their parent (PR_SET_PDEATHSIG), so a ``kill -9`` of the batch leaves no orphan that could
finish later and race a resumed run; their ``.partial`` files are swept on resume.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vidsr.batch.session import JobResult, Task
from vidsr.hashing import sha256_file

_PR_SET_PDEATHSIG = 1
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def last_report(stdout: str) -> dict[str, Any]:
    """The child's last JSON line: its summary, or ``{"error", "exit_code"}`` (VIDSR_ERROR_JSON)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return {}


def dry_run_failure(report: dict[str, Any], returncode: int, stderr: str) -> str | None:
    """Why a ``--dry-run --json`` child gave no estimate (its JSON error, else its last stderr line), or None when
    ``report`` (``last_report`` of its stdout) holds one."""
    if returncode == 0 and "estimate" in report:
        return None
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    return str(report.get("error") or last or (f"exit {returncode}" if returncode else "its report has no estimate"))


def run_one(src: str, dst: str, args: list[str], threads: int, env_extra: dict[str, str]) -> JobResult:
    """Upscale one file in a child process. Never raises for the file's own failure: returns ok/error.
    Used as is by the local runner and, shipped to a worker, by Ray."""
    env = dict(os.environ) | env_extra | {"VIDSR_THREADS": str(threads), "VIDSR_SUMMARY": "0",
                                          "VIDSR_ERROR_JSON": "1"}
    cmd = [sys.executable, "-m", "vidsr", "upscale", src, "-o", dst, *args, "--json", "-q", "-y"]
    t = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=die_with_parent)
    with _LIVE_LOCK:
        _LIVE.add(proc)
    try:
        out, err = proc.communicate()
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc)
    seconds = round(time.time() - t, 2)
    report = last_report(out)
    if proc.returncode != 0:
        last = next((line for line in reversed(err.splitlines()) if line.strip()), "no message")
        reason = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                  else report.get("error") or last.strip())
        return JobResult(False, seconds, error=reason, exit_code=proc.returncode)
    return JobResult(True, seconds, sha256=sha256_file(dst), frames=report.get("frames"),
                     frames_lost=report.get("frames_lost"), exit_code=0)


def stop_children() -> None:
    """On Ctrl-C/SIGTERM: let running children clean up their temporary files (they handle SIGTERM)."""
    with _LIVE_LOCK:
        for proc in list(_LIVE):
            if proc.poll() is None:
                proc.terminate()
    deadline = time.time() + 10
    for proc in list(_LIVE):
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()


Done = Callable[[str, JobResult], bool]  # (key, result) -> True to try the file again


def run_local(tasks: list[Task], args: list[str], jobs: int, threads: int, env_extra: dict[str, str],
              on_start: Callable[[str], None], on_done: Done, on_interrupt: Callable[[], None] = lambda: None) -> None:
    def work(task: Task) -> None:
        while True:
            on_start(task.key)
            if not on_done(task.key, run_one(task.src, task.dst, args, threads, env_extra)):
                return

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="vidsr-batch") as pool:
        futures = [pool.submit(work, t) for t in tasks]
        try:
            for f in futures:
                f.result()
        except BaseException:
            on_interrupt()  # before the children stop, so that their exits are recorded as interruptions
            for f in futures:
                f.cancel()
            stop_children()
            raise


def run_ray(address: str, tasks: list[Task], args: list[str], threads: int, gpus: float,
            env_extra: dict[str, str], on_start: Callable[[str], None], on_done: Done,
            log: Callable[[str], None]) -> None:
    """One Ray task per file, each asking for ``threads`` CPUs (and ``gpus`` GPUs). The driver, here, keeps the
    journal; workers need the inputs and OUTDIR at the same paths (shared storage) and vidsr installed."""
    try:
        import ray
    except ImportError:
        from vidsr.errors import UsageError

        raise UsageError("--ray needs Ray: pip install 'vidsr[cluster]'") from None
    _connect(ray, address, log)
    remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=2)(run_one)
    pending: dict[Any, Task] = {}

    def submit(task: Task) -> None:
        on_start(task.key)
        pending[remote.remote(task.src, task.dst, args, threads, env_extra)] = task

    for task in tasks:
        submit(task)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - a worker or node lost: the file failed, the batch goes on
                result = JobResult(False, error=f"Ray task failed: {type(e).__name__}: {e}".splitlines()[0])
            if on_done(task.key, result):
                submit(task)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        ray.shutdown()


def _connect(ray: Any, address: str, log: Callable[[str], None]) -> None:
    """``local``: a new single-machine instance; ``auto``: the running cluster (RAY_ADDRESS or this machine's
    head), else a new local one; anything else: that cluster's address."""
    if address != "local":
        try:
            ray.init(address=address, log_to_driver=False)
            return
        except ConnectionError:
            if address != "auto":
                from vidsr.errors import UsageError

                raise UsageError(f"--ray {address}: no Ray cluster answers there") from None
            log("no running Ray cluster found (RAY_ADDRESS or a local head); starting a local one")
    ray.init(include_dashboard=False, log_to_driver=False)
