"""How the GUI's state names a listed version (Qt-free, for the job specs and the
window's compose module)."""

from __future__ import annotations

VersionKey = tuple[str, str | None]  # (object key, version id)
