"""Raw messages from files: mbox files (streamed: one message in memory at a time), Maildir folders
(``cur`` and ``new``) and ``.eml`` files. Each comes as a ``RawMessage``; a file that cannot be read is
reported as a ``SourceError`` and the other paths go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READ_CHUNK = 1 << 20


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
