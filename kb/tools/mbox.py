"""A synthetic support mailbox as one mbox file: ``python -m kb generate --mbox FILE --messages N``.

The same seed, size and ``--until`` give the same bytes. Its shape, in believable proportions:

* threads opened by clients of a few hundred company domains (a few of them write most: Zipf-like) and by
  free users of a webmail domain, arriving mostly in business hours on weekdays, over ``--days`` days;
* the helpdesk's automatic acknowledgement on a third of the threads (``Auto-Submitted: auto-replied``,
  from the team: it must not count as the response);
* the first human reply from the team (the support address or an agent of the team's domain) on most
  threads, after a long-tailed delay (log-normal, median about three hours); none yet on the newest;
* client follow-ups, and second replies;
* out-of-office auto-replies from clients, bounces (``multipart/report`` from ``MAILER-DAEMON``) of team
  replies, mailing-list mail (``List-Id``) and newsletters (``Precedence: bulk``);
* subjects and names in several charsets (RFC 2047 encoded words), a few messages without a Message-ID.

Client messages carry the receipt in the mbox ``From `` line (UTC) and a ``Received:`` header; team messages
carry their ``Date:`` in the support zone, as a Sent folder would. The file is written in receipt order.
"""

from __future__ import annotations

import math
import random
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from kb.config import Config

FIRST = ("Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Giulia", "Hiro", "Ines", "Jonas", "Kwame", "Lena",
         "Mateo", "Noor", "Olga", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yusuf")
LAST = ("Smith", "Müller", "Wong", "García", "Okafor", "Rossi", "Tanaka", "Kowalski", "Novak", "Haddad", "Silva",
        "Johansson", "Chan", "Dubois", "Ivanova", "Patel")
ENCODED_NAMES = ("Zoë Ångström", "李小龍", "Дмитрий Орлов", "José Ñúñez", "Αλέξης Παπαδόπουλος")
WORDS_A = ("acme", "borealis", "cobalt", "delta", "evergreen", "fjord", "granite", "harbor", "indigo", "juniper",
           "kestrel", "lumen", "meridian", "nimbus", "orchid", "pioneer", "quartz", "redwood", "summit", "tidal")
WORDS_B = ("logistics", "bank", "health", "retail", "studio", "analytics", "apps", "energy", "insurance", "media")
SUBJECTS = ("API returns 502 on /v1/models", "Deployment stuck in pending", "Cannot log in to the console",
            "Webhook deliveries delayed", "Model scoring latency spiked", "How do I rotate API keys?",
            "Environment unreachable since this morning", "Question about rate limits", "SSL certificate error",
            "Data export fails halfway", "Billing page shows an error", "Python client times out",
            "Scheduled job did not run", "Dashboard charts empty", "Permission denied on project settings")
ENCODED_SUBJECTS = ("Ошибка при развертывании модели", "部署失败，请帮忙", "Fehler beim Export – dringend",
                    "Problème d'accès à l'API ✉")
LISTS = ("announce@lists.cloudvendor.example", "security@lists.osvendor.example", "devs@groups.community.example")
AGENTS = tuple(f"agent{n:02d}" for n in range(1, 13))

SHARES = {  # per thread: the chance of each follow-on message
    "ack": 0.33, "reply": 0.9, "follow_up": 0.35, "second_reply": 0.6, "ooo": 0.05, "bounce": 0.03,
}
NOISE_PER_THREAD = 0.3  # mailing-list mail and newsletters: about a tenth of all messages


def write_mbox(path: str | Path, config: Config, *, messages: int, seed: int, until: datetime,
               days: int = 90) -> dict[str, int]:
    """Write ``messages`` messages to ``path``; returns how many of each kind."""
    rng = random.Random(seed)
    until = until.astimezone(UTC).replace(microsecond=0)
    zone = config.calendar.zone
    support = next((a for a in config.mail.support_addresses if not a.startswith("@")), "support@knowru.example")
    team_domain = next((a[1:] for a in config.mail.support_addresses if a.startswith("@")), None)
    agents = [f"{a}@{team_domain}" for a in AGENTS] if team_domain else [support]
    domains = [f"{a}-{b}.example" for a in WORDS_A for b in WORDS_B]
    weights = [1 / (i + 1) ** 0.9 for i in range(len(domains))]
    rng.shuffle(weights)
    events: list[tuple[datetime, int, bytes, str]] = []
    counts: dict[str, int] = {}
    thread = 0

    def emit(at: datetime, kind: str, data: bytes) -> None:
        events.append((at, len(events), data, kind))

    while len(events) < messages:
        thread += 1
        opened = _arrival(rng, until, days, zone)
        if rng.random() < 0.3:
            address, name = f"user{rng.randrange(1, 20_000):05d}@mail.example", _name(rng)
        else:
            domain = rng.choices(domains, weights)[0]
            name = _name(rng)
            address = f"{name.split()[0].lower()}.{rng.randrange(1, 40)}@{domain}"
            if not address.isascii():
                address = f"contact{rng.randrange(1, 40)}@{domain}"
        subject = rng.choice(ENCODED_SUBJECTS) if rng.random() < 0.05 else rng.choice(SUBJECTS)
        first_id = None if rng.random() < 0.01 else f"t{thread}.{seed}@{address.partition('@')[2]}"
        emit(opened, "client", _message(rng, opened, address, name, support, subject, first_id, (), zone,
                                        team=False))
        chain = [first_id] if first_id else []
        if rng.random() < NOISE_PER_THREAD:
            at = _arrival(rng, until, days, zone)
            sender = rng.choice(LISTS)
            if rng.random() < 0.7:
                emit(at, "mailing list", _message(rng, at, sender, "List", support, "[announce] Weekly digest",
                                                  f"l{thread}.{seed}@lists.example", (), zone, team=False,
                                                  headers=(("List-Id", f"<{sender.replace('@', '.')}>"),
                                                           ("Precedence", "list"))))
            else:
                emit(at, "newsletter", _message(rng, at, "news@marketing.example", "Newsletter", support,
                                                "Our product news", f"n{thread}.{seed}@marketing.example", (), zone,
                                                team=False, headers=(("Precedence", "bulk"),)))

        if rng.random() < SHARES["ack"]:
            at = opened + timedelta(seconds=rng.randint(5, 90))
            emit(at, "acknowledgement", _message(
                rng, at, support, "Support", address, f"Re: {subject}", f"ack{thread}.{seed}@knowru.example", chain,
                zone, team=True, headers=(("Auto-Submitted", "auto-replied"),)))
        if rng.random() >= SHARES["reply"]:
            continue
        replied = opened + timedelta(hours=_delay_hours(rng))
        if replied > until:
            continue
        agent = rng.choice(agents)
        reply_id = f"r{thread}.{seed}@knowru.example"
        emit(replied, "team reply", _message(rng, replied, agent, "Support team", address, f"Re: {subject}",
                                             reply_id, chain, zone, team=True))
        chain = chain + [reply_id]
        if rng.random() < SHARES["bounce"]:
            at = replied + timedelta(seconds=rng.randint(2, 600))
            if at <= until:
                emit(at, "bounce", _bounce(rng, at, support, address, reply_id, f"b{thread}.{seed}@mx.example"))
        if rng.random() < SHARES["ooo"]:
            at = replied + timedelta(seconds=rng.randint(2, 300))
            if at <= until:
                emit(at, "out of office", _message(
                    rng, at, address, name, agent, f"Out of office: Re: {subject}", f"o{thread}.{seed}@x.example",
                    chain, zone, team=False, headers=(("Auto-Submitted", "auto-replied"), ("X-Autoreply", "yes"))))
        if rng.random() >= SHARES["follow_up"]:
            continue
        followed = replied + timedelta(hours=_delay_hours(rng) * 2)
        if followed > until:
            continue
        follow_id = f"f{thread}.{seed}@{address.partition('@')[2]}"
        emit(followed, "client follow-up", _message(rng, followed, address, name, support, f"Re: {subject}",
                                                    follow_id, chain, zone, team=False))
        chain = chain + [follow_id]
        if rng.random() < SHARES["second_reply"]:
            at = followed + timedelta(hours=_delay_hours(rng))
            if at <= until:
                emit(at, "team reply", _message(rng, at, rng.choice(agents), "Support team", address,
                                                f"Re: {subject}", f"s{thread}.{seed}@knowru.example", chain, zone,
                                                team=True))
    events.sort(key=lambda e: (e[0], e[1]))
    events = events[:messages]
    with open(path, "wb") as f:
        for _, _, data, kind in events:
            f.write(data)
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def _name(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return rng.choice(ENCODED_NAMES)
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _arrival(rng: random.Random, until: datetime, days: int, zone) -> datetime:
    """Mostly in business hours on weekdays, local time."""
    while True:
        day = (until - timedelta(days=rng.uniform(0, days))).astimezone(zone)
        business = rng.random() < 0.8
        if business and day.weekday() >= 5 and rng.random() < 0.85:
            continue
        hour = rng.uniform(9, 18) if business else rng.uniform(0, 24)
        local = day.replace(hour=int(hour), minute=int(hour % 1 * 60), second=rng.randrange(60), microsecond=0)
        moment = local.astimezone(UTC)
        if moment <= until:
            return moment


def _delay_hours(rng: random.Random) -> float:
    return min(24 * 10.0, math.exp(rng.gauss(math.log(3), 1.1)))


def _encoded(text: str) -> str:
    return text if text.isascii() else f"=?utf-8?b?{b64encode(text.encode()).decode()}?="


def _address(name: str, address: str) -> str:
    return f'"{name}" <{address}>' if name.isascii() else f"{_encoded(name)} <{address}>"


def _message(rng: random.Random, at: datetime, sender: str, name: str, to: str, subject: str,
             message_id: str | None, chain, zone, *, team: bool, headers=()) -> bytes:
    """One message under its mbox ``From `` line. A client's Date is a little before its receipt and in its
    own zone; a team message's Date is the instant itself, in the support zone."""
    if team:
        date = at.astimezone(zone)
        received = at
    else:
        date = (at - timedelta(seconds=rng.randint(1, 120))).astimezone(
            UTC if rng.random() < 0.5 else zone)
        received = at
    lines = [
        f"From {sender} {received.strftime('%a %b %d %H:%M:%S %Y')}",
        f"Return-Path: <{sender}>",
    ]
    if not team:
        lines.append(f"Received: from mail.{sender.partition('@')[2]} by mx.knowru.example; "
                     f"{format_datetime(received)}")
    lines += [f"From: {_address(name, sender)}", f"To: {to}", f"Subject: {_encoded(subject)}",
              f"Date: {format_datetime(date)}"]
    if message_id:
        lines.append(f"Message-ID: <{message_id}>")
    if chain:
        lines.append(f"In-Reply-To: <{chain[-1]}>")
        lines.append("References: " + " ".join(f"<{m}>" for m in chain))
    lines += [f"{k}: {v}" for k, v in headers]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit",
              "", _body(rng, team), ""]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _body(rng: random.Random, team: bool) -> str:
    if team:
        return "Hello,\n\nThanks for reaching out. We are looking into it and will update you shortly.\n\n-- \nSupport"
    return "Hi,\n\n" + " ".join(rng.choice(("The", "our", "service", "fails", "since", "today", "when", "we",
                                            "deploy", "call", "the", "API", "again", "and", "it", "errors"))
                                 for _ in range(rng.randint(20, 80))) + ".\n\nThanks"


def _bounce(rng: random.Random, at: datetime, support: str, address: str, reply_id: str, message_id: str) -> bytes:
    boundary = f"bounce{rng.randrange(10**9)}"
    return "\n".join([
        f"From MAILER-DAEMON {at.strftime('%a %b %d %H:%M:%S %Y')}",
        "From: Mail Delivery System <MAILER-DAEMON@mx.knowru.example>",
        f"To: {support}",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(at)}",
        f"Message-ID: <{message_id}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain",
        "",
        f"Your message <{reply_id}> to <{address}> could not be delivered: mailbox full.",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        f"Final-Recipient: rfc822; {address}",
        "Action: failed",
        "Status: 5.2.2",
        f"--{boundary}--",
        "",
        "",
    ]).encode("utf-8")


def run_generate_mbox(args, config: Config, until: datetime) -> int:
    """``python -m kb generate --mbox FILE --messages N [--seed S] [--until TS] [--days D]``, up to ``until``."""
    import sys
    import time

    if args.mbox.exists() and not args.replace:
        print(f"error: {args.mbox} exists; pass --replace to overwrite it", file=sys.stderr)
        return 1
    started = time.perf_counter()
    counts = write_mbox(args.mbox, config, messages=args.messages, seed=args.seed, until=until, days=args.days)
    print(f"wrote {sum(counts.values()):,} messages to {args.mbox} in {time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{n:,} {kind}" for kind, n in counts.items()))
    return 0
