"""``Authentication-Results`` headers (RFC 8601): did a trusted receiving server see DKIM or SPF pass for a domain?

A header reads ``authserv-id [version]; method=result [reason=…] ptype.property=value …; …``, with comments in
parentheses and quoted strings allowed almost anywhere. Anyone can write such a header, so only those whose
authserv-id the team trusts count (their server removes look-alikes on receipt, as RFC 8601 §5 requires), and
only a ``pass`` of DKIM or SPF whose authenticated domain is the one asked about: ``header.d`` for DKIM,
``smtp.mailfrom`` for SPF, and ``header.from`` too when the result names it. A comment or a quoted reason that
merely reads like a pass is text, not a result.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

AUTHENTICATED_BY = {"dkim": ("header.d", "header.i"), "spf": ("smtp.mailfrom",)}
ALSO_NAMED = ("header.from",)
SPECIALS = ";="
END, EQUALS = object(), object()  # ";" and "=" as separators (a quoted ";" or "=" is a word)


def passes_for(headers: Iterable[str], trusted_ids: frozenset[str], domain: str) -> bool:
    """Whether one of ``headers`` (the values of a message's ``Authentication-Results``) comes from a trusted
    authserv-id and shows ``dkim=pass`` or ``spf=pass`` for ``domain`` (case-insensitive)."""
    domain = domain.lower()
    for value in headers:
        parts = _statements(value)
        if not parts[0] or not isinstance(parts[0][0], str) or parts[0][0].lower() not in trusted_ids:
            continue
        if any(_passes(statement, domain) for statement in parts[1:]):
            return True
    return False


def _passes(statement: list[str], domain: str) -> bool:
    """Whether one ``method=result property=value …`` statement is a DKIM or SPF pass for ``domain``."""
    pairs = _pairs(statement)
    if not pairs:
        return False
    method, result = pairs[0]
    method = method.partition("/")[0].lower()
    if method not in AUTHENTICATED_BY or result.lower() != "pass":
        return False
    properties = {name.lower(): value for name, value in pairs[1:]}
    if len(properties) < len(pairs) - 1:  # a property named twice (header.d=evil header.d=ours): no pass
        return False
    identity = next((properties[p] for p in AUTHENTICATED_BY[method] if p in properties), None)
    named = [properties[p] for p in ALSO_NAMED if p in properties]
    return identity is not None and all(_domain_of(v) == domain for v in (identity, *named))


def _pairs(statement: list) -> list[tuple[str, str]]:
    """``name=value`` pairs of a statement's words, in order (a word that is not part of one is ignored)."""
    pairs = []
    for i in range(1, len(statement) - 1):
        if statement[i] is EQUALS and statement[i - 1] is not EQUALS and statement[i + 1] is not EQUALS:
            pairs.append((statement[i - 1], statement[i + 1]))
    return pairs


def _domain_of(value: str) -> str:
    """The domain of ``user@domain``, ``@domain`` or ``domain``, lower-case, without a final dot."""
    return value.rpartition("@")[2].strip().rstrip(".").lower()


def _statements(value: str) -> list[list]:
    """The header's words and ``EQUALS``, split into statements at ``;``: comments dropped, quoted strings as
    one word."""
    statements: list[list] = [[]]
    for word in _words(value):
        if word is END:
            statements.append([])
        else:
            statements[-1].append(word)
    return statements


def _words(value: str) -> Iterator[object]:
    """Tokens: ``END`` (``;``), ``EQUALS`` (``=``), quoted strings (unquoted) and runs of other characters;
    comments (nested, with backslash escapes) and white space are dropped."""
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c.isspace():
            i += 1
        elif c == "(":
            depth = 0
            while i < n:
                if value[i] == "\\":
                    i += 1
                elif value[i] == "(":
                    depth += 1
                elif value[i] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
        elif c == '"':
            i += 1
            text = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                text.append(value[i])
                i += 1
            i += 1
            yield "".join(text)
        elif c in SPECIALS:
            i += 1
            yield END if c == ";" else EQUALS
        else:
            start = i
            while i < n and not value[i].isspace() and value[i] not in SPECIALS + '("':
                i += 1
            yield value[start:i]
