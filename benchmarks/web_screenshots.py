"""The screenshots in docs/WEB.md and the README: the page in headless Chromium with the shipped engines, on the
shipped sample clip. Needs Chromium (apt-get install chromium) and playwright (in the dev extra).

    python benchmarks/web_screenshots.py [--out docs/images]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--mute-audio"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "vidsr", "serve", "--data", data, "--port", str(port)])
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(url + "/api/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.2)
            shoot(url, args.out)
        finally:
            server.terminate()
            server.wait(timeout=30)


def shoot(url: str, out: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.set_default_timeout(600_000)
        page.goto(url)
        page.wait_for_selector("#live.on")
        page.set_input_files("[data-testid=picker]", str(REPO / "samples" / "sample.mkv"))
        card = page.locator('[data-testid=media][data-name="sample.mkv"]')
        card.wait_for()
        for action in ("extract", "upscale"):
            card.locator('[data-act="convert"]').click()
            page.select_option("[data-testid=action]", action)
            if action == "upscale":
                page.select_option("select[name=degradation]", "clean")
            page.locator("[data-testid=start]").click()
        page.wait_for_function("() => [...document.querySelectorAll('tr[data-testid=job]')].some(r =>"
                               " r.innerText.includes('upscale') && r.querySelector('progress').value > 0.3)")
        page.screenshot(path=str(out / "web-running.png"))
        page.locator("tr[data-testid=job]", has_text="upscale").locator("[data-testid=job-state]",
                                                                         has_text="done").wait_for()
        page.wait_for_function("() => ![...document.querySelectorAll('tr[data-testid=job]')].some(r =>"
                               " /queued|running/.test(r.innerText))")
        page.screenshot(path=str(out / "web-library.png"), full_page=True)
        result = page.locator('[data-testid=media][data-name="sample-x2.mp4"]')
        result.locator('[data-act="compare"]').click()
        page.fill("input[aria-label=time]", "2")
        page.dispatch_event("input[aria-label=time]", "change")
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=compare] img')]"
                               ".every(i => i.complete && i.naturalWidth > 0)")
        page.screenshot(path=str(out / "web-compare.png"))
        browser.close()
    for name in ("web-running.png", "web-library.png", "web-compare.png"):
        print(out / name)


if __name__ == "__main__":
    main()
