"""SIGTERM and SIGINT end the app as a normal close does (a logout, ``timeout``, Ctrl-C).

Python runs a signal handler only when the main thread executes Python code, and a Qt
app spends its time in Qt's C++ event loop: a handler alone would run late, or never.
So the signal is carried into the event loop: ``signal.set_wakeup_fd`` makes the
interpreter's C-level handler write the signal number into one end of a socket pair,
and a ``QSocketNotifier`` on the other end wakes the loop, which then closes the window
the normal way (jobs cancelled and waited for, a restore test's server stopped, the
demo's key removed, temporary folders deleted).

Outside the event loop (the demo making its samples, ``demo --no-gui``),
:func:`exit_on_signals` turns SIGTERM into ``SystemExit`` so ``finally`` blocks run
(SIGINT already raises ``KeyboardInterrupt``).
"""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from PySide6.QtCore import QObject, QSocketNotifier, Signal

HANDLED = (signal.SIGTERM, signal.SIGINT)


def exit_code_for(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 for Ctrl-C, the CLI's
    "cancelled"; 143 for SIGTERM)."""
    return 128 + signum


class SignalBridge(QObject):
    """While installed, SIGTERM/SIGINT emit ``received(signum)`` on the GUI thread.

    Install and uninstall from the main thread (Python allows signal handlers only
    there). The previous handlers and wakeup fd come back on ``uninstall``."""

    received = Signal(int)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._read: socket.socket | None = None
        self._write: socket.socket | None = None
        self._notifier: QSocketNotifier | None = None
        self._old_fd: int | None = None
        self._old_handlers: dict[int, Any] = {}

    @property
    def installed(self) -> bool:
        return self._notifier is not None

    def install(self) -> bool:
        """False where signals cannot be carried this way (not the main thread)."""
        if self.installed:
            return True
        read, write = socket.socketpair()
        read.setblocking(False)
        write.setblocking(False)
        try:
            self._old_fd = signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
        except (ValueError, OSError):
            read.close()
            write.close()
            return False
        self._read, self._write = read, write
        for sig in HANDLED:
            # A Python handler must be set for the wakeup fd to be written; the work
            # itself happens in the event loop (``_drain``), never in the handler.
            self._old_handlers[sig] = signal.signal(sig, _noted)
        self._notifier = QSocketNotifier(read.fileno(), QSocketNotifier.Type.Read, self)
        self._notifier.activated.connect(self._drain)
        return True

    def uninstall(self) -> None:
        if self._notifier is None:
            return
        self._notifier.setEnabled(False)
        self._notifier.deleteLater()
        self._notifier = None
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old_handlers.clear()
        signal.set_wakeup_fd(self._old_fd if self._old_fd is not None else -1)
        for s in (self._read, self._write):
            if s is not None:
                s.close()
        self._read = self._write = None

    def _drain(self, *_args: object) -> None:
        if self._read is None:
            return
        try:
            data = self._read.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        for signum in data:
            if signum in HANDLED:
                self.received.emit(int(signum))


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: nothing to do here (see SignalBridge)."""


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` in the main thread, so cleanup in ``finally``
    runs as on a normal exit (the default action would end the process on the spot)."""

    def terminate(signum: int, _frame: FrameType | None) -> None:
        # Once: a second SIGTERM must not cut the cleanup the first one started.
        signal.signal(signum, signal.SIG_IGN)
        raise SystemExit(exit_code_for(signum))

    try:
        old = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


def on_signal_close(bridge: SignalBridge, close: Callable[[int], None]) -> None:
    """Connect ``close(signum)``; a second signal while closing is ignored (the close
    already stops the jobs and waits for them, within seconds)."""
    seen: list[int] = []

    def once(signum: int) -> None:
        if not seen:
            seen.append(signum)
            close(signum)

    bridge.received.connect(once)
