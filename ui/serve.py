"""Start the review server: ``python -m ui.serve --case DIR --port P`` (``vidpipe ui`` runs this).

Before Streamlit starts, this process forbids itself any network connection that does not stay
on this machine (a Python audit hook refuses ``connect``/``sendto``/name lookups of anything
but loopback), so neither Streamlit nor a library can call out, whatever their settings. Blocked
attempts are reported on stderr (and appended to ``$VIDPIPE_UI_NETLOG`` when set, for tests).

It also changes how Streamlit keeps sessions (``install_session_guards``):

- A Streamlit session is never resumed or taken over by its id. Streamlit lets a new connection
  name an existing session id (the third ``Sec-WebSocket-Protocol`` entry) and then hands it that
  session -- a live one is even disconnected from its tab -- and keeps a closed tab's session for
  ``server.disconnectedSessionTTL`` (120 s) for that purpose. Here the id a client names is
  ignored, and a session whose connection ends is shut down at once and its login ended
  (``ui.session.end_streamlit_session``, audited as a logout with reason ``disconnect``).
- ``/media`` (where Streamlit serves what ``st.image`` / ``st.download_button`` show) answers only
  URLs that carry the media token of a live, logged-in, not idle session (``?vp=...``, added to
  every media URL made in a logged-in page run), and only for files that this very session
  currently shows; anything else gets 403. Responses say ``Cache-Control: no-store``.

What remains: a media URL is a bearer URL while its session lives and shows the file (anyone on
this machine who copies the full URL out of the reviewer's browser can fetch it then); the
session id of a Streamlit session is still what its upload URLs name (an upload also needs the
XSRF cookie and header); Streamlit's own static files (its JavaScript, CSS, fonts), the health
and host-config endpoints are served to anyone who can reach 127.0.0.1 -- they hold nothing of
the case.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

UI_DIR = Path(__file__).resolve().parent
APP = UI_DIR / "app.py"
CONFIG = UI_DIR / "config.toml"
NETLOG_ENV = "VIDPIPE_UI_NETLOG"
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def streamlit_flags(port: int) -> list[str]:
    """``--section.option=value`` for every setting in ``ui/config.toml``, plus the port."""
    config = tomllib.loads(CONFIG.read_text())
    flags = []
    for section, options in config.items():
        for name, value in options.items():
            for item in value if isinstance(value, list) else [value]:
                flags.append(f"--{section}.{name}={_flag_value(item)}")
    flags.append(f"--server.port={port}")
    return flags


def _flag_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _is_local(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str) -> None:
    message = f"vidpipe ui: blocked outbound network access: {what}"
    print(message, file=sys.stderr)
    log = os.environ.get(NETLOG_ENV)
    if log:
        with open(log, "a") as fh:
            fh.write(what + "\n")
    raise PermissionError(message)


def _network_guard(event: str, args: tuple) -> None:
    if event == "socket.connect" or event == "socket.sendto":
        sock, address = args[0], args[1]
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _refuse(f"{event} {address!r}")
    elif event == "socket.getaddrinfo":
        if not _is_local(args[0]):
            _refuse(f"getaddrinfo {args[0]!r}")
    elif event == "socket.gethostbyname" or event == "socket.gethostbyaddr":
        if not _is_local(args[0]):
            _refuse(f"{event} {args[0]!r}")


def install_network_guard() -> None:
    """Refuse, for the rest of this process, every non-loopback connection and name lookup."""
    sys.addaudithook(_network_guard)


def disable_address_discovery() -> None:
    """Stop Streamlit from looking up this machine's addresses.

    To check a request's Origin, Streamlit asks for the machine's network address (a UDP
    "connect" to 8.8.8.8) and its public address (an HTTP request to checkip.amazonaws.com).
    A loopback-only server has no use for either; without this, any cross-origin request
    would make the server try to reach the internet (the guard would refuse it, noisily).
    """
    from streamlit import net_util

    net_util.get_internal_ip = lambda: None
    net_util.get_external_ip = lambda: None


MEDIA_PREFIX = "/media/"
MEDIA_TOKEN_PARAM = "vp"


def _files_shown_by(st_session: str) -> set[str]:
    """Ids of the media files Streamlit session ``st_session`` shows now."""
    from streamlit.runtime import Runtime

    mgr = Runtime.instance().media_file_mgr
    with mgr._lock:  # noqa: SLF001 - Streamlit keeps the session -> files map private
        return set(mgr._files_by_session_and_coord.get(st_session, {}).values())  # noqa: SLF001


def media_request_allowed(path: str, query: str, files_shown_by=_files_shown_by) -> bool:
    """True when a ``/media/FILE`` request carries the token of the live, logged-in session that
    shows FILE now."""
    from ui import session

    tokens = parse_qs(query).get(MEDIA_TOKEN_PARAM, [])
    if len(tokens) != 1:
        return False
    st_session = session.media_session(tokens[0])
    if st_session is None:
        return False
    file_id = path[len(MEDIA_PREFIX):].rsplit(".", 1)[0]
    return bool(file_id) and file_id in files_shown_by(st_session)


class MediaGuard:
    """ASGI middleware in front of Streamlit: ``/media`` only with a live session's token (403
    otherwise), never cached by the browser."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(MEDIA_PREFIX):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        if not media_request_allowed(scope["path"], query):
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain"), (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b"Forbidden"})
            return

        async def no_store(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", b"no-store, private")]}
            await send(message)

        await self.app(scope, receive, no_store)


def _end_session_in_background(st_session: str, reason: str) -> None:
    """End the login of a Streamlit session off the event loop (it writes to the audit trail)."""
    from ui import session

    def run() -> None:
        try:
            session.end_streamlit_session(st_session, reason)
        except Exception as exc:  # noqa: BLE001 - a failed audit write must not kill the server
            print(f"vidpipe ui: ending session {st_session[:8]}: {type(exc).__name__}: {exc}", file=sys.stderr)

    threading.Thread(target=run, name="vidpipe-session-end", daemon=True).start()


def install_session_guards() -> None:
    """Patch Streamlit (this process only): no session resumed by id, sessions end with their
    connection, ``/media`` behind ``MediaGuard``, media URLs of a logged-in run carry its token."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    from streamlit.runtime.websocket_session_manager import WebsocketSessionManager
    from streamlit.web.server.starlette import starlette_app

    connect, disconnect, close = (WebsocketSessionManager.connect_session,
                                  WebsocketSessionManager.disconnect_session, WebsocketSessionManager.close_session)

    def connect_session(self, client, script_data, user_info, existing_session_id=None, session_id_override=None):
        # The id a client names is never honoured: every connection gets a new session.
        return connect(self, client, script_data, user_info, None, session_id_override)

    def disconnect_session(self, session_id: str) -> None:
        self.mark_session_nonresumable(session_id)  # shut down, not kept for a reconnect
        disconnect(self, session_id)
        _end_session_in_background(session_id, "disconnect")

    def close_session(self, session_id: str) -> None:
        close(self, session_id)
        _end_session_in_background(session_id, "closed")

    WebsocketSessionManager.connect_session = connect_session
    WebsocketSessionManager.disconnect_session = disconnect_session
    WebsocketSessionManager.close_session = close_session

    add = MediaFileManager.add

    def add_with_token(self, *args, **kwargs) -> str:
        from ui import session

        url = add(self, *args, **kwargs)
        ctx = get_script_run_ctx()
        token = session.media_token_for(ctx.session_id if ctx else None)
        if token and url.startswith(MEDIA_PREFIX):
            url += ("&" if "?" in url else "?") + f"{MEDIA_TOKEN_PARAM}={token}"
        return url

    MediaFileManager.add = add_with_token

    from starlette.middleware import Middleware

    middleware = starlette_app.create_streamlit_middleware

    def with_media_guard() -> list:
        return [Middleware(MediaGuard), *middleware()]

    starlette_app.create_streamlit_middleware = with_media_guard


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.serve")
    parser.add_argument("--case", required=True, type=Path)
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args(argv)
    os.environ["VIDPIPE_UI_CASE"] = str(args.case.resolve())
    install_network_guard()
    disable_address_discovery()
    install_session_guards()
    from streamlit.web import cli as st_cli

    return st_cli.main(["run", str(APP), *streamlit_flags(args.port)], prog_name="streamlit",
                       standalone_mode=True) or 0


if __name__ == "__main__":
    raise SystemExit(main())
