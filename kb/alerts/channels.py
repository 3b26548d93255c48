"""The two ways an alert leaves: e-mail over SMTP and a Slack-compatible incoming webhook.

Credentials come from the environment (``$SUPPORT_SMTP_USER``, ``$SUPPORT_SMTP_PASSWORD``, and the
variable named by ``alerts.webhook_url_env``), never from ``support.toml``. TLS is verified: ``smtps://``
speaks TLS from the start, ``smtp://`` upgrades with STARTTLS whenever the server offers it.

Names and subjects come from clients and cases: every header is set on one line and no text-direction
control reaches a reader (``kb.alerts.text``). A message that cannot be built (an address that is not one)
fails like a refusal: a DeliveryError for that delivery alone.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.request
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import urlsplit

from kb.alerts.text import CONTROLS, in_reading_order, one_line
from kb.intake.validation import quoted
from kb.mail.messages import BARE_ADDRESS, NAMED_ADDRESS

TIMEOUT_SECONDS = 15


class DeliveryError(RuntimeError):
    """The server refused or could not be reached, or the message could not be built; that delivery alone
    is retried at the next run."""


def send_email(smtp_url: str, sender: str, recipients: list[str], subject: str, body: str,
               attachments: dict[str, bytes] | None = None) -> None:
    """One message to ``recipients`` (``address`` or ``Name <address>`` each); ``attachments``: file name ->
    PDF bytes."""
    message = _message(sender, recipients, subject, body, attachments or {})
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
    try:
        request = urllib.request.Request(url, data=json.dumps({"text": in_reading_order(text)}).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
    except (OSError, ValueError) as e:  # URLError and HTTPError (a 4xx or 5xx answer) are OSErrors; a URL
        # that is not one is a ValueError
        raise DeliveryError(f"the webhook at {urlsplit(url).hostname} did not take it: {e}") from None


def mailbox(text: str) -> Address:
    """``text`` (``address`` or ``Name <address>``) as one mailbox for a header, its name on one line;
    DeliveryError naming it when it is not one plain address."""
    named = NAMED_ADDRESS.fullmatch(text)
    bare = None if named else BARE_ADDRESS.fullmatch(text)
    address = named.group(3) if named else bare.group(1) if bare else ""
    if not address or CONTROLS.search(address):
        raise DeliveryError(f"{quoted(text)} is not an e-mail address")
    name = (named.group(1) or named.group(2) or "") if named else ""
    try:
        return Address(display_name=" ".join(one_line(name).split()), addr_spec=address)
    except (ValueError, IndexError) as e:  # the email package's own check of the address
        raise DeliveryError(f"{quoted(text)} is not an e-mail address: {e}") from None


def _message(sender: str, recipients: list[str], subject: str, body: str,
             attachments: dict[str, bytes]) -> EmailMessage:
    if not recipients:
        raise DeliveryError("no recipient address")
    message = EmailMessage()
    message["From"], message["To"] = mailbox(sender), [mailbox(r) for r in recipients]
    try:
        message["Subject"] = one_line(subject)
        message["Auto-Submitted"] = "auto-generated"  # so no mailbox answers it, and the mail intake skips it
        message.set_content(in_reading_order(body))
        for name, data in attachments.items():
            message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    except (ValueError, TypeError) as e:
        raise DeliveryError(f"the message could not be built: {e}") from None
    return message
