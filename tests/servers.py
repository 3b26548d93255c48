"""Real servers on free loopback ports for the tests: the dashboard (the browser tests), an SMTP inbox, Dovecot."""

from __future__ import annotations

import getpass
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
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


def answers(url: str) -> Callable[[], bool]:
    """A readiness check: ``url`` answers 200."""

    def check() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200

    return check


@contextmanager
def serving(command: list[str], ready: str | Callable[[], bool], *, log: Path | None = None, timeout: float = 60,
            **popen):
    """Start ``command`` (a server), wait until ``ready`` (a URL that answers 200, or a check that returns True
    rather than raise OSError), yield; then stop it. A server that exits or is not ready within ``timeout``
    seconds raises, with its log when there is one."""
    is_ready = answers(ready) if isinstance(ready, str) else ready
    log_file = open(log or os.devnull, "w")  # noqa: SIM115
    process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, **popen)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if is_ready():
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                said = log.read_text()[-2000:] if log else ""
                raise RuntimeError(f"{command[0]} did not start (exit code {process.poll()}) {said}")
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
    """Start the service (``streamlit run dashboard.py``: the dashboard and its API) with ``env`` added; yield
    its base URL; stop it."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    with serving([sys.executable, "-m", "streamlit", "run", "dashboard.py", "--server.port", str(port),
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


# --- Dovecot: a real IMAP server ---------------------------------------------------------------------------

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
IMAP_USERS = [f"user{n}" for n in range(1, 21)]
IMAP_PASSWORD = "secret"


def _dovecot_config(folder: Path, port: int) -> tuple[str, int, int]:
    """A throwaway configuration: plain-text login on loopback, a passwd-file of users, Maildirs, no TLS."""
    if os.getuid() == 0:  # Dovecot refuses to run its login and mail processes as root
        internal, login = "dovecot", "dovenull"
        mail_user = "dovecot"
    else:
        internal = login = mail_user = getpass.getuser()
    uid, gid = pwd.getpwnam(mail_user).pw_uid, pwd.getpwnam(mail_user).pw_gid
    return f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = {min(uid, 1)}
mail_location = maildir:{folder}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={folder}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
""", uid, gid


@contextmanager
def dovecot_server():
    """Debian's Dovecot on a free port with the users ``IMAP_USERS`` (password ``IMAP_PASSWORD``); yields
    ``(port, folder)``."""
    folder = Path(tempfile.mkdtemp(prefix="kb-dovecot-"))
    folder.chmod(0o755)  # the mail user reaches its Maildirs through it
    port = free_port()
    text, uid, gid = _dovecot_config(folder, port)
    (folder / "dovecot.conf").write_text(text)
    (folder / "passwd").write_text("".join(f"{u}:{{PLAIN}}{IMAP_PASSWORD}\n" for u in IMAP_USERS))
    for sub in ("run", "state", "mail", "home"):
        (folder / sub).mkdir()
    for sub in ("mail", "home"):
        os.chown(folder / sub, uid, gid)

    def logs_in() -> bool:
        imaplib.IMAP4("127.0.0.1", port, timeout=5).logout()
        return True

    try:
        with serving([DOVECOT, "-F", "-c", str(folder / "dovecot.conf")], logs_in, log=folder / "stdout.log",
                     timeout=20):
            yield port, folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
