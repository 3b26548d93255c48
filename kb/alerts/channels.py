"""The two ways an alert leaves: e-mail over SMTP and a Slack-compatible incoming webhook.

Credentials come from the environment (``$SUPPORT_SMTP_USER``, ``$SUPPORT_SMTP_PASSWORD``, and the
variable named by ``alerts.webhook_url_env``), never from ``support.toml``. TLS is verified: ``smtps://``
speaks TLS from the start, ``smtp://`` upgrades with STARTTLS whenever the server offers it.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.request
from email.message import EmailMessage
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 15


class DeliveryError(RuntimeError):
    """The server refused or could not be reached; the alert is retried at the next run."""


def send_email(smtp_url: str, sender: str, recipients: list[str], subject: str, body: str,
               attachments: dict[str, bytes] | None = None) -> None:
    """One message to ``recipients``; ``attachments``: file name -> PDF bytes."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, ", ".join(recipients), subject
    message["Auto-Submitted"] = "auto-generated"  # so no mailbox answers it, and the mail intake skips it
    message.set_content(body)
    for name, data in (attachments or {}).items():
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    url = urlsplit(smtp_url)
    secure = url.scheme == "smtps"
    try:
        client = (smtplib.SMTP_SSL(url.hostname, url.port or 465, timeout=TIMEOUT_SECONDS,
                                   context=ssl.create_default_context())
                  if secure else smtplib.SMTP(url.hostname, url.port or 25, timeout=TIMEOUT_SECONDS))
        with client:
            if not secure:
                client.ehlo()
                if client.has_extn("starttls"):
                    client.starttls(context=ssl.create_default_context())
                    client.ehlo()
            if os.environ.get("SUPPORT_SMTP_USER"):
                client.login(os.environ["SUPPORT_SMTP_USER"], os.environ.get("SUPPORT_SMTP_PASSWORD", ""))
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as e:
        raise DeliveryError(f"the mail server {url.hostname}:{url.port} did not take it: {e}") from None


def post_webhook(url: str, text: str) -> None:
    request = urllib.request.Request(url, data=json.dumps({"text": text}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
    except OSError as e:  # URLError and HTTPError (a 4xx or 5xx answer) are OSErrors
        raise DeliveryError(f"the webhook at {urlsplit(url).hostname} did not take it: {e}") from None
