"""Typed restore-test errors (exit codes follow ``sealcheck.core.errors``)."""

from __future__ import annotations

from ..errors import BackupFailed, Layer, MissingTool, SealcheckError


class LoadFailed(BackupFailed):
    """The dump did not load: the database rejected a statement."""

    layer = Layer.DATABASE


class DumpCutShort(BackupFailed):
    """The dump ends in the middle of a statement."""

    layer = Layer.DATABASE


class ArchiveRestoreFailed(BackupFailed):
    """restore test: pg_restore could not restore the archive."""

    layer = Layer.DATABASE


class ChecksFailed(BackupFailed):
    """The restored database does not match the dump."""

    layer = Layer.DATABASE


class LimitExceeded(BackupFailed):
    """The restore test went over a limit set for it and was stopped."""

    layer = Layer.DATABASE


class DumpRefused(BackupFailed):
    """The dump does something the restore test refuses to run."""

    layer = Layer.DATABASE

    def __init__(self, detail: str = "", *, line: int = 0, tried: str = "", statement: str = ""):
        # What the dump tried, for the result's list (the scanner's patterns record
        # theirs; a refusal decided elsewhere brings its own).
        self.line, self.tried, self.statement = line, tried, statement
        super().__init__(detail)


class ServerSoftwareMissing(MissingTool):
    """The database server software needed for the restore test is not installed."""

    layer = Layer.DATABASE


class InstanceFailed(SealcheckError):
    """The throwaway database server could not be started."""

    layer = Layer.DATABASE


class ServerUnreachable(SealcheckError):
    """The database server given with --server could not be used."""

    layer = Layer.DATABASE


class NotRestorable(SealcheckError):
    """This backup's payload cannot be restore-tested."""

    layer = Layer.DATABASE


class ServerError(SealcheckError):
    """The database server reported an unexpected error."""

    layer = Layer.DATABASE


class ConfinementUnavailable(SealcheckError):
    """The restore test could not set up an account that confines the dump, so it did
    not load it (it never loads a dump with a privileged account)."""

    layer = Layer.DATABASE


# A physical backup (restoretest/physical.py).


class PrepareFailed(BackupFailed):
    """mariabackup could not prepare the physical backup."""

    layer = Layer.DATABASE


class PreparedServerFailed(BackupFailed):
    """The throwaway server did not start on the prepared backup."""

    layer = Layer.DATABASE


class PreparedDataUnreadable(BackupFailed):
    """The server started on the prepared backup could not read its data."""

    layer = Layer.DATABASE


class NotPreparable(NotRestorable):
    """This physical backup cannot be restore-tested on its own."""
