"""Terminal-safe text for the command line's human-readable output.

Object keys, file names, dump identifiers, table names and the error messages
that quote them are chosen by whoever wrote the backup or the bucket, not by
the person reading our output. Printed raw, an ESC sequence in a name can clear
the screen, move the cursor to rewrite an earlier line (a forged "VERIFIED"),
retitle the window or, on some terminals, type into the shell; a CR overwrites
the line it is on and a LF forges a new one. So every line the CLI prints for
a person goes through :func:`safe` once, where it is printed. JSON output does
not: ``json.dumps`` already escapes every control character, and scripts need
the exact names.

The escapes are visible and unambiguous: ``\\n``, ``\\r``, ``\\t``, ``\\xNN``
for the other C0 controls, DEL and the C1 controls, ``\\uNNNN`` for Unicode
line separators, bidirectional overrides (they reorder what a terminal shows)
and lone surrogates (undecodable file-name bytes, which would otherwise make
printing fail). A backslash is shown doubled, so a name that really contains
the four characters ``\\x1b`` cannot pass for one that contains ESC. Ordinary
printable Unicode (accents, CJK, emoji) is kept as it is.
"""

from __future__ import annotations

import re
from typing import TextIO

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}

_UNSAFE = re.compile(
    "[\\\\\x00-\x1f\x7f-\x9f"  # backslash, C0, DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional marks and overrides
    "\u2028\u2029"  # line and paragraph separators
    "\ud800-\udfff]"  # lone surrogates (surrogateescape'd bytes)
)


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    cp = ord(ch)
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def safe(text: object) -> str:
    """``text`` with every character a terminal would act on shown as an escape."""
    return _UNSAFE.sub(_escape, str(text))


def echo(line: str = "", *, file: TextIO | None = None) -> None:
    """Print one line for a person: control characters anywhere in it are escaped
    (a name with a LF in it stays on its line)."""
    print(safe(line), file=file)


def safe_lines(text: str) -> str:
    """Like :func:`safe` for text whose line breaks are its own (a traceback):
    the LFs are kept, everything else is escaped."""
    return "\n".join(safe(line) for line in text.split("\n"))
