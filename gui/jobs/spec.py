"""What a job is: its specs as plain dataclasses, built by the window (or a test) and
read by the job body and the queue. Qt-free: the window's compose module builds them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sealcheck.core.records.restore_result import RestoreTestResult
from sealcheck.core.restoretest import RestoreTestOptions
from sealcheck.core.storage.locate import ListedVersion
from sealcheck.core.storage.s3.client import S3Settings

from ..state.versions import VersionKey

Operation = Literal["verify", "restore", "restore-test"]


@dataclass(frozen=True)
class Baseline:
    """An earlier restore-test result the new one is compared with (drift)."""

    label: str  # how the Details pane names it: "version 3HL4kqt…, tested 2026-11-27 03:00"
    result: RestoreTestResult


@dataclass(frozen=True)
class RestoreTestSpec:
    """How to run a restore test.

    Invariant: a DSN and a password *file path* only. The password is read by core
    when the test connects, never kept here, in settings or in a log.
    """

    engine: str = "auto"  # auto (from the dump's header) | mariadb | mysql | postgres
    server: str | None = None  # DSN of an existing local server; None: a throwaway one
    password_file: Path | None = None
    max_seconds: float = 6 * 3600.0
    # Where drift is measured from: the versions of the same backup whose last result
    # counts as "the previous one", preferred first. Resolved when the job starts, so a
    # version queued behind another is compared with that one's fresh result.
    compare_with: tuple[VersionKey, ...] = ()
    baseline: Baseline | None = None  # set by the queue at start

    @property
    def mode(self) -> str:
        return "server" if self.server else "throwaway"

    def options(self, baseline_file: Path | None) -> RestoreTestOptions:
        # A MySQL-format dump loads into MariaDB (core's throwaway server), as the CLI does.
        engine = "mariadb" if self.engine == "mysql" else self.engine
        return RestoreTestOptions(
            engine=engine,
            server=self.server or None,
            server_password_file=self.password_file if self.server else None,
            max_seconds=self.max_seconds,
            baseline=baseline_file,
        )


@dataclass(frozen=True)
class JobSpec:
    """What to run: a version as the listing produced it. Core opens exactly that version
    and the wrapped-key version paired with it (storage.locate), nothing re-listed."""

    operation: Operation
    version: ListedVersion
    s3: S3Settings = field(default_factory=S3Settings)
    destination: Path | None = None
    overwrite: bool = False
    title: str = ""
    restore_test: RestoreTestSpec | None = None  # operation "restore-test" (default options)

    @property
    def object_key(self) -> str:
        key: str = self.version.data.key
        return key

    @property
    def version_id(self) -> str | None:
        vid: str | None = self.version.data.version_id
        return vid
