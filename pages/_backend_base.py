"""ASGI middleware for serve.py: the HTML page names the server's root as Streamlit's backend.

Opened at a deep link such as /annotate, Streamlit's frontend does not know where the server's root is: it
asks /annotate/_stcore/health and /annotate/_stcore/host-config first (two 404s in the browser's console),
then /. It reads `window.__streamlit.BACKEND_BASE_URL` when a page sets it (its hosting hook), so this sets
it in every HTML page served, and the frontend asks the root at once."""

from __future__ import annotations

import json

PASS_THROUGH = ("/_stcore/", "/static/", "/media/", "/component/", "/app/static/")


class BackendBase:
    """ASGI middleware: puts `window.__streamlit = {BACKEND_BASE_URL: <root>}` into served HTML pages."""

    def __init__(self, app, base_url_path: str = "") -> None:
        self.app = app
        base = base_url_path.strip("/")
        self.script = ("<script>window.__streamlit=Object.assign(window.__streamlit||{},{BACKEND_BASE_URL:"
                       f"location.origin+{json.dumps('/' + base + ('/' if base else ''))}}})</script>").encode()

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or scope["method"] != "GET" or path.startswith(PASS_THROUGH):
            await self.app(scope, receive, send)
            return
        # the page itself, uncompressed, so that the script can go in (index.html is about 10 kB)
        scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"])
        start: dict = {}
        body: list[bytes] = []

        async def inject(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body"):
                return
            data = b"".join(body)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                data = data.replace(b"<head>", b"<head>" + self.script, 1)
            await send({**start, "headers": [*headers, (b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})

        await self.app(scope, receive, inject)

