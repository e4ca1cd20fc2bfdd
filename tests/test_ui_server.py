"""The running review server: loopback only, no outbound connection, XSRF/origin checks, settings."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_ui_support import PASSWORD, REPO, SAMPLE, build_case, cli_json

from ui.jobs import start_ingest
from ui.serve import streamlit_flags

STARTUP_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``vidpipe ui`` in a subprocess (the CLI execs the server, so the pid is the server's)."""

    def __init__(self, case: Path, netlog: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "VIDPIPE_UI_NETLOG": str(netlog), "PYTHONPATH": str(REPO)}
        self.log = netlog.with_name("server.log")  # a file, not a pipe: a full pipe would stall the server
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "vidpipe", "ui", "--case", str(case), "--port",
                                         str(self.port)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + STARTUP_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text(errors='replace')[-3000:]}")
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=2).read() == b"ok":
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise AssertionError("server did not become healthy")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.log.read_text(errors="replace")


@pytest.fixture
def server(tmp_path):
    case = tmp_path / "case"
    build_case(case).close()
    srv = Server(case, tmp_path / "netlog")
    srv.netlog = tmp_path / "netlog"
    yield srv
    srv.stop()


def _proc_sockets(pid: int) -> list[tuple[str, str, str]]:
    """(state, local ip, remote ip) of every TCP/UDP socket the process holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            f = line.split()
            if f[9] in inodes:
                out.append((f[3], _ip(f[1]), _ip(f[2])))
    return out


def _ip(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr.split(":")[0])
    # /proc writes each 32-bit word in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def _session_runs_app(url: str) -> str:
    """Open a browser-like WebSocket session, ask for a run, return the text of what was sent back."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
    shown = []
    with connect(ws_url, subprotocols=["streamlit"], origin=url) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        ws.send(msg.SerializeToString())
        deadline = time.time() + 30
        while time.time() < deadline:
            fm = ForwardMsg()
            fm.ParseFromString(ws.recv(timeout=30))
            if fm.WhichOneof("type") == "delta":
                shown.append(str(fm.delta))
            if fm.WhichOneof("type") == "script_finished":
                break
    return "\n".join(shown)


def _refused(url: str, origin: str, host: str | None = None) -> bool:
    from websockets.sync.client import connect

    try:
        with connect(url.replace("http://", "ws://") + "/_stcore/stream", subprotocols=["streamlit"],
                     origin=origin, additional_headers={"Host": host} if host else None):
            return False
    except Exception:  # noqa: BLE001 - any refusal (403/400) will do
        return True


def test_server_listens_on_loopback_only_and_makes_no_outbound_connection(server):
    shown = _session_runs_app(server.url)
    assert "vidpipe review" in shown and "Password" in shown  # the login page ran in the server
    # Hostile clients: another origin, another Host header (DNS rebinding), an upload without XSRF token.
    assert _refused(server.url, "http://evil.example")
    assert _refused(server.url, server.url, host=f"evil.example:{server.port}")
    request = urllib.request.Request(server.url + "/_stcore/upload_file/s/f", data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    assert err.value.code == 403
    time.sleep(1)
    sockets = _proc_sockets(server.proc.pid)
    listening = [s for s in sockets if s[0] == "0A"]
    assert listening and all(local == "127.0.0.1" for _, local, _ in listening), sockets
    remote = {r for state, _, r in sockets if state != "0A" and r not in ("0.0.0.0", "::")}
    assert all(ipaddress.ip_address(r).is_loopback for r in remote), sockets
    assert not server.netlog.exists() or server.netlog.read_text() == ""  # not even an attempt
    assert server.proc.poll() is None


def test_network_guard_refuses_everything_but_loopback(tmp_path):
    code = """
import socket
from ui.serve import install_network_guard
install_network_guard()
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
socket.create_connection(srv.getsockname(), timeout=5).close()
for target in (("10.255.255.1", 80), ("8.8.8.8", 53)):
    try:
        socket.create_connection(target, timeout=1)
        raise SystemExit("connected to %s" % (target,))
    except PermissionError:
        pass
try:
    socket.getaddrinfo("example.com", 443)
    raise SystemExit("resolved example.com")
except PermissionError:
    pass
print("guarded")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), "VIDPIPE_UI_NETLOG": str(tmp_path / "log")})
    assert proc.returncode == 0 and proc.stdout.strip() == "guarded", proc.stderr
    assert (tmp_path / "log").read_text().count("\n") == 3


def test_settings_passed_to_streamlit(tmp_path):
    flags = set(streamlit_flags(9999))
    for flag in ("--server.address=127.0.0.1", "--browser.gatherUsageStats=false",
                 "--server.enableXsrfProtection=true", "--server.enableCORS=true", "--client.toolbarMode=minimal",
                 "--server.maxUploadSize=25", "--server.enableAgentApi=false", "--server.port=9999",
                 "--server.allowedHosts=127.0.0.1", "--server.allowedHosts=localhost",
                 "--client.showErrorDetails=none", "--server.enableStaticServing=false"):
        assert flag in flags
    case = tmp_path / "case"
    build_case(case).close()
    out = cli_json("ui", "--case", str(case), "--port", "8600", "--dry-run")
    assert out["url"] == "http://127.0.0.1:8600/" and out["users"] == 4
    assert out["argv"][1:] == ["-m", "ui.serve", "--case", str(case.resolve()), "--port", "8600"]


def test_examiner_starts_an_ingest_that_records_the_operator(tmp_path):
    from ui.auth import User, add_user
    from vidpipe.store.casedb import open_case

    root = tmp_path / "fresh"
    _, conn = open_case(root, create=True)
    add_user(conn, "erin", "examiner", PASSWORD)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "rocket.jpg").write_bytes((SAMPLE / "near_dups/rocket.jpg").read_bytes())
    proc, log, error = start_ingest(conn, root, User(1, "erin", "examiner"), [str(evidence)], 1, False)
    assert error is None
    assert proc.wait(timeout=120) == 0, log.read_text()
    assert json.loads(log.read_text().splitlines()[-1])["ok"] == 1
    run = conn.execute("SELECT operator, status FROM runs").fetchone()
    assert tuple(run) == ("erin", "completed")
    entry = conn.execute("SELECT * FROM audit WHERE action='ingest_start'").fetchone()
    assert entry["actor"] == "erin" and json.loads(entry["detail"])["sources"] == [str(evidence)]
    assert start_ingest(conn, root, User(1, "erin", "examiner"), ["relative/path"], 1, False)[2].startswith(
        "not an existing absolute path")
