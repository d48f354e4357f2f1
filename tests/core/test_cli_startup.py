"""Start-up is part of the job (issue 17): what a command imports before it works.

``sealcheck verify`` of a local file must not import the restore test (its SQL
scanners build large patterns at import), Qt or boto3, nor the readers of formats the
backup is not in; ``sealcheck --help`` none of the commands' bodies, nor cryptography. Each run is a fresh interpreter, as a user's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fixtures.pipelines import RsaKey, securecircle
from sealcheck.core.cli.options import SCOPES, TRIGGERS
from sealcheck.core.records.history import Trigger
from sealcheck.core.rotation.scope import Scope

# Runs the CLI as the installed ``sealcheck`` does, then lists every module loaded.
_PROBE = """
import json, sys
from sealcheck.core.cli.main import main
out, argv = sys.argv[1], sys.argv[2:]
try:
    code = main(argv)
except SystemExit as exc:  # --help exits through argparse
    code = exc.code
with open(out, "w") as f:
    json.dump(sorted(sys.modules), f)
sys.exit(code)
"""

NEVER = ("sealcheck.core.restoretest", "PySide6", "shiboken6", "boto3")


def _imported(tmp_path: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    out = tmp_path / "modules.json"
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, str(out), *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    return r, json.loads(out.read_text())


def _under(modules: list[str], roots: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == r or m.startswith(r + ".") for r in roots)]


def test_verify_of_a_local_file_imports_no_restore_test_qt_or_boto3(
    small_dump: Path, rsa_key: RsaKey, tmp_path: Path
) -> None:
    b = securecircle(small_dump, tmp_path / "backup", rsa_key)
    assert b.wrapped_key is not None
    r, modules = _imported(
        tmp_path,
        "verify",
        str(b.data),
        "--wrapped-key",
        str(b.wrapped_key),
        "--key",
        str(rsa_key.private),
        "--no-progress",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "VERIFIED" in r.stdout
    assert _under(modules, NEVER) == []
    # Nor what only other commands need: the plugins' entry-point scan (a built-in
    # command was asked for) and CMS's certificate parsing (not a CMS backup).
    assert _under(modules, ("importlib.metadata", "cryptography.x509")) == []
    # Nor the other formats' readers, whose registries name them without importing them
    # (gzip, openssl enc and a SQL text here), nor the keyring's and tokens' modules (a
    # PEM file was given).
    other_formats = (
        "zstandard",
        "sealcheck.core.decompress.zstd",
        "sealcheck.core.decompress.bzip2",
        "sealcheck.core.decrypt.gpg",
        "sealcheck.core.payload.pgdump",
        "sealcheck.core.keys.custody",
        "sealcheck.core.keys.discovery",
        "sealcheck.core.keys.pkcs11",
    )
    assert _under(modules, other_formats) == []
    # Nor what only a physical backup, a restore test or S3 needs (issue 17): the
    # physical check and its members' layers (xbcrypt keys, qpress), the restore test's
    # result, and the S3 object, its errors and listing (botocore) for a local path.
    elsewhere = (
        "sealcheck.core.pipeline.physical",
        "sealcheck.core.physical.check",
        "sealcheck.core.physical.members",
        "sealcheck.core.physical.pages",
        "sealcheck.core.physical.complete",
        "sealcheck.core.physical.extract",
        "sealcheck.core.decrypt.xbkey",
        "sealcheck.core.decrypt.xbcrypt",
        "sealcheck.core.decrypt.xbcrypt_opener",
        "sealcheck.core.decompress.qpress",
        "sealcheck.core.records.restore_result",
        "sealcheck.core.storage.listing",
        "sealcheck.core.storage.rewrap",
        "sealcheck.core.storage.s3.object",
        "sealcheck.core.storage.s3.errors",
        "botocore",
        # held keys' fingerprints: asked only for a wrapped key found beside the data
        "sealcheck.core.decrypt.held",
        # Hyperscan: loaded only once the inspection has read 16 MiB (payload/search.py)
        "hyperscan",
        # the C library for memmem is the process's own (no ldconfig child), and the
        # history names the host by uname
        "subprocess",
        "socket",
    )
    assert _under(modules, elsewhere) == []
    # Recording the verify needs the history, not the evidence reports.
    assert "sealcheck.core.records.history" in modules
    assert "sealcheck.core.records.evidence" not in modules
    # What the verify needed did load: the check above is not vacuous.
    assert "sealcheck.core.pipeline.run" in modules
    assert "sealcheck.core.decompress.readers" in modules
    assert "sealcheck.core.physical.layout" in modules  # asked whether it is physical
    assert "sealcheck.core.storage.locate" in modules
    assert "cryptography" in modules


def test_help_imports_no_command_body(tmp_path: Path) -> None:
    r, modules = _imported(tmp_path, "--help")
    assert r.returncode == 0, r.stderr
    assert "restore-test" in r.stdout and "verify" in r.stdout
    assert _under(modules, (*NEVER, "cryptography", "sqlite3")) == []
    bodies = ("pipeline", "decrypt", "decompress", "payload", "keys", "storage", "rotation")
    assert _under(modules, tuple(f"sealcheck.core.{b}" for b in bodies)) == []


def test_choices_are_the_enums_values() -> None:
    """The parser names the rotation scopes and history triggers without importing them."""
    assert SCOPES == tuple(s.value for s in Scope)
    assert TRIGGERS == tuple(t.value for t in Trigger)
