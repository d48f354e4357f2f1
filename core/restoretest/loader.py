"""The pipeline's plaintext sink: stream the dump into the database client.

Runs on the pipeline's consumer thread: each plaintext chunk goes through the scanner
(counting, hooks, the rare rewrite) and straight into the client's stdin, so memory
stays bounded and a slow server slows the download instead of filling memory. A
watchdog thread enforces cancel, the wall-clock limit and the disk limit by killing
the client (which unblocks a write stuck on a full pipe).
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import Cancelled
from ..progress import CancelToken
from .errors import LimitExceeded
from .model import LoadError
from .procs import current_user, disk_usage, kill_group, spawn
from .sqlscan import ScannerBase, StatementTooLarge
from .target import ClientCommand, Target

HEAD_BYTES = 64 * 1024  # enough to recognise the producer and its database name
OUTPUT_KEEP = 2 << 20


@dataclass(frozen=True)
class Limits:
    max_seconds: float
    max_disk_bytes: int | None


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
        started: float,
    ) -> None:
        self._prepare = prepare
        self._cancel = cancel
        self._limits = limits
        self._t0 = started
        self.target: Target | None = None
        self.scanner: ScannerBase | None = None
        self._head = b""
        self._proc: subprocess.Popen[bytes] | None = None
        self._cmd: ClientCommand | None = None
        self._out: _Drain | None = None
        self._err: _Drain | None = None
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
        if self._proc is None:
            self._head += data
            if len(self._head) < HEAD_BYTES:
                return
            data, self._head = self._head, b""
            self._start(data)
        assert self.scanner is not None
        try:
            segments = self.scanner.feed(data)
        except StatementTooLarge as exc:
            raise LimitExceeded(str(exc)) from None
        self._write(segments)

    def finish(self) -> None:
        if self._proc is None and not self.failed:
            data, self._head = self._head, b""
            self._start(data)
            assert self.scanner is not None
            self._write(self.scanner.feed(data))
        assert self.scanner is not None
        if not self.failed:
            self._write(self.scanner.finish())
        self._close_stdin()
        self._wait(self._limits.max_seconds - (time.monotonic() - self._t0))
        self.finished = True

    # -- the client --------------------------------------------------------------------

    def _start(self, head: bytes) -> None:
        self.target = self._prepare(head)
        self.scanner = self.target.scanner()
        self._cmd = cmd = self.target.client()
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
            # A 1 MiB pipe (Linux F_SETPIPE_SZ) instead of 64 KiB: far fewer wake-ups
            # between us and the client at full speed.
            with contextlib.suppress(OSError):
                fcntl.fcntl(self._proc.stdin.fileno(), 1031, 1 << 20)
        self._out = _Drain(self._proc.stdout, "sealcheck-client-out")
        self._err = _Drain(self._proc.stderr, "sealcheck-client-err")
        self._out.start()
        self._err.start()
        self._watch = threading.Thread(
            target=self._watchdog, name="sealcheck-watchdog", daemon=True
        )
        self._watch.start()
        self.load_started = time.monotonic()
        if cmd.preamble:
            self._write([cmd.preamble])

    def _write(self, segments: list[bytes]) -> None:
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
            self._killed_for = self._killed_for or (
                f"the load did not finish within the wall-clock limit of "
                f"{self._limits.max_seconds:.0f} s"
            )
            kill_group(proc)
        self._stop.set()
        self._raise_if_killed()
        self.returncode = proc.returncode
        if self.load_started is not None and self.load_seconds is None:
            self.load_seconds = round(time.monotonic() - self.load_started, 3)
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
        while not self._stop.wait(0.2):
            reason = None
            if self._cancel.cancelled:
                reason = "cancel"
            elif time.monotonic() - self._t0 > self._limits.max_seconds:
                reason = (
                    f"the restore test exceeded its wall-clock limit of "
                    f"{self._limits.max_seconds:.0f} s"
                )
            elif (
                self._limits.max_disk_bytes is not None
                and self.target is not None
                and self.target.disk_path is not None
                and time.monotonic() - last_disk > 1.0
            ):
                last_disk = time.monotonic()
                used = disk_usage(self.target.disk_path)
                if used > self._limits.max_disk_bytes:
                    reason = (
                        f"the throwaway server used {used} bytes of disk, over the limit of "
                        f"{self._limits.max_disk_bytes} bytes"
                    )
            if reason:
                self._killed_for = reason
                kill_group(self._proc)
                return

    # -- results -----------------------------------------------------------------------

    def load_error(self) -> LoadError | None:
        if not self.failed or self.target is None or self._cmd is None:
            return None
        err = self.target.parse_error(self.client_output, self._cmd.line_offset)
        if err is None:
            text = self.client_output.strip()[-500:] or f"exit status {self.returncode}"
            err = LoadError(f"the client stopped: {text}")
        if err.line is not None and self.scanner is not None:
            ref = self.scanner.statement_at(err.line)
            if ref is not None:
                err = LoadError(err.message, err.line, ref.head, err.code)
        return err

    def close(self) -> None:
        """Stop the client whatever happened, and delete its credential files."""
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._close_stdin()
            kill_group(self._proc)
        if self._cmd is not None:
            for f in self._cmd.files:
                f.unlink(missing_ok=True)


def _tmp() -> Path:
    from pathlib import Path

    return Path("/")
