"""Which PKCS#11 module (shared library) to load, and loading it.

The module is chosen in a fixed order: ``--pkcs11-module``, then the URI's
``module-path`` or ``module-name``, then the first usual install path of
OpenSC, Yubico's ykcs11 and SoftHSM2 (in that order: a real card or YubiKey
is likelier to be what an admin means than a software token). A module named
explicitly but missing is an error, never a silent fall back to another one.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import KeyUnavailable
from .errors import err_name
from .uri import Pkcs11Uri


def default_module_paths() -> tuple[str, ...]:
    """Where OpenSC, ykcs11 and SoftHSM2 usually live, in that order of preference."""
    if sys.platform == "win32":
        return (
            r"C:\Windows\System32\opensc-pkcs11.dll",
            r"C:\Program Files\OpenSC Project\OpenSC\pkcs11\opensc-pkcs11.dll",
            r"C:\Program Files\Yubico\Yubico PIV Tool\bin\libykcs11.dll",
            r"C:\Program Files (x86)\Yubico\Yubico PIV Tool\bin\libykcs11.dll",
            r"C:\SoftHSM2\lib\softhsm2-x64.dll",
            r"C:\SoftHSM2\lib\softhsm2.dll",
        )
    if sys.platform == "darwin":
        return (
            "/Library/OpenSC/lib/opensc-pkcs11.so",
            "/opt/homebrew/lib/opensc-pkcs11.so",
            "/usr/local/lib/opensc-pkcs11.so",
            "/opt/homebrew/lib/libykcs11.dylib",
            "/usr/local/lib/libykcs11.dylib",
            "/opt/homebrew/lib/softhsm/libsofthsm2.so",
            "/usr/local/lib/softhsm/libsofthsm2.so",
        )
    arch = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
    triplets = [str(arch)] + [t for t in ("x86_64-linux-gnu", "aarch64-linux-gnu") if t != arch]
    paths: list[str] = []
    for t in triplets:
        paths += [f"/usr/lib/{t}/opensc-pkcs11.so", f"/usr/lib/{t}/pkcs11/opensc-pkcs11.so"]
    paths += ["/usr/lib64/opensc-pkcs11.so", "/usr/lib64/pkcs11/opensc-pkcs11.so"]
    paths += ["/usr/lib/opensc-pkcs11.so", "/usr/lib/pkcs11/opensc-pkcs11.so"]
    for t in triplets:
        paths.append(f"/usr/lib/{t}/libykcs11.so.2")
    paths += [
        "/usr/lib64/libykcs11.so.2",
        "/usr/lib/libykcs11.so.2",
        "/usr/local/lib/libykcs11.so.2",
    ]
    paths.append("/usr/lib/softhsm/libsofthsm2.so")
    for t in triplets:
        paths.append(f"/usr/lib/{t}/softhsm/libsofthsm2.so")
    paths += ["/usr/lib64/pkcs11/libsofthsm2.so", "/usr/local/lib/softhsm/libsofthsm2.so"]
    return tuple(paths)


def present_modules(candidates: Sequence[str] | None = None) -> list[str]:
    """The usual modules installed here, in the order ``find_module`` prefers them; a
    library reached by two usual paths (a symlink) is offered once."""
    seen: set[Path] = set()
    out: list[str] = []
    for c in tuple(candidates) if candidates is not None else default_module_paths():
        p = Path(c)
        if p.is_file() and (real := p.resolve()) not in seen:
            seen.add(real)
            out.append(c)
    return out


def find_module(
    explicit: str | Path | None = None,
    uri: Pkcs11Uri | None = None,
    candidates: Sequence[str] | None = None,
) -> str:
    """The PKCS#11 module to load: ``explicit`` (``--pkcs11-module``), else the URI's
    ``module-path`` (or ``module-name``), else the first existing usual one."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise KeyUnavailable(f"no PKCS#11 module at {p} (--pkcs11-module)")
        return str(p)
    if uri is not None and uri.module_path:
        p = Path(uri.module_path)
        if not p.is_file():
            raise KeyUnavailable(f"no PKCS#11 module at {p} (module-path in the pkcs11: URI)")
        return str(p)
    usual = tuple(candidates) if candidates is not None else default_module_paths()
    if uri is not None and uri.module_name:
        want = uri.module_name.lower()
        for c in usual:
            stem = Path(c).name.lower().split(".")[0]
            if stem in (want, "lib" + want) and Path(c).is_file():
                return c
        raise KeyUnavailable(
            f"no PKCS#11 module named {uri.module_name!r} in the usual places; give its path "
            "with --pkcs11-module or module-path= in the URI"
        )
    present = present_modules(usual)
    if present:
        return present[0]
    raise KeyUnavailable(
        "no PKCS#11 module found (looked for OpenSC opensc-pkcs11, Yubico libykcs11 and "
        "SoftHSM2 libsofthsm2 in the usual places); install one, or give its path with "
        "--pkcs11-module"
    )


def load_module(path: str) -> Any:
    """python-pkcs11's library object for ``path``; a file that is no PKCS#11 module for
    this platform is a ``KeyUnavailable``, not a crash."""
    import pkcs11

    try:
        lib = pkcs11.lib(path)
    except pkcs11.PKCS11Error as exc:
        raise KeyUnavailable(
            f"cannot load the PKCS#11 module {path}: {err_name(exc)} (is it a PKCS#11 library "
            "for this platform?)"
        ) from None
    except OSError as exc:
        raise KeyUnavailable(f"cannot load the PKCS#11 module {path}: {exc.strerror}") from None
    return lib
