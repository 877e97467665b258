"""The HTTP side of `engagement serve` (standard library only): the join page, its files, and the
participant's API. Everything the page needs comes from this server (the page, the Face Landmarker
web build and its WASM, the project's `face_landmarker.task`), so it works on an institute's LAN
with no internet, and the page's Content-Security-Policy lets it talk to nothing else.

Routes, under the session's random link `/j/<session token>/`:
  GET  ./                the join page (`?lang=id|en`)
  POST ./api/consent     {"identity", "lang", "accept": true} -> {"token"}
  POST ./api/start       -> {"stream"}                      (Authorization: Bearer <token>)
  POST ./api/frames      one second's numbers -> {"seconds": [the last stored seconds]}
  POST ./api/stop        -> {"seconds": n}
  POST ./api/withdraw    -> {"receipt": {...}}               (the erasure path's receipt)
and `/static/...`, `/model/face_landmarker.task` for the page's files.
"""

from __future__ import annotations

import json
import mimetypes
import ssl
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from engagement.app.join.ingest import MAX_BODY_BYTES, Refused, load_json
from engagement.app.join.streams import JoinSession
from engagement.core.errors import EngagementError, StoreError
from engagement.core.i18n import DEFAULT_LANG, LANGUAGES, catalogue
from engagement.vision.landmarks import load_bundle

STATIC = resources.files("engagement.app.join") / "static"
# The page may load its own files and the WASM it compiles, use the camera, and call this server:
# nothing else (no CDN, no fonts, no analytics). 'wasm-unsafe-eval' lets it compile the WASM.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob: mediastream:; worker-src 'self' blob:; style-src 'self'; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")  # fmt: skip
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".mjs")


def page_strings(lang: str) -> dict[str, str]:
    """The join page's words (`join.*` and `action.*` keys are not needed there) in one language."""
    return {k: v for k, v in catalogue(lang).items() if k.startswith("join.")}


class JoinServer(ThreadingHTTPServer):
    daemon_threads = True
    # A class joins within a few seconds: the listen backlog of 5 reset connections at 50 at once.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], join: JoinSession, *, models_dir: Path | None = None,
                 certfile: str | None = None, keyfile: str | None = None):  # fmt: skip
        super().__init__(address, JoinHandler)
        self.join = join
        # The project's own bundle, sha256-checked like every model it loads, served to the page.
        self.model_bytes = load_bundle(models_dir)
        self.tls = certfile is not None
        if certfile is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            self.socket = context.wrap_socket(self.socket, server_side=True)

    def url(self, host: str | None = None) -> str:
        name, port = self.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host or name}:{port}/j/{self.join.token}/"


class JoinHandler(BaseHTTPRequestHandler):
    server: JoinServer
    protocol_version = "HTTP/1.1"
    server_version = "engagement-serve"
    sys_version = ""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        return None  # no access log: paths hold tokens, and participants are not to be tracked

    # -- responses --------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "public, max-age=86400" if cache else "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Permissions-Policy", "camera=(self), microphone=()")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _error(self, status: int, code: str, detail: str) -> None:
        self._json(status, {"error": code, "detail": detail})

    # -- GET --------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/favicon.ico":
            return self._send(204, b"", "image/x-icon", cache=True)  # none: the browser asks anyway
        if path == "/model/face_landmarker.task":
            return self._send(200, self.server.model_bytes, "application/octet-stream", cache=True)
        if path == f"/j/{self.server.join.token}/":
            lang = parse_qs(parts.query).get("lang", [DEFAULT_LANG])[0]
            return self._page(lang if lang in LANGUAGES else DEFAULT_LANG)
        self._error(404, "not_found", "no such page (check the link the facilitator shared)")

    def _static(self, name: str) -> None:
        # Only plain names of files shipped in static/ and its vendor/ folder: no path tricks.
        pieces = name.split("/")
        if not 1 <= len(pieces) <= 2 or any(not p or p.startswith(".") for p in pieces):
            return self._error(404, "not_found", "no such file")
        target = STATIC.joinpath(*pieces)
        if not target.is_file():
            return self._error(404, "not_found", "no such file")
        kind = mimetypes.guess_type(pieces[-1])[0] or "application/octet-stream"
        self._send(200, target.read_bytes(), kind, cache=True)

    def _page(self, lang: str) -> None:
        template = (STATIC / "join.html").read_text(encoding="utf-8")
        strings = json.dumps(page_strings(lang), ensure_ascii=False).replace("<", "\\u003c")
        html = template.replace("{{LANG}}", lang).replace("{{STRINGS}}", strings)
        html = html.replace("{{SESSION}}", self.server.join.session.replace("<", "&lt;").replace("&", "&amp;"))
        self._send(200, html.encode("utf-8"), "text/html; charset=utf-8")

    # -- POST -------------------------------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        prefix = f"/j/{self.server.join.token}/api/"
        path = urlsplit(self.path).path
        if not path.startswith(prefix):
            return self._error(404, "not_found", "no such page (check the link the facilitator shared)")
        try:
            data = self._body()
            self._json(200, self._api(path[len(prefix):], data))
        except Refused as refusal:
            self._error(refusal.status, refusal.code, refusal.detail)
        except StoreError as exc:  # a busy database: nothing of this request was kept, try again
            self._error(503, "busy", f"the database is busy ({exc}); try again")
        except EngagementError as exc:  # refused by the privacy layer (a bad identity, a cohort key)
            self._error(400, "refused", str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: the participant gets a 500, the operator the detail
            print(f"error: {self.command} {path.rsplit('/', 1)[-1]}: {type(exc).__name__}: {exc}", file=sys.stderr)
            self._error(500, "server_error", "the server failed; nothing of this request was kept")

    def _body(self) -> dict:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            raise Refused(400, "malformed", "Content-Length is not a number") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the rest of an oversized body is never read
            raise Refused(413, "too_large", f"a request holds at most {MAX_BODY_BYTES} bytes")
        return load_json(self.rfile.read(length)) if length > 0 else {}

    def _bearer(self) -> str | None:
        value = self.headers.get("Authorization", "")
        return value[len("Bearer "):].strip() if value.startswith("Bearer ") else None

    def _api(self, action: str, data: dict) -> dict:
        join = self.server.join
        if action == "consent":
            extra = sorted(set(data) - {"identity", "lang", "accept"})
            if extra:
                raise Refused(400, "unexpected_field", f"field(s) not accepted: {', '.join(extra[:5])}")
            p = join.consent(data.get("identity"), data.get("lang"), data.get("accept"))
            return {"token": p.token, "participant": p.pseudonym[:8]}
        token = self._bearer()
        if action != "frames" and data:
            raise Refused(400, "unexpected_field", f"{action} takes no fields, got: {', '.join(sorted(data)[:5])}")
        if action == "start":
            return {"stream": join.start(token).id}
        if action == "frames":
            join.ingest(token, data)
            return {"seconds": join.recent(token)}
        if action == "stop":
            stream = join.stop(token)
            return {"seconds": stream.seconds if stream else 0, "recent": join.recent(token)}
        if action == "withdraw":
            return {"receipt": join.withdraw(token)}
        raise Refused(404, "not_found", f"no such action: {action[:40]}")
