"""Restore test: stream a backup into a throwaway database server and prove it restores.

Layers (each its own small module, dataclasses between them):

* ``sqlscan``/``scan_mysql``/``scan_pg``: split the plaintext dump into statements as
  the client will, count rows per table, note what the dump tried, and decide what is
  forwarded (the only place the dump's text is ever rewritten).
* ``procs``: child processes in their own group, the state folder with pid records,
  orphan clean-up and the one-test-per-server lock.
* ``mariadb``/``postgres``: a throwaway server (or an existing one, ``--server``), the
  load (MariaDB: statements over the protocol; PostgreSQL: psql under \\restrict), and
  the checks after loading.
* ``loader``: the pipeline's plaintext sink feeding the client, with the watchdog.
* ``archiveload``: pg_dump archives, turned by pg_restore (no connection) into the
  script the PostgreSQL path loads; a tarred directory archive extracted first.
* ``runner``: the whole test; ``model``: its result; ``drift``: against an earlier one.

Never imports Qt.
"""

from ..records.restore_result import RestoreTestResult
from .runner import RestoreTestOptions, restore_test

__all__ = ["RestoreTestOptions", "RestoreTestResult", "restore_test"]
