"""Text from outside, made safe for where it goes: a database column, a terminal, a CSV cell.

Commands holding text the stores cannot keep (NUL, lone surrogates) are rejected at validation
(`ledger.commands`); what is kept of a rejected line, and everything printed, still passes
through here, since a rejected line is by definition text nobody checked.
"""

from __future__ import annotations

import re

#: NUL (PostgreSQL text refuses it) and UTF-16 surrogates (not characters: no UTF-8 encoder
#: writes them, so neither store can keep them). In a str decoded from JSON every surrogate
#: left is a lone one: a valid pair decodes to the one character it stands for.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """The first character of `text` no store can keep, described ("NUL (U+0000)"), or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    return "a NUL character (U+0000)" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X})"


def storable(text: str) -> str:
    """`text` with each NUL and lone surrogate written as its JSON escape (`\\u0000`)."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
