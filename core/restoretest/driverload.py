"""Send a MySQL/MariaDB dump's statements over the server protocol, without a client.

Why not ``mariadb db < dump.sql``: the scanner already splits the dump exactly as the
client would (delimiters, quotes, comments, ``DELIMITER``), so the client would only
parse every byte a second time and add a pipe, costing CPU the server needs on a small
machine. Sending each statement as one COM_QUERY (PyMySQL) makes the load faster than
the plain client on the same server, and safer: there is no client to interpret
``\\!``, ``system``, ``source`` or ``tee`` (they reach the server as text and fail
there), no credentials file, and multi-statements are off, so one query is always one
statement the scanner has seen. A failed statement is known exactly: its line and text
come from the scanner, its code and message from the server.

Threads: the pipeline's consumer thread scans and ``put``s statements; one sender thread
runs them in order. A byte budget between the two keeps memory bounded (a slow server
slows the download): it counts a statement until the server has run it, so a large
statement is never held twice (one being sent, the next one queued). ``kill``
(watchdog: cancel, a limit) shuts the socket down, which unblocks the sender at once;
the statement still running on the server ends when the runner stops (throwaway) or
kills it (``--server``).

Memory: a statement may be up to 1 GiB (one extended INSERT on one line). PyMySQL
splits a query into protocol packets of 16 MiB; given ``bytes`` it does so by slicing
off the rest after each packet, a copy of what is left every time (close to twice the
statement at its peak). Given a ``memoryview`` the same code slices views, so only the
packet being written (16 MiB) is ever copied, and PyMySQL keeps its own framing,
sequence ids and result handling.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from ..records.restore_result import LoadError
from .scan.common import StatementRef

BUDGET = 16 << 20  # statement bytes scanned but not yet sent; one larger statement may pass
KEEP_WARNINGS = 200  # warning lines kept for the report's summary


@dataclass(frozen=True)
class DriverCommand:
    """How to load through the protocol (the MariaDB target's ``client()``)."""

    connect: Callable[[], Any]  # a PyMySQL connection, autocommit off, in the database
    preamble: tuple[bytes, ...] = ()
    postamble: tuple[bytes, ...] = ()


class DriverFeeder:
    def __init__(self, cmd: DriverCommand) -> None:
        self._cmd = cmd
        self._conn: Any = None
        # (statement, where it is in the dump, bytes it holds of the budget); None: the end
        self._queue: deque[tuple[bytes | memoryview, StatementRef | None, int] | None] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.killed = False
        self.error: LoadError | None = None
        self.warnings: list[str] = []  # "Warning 1265: text" per warning the server gave

    @property
    def failed(self) -> bool:
        return self.error is not None or self.killed

    def start(self) -> None:
        self._conn = self._cmd.connect()
        self._queue.extend((sql, None, 0) for sql in self._cmd.preamble)
        self._thread = threading.Thread(target=self._run, name="sealcheck-load", daemon=True)
        self._thread.start()

    def put(self, raw: bytes | memoryview, ref: StatementRef) -> None:
        """Queue one statement; blocks while the budget is spent (never on a failure)."""
        with self._cond:
            while self._pending > 0 and self._pending + len(raw) > BUDGET and not self.failed:
                self._cond.wait(0.5)
            if self.failed:
                return
            self._queue.append((raw, ref, len(raw)))
            self._pending += len(raw)
            self._cond.notify_all()

    def finish(self, timeout: float) -> bool:
        """Send the postamble, wait for the sender; False if it is still running."""
        with self._cond:
            if not self.failed:
                self._queue.extend((sql, None, 0) for sql in self._cmd.postamble)
            self._queue.append(None)
            self._cond.notify_all()
        assert self._thread is not None
        self._thread.join(max(timeout, 0.1))
        return not self._thread.is_alive()

    def kill(self) -> None:
        """Stop now (any thread): the sender's blocked read or write fails at once."""
        with self._cond:
            self.killed = True
            self._cond.notify_all()
        sock = getattr(self._conn, "_sock", None)  # PyMySQL keeps no public handle
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self.kill()
            self._thread.join(5)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    # -- the sender thread ---------------------------------------------------------------

    def _next(self) -> tuple[bytes | memoryview, StatementRef | None, int] | None:
        with self._cond:
            while not self._queue and not self.killed:
                self._cond.wait()
            if not self._queue:
                return None  # killed with nothing left to drain
            return self._queue.popleft()

    def _release(self, held: int) -> None:
        if held:
            with self._cond:
                self._pending -= held
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            raw, ref, held = item
            # Not held here any longer than it is being sent: a statement of 1 GiB must
            # not wait in this frame for the next one to arrive.
            del item
            if not self.failed:  # else drain: the pipeline still reads the envelope to its end
                self._execute(raw, ref)
            del raw
            self._release(held)

    def _execute(self, raw: bytes | memoryview, ref: StatementRef | None) -> None:
        try:
            # Unbuffered: a result set (a dump has no business returning one; a hostile
            # one may return millions of rows) is read and dropped row by row, so
            # memory stays flat, as it did when a client printed it to a drained pipe.
            with self._conn.cursor(pymysql.cursors.SSCursor) as cur:
                # No args: sent byte for byte, never %-formatted; a view (see above).
                cur.execute(memoryview(raw))
                for _row in cur.fetchall_unbuffered():
                    pass
                warned = cur.warning_count
            if warned and len(self.warnings) < KEEP_WARNINGS:
                with self._conn.cursor() as cur:
                    cur.execute("SHOW WARNINGS")
                    rows = cur.fetchall()
                self.warnings += [f"{r[0]} {r[1]}: {str(r[2])[:200]}" for r in rows]
        except pymysql.err.MySQLError as exc:
            if self.killed:
                return
            code, msg = _code_message(exc)
            line, head = (ref.line, ref.head) if ref is not None else (None, None)
            self.error = LoadError(msg[:500], line, head, code)
        except OSError:
            if not self.killed:
                self.error = LoadError("the connection to the server was lost")
        finally:
            if self.failed:
                with self._cond:
                    self._cond.notify_all()


def _code_message(exc: Exception) -> tuple[str | None, str]:
    args = exc.args
    if len(args) >= 2 and isinstance(args[0], int):
        return str(args[0]), str(args[1])
    return None, str(exc)
