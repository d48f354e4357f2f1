"""The old OpenPGP key of a resumed rotation: what the journal's start recorded.

A run over gpg backups opens them with ``--gpg-key FILE`` or ``--gpg-homedir DIR``. The
journal's start records the file's path and fingerprint and the folder's path (never a
passphrase), so ``--resume`` (or the app's resume) needs neither again. What is given on
resume must agree with the journal: another key would leave the versions it cannot
open as "cannot", half of a rotation done with one key and half with another.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from ..decrypt.gpg.packets import key_file_identity
from ..decrypt.secrets import GpgOptions
from ..errors import UsageError
from .journal import Start, key_location


class ResumeContradicts(UsageError):
    """What was given contradicts the interrupted rotation's journal."""


class RecordedKeyChanged(UsageError):
    """The interrupted rotation's OpenPGP key file no longer holds its key."""


class GpgStart(TypedDict):
    """The ``Start`` fields of the old OpenPGP key (typed for ``Start(**…)``)."""

    gpg_key: str
    gpg_fingerprint: str
    gpg_homedir: str


def gpg_start(gpg: GpgOptions | None) -> GpgStart:
    """The ``Start`` fields that record ``gpg`` (the key file's path and fingerprint, the
    GNUPGHOME's path; empty when not given)."""
    key_file = gpg.key_file if gpg is not None else None
    homedir = gpg.homedir if gpg is not None else None
    return GpgStart(
        gpg_key=key_location(str(key_file)) if key_file is not None else "",
        gpg_fingerprint=key_file_identity(key_file) if key_file is not None else "",
        gpg_homedir=key_location(str(homedir)) if homedir is not None else "",
    )


def _same_place(a: str | Path, b: str | Path) -> bool:
    return Path(key_location(str(a))).resolve() == Path(key_location(str(b))).resolve()


def _holds(fingerprint: str) -> str:
    return f"is the key {fingerprint}" if fingerprint else "cannot be read as an OpenPGP key"


def resumed_gpg(
    start: Start, key_file: Path | None, homedir: Path | None, journal: Path
) -> tuple[Path | None, Path | None]:
    """``key_file`` and ``homedir`` as given for resuming ``start``, each left out taken
    from the journal. ResumeContradicts when one names another key (by fingerprint, or
    by path when none was recorded) or folder than the journal does; one the journal
    does not name is taken as given (a journal from before these were recorded names
    none). RecordedKeyChanged when the journal's key file now holds another key."""
    recorded = start.gpg_fingerprint
    if start.gpg_key and key_file is None:
        key_file = Path(start.gpg_key)
        now = key_file_identity(key_file)
        if recorded and now != recorded:
            raise RecordedKeyChanged(
                f"the rotation in {journal} was started with the key {recorded} from "
                f"{key_file}, which now {_holds(now)}: give that key with --gpg-key"
            )
    elif start.gpg_key and key_file is not None:
        if recorded:
            given = key_file_identity(key_file)
            if given != recorded:
                raise ResumeContradicts(
                    f"the OpenPGP key file {key_file} {_holds(given)}, but the rotation in "
                    f"{journal} was started with the key {recorded} ({start.gpg_key}): give "
                    "that key, or leave --gpg-key out to use it"
                )
        elif not _same_place(key_file, start.gpg_key):
            raise ResumeContradicts(
                f"the OpenPGP key file {key_file}, but the rotation in {journal} was started "
                f"with {start.gpg_key}: give that file, or leave --gpg-key out to use it"
            )
    if start.gpg_homedir:
        if homedir is None:
            homedir = Path(start.gpg_homedir)
        elif not _same_place(homedir, start.gpg_homedir):
            raise ResumeContradicts(
                f"--gpg-homedir {homedir}, but the rotation in {journal} was started with "
                f"--gpg-homedir {start.gpg_homedir}: give that folder, or leave "
                "--gpg-homedir out to use it"
            )
    return key_file, homedir


def resumed_options(
    meta: dict[str, str], gpg: GpgOptions | None, journal: Path
) -> GpgOptions | None:
    """``gpg`` completed from (and checked against) the journal whose meta is ``meta``
    when that rotation was interrupted (the app's resume); ``gpg`` as it is otherwise.
    The passphrase stays the one given: the journal never holds one."""
    start = Start.read(meta)
    if start is None or meta.get("status") != "running":
        return gpg
    key_file, homedir = resumed_gpg(
        start, gpg.key_file if gpg else None, gpg.homedir if gpg else None, journal
    )
    if key_file is None and homedir is None:
        return None
    passphrase = gpg.passphrase if gpg is not None else None
    return GpgOptions(key_file=key_file, homedir=homedir, passphrase=passphrase)
