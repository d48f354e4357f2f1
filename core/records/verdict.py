"""What a finished run says about the backup: OK, FAILED, or nothing at all.

A run that could not reach the backup's content (no key for it, a storage that does
not answer, a restore-test server that cannot be used: everything the CLI exits 2
for) is not a verdict on the backup. It keeps its exit code, so a cron gate still
stops, but the history, the evidence and the app show it as *not checked* and keep
the last real verdict of that version beside it.

This is the one place that turns an exit code into a verdict; the history's SQL
filters use ``VERDICT_EXIT_CODES`` so they cannot disagree with it.

Why ``WrongKey`` (exit 1) stays a verdict: the pipeline cannot tell "the operator
picked the wrong key" from "the backup was made for a key nobody holds", "the
wrapped key belongs to another backup" or "the start of the data or the wrapped key
is damaged" (PKCS#1 v1.5 unwraps to noise instead of failing, and an oracle is
refused on purpose, see unlock.py). Some of those are proved failures of the backup
(an OAEP-authenticated unwrap whose secret does not decrypt the data). Calling them
"not checked" would keep an old green OK beside a backup nobody can open.
"""

from __future__ import annotations

import enum

from ..errors import ExitCode

# Exit codes that carry a verdict on the backup; every other code means "not checked".
VERDICT_EXIT_CODES = (int(ExitCode.OK), int(ExitCode.BACKUP_FAILED))


class Verdict(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    NOT_CHECKED = "not-checked"

    @classmethod
    def of(cls, exit_code: int) -> Verdict:
        """The verdict a run with this exit code reached (0 OK, 1 FAILED, else none)."""
        if exit_code == ExitCode.OK:
            return cls.OK
        if exit_code == ExitCode.BACKUP_FAILED:
            return cls.FAILED
        return cls.NOT_CHECKED

    @property
    def is_verdict(self) -> bool:
        return self is not Verdict.NOT_CHECKED

    @property
    def label(self) -> str:
        """For reports and listings: "OK", "FAILED", "NOT CHECKED (setup problem)"."""
        return _LABELS[self]

    @property
    def short_label(self) -> str:
        """For one-line listings (``sealcheck history``)."""
        return _SHORT[self]


_LABELS = {
    Verdict.OK: "OK",
    Verdict.FAILED: "FAILED",
    Verdict.NOT_CHECKED: "NOT CHECKED (setup problem)",
}
_SHORT = {
    Verdict.OK: "OK",
    Verdict.FAILED: "FAILED",
    Verdict.NOT_CHECKED: "NOT CHECKED (setup)",
}

NOT_CHECKED_MEANING = (
    "the run could not check the backup (a key, the storage or a test server was not "
    "usable): this is no verdict on the backup; the exit code stays non-zero for scripts"
)
