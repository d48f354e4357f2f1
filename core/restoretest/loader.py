"""The pipeline's plaintext sink: stream the dump into the database server.

Runs on the pipeline's consumer thread: each plaintext chunk goes through the scanner
(counting, hooks, the rare rewrite) and straight on, so memory stays bounded and a slow
server slows the download instead of filling memory. Two ways on: MariaDB/MySQL
statements go over the protocol (``driverload``: the scanner hands over each statement);
PostgreSQL's dump goes into ``psql``'s stdin (COPY data needs the client). A watchdog
thread enforces cancel, the wall-clock limit and the disk limit by cutting the load off
(the driver's socket is shut down, or the client killed, which unblocks a write stuck on
a full pipe); the runner then stops the server, which is what ends a statement still
running there (reliability.md E3).

The limits (``Limits``) bound what the dump can make a test spend: the wall-clock limit
runs from the moment the load starts to the end of the checks (``Deadline``; waiting for
the server lock and starting the server do not depend on the dump and have their own
timeouts); the disk limit bounds how much the server's disk use grows during the load,
over what the freshly started server already used.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import Cancelled
from ..plumbing.progress import CancelToken
from ..plumbing.streams import widen_pipe
from ..records.restore_result import LoadError, summarise_warnings
from .archiveload import ArchiveFeed
from .driverload import DriverCommand, DriverFeeder
from .errors import LimitExceeded
from .procs import current_user, kill_group, spawn
from .scan import common as sqlscan
from .scan.common import ScannerBase, StatementTooLarge
from .target import ClientCommand, Target

HEAD_BYTES = 64 * 1024  # enough to recognise the producer and its database name
OUTPUT_KEEP = 2 << 20


DISK_CHECK_EVERY = 0.5  # seconds between two looks at the server's disk use
FREE_SPACE_SHARE = 0.9  # default disk limit: this share of the free space at load start


@dataclass(frozen=True)
class Limits:
    max_seconds: float
    max_disk_bytes: int | None  # None: 90 % of the free space where the server keeps data


def size_text(n: float) -> str:
    """``20 MiB``, ``1.5 GiB``: sizes in messages, in the units ``--max-disk`` takes."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def seconds_text(s: float) -> str:
    return f"{s:g} s"


class Deadline:
    """The wall-clock limit, as an instant on the monotonic clock once the load starts."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.started: float | None = None
        self.at = float("inf")

    def start(self) -> None:
        self.started = time.monotonic()
        self.at = self.started + self.limit_s

    def left(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def error(self, during: str) -> LimitExceeded:
        ran = time.monotonic() - (self.started or time.monotonic())
        return LimitExceeded(
            f"wall-clock limit of {seconds_text(self.limit_s)} (--max-time) reached {during}, "
            f"{ran:.1f} s after the load started"
        )


class LimitToken(CancelToken):
    """The user's cancel token, plus the wall-clock limit for one phase: ``check()``
    raises ``LimitExceeded`` once the deadline has passed. Handed to the checks, which
    call ``check()`` between tables."""

    def __init__(self, inner: CancelToken, deadline: Deadline, during: str) -> None:
        super().__init__()
        self._inner = inner
        self._deadline = deadline
        self._during = during

    def cancel(self) -> None:
        self._inner.cancel()

    @property
    def cancelled(self) -> bool:
        return self._inner.cancelled

    def check(self) -> None:
        self._inner.check()
        if self._deadline.passed():
            raise self._deadline.error(self._during)


class _Drain(threading.Thread):
    """Reads a client pipe so it never blocks; keeps the head and the tail."""

    def __init__(self, pipe: IO[bytes], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._pipe = pipe
        self.head = bytearray()
        self.tail = b""

    def run(self) -> None:
        while chunk := self._pipe.read1(65536):  # type: ignore[attr-defined]
            if len(self.head) < OUTPUT_KEEP:
                self.head += chunk[: OUTPUT_KEEP - len(self.head)]
            else:
                self.tail = (self.tail + chunk)[-65536:]

    def text(self) -> str:
        return (bytes(self.head) + (b"\n...\n" + self.tail if self.tail else b"")).decode(
            "utf-8", errors="replace"
        )


class StreamingLoader:
    def __init__(
        self,
        prepare: Callable[[bytes], Target],
        cancel: CancelToken,
        limits: Limits,
        deadline: Deadline,
    ) -> None:
        self._prepare = prepare
        self._cancel = cancel
        self._limits = limits
        self._deadline = deadline
        self._disk_base: int | None = None  # the server's disk use when the load started
        self._disk_limit: int | None = None
        self.target: Target | None = None
        self.scanner: ScannerBase | None = None
        self._head = b""
        self._proc: subprocess.Popen[bytes] | None = None
        self._cmd: ClientCommand | None = None
        self._driver: DriverFeeder | None = None  # MariaDB/MySQL: statements via the protocol
        self._archive: ArchiveFeed | None = None  # a pg_dump archive: pg_restore's script
        self._out: _Drain | None = None
        self._err: _Drain | None = None
        # Not a cancel flag: the load tells its own watchdog thread that it has ended
        # (finished, failed or closed). Cancellation is the job's token, which the
        # watchdog polls and answers by killing the client.
        self._stop = threading.Event()
        self._watch: threading.Thread | None = None
        self._killed_for: str | None = None  # set by the watchdog
        self.load_started: float | None = None
        self.load_seconds: float | None = None
        self.failed = False  # the client stopped on an error: the rest is only drained
        self.returncode: int | None = None
        self.client_output = ""
        self.finished = False

    # -- PlaintextSink -----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.failed:
            return  # keep the pipeline going: the envelope is still verified to its end
        if not self.started:
            self._head += data
            if len(self._head) < HEAD_BYTES:
                return
            data, self._head = self._head, b""
            self._start(data)
        assert self.scanner is not None
        self._raise_if_killed()
        self._forward(data)

    def _forward(self, data: bytes) -> None:
        if self._archive is not None:
            self._archive.feed(data)  # pg_restore's script comes back through _script
        else:
            self._write(self._scan(data))

    def _script(self, data: bytes) -> None:
        """A piece of pg_restore's script (on its pump thread): scanned and loaded as a
        plain dump is."""
        if not self.failed:
            self._write(self._scan(data))

    @property
    def started(self) -> bool:
        return self._proc is not None or self._driver is not None

    def finish(self) -> None:
        if not self.started and not self.failed:
            data, self._head = self._head, b""
            self._start(data)
            self._forward(data)
        if self._archive is not None and not self.failed:
            self._archive.finish(self._deadline.left())
        assert self.scanner is not None
        if not self.failed:
            self._write(self._scan(None))
        if self._driver is not None:
            self._finish_driver(self._driver)
        else:
            if not self.failed and self._cmd is not None and self._cmd.postamble:
                self._write([self._cmd.postamble])
            self._close_stdin()
            self._wait(self._deadline.left())
        # A load faster than the watchdog's look still has to fit: one last look.
        if (over := self._disk_over()) is not None:
            raise LimitExceeded(over)
        self.finished = True

    def _scan(self, data: bytes | None) -> list[bytes]:
        """The scanner's output for ``data`` (None: the end of the dump)."""
        assert self.scanner is not None
        try:
            return self.scanner.feed(data) if data is not None else self.scanner.finish()
        except StatementTooLarge as exc:
            raise LimitExceeded(
                f"statement size limit of {size_text(sqlscan.MAX_STATEMENT)}: the statement "
                f"starting at line {exc.line} is larger ({size_text(exc.size)} without its "
                "end); the servers refuse such packets, so the load was stopped there"
            ) from None

    # -- the client --------------------------------------------------------------------

    def _start(self, head: bytes) -> None:
        self.target = self._prepare(head)
        self._deadline.start()
        self._disk_base = self.target.disk_used()
        self._disk_limit = self._limits.max_disk_bytes
        if self._disk_limit is None and self.target.disk_path is not None:
            free = shutil.disk_usage(self.target.disk_path).free
            self._disk_limit = int(free * FREE_SPACE_SHARE)
        self.scanner = self.target.scanner()
        client = self.target.client()
        if isinstance(client, DriverCommand):
            self._start_driver(client, self.scanner)
            return
        self._cmd = cmd = client
        self._proc = spawn(
            cmd.argv,
            user=current_user(),
            cwd=cmd.files[0].parent if cmd.files else _tmp(),
            env=cmd.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        if self._proc.stdin is not None:
            widen_pipe(self._proc.stdin)  # far fewer wake-ups with the client at full speed
        self._out = _Drain(self._proc.stdout, "sealcheck-client-out")
        self._err = _Drain(self._proc.stderr, "sealcheck-client-err")
        self._out.start()
        self._err.start()
        self._start_watchdog()
        if cmd.preamble:
            self._write([cmd.preamble])
        if cmd.archive is not None:
            self._archive = ArchiveFeed(cmd.archive, self._script)

    def _start_driver(self, cmd: DriverCommand, scanner: ScannerBase) -> None:
        self._driver = feeder = DriverFeeder(cmd)
        scanner.statement_sink = feeder.put
        feeder.start()
        self._start_watchdog()

    def _start_watchdog(self) -> None:
        self._watch = threading.Thread(
            target=self._watchdog, name="sealcheck-watchdog", daemon=True
        )
        self._watch.start()
        self.load_started = time.monotonic()

    def _finish_driver(self, feeder: DriverFeeder) -> None:
        done = feeder.finish(self._deadline.left())
        if not done:
            self._killed_for = self._killed_for or "time"
            feeder.kill()
        self._stop.set()
        if self.load_started is not None and self.load_seconds is None:
            self.load_seconds = round(time.monotonic() - self.load_started, 3)
        self._raise_if_killed()
        if feeder.failed:
            self.failed = True

    def _write(self, segments: list[bytes]) -> None:
        if self._driver is not None:
            # The statements went to the driver as the scanner found them.
            if self._driver.failed:
                self._raise_if_killed()
                self.failed = True
            return
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            for seg in segments:
                proc.stdin.write(seg)
        except (BrokenPipeError, ValueError, OSError):
            self._client_stopped()

    def _client_stopped(self) -> None:
        """The client exited before the dump ended: why?"""
        self._raise_if_killed()
        self.failed = True
        self._wait(10)

    def _raise_if_killed(self) -> None:
        if self._killed_for == "cancel" or self._cancel.cancelled:
            raise Cancelled()
        if self._killed_for == "time":
            raise self._deadline.error("while loading the dump")
        if self._killed_for:
            raise LimitExceeded(self._killed_for)

    def _close_stdin(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()

    def _wait(self, timeout: float) -> None:
        proc = self._proc
        assert proc is not None
        try:
            proc.wait(max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            self._killed_for = self._killed_for or "time"
            kill_group(proc)
        self._stop.set()
        if self.load_started is not None and self.load_seconds is None:
            self.load_seconds = round(time.monotonic() - self.load_started, 3)
        self._raise_if_killed()
        self.returncode = proc.returncode
        for d in (self._out, self._err):
            if d is not None:
                d.join(5)
        self.client_output = (
            (self._err.text() if self._err else "") + "\n" + (self._out.text() if self._out else "")
        )
        if proc.returncode != 0:
            self.failed = True

    def _watchdog(self) -> None:
        last_disk = 0.0
        while not self._stop.wait(0.1):
            reason = None
            if self._cancel.cancelled:
                reason = "cancel"
            elif self._deadline.passed():
                reason = "time"
            elif time.monotonic() - last_disk >= DISK_CHECK_EVERY:
                last_disk = time.monotonic()
                reason = self._disk_over()
            if reason:
                self._killed_for = reason
                if self._driver is not None:
                    self._driver.kill()
                else:
                    kill_group(self._proc)
                return

    def _disk_over(self) -> str | None:
        """Why the load must stop for its disk use, if it must."""
        if self._disk_limit is None or self._disk_base is None or self.target is None:
            return None
        used = self.target.disk_used()
        if used is None:
            return None
        grown = used - self._disk_base
        if grown <= self._disk_limit:
            return None
        return (
            f"disk limit of {size_text(self._disk_limit)} (--max-disk): the restored data "
            f"grew by {size_text(grown)} during the load"
        )

    # -- results -----------------------------------------------------------------------

    def load_error(self) -> LoadError | None:
        if self._driver is not None:
            return self._driver.error if self.failed else None
        if not self.failed or self.target is None or self._cmd is None:
            return None
        err = self._cmd.parse_error(self.client_output, self._cmd.line_offset)
        if err is None:
            text = self.client_output.strip()[-500:] or f"exit status {self.returncode}"
            err = LoadError(f"the client stopped: {text}")
        if err.line is not None and self.scanner is not None:
            ref = self.scanner.statement_at(err.line)
            if ref is not None:
                err = LoadError(err.message, err.line, ref.head, err.code)
        return err

    def warnings(self) -> list[str]:
        """What the server warned about during the load, summarised."""
        if self._driver is not None:
            return summarise_warnings(self._driver.warnings)
        if self._cmd is not None and self.client_output:
            return self._cmd.warnings(self.client_output)
        return []

    @property
    def unstarted_head(self) -> bytes:
        """The plaintext held back because the client never started (a dump shorter
        than ``HEAD_BYTES`` whose stream failed): the runner scans it offline."""
        return b"" if self.started else self._head

    def settle(self) -> None:
        """The stream stopped early (cut, corrupt, cancelled, a limit): stop the client and
        let the scanner see the end, to tell whether a statement was cut."""
        self.close()
        if self.scanner is not None:
            with contextlib.suppress(StatementTooLarge):  # already reported as a limit
                self.scanner.finish()

    def close(self) -> None:
        """Stop the client whatever happened, and delete its credential files."""
        self._stop.set()
        if self._driver is not None:
            self._driver.close()
        if self._archive is not None:
            self._archive.close()
        if self._proc is not None and self._proc.poll() is None:
            self._close_stdin()
            kill_group(self._proc)
        if self._cmd is not None:
            for f in self._cmd.files:
                f.unlink(missing_ok=True)


def _tmp() -> Path:
    from pathlib import Path

    return Path("/")
