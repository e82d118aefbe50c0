"""serve.py's middleware: served HTML pages name the server's root as Streamlit's backend (a deep link then
asks the root, not /annotate/_stcore/health); everything else passes through unchanged. The browser test
of a deep link (tests/e2e) checks the same against the real server."""

import asyncio

from pages._backend_base import BackendBase

PAGE = b"<!DOCTYPE html><html><head><title>x</title></head><body></body></html>"


def _serve(middleware_args: dict, path: str, content_type: bytes, body: bytes, headers=()):
    """One GET through the middleware over an app that answers `body`; returns (status, headers, body,
    the request headers the app saw)."""
    seen: dict = {}

    async def app(scope, receive, send):
        seen["headers"] = scope["headers"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                                (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:]})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": list(headers)}
    asyncio.run(BackendBase(app, **middleware_args)(scope, None, send))
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], sent[0]["headers"], out, seen["headers"]


def test_a_page_names_the_root_as_the_backend():
    status, headers, body, seen = _serve({}, "/annotate", b"text/html; charset=utf-8", PAGE,
                                         [(b"accept-encoding", b"gzip, br"), (b"host", b"127.0.0.1")])
    assert status == 200
    assert body.startswith(b"<!DOCTYPE html><html><head><script>window.__streamlit=")
    assert b'BACKEND_BASE_URL:location.origin+"/"' in body and body.endswith(PAGE[PAGE.index(b"<title>"):])
    assert dict(headers)[b"content-length"] == str(len(body)).encode()
    assert [v for k, v in headers if k == b"set-cookie"] == [b"a=1", b"b=2"]  # repeated headers kept
    assert seen == [(b"host", b"127.0.0.1")]  # asked uncompressed, so the script can go in


def test_under_a_base_url_path_the_backend_is_that_path():
    _, _, body, _ = _serve({"base_url_path": "/xmr/"}, "/xmr/annotate", b"text/html", PAGE)
    assert b'BACKEND_BASE_URL:location.origin+"/xmr/"' in body


def test_other_responses_pass_unchanged():
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    status, headers, body, seen = _serve({}, "/favicon.png", b"image/png", png, [(b"accept-encoding", b"gzip")])
    assert body == png and dict(headers)[b"content-length"] == b"108"
    for path in ("/_stcore/health", "/static/js/index.js", "/media/abc.png"):  # not even buffered
        _, _, body, seen = _serve({}, path, b"text/html", PAGE, [(b"accept-encoding", b"gzip")])
        assert body == PAGE and seen == [(b"accept-encoding", b"gzip")]
