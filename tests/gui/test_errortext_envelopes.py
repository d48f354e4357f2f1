"""The wrong-key advice fits how the backup is sealed (issues 12 and 18): a gpg
--symmetric backup is told about its passphrase, a CMS backup about its recipients."""

from __future__ import annotations

import shlex
from pathlib import Path

from fixtures.pipelines import GPG_HOMES, sh
from sealcheck.core.decrypt.secrets import Secrets
from sealcheck.core.pipeline.job import Job
from sealcheck.core.pipeline.run import run
from sealcheck.core.storage.source import LocalFile
from sealcheck.gui.errortext import describe


def test_a_wrong_passphrase_for_gpg_symmetric_gets_passphrase_advice(
    tmp_path: Path, small_dump: Path
) -> None:
    good = tmp_path / "good.pass"
    good.write_text("correct horse battery staple\n")
    home = tmp_path / "producer-gnupg"
    home.mkdir(mode=0o700)
    GPG_HOMES.append(home)  # its agent is stopped at the end of the session
    backup = tmp_path / "db.sql.gz.gpg"
    q = shlex.quote
    sh(
        f"gzip -c {q(str(small_dump))} | gpg --batch --homedir {q(str(home))} "
        f"--pinentry-mode loopback --passphrase-file {q(str(good))} --symmetric "
        f"--cipher-algo AES256 > {q(str(backup))}",
        tmp_path,
    )
    secrets = Secrets(keys=[], passphrase=bytearray(b"wrong"))
    report = run(Job(data=LocalFile(backup), secrets=secrets))
    assert report.error is not None and report.error.kind == "WrongKey", report.error
    msg = describe(report.error, report)
    assert "gpg --symmetric" in msg.advice and "passphrase" in msg.advice
    assert "wrapped-key" not in msg.advice and "OpenPGP secret key" not in msg.advice
