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


#: What a terminal acts on instead of showing: C0 controls (ESC starts colour, cursor and
#: title sequences; CR and backspace overwrite what was printed), DEL, C1 controls (0x9b is a
#: one-byte CSI), the line and paragraph separators, the bidirectional overrides and isolates
#: that reorder what is shown ("Trojan Source"), and lone surrogates (no encoder writes them).
_TERMINAL_ACTS_ON = "\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNPRINTABLE_CELL = re.compile(f"[\x00-\x0a{_TERMINAL_ACTS_ON}]")
_UNPRINTABLE_LINES = re.compile(f"[\x00-\x09{_TERMINAL_ACTS_ON}]")  # newline kept


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` for one cell or one line of a terminal: every character a terminal would act on
    written as its escape (`\\x1b`, `\\u202e`), newlines and tabs included."""
    if _UNPRINTABLE_CELL.search(text) is None:
        return text
    return _UNPRINTABLE_CELL.sub(_escape, text)


def printable_lines(text: str) -> str:
    """`printable`, keeping newlines (for output laid out in lines by the console)."""
    if _UNPRINTABLE_LINES.search(text) is None:
        return text
    return _UNPRINTABLE_LINES.sub(_escape, text)


#: OWASP's CSV injection rule: a cell starting with one of these is a formula (or becomes one)
#: in a spreadsheet. A plain decimal number ("-12.50") is a number, not a formula.
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def csv_cell(value: object) -> object:
    """A CSV cell that no spreadsheet runs and no terminal acts on: text starting with `=`,
    `+`, `-`, `@`, tab or carriage return gets a leading single quote, and its control
    characters are escaped as in a table (`printable`); numbers, and text that is a plain
    decimal number, are left as they are."""
    if not isinstance(value, str):
        return value
    if value.startswith(CSV_FORMULA_START) and _PLAIN_NUMBER.fullmatch(value) is None:
        value = "'" + value
    return printable(value)
