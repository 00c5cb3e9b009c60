"""The job queue: ``workers`` threads, each running one job at a time in its own child process (as ``vidsr batch``
does, and with its runner's parent-death signal), reading the child's JSON progress lines into the database and
onto the event stream.

Crash rules: a job the server was running when it died (kill -9, power cut) is queued again at the next start, up to
``MAX_ATTEMPTS`` runs, then failed with that reason; its unfinished output is swept with the rest of work/. A child
that crashes fails its own job only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidsr.batch.runner import die_with_parent, dry_run_failure, last_report
from vidsr.runtime.cpu import default_threads
from vidsr.web.db import FINAL_STATES, Database, Job, Media, new_id
from vidsr.web.library import COPY, Library, NotMediaError
from vidsr.web.options import JobRequest, command_args, result_name

MAX_ATTEMPTS = 3
PUBLISH_EVERY_S = 0.4
PLAN_TIMEOUT_S = 180  # a first plan exports and checks the engine's graph and probes its speed; later ones are quick

Publish = Callable[[str, dict[str, Any]], None]


class JobQueue:
    def __init__(self, db: Database, library: Library, workers: int, publish: Publish):
        self.db = db
        self.library = library
        self.workers = workers
        self.publish = publish
        self.threads_per_job = max(1, default_threads() // workers)
        self._wake = threading.Condition()
        self._stopping = False
        self._children: dict[str, subprocess.Popen] = {}
        self._cancelled: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._planning = threading.Lock()

    def recover(self) -> list[Job]:
        """At start, before any worker: nothing stays 'running' from a server that died."""
        changed = []
        for job in self.db.jobs_in("running"):
            if job.attempts >= MAX_ATTEMPTS:
                j = self.db.update_job(job.id, state="failed", finished=time.time(),
                                       error=f"the server stopped during each of its {job.attempts} runs")
            else:
                j = self.db.update_job(job.id, state="queued", progress=0.0, frame=0, fps=0.0, eta=None,
                                       note=f"queued again: the server stopped during run {job.attempts}")
            if j:
                changed.append(j)
        return changed

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"vidsr-web-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Server shutdown: running jobs go back to the queue (their children clean up on SIGTERM)."""
        self._stopping = True
        with self._wake:
            self._wake.notify_all()
        for proc in list(self._children.values()):
            if proc.poll() is None:
                proc.terminate()
        for t in self._threads:
            t.join(timeout=15)

    def submit(self, media: Media, request: JobRequest) -> Job:
        job = Job(id=new_id(), media=media.id, action=request.action, options=request.options)
        self.db.add_job(job)
        self._changed(job)
        with self._wake:
            self._wake.notify()
        return job

    def cancel(self, job: Job) -> Job:
        if job.state == "queued":
            job = self.db.update_job(job.id, state="cancelled", finished=time.time()) or job
            self._changed(job)
        elif job.state == "running":
            self._cancelled.add(job.id)
            proc = self._children.get(job.id)
            if proc is not None and proc.poll() is None:
                proc.terminate()
        return self.db.job(job.id) or job

    def cancel_all_of(self, media_id: str) -> None:
        for job in self.db.jobs(media_id):
            if job.state not in FINAL_STATES:
                self.cancel(job)
        deadline = time.time() + 15
        while any(j.state == "running" for j in self.db.jobs(media_id)) and time.time() < deadline:
            time.sleep(0.05)

    # workers
    def _work(self) -> None:
        while not self._stopping:
            job = self.db.claim_job()
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._changed(job)
            try:
                self._run(job)
            except Exception as e:  # noqa: BLE001 - a bug in one job's bookkeeping must not stop the worker
                self._finish(job, "failed", error=f"{type(e).__name__}: {e}")

    def plan(self, media: Media, request: JobRequest) -> dict[str, Any]:
        """What an upscale would run and about how long it would take, before it is queued: ``vidsr upscale
        --dry-run`` in a child (a hostile file takes the child down, not the server), with the jobs' own thread
        count, since the speed it measures and caches is theirs. One plan at a time."""
        with self._planning:
            work = self.library.work_dir(f"plan-{new_id()}")
            try:
                _, _, cmd = command_args(request.action, request.options, self.library.path(media), work, media, {})
                cmd = [arg for arg in cmd if arg != "--progress-json"] + ["--dry-run"]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=self._child_env(),
                                      timeout=PLAN_TIMEOUT_S, preexec_fn=die_with_parent)
            except subprocess.TimeoutExpired:
                return {"error": f"no estimate: the engine took over {PLAN_TIMEOUT_S} s to get ready"}
            finally:
                shutil.rmtree(work, ignore_errors=True)
        report = last_report(proc.stdout)
        failure = dry_run_failure(report, proc.returncode, proc.stderr)
        if failure:
            return {"error": failure}
        return {"engine": report["model"], "reason": report["model_choice"]["reason"],
                "input": report["degradation_choice"].get("reason"), "runtime": report["runtime"],
                "precision": report["precision"], "codec": report.get("codec_choice", {}).get("codec"),
                "width": report["width"], "height": report["height"], **report["estimate"]}

    def _child_env(self) -> dict[str, str]:
        return dict(os.environ) | {"VIDSR_THREADS": str(self.threads_per_job), "VIDSR_ERROR_JSON": "1",
                                   "VIDSR_SUMMARY": "0"}

    def _run(self, job: Job) -> None:
        media = self.db.media(job.media)
        if media is None:
            self._finish(job, "failed", error="its media was deleted")
            return
        work = self.library.work_dir(job.id)
        try:
            src = self.library.path(media)
            extra_paths = {}
            if job.options.get("audio") and media.source and (source := self.db.media(media.source)):
                extra_paths["audio_from"] = str(self.library.path(source))
            output, name, cmd = command_args(job.action, job.options, src, work, media, extra_paths)
            report, code, last_err = self._child(job, cmd)
            if self._stopping and job.id not in self._cancelled:
                self.db.update_job(job.id, state="queued", note="queued again: the server was stopped")
                return
            if job.id in self._cancelled:
                self._finish(job, "cancelled")
            elif code != 0 or not output.is_file():
                self._finish(job, "failed", error=report.get("error") or last_err or f"exit status {code}")
            else:
                self._store(job, media, output, result_name(name, job.action, job.options, report), report)
        except FileNotFoundError:
            self._finish(job, "failed", error="its media file is missing")
        finally:
            self._cancelled.discard(job.id)
            shutil.rmtree(work, ignore_errors=True)

    def _store(self, job: Job, media: Media, output: Path, name: str, report: dict[str, Any]) -> None:
        if job.action == "proxy":
            os.replace(output, self.library.folder(media.id) / COPY)
            self.db.set_proxy(media.id, COPY)
            self._finish(job, "done", result=media.id)
            self.publish("media", {"media": (self.db.media(media.id) or media).as_api()})
            return
        extra = {"made_by": {"action": job.action, "options": job.options},
                 "offset": float(job.options.get("start") or 0) if job.action in ("upscale", "cut") else 0.0}
        if job.action == "extract":
            extra |= {"frames": report.get("frames"), "fps": report.get("fps"), "every": report.get("every")}
        try:
            result = self.library.add_result(output, name, media, job.id, extra)
        except NotMediaError as e:
            self._finish(job, "failed", error=f"its output did not read back: {e}")
            return
        self._finish(job, "done", result=result.id)
        self.publish("media", {"media": result.as_api()})
        if not result.playable and result.kind == "video":
            self.submit(result, JobRequest("proxy", {}))

    def _child(self, job: Job, cmd: list[str]) -> tuple[dict[str, Any], int, str]:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self._child_env(),
                                preexec_fn=die_with_parent)
        self._children[job.id] = proc
        last_err, last_publish, latest = "", 0.0, None
        try:
            assert proc.stderr is not None and proc.stdout is not None
            for line in proc.stderr:
                progress = _progress_line(line)
                if progress is None:
                    last_err = line.strip().removeprefix("vidsr: error: ") or last_err
                    continue
                latest = progress
                if time.time() - last_publish >= PUBLISH_EVERY_S:
                    last_publish, latest = time.time(), None
                    self._changed(self.db.update_job(job.id, **progress))
            if latest is not None:
                self.db.update_job(job.id, **latest)
            out = proc.stdout.read()
            code = proc.wait()
        finally:
            self._children.pop(job.id, None)
        if code < 0:
            last_err = f"the job's process was killed by signal {signal.Signals(-code).name}"
        return last_report(out), code, last_err

    def _finish(self, job: Job, state: str, **values: Any) -> None:
        done = {"progress": 1.0, "eta": 0.0} if state == "done" else {}
        self._changed(self.db.update_job(job.id, state=state, finished=time.time(), **done, **values))

    def _changed(self, job: Job | None) -> None:
        if job is not None:
            self.publish("job", {"job": job.as_api()})


def _progress_line(line: str) -> dict[str, Any] | None:
    if not line.startswith('{"frame"'):
        return None
    try:
        p = json.loads(line)
    except ValueError:
        return None
    frame, frames, fps = int(p.get("frame", 0)), int(p.get("frames") or 0), float(p.get("fps") or 0.0)
    progress = min(frame / frames, 0.99) if frames else 0.0
    eta = (frames - frame) / fps if frames and fps > 0 and frames >= frame else None
    return {"frame": frame, "frames": frames, "fps": round(fps, 2), "progress": round(progress, 4),
            "eta": None if eta is None else round(eta, 1)}
