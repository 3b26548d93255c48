"""A real dashboard server on a free port, for the browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(command: list[str], ready_url: str, *, log: Path | None = None, timeout: float = 60, **popen):
    """Start ``command`` (a server), wait until ``ready_url`` answers 200, yield; then stop it. A server
    that exits or is not ready within ``timeout`` seconds raises, with its log when there is one."""
    log_file = open(log or os.devnull, "w")  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, **popen)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    said = log.read_text()[-2000:] if log else ""
                    raise RuntimeError(f"{command[0]} did not start (exit code {process.poll()}) {said}") from None
                time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()


@contextmanager
def dashboard_server(env: dict[str, str], *, port: int | None = None, extra_args: tuple[str, ...] = (),
                     log: Path | None = None):
    """Start the service (``streamlit run service.py``: the dashboard and its API) with ``env`` added; yield its
    base URL; stop it."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    with serving([sys.executable, "-m", "streamlit", "run", "service.py", "--server.port", str(port),
                  "--server.headless", "true", *extra_args], f"{base}/_stcore/health", log=log,
                 cwd=ROOT, env={**os.environ, **env}):
        yield base


def wait_idle(page, timeout: float = 30_000) -> None:
    """Wait as Streamlit's own e2e suite does: until the script has finished running."""
    page.wait_for_timeout(250)
    page.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout)
    page.wait_for_timeout(250)


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


class Inbox:
    """A real SMTP server (aiosmtpd) on a free loopback port that keeps what it is sent:
    ``messages`` holds (recipients, parsed message) pairs. ``start()``, ``stop()``."""

    def __init__(self, port: int | None = None):
        from aiosmtpd.controller import Controller

        self.messages = []
        self.port = port or free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        from email import message_from_bytes, policy

        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def start(self) -> Inbox:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
