"""The checksums and sizes sidecar files carry, compared with the object as it was read.

A sidecar's digest is of the object as stored (what ``sha256sum``/``md5sum`` print for
the uploaded file); one that matches the restored plaintext instead is accepted and
said so (some scripts checksum the dump before encrypting it), and so is a size. Any
other value is a mismatch: the object is not what its producer wrote, a finding on the
source layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import IntegrityError, Layer
from ..storage.sidecar import Sidecar, object_base, read_sidecar

_WHAT = {"sha256": "SHA-256", "md5": "MD5", "size": "size"}


@dataclass
class SidecarCheck:
    results: list[dict[str, Any]] = field(default_factory=list)
    proved: list[str] = field(default_factory=list)  # "sidecar X.sha256: matches"
    mismatch: IntegrityError | None = None


def compare(
    sidecars: tuple[Sidecar, ...],
    obj: str,
    *,
    sha256: str,
    md5: str | None,
    size: int,
    plaintext_sha256: str | None,
    plaintext_bytes: int | None = None,
) -> SidecarCheck:
    """Each sidecar's claims against what was read; ``mismatch`` set on the first
    claim that does not hold."""
    out = SidecarCheck()
    backup = object_base(obj)
    actual = {"sha256": sha256, "md5": md5, "size": str(size)}
    for sc in sidecars:
        reading = read_sidecar(sc, backup)
        name = object_base(sc.name)
        entry: dict[str, Any] = {"name": sc.name, "version_id": sc.version_id}
        if not reading.claims:
            entry["result"] = reading.note
            out.results.append(entry)
            continue
        verdicts = []
        for claim in reading.claims:
            have = actual[claim.kind]
            what = _WHAT[claim.kind]
            if have is None:
                verdicts.append(f"{what} not computed")
            elif claim.value == have:
                verdicts.append(f"{what} matches")
            elif claim.kind == "sha256" and claim.value == plaintext_sha256:
                verdicts.append("SHA-256 matches the restored plaintext (not the object)")
            elif claim.kind == "size" and claim.value == str(plaintext_bytes):
                verdicts.append("size matches the restored plaintext (not the object)")
            else:
                verdicts.append(f"{what} does not match")
                if out.mismatch is None:
                    out.mismatch = IntegrityError(
                        f"sidecar {name}: its {what} {claim.value} is not the object's "
                        f"({have}): the object is not what its producer wrote",
                        obj=obj,
                        layer=Layer.SOURCE,
                    )
        entry["result"] = "; ".join(verdicts)
        out.results.append(entry)
        out.proved.append(f"sidecar {name}: {entry['result']}")
    return out


def wants_md5(sidecars: tuple[Sidecar, ...], obj: str) -> bool:
    """Whether a sidecar carries an MD5, so the download must compute one."""
    backup = object_base(obj)
    return any(c.kind == "md5" for sc in sidecars for c in read_sidecar(sc, backup).claims)
