"""Member paths of archives (xbstream entries, qpress files): relative, inside the
folder they would be extracted to, or refused with their name (issue 16).

Here, below both readers, because xbstream (payload) and qpress (decompress) are
sibling layers that may not import each other.
"""

from __future__ import annotations

from ..errors import IntegrityError, Layer


class UnsafeMemberPath(IntegrityError):
    """A member's path leaves the folder it would be extracted to; nothing was written."""

    layer = Layer.PAYLOAD


def safe_relpath(path: str, *, where: str, obj: str | None) -> str:
    """The path, if it stays inside its folder; refused with its name otherwise."""
    parts = path.split("/")
    bad = (
        not path
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(p in ("", ".", "..") for p in parts)
    )
    if bad:
        raise UnsafeMemberPath(
            f"{where} names {path!r}, which is absolute, empty or goes up a folder ('..'): "
            "it would be written outside the folder it is extracted to",
            obj=obj,
        )
    return path
