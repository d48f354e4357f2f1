"""Fail if importing any sealcheck.core module pulls in Qt or the GUI package, or Dask
(the optional ``dask`` extra: only a campaign on a cluster loads it, issue 15).

Run as a separate process so nothing else has imported PySide6 first.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import sealcheck.core as core

for mod in pkgutil.walk_packages(core.__path__, "sealcheck.core."):
    importlib.import_module(mod.name)

bad = sorted(
    m
    for m in sys.modules
    if m.split(".")[0] in ("PySide6", "shiboken6", "dask", "distributed")
    or m.startswith("sealcheck.gui")
)
if bad:
    print("sealcheck.core imports Qt/GUI/Dask modules:", ", ".join(bad), file=sys.stderr)
    sys.exit(1)
print("ok: sealcheck.core imports no Qt and no Dask")
