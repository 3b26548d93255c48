"""``deploy/``: the systemd unit and the nginx site of docs/service.md, checked as far as this machine allows:
the unit's essentials (and ``systemd-analyze verify``), ``nginx -t`` on the site, and a real nginx with a
throwaway certificate in front of a real dashboard, through which the health check and the websocket
upgrade that Streamlit's pages need both pass."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from kb.service.api import MAX_BODY_MB_DEFAULT, max_body_bytes
from tests.fixtures import SPEC_TOML
from tests.servers import dashboard_server, free_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "support-sla.service"
SITE = ROOT / "deploy" / "nginx.conf"
CERT = "/etc/letsencrypt/live/support-sla.example.com/fullchain.pem"
KEY = "/etc/letsencrypt/live/support-sla.example.com/privkey.pem"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
OPENSSL = shutil.which("openssl")


def unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), …]} (keys repeat, e.g. Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        assert current is not None and _, f"not a unit line: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def test_the_unit_runs_the_service_as_its_own_user_on_loopback():
    unit = unit_entries(UNIT.read_text())
    service = dict(unit["Service"])
    environment = dict(value.split("=", 1) for key, value in unit["Service"] if key == "Environment")
    assert service["User"] == "support-sla" and service["User"] != "root"
    exec_start = service["ExecStart"].split()
    assert exec_start[0].endswith("/.venv/bin/streamlit") and exec_start[1:3] == ["run", "dashboard.py"]
    assert exec_start[exec_start.index("--server.address") + 1] == "127.0.0.1"
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 60  # room for a backup under way to finish
    assert environment["SUPPORT_DB"].startswith("/var/lib/support-sla/")
    assert environment["SUPPORT_CONFIG"] == "/etc/support-sla/support.toml"
    assert service["StateDirectory"] == "support-sla" and service["ProtectSystem"] == "strict"
    assert (service["WorkingDirectory"] + "/dashboard.py").replace("/opt/support-sla", str(ROOT)) == str(
        ROOT / "dashboard.py")
    assert dict(unit["Install"])["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_finds_nothing(tmp_path):
    unit = tmp_path / "support-sla.service"
    unit.write_text(UNIT.read_text().replace("/opt/support-sla", str(ROOT)))  # its ExecStart must exist
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "support-sla.service" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def throwaway_site(folder: Path, *, https_port: int = 443, http_port: int = 80) -> Path:
    """The site with a self-signed certificate, on the given ports, inside a main configuration of its own."""
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=support-sla.example.com", "-keyout", str(folder / "key.pem"), "-out",
                    str(folder / "cert.pem")], check=True, capture_output=True, timeout=60)
    site = SITE.read_text().replace(CERT, str(folder / "cert.pem")).replace(KEY, str(folder / "key.pem"))
    site = site.replace("listen 443 ", f"listen 127.0.0.1:{https_port} ").replace("listen 80",
                                                                                  f"listen 127.0.0.1:{http_port}")
    site = "\n".join(line for line in site.splitlines() if not line.strip().startswith("listen [::]"))
    (folder / "site.conf").write_text(site)
    temp = folder / "temp"
    temp.mkdir()
    os.chmod(folder, 0o755)
    main = folder / "nginx.conf"
    main.write_text(f"""
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {folder}/site.conf;
}}
""")
    return main


def test_nginx_takes_the_bodies_the_api_takes():
    """A body the API would take is not refused by nginx first, and nginx takes none the API would refuse."""
    [size] = re.findall(r"^\s*client_max_body_size\s+(\d+)m;", SITE.read_text(), re.M)
    assert int(size) == MAX_BODY_MB_DEFAULT and max_body_bytes() == int(size) * 1024 * 1024


@pytest.mark.skipif(NGINX is None or OPENSSL is None, reason="nginx or openssl is not installed (scripts/test "
                                                            "installs nginx-light)")
def test_nginx_accepts_the_site(tmp_path):
    main = throwaway_site(tmp_path, https_port=free_port(), http_port=free_port())
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@contextmanager
def nginx(main: Path):
    folder = main.parent
    process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(main), "-e", str(folder / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        assert process.poll() is None, (folder / "error.log").read_text()
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def over_tls(port: int, request: bytes, server_name: str = "support-sla.example.com") -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 15
    while True:
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    with context.wrap_socket(raw, server_hostname=server_name) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.skipif(NGINX is None or OPENSSL is None, reason="nginx or openssl is not installed")
def test_a_real_nginx_in_front_of_the_dashboard_passes_its_websocket(tmp_path):
    backend = free_port()
    https, http = free_port(), free_port()
    (tmp_path / "support.toml").write_text(SPEC_TOML)
    env = {"SUPPORT_DB": str(tmp_path / "support.duckdb"), "SUPPORT_CONFIG": str(tmp_path / "support.toml")}
    site = tmp_path / "nginx"
    site.mkdir()
    main = throwaway_site(site, https_port=https, http_port=http)
    (site / "site.conf").write_text((site / "site.conf").read_text().replace("127.0.0.1:8501",
                                                                             f"127.0.0.1:{backend}"))
    with dashboard_server(env, port=backend), nginx(main):
        health = over_tls(https, b"GET /_stcore/health HTTP/1.1\r\nHost: support-sla.example.com\r\n"
                                 b"Connection: close\r\n\r\n")
        assert health.startswith(b"HTTP/1.1 200"), health
        key = base64.b64encode(os.urandom(16))
        upgrade = over_tls(https, b"GET /_stcore/stream HTTP/1.1\r\nHost: support-sla.example.com\r\n"
                                  b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                  b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
        assert upgrade.startswith(b"HTTP/1.1 101"), upgrade
        assert b"upgrade: websocket" in upgrade.lower()
        # plain HTTP is sent to HTTPS
        with socket.create_connection(("127.0.0.1", http), timeout=10) as conn:
            conn.sendall(b"GET /x HTTP/1.1\r\nHost: support-sla.example.com\r\nConnection: close\r\n\r\n")
            answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1 301") and b"Location: https://support-sla.example.com/x" in answer
        # any other name (localhost, an IP address) is closed unanswered, over HTTP and HTTPS alike
        with socket.create_connection(("127.0.0.1", http), timeout=10) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert conn.recv(4096) == b""
        with pytest.raises(ssl.SSLError):
            over_tls(https, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", server_name="localhost")
