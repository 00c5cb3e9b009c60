"""Who may talk to the server: the token (a Bearer header, or the cookie the login form sets), the Host a loopback
server answers to (so that a web page on another site cannot reach it through DNS rebinding), and the origin of
every request that changes state (so that another site's page cannot post to it from the user's browser).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "vidsr_token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
OPEN_PATHS = ("/login", "/static/", "/api/health")

LOGIN = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vidsr: sign in</title>
<link rel="stylesheet" href="/static/style.css"></head><body class="login"><form method="post" action="/login">
<h1>vidsr</h1><p>This server asks for its token (the <code>--token</code> it was started with).</p>
<label>Token <input name="token" type="password" autofocus required></label>{message}
<button type="submit">Sign in</button></form></body></html>"""


class Guard:
    def __init__(self, app: ASGIApp, token: str | None, allowed_hosts: frozenset[str]):
        self.app = app
        self.token = token
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = self._refusal(request)
        if response is None and request.url.path == "/login" and self.token:
            response = await self._login(request)
        if response is not None:
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, request: Request) -> Response | None:
        host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if self.allowed_hosts and host not in self.allowed_hosts:
            return JSONResponse({"error": f"this server does not answer to host {host!r}"}, 421)
        if request.method in UNSAFE and not _same_origin(request):
            return JSONResponse({"error": "a request from another site's page was refused"}, 403)
        if self.token and not request.url.path.startswith(OPEN_PATHS) and not self._authorised(request):
            if request.url.path.startswith("/api/"):
                return JSONResponse({"error": "this server needs its token: Authorization: Bearer TOKEN"}, 401,
                                    headers={"WWW-Authenticate": "Bearer"})
            return RedirectResponse("/login", 303)
        return None

    def _authorised(self, request: Request) -> bool:
        assert self.token is not None
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE, "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _login(self, request: Request) -> Response:
        assert self.token is not None
        if request.method != "POST":
            return HTMLResponse(LOGIN.format(message=""))
        form = await request.form()
        given = str(form.get("token") or "")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return HTMLResponse(LOGIN.format(message='<p class="error">That is not the token.</p>'), 401)
        response = RedirectResponse("/", 303)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return response


def _same_origin(request: Request) -> bool:
    """No Origin header (curl, scripts) passes; a browser's Origin must be this server's own."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == (request.headers.get("host") or "").lower()


async def login_page(request: Request) -> Response:
    """Without a token there is nothing to sign in to (with one, Guard answers /login itself)."""
    return RedirectResponse("/", 303)
