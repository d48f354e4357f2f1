"""Sealcheck core: verify and restore envelope-encrypted database backups.

This package never imports Qt; the GUI lives in ``sealcheck.gui``.

The front door: the few names a front end (the CLI, the GUI) needs to run a backup,
find one, open its keys and read the result, importable as ``from sealcheck.core
import run, Job, Secrets``. The deeper modules stay importable for what only one
front end needs.

The names load on first use (PEP 562), not with the package: importing any core
module imports this package first, and ``sealcheck.core.errors`` alone must not
pull in boto3, the pipeline and the restore test (~0.1 s against ~2 s), nor make
every module that reads ``__version__`` depend on the pipeline's import order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

# name -> the module (under sealcheck.core) that defines it
_EXPORTS: dict[str, str] = {
    # run a backup: verify or restore, restore test
    "Job": "pipeline.job",
    "Secrets": "decrypt.secrets",
    "run": "pipeline.run",
    "RestoreTestOptions": "restoretest.runner",
    "restore_test": "restoretest.runner",
    # find one
    "S3Settings": "storage.s3.client",
    "Rule": "storage.naming",
    "BackupSet": "storage.listing",
    "list_backup_sets": "storage.listing",
    "ListedVersion": "storage.locate",
    "Locator": "storage.locate",
    # its keys
    "KeyContext": "keys.spec",
    "open_key": "keys.spec",
    "SecretPrompt": "keys.prompt",
    "secret_once": "keys.prompt",
    # cooperate with a running job
    "CancelToken": "plumbing.progress",
    "ProgressEvent": "plumbing.progress",
    # what came of it
    "Report": "records.report",
    "RestoreTestResult": "records.restore_result",
    "Verdict": "records.verdict",
    "ExitCode": "errors",
    "SealcheckError": "errors",
}

__all__ = [  # the same names as _EXPORTS (a test holds them together)
    "BackupSet",
    "CancelToken",
    "ExitCode",
    "Job",
    "KeyContext",
    "ListedVersion",
    "Locator",
    "ProgressEvent",
    "Report",
    "RestoreTestOptions",
    "RestoreTestResult",
    "Rule",
    "S3Settings",
    "SealcheckError",
    "SecretPrompt",
    "Secrets",
    "Verdict",
    "__version__",
    "list_backup_sets",
    "open_key",
    "restore_test",
    "run",
    "secret_once",
]

# The same names, for type checkers and editors. import-linter skips this block
# (exclude_type_checking_imports): the package itself imports nothing at run time, so
# the modules that read __version__ from it do not depend on the whole core.
if TYPE_CHECKING:
    from .decrypt.secrets import Secrets
    from .errors import ExitCode, SealcheckError
    from .keys.prompt import SecretPrompt, secret_once
    from .keys.spec import KeyContext, open_key
    from .pipeline.job import Job
    from .pipeline.run import run
    from .plumbing.progress import CancelToken, ProgressEvent
    from .records.report import Report
    from .records.restore_result import RestoreTestResult
    from .records.verdict import Verdict
    from .restoretest.runner import RestoreTestOptions, restore_test
    from .storage.listing import BackupSet, list_backup_sets
    from .storage.locate import ListedVersion, Locator
    from .storage.naming import Rule
    from .storage.s3.client import S3Settings


def __getattr__(name: str) -> Any:
    # Deliberate lazy load of the front door's names (see the module docstring).
    try:
        where = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
