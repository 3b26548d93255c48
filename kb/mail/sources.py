"""Raw messages from files: mbox files (streamed: one message in memory at a time), Maildir folders
(``cur`` and ``new``) and ``.eml`` files. Each comes as a ``RawMessage``; a file that cannot be read is
reported as a ``SourceError`` and the other paths go on.

When the service holds the database, ``python -m kb mail import`` reads the files where they are and hands the
service their messages as an archive of its own (``archive_lines``, one JSON object per line: each message's
bytes and where it came from, so the stored messages name the files they were read from). The service reads it
back (``read_archive``) as hostile input: a line it cannot read is a ``SourceError`` of its own.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READ_CHUNK = 1 << 20
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class RawMessage:
    data: bytes
    folder: str            # the file or folder it came from
    where: str             # "FILE message N", for reports
    from_line: bytes | None = None


@dataclass(frozen=True)
class SourceError:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def read_paths(paths: list[str | os.PathLike]) -> Iterator[RawMessage | SourceError]:
    """Every message under the given paths, in order: an mbox file, a Maildir folder, a ``.eml`` file, or a
    folder holding any of these."""
    for path in paths:
        yield from _read_path(Path(path))


def _read_path(path: Path) -> Iterator[RawMessage | SourceError]:
    try:
        if path.is_dir():
            if (path / "cur").is_dir() or (path / "new").is_dir():
                yield from read_maildir(path)
                return
            children = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            if not children:
                yield SourceError(str(path), "an empty folder (not a Maildir, and no mail files in it)")
            for child in children:
                yield from _read_path(child)
            return
        if not path.exists():
            yield SourceError(str(path), "no such file or folder")
            return
        with open(path, "rb") as f:
            head = f.read(5)
        if head == b"From ":
            yield from read_mbox(path)
        else:
            yield RawMessage(path.read_bytes(), str(path), str(path))
    except OSError as e:
        yield SourceError(str(path), f"cannot be read: {e.strerror or e}")


def read_mbox(path: Path) -> Iterator[RawMessage]:
    """The messages of an mbox file, streamed line by line: a message starts at a ``From `` line at the
    start of the file or after an empty line (mboxo/mboxrd; ``>From`` lines are left as they are)."""
    number = 0
    lines: list[bytes] = []
    from_line: bytes | None = None
    previous_blank = True
    with open(path, "rb", buffering=READ_CHUNK) as f:
        for line in f:
            if line.startswith(b"From ") and previous_blank:
                if from_line is not None:
                    number += 1
                    yield _mbox_message(path, number, from_line, lines)
                from_line, lines = line.rstrip(b"\r\n"), []
                previous_blank = False
                continue
            lines.append(line)
            previous_blank = line in (b"\n", b"\r\n")
    if from_line is not None:
        number += 1
        yield _mbox_message(path, number, from_line, lines)


def _mbox_message(path: Path, number: int, from_line: bytes, lines: list[bytes]) -> RawMessage:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]  # the empty line that separates it from the next message
    return RawMessage(b"".join(lines), str(path), f"{path} message {number}", from_line)


def read_maildir(path: Path) -> Iterator[RawMessage]:
    """The messages of one Maildir folder (``new`` then ``cur``), in file-name order."""
    for sub in ("new", "cur"):
        folder = path / sub
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                try:
                    data = file.read_bytes()
                except OSError as e:
                    yield RawMessage(b"", str(path), f"{file} (cannot be read: {e.strerror})")
                    continue
                yield RawMessage(data, str(path), str(file))


ARCHIVE_TYPE = "application/x-ndjson"  # how the command line hands its messages over (``archive_lines``)


def archive_lines(items: Iterator[RawMessage | SourceError], failed: list[SourceError]) -> Iterator[bytes]:
    """Each message of ``items`` as one line of JSON: ``data`` and ``from_line`` in base64, ``folder`` and
    ``where``; the paths that could not be read go to ``failed``."""
    for item in items:
        if isinstance(item, SourceError):
            failed.append(item)
            continue
        line = {"data": base64.b64encode(item.data).decode(), "folder": item.folder, "where": item.where,
                "from_line": None if item.from_line is None else base64.b64encode(item.from_line).decode()}
        yield json.dumps(line).encode() + b"\n"


def archive_parts(items: Iterator[RawMessage | SourceError], failed: list[SourceError],
                  part_bytes: int) -> Iterator[bytes]:
    """``archive_lines`` in parts of at most ``part_bytes`` (a message larger than that is a part of its own),
    so that no request the command sends holds more, nor the command's memory."""
    part: list[bytes] = []
    size = 0
    for line in archive_lines(items, failed):
        if part and size + len(line) > part_bytes:
            yield b"".join(part)
            part, size = [], 0
        part.append(line)
        size += len(line)
    if part:
        yield b"".join(part)


def read_archive(path: Path, name: str) -> Iterator[RawMessage | SourceError]:
    """The messages of an archive ``archive_lines`` wrote (``name``: what reports call it), streamed a line at
    a time; a line that is not one of its messages is a ``SourceError`` naming the line and why."""
    with open(path, "rb", buffering=READ_CHUNK) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield _archived(json.loads(line))
            except (ValueError, TypeError, KeyError, RecursionError, binascii.Error) as e:
                yield SourceError(f"{name} line {number}", f"not a message of an archive: {type(e).__name__}")


def _archived(line: object) -> RawMessage:
    if not isinstance(line, dict):
        raise TypeError("not an object")
    data, folder, where, from_line = line["data"], line["folder"], line["where"], line.get("from_line")
    if not all(isinstance(v, str) for v in (data, folder, where)) or not isinstance(from_line, str | None):
        raise TypeError("a field is not text")
    return RawMessage(base64.b64decode(data, validate=True), _visible(folder), _visible(where),
                      None if from_line is None else base64.b64decode(from_line, validate=True))


def _visible(text: str) -> str:
    """A name an archive gives (a file, a message's place in it) as one line of at most 500 characters of
    text that can be stored (a lone surrogate, which JSON may carry and UTF-8 cannot, becomes "?")."""
    return CONTROL.sub("", text.encode("utf-8", "replace").decode("utf-8"))[:500]
