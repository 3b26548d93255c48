"""Text from clients and cases, made safe to put in a mail header, a message or a statement.

A client's name, a case's subject or an environment's name comes from outside (mail intake, imports,
webhooks) and is stored verbatim. Where it is set among our own words it must not be able to change
them: a line break in a header would end it and start another (``Bcc:``), and any other line separator
(U+2028 among them) makes the mail library refuse the whole message; a text-direction control such as
U+202E (right-to-left override) would reverse everything after it. Line breaks and other controls are
shown as spaces; text-direction controls as U+FFFD, as error messages show them
(``kb.intake.validation.quoted``).
"""

from __future__ import annotations

import re
import unicodedata

CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # with every character str.splitlines() ends a line at
DIRECTION_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
FIRST_STRONG_ISOLATE, POP_DIRECTIONAL_ISOLATE = "\u2068", "\u2069"
# Bidirectional classes that can move text: right-to-left letters and the direction controls.
MOVING_CLASSES = frozenset({"R", "AL", "RLE", "RLO", "RLI", "LRE", "LRO", "LRI", "FSI", "PDF", "PDI"})


def in_reading_order(text: str) -> str:
    """``text`` with each text-direction control (embeddings, overrides, isolates) as U+FFFD, so it cannot
    reorder the text after it."""
    return DIRECTION_CONTROLS.sub("\ufffd", text)


def one_line(text: str) -> str:
    """``text`` for a header or a line of its own: each control character and each line or paragraph
    separator (everything ``str.splitlines()`` splits on) a space, each text-direction control U+FFFD."""
    return CONTROLS.sub(" ", in_reading_order(text))


def moves_text(text: str) -> bool:
    """Whether ``text`` holds a right-to-left letter or a text-direction control."""
    return any(unicodedata.bidirectional(c) in MOVING_CLASSES for c in text)


def isolated(text: str) -> str:
    """``text`` on one line and, when it holds right-to-left letters or direction controls, inside a
    bidirectional isolate (FSI … PDI): they then move nothing but themselves, whatever text the statement
    sets around them. Left-to-right text is left as it is, so copying or searching it finds just the text."""
    line = one_line(text)
    return FIRST_STRONG_ISOLATE + line + POP_DIRECTIONAL_ISOLATE if moves_text(text) else line
