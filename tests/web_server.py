"""A real ``vidsr serve`` in a child process on a free loopback port, for the API and browser tests."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data: Path, env: dict, *args: str, port: int | None = None, token: str | None = None):
        self.data, self.env, self.args = data, env, args
        self.port = port or free_port()
        self.token = token
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> Server:
        cmd = [sys.executable, "-m", "vidsr", "serve", "--data", str(self.data), "--port", str(self.port), *self.args]
        if self.token:
            cmd += ["--token", self.token]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vidsr serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                if httpx.get(self.url + "/api/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("vidsr serve did not answer")

    def client(self, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and httpx.get(
            self.url + "/api/health", timeout=5).status_code == 200


def upload(client: httpx.Client, path: Path, name: str | None = None) -> httpx.Response:
    with open(path, "rb") as f:
        return client.post("/api/media", files={"file": (name or path.name, f)})


def wait_job(client: httpx.Client, job_id: str, states=("done", "failed", "cancelled"), timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def partials(data: Path) -> list[str]:
    """Every temporary file the server could have left: partial outputs and uploads, and unfinished work."""
    found = [str(p.relative_to(data)) for p in data.rglob("*") if ".partial" in p.name]
    return found + [str(p.relative_to(data)) for p in (data / "work").iterdir()]


def events_until(url: str, headers: dict, stop, timeout: float = 120) -> list[tuple[str, dict]]:
    """Read the server-sent event stream until ``stop(events)`` says so."""
    seen: list[tuple[str, dict]] = []
    with httpx.stream("GET", url + "/api/events", headers=headers, timeout=timeout) as r:
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind:
                seen.append((kind, json.loads(line[6:])))
                if stop(seen):
                    return seen
    return seen

