"""``vidsr serve``: the web platform."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import click

from vidsr.errors import UsageError, VidsrError

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """A port in use, said in one line before the data folder is locked (uvicorn would log a traceback-like line)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as e:
            raise VidsrError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --port") from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the library, the queue and every file  [default: $XDG_DATA_HOME/vidsr, else "
                   "~/.local/share/vidsr].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Jobs that run at once, each in its own process with its share of the CPU threads.")
@click.option("--token", default=None, envvar="VIDSR_TOKEN",
              help="Every request must carry it (Authorization: Bearer, or the login form's cookie). Also read "
                   "from $VIDSR_TOKEN.")
@click.option("--max-upload", default=None, metavar="SIZE", help="Largest upload accepted (500M, 4G, ...).")
@click.option("--min-free", default="512M", show_default=True, metavar="SIZE",
              help="Uploads that would leave less free space on the data disk are refused.")
def serve(host: str, port: int, data_dir: Path | None, workers: int, token: str | None, max_upload: str | None,
          min_free: str) -> None:
    """Serve the web page and its HTTP API: upload, play, upscale, cut, extract frames, merge, download.

    Jobs queue in SQLite under --data and survive restarts; each runs in its own child process, like
    'vidsr batch'. The API is in the README ("Web platform").

    \b
    Examples:
      vidsr serve                                  # then open http://127.0.0.1:8000
      vidsr serve --data /srv/vidsr --workers 2
      vidsr serve --host 0.0.0.0 --token "$(openssl rand -hex 16)" --max-upload 20G
      curl -F file=@clip.mp4 http://127.0.0.1:8000/api/media
    """
    import uvicorn

    from vidsr.web.app import ServeConfig, create_app, open_state
    from vidsr.web.library import Limits, data_home, parse_bytes

    if not is_loopback(host) and not token:
        raise UsageError(f"--host {host} would serve anyone who can reach this machine; give --token as well "
                         "(or keep the default, 127.0.0.1)")
    if token is not None and len(token) < 8:
        raise UsageError("--token is too short to guard anything; use 8 characters or more")
    data = (data_dir or data_home()).expanduser()
    limits = Limits(parse_bytes(max_upload) if max_upload else None, parse_bytes(min_free))
    hosts = frozenset() if token else frozenset(LOOPBACK_NAMES | {host.strip("[]").lower()})
    config = ServeConfig(data=data, workers=workers, token=token, limits=limits, allowed_hosts=hosts)
    _check_port(host, port)
    state = open_state(config)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"vidsr: serving http://{shown}:{port} (data: {data}, {workers} worker(s)); Ctrl-C stops", err=True)
    server = uvicorn.Server(uvicorn.Config(create_app(state, config), host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=3, access_log=False))
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn stops cleanly, then raises the signal it caught again
        pass
    click.echo("vidsr: server stopped; queued and interrupted jobs run at the next start", err=True)
