"""Start the review server: ``python -m ui.serve --case DIR --port P`` (``vidpipe ui`` runs this).

Before Streamlit starts, this process forbids itself any network connection that does not stay
on this machine (a Python audit hook refuses ``connect``/``sendto``/name lookups of anything
but loopback), so neither Streamlit nor a library can call out, whatever their settings. Blocked
attempts are reported on stderr (and appended to ``$VIDPIPE_UI_NETLOG`` when set, for tests).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import tomllib
from pathlib import Path
from typing import Any

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ui.serve")
    parser.add_argument("--case", required=True, type=Path)
    parser.add_argument("--port", type=int, default=8501)
    args = parser.parse_args(argv)
    os.environ["VIDPIPE_UI_CASE"] = str(args.case.resolve())
    install_network_guard()
    disable_address_discovery()
    from streamlit.web import cli as st_cli

    return st_cli.main(["run", str(APP), *streamlit_flags(args.port)], prog_name="streamlit",
                       standalone_mode=True) or 0


if __name__ == "__main__":
    raise SystemExit(main())
