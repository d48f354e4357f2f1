"""Asking before work is lost: closing the window or "Cancel jobs" while a restore or a
restore test runs.

A verify writes nothing and is cheap to run again, so stopping one asks nothing. A
restore (hours of download into a file that is then deleted) and a restore test (a
database server loading a dump) are work the user would lose: the question names
what runs and how far it got ("1 restore is running (48 %). Stop it and quit?").
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from ..jobs.queue import JobQueue, JobRecord, JobState

_NOUN = {"restore": "restore", "restore-test": "restore test"}


def _how_far(rec: JobRecord) -> str:
    ev = rec.progress
    if ev is not None and ev.stage == "checks":
        return " (checking the restored database)"
    if ev is not None and ev.fraction is not None:
        return f" ({int(ev.fraction * 100)} %)"
    return ""


def lost_work(queue: JobQueue) -> str | None:
    """ "1 restore is running (48 %)", or None when stopping now loses nothing much."""
    rec = queue.current
    if rec is None or rec.state is not JobState.RUNNING:
        return None
    noun = _NOUN.get(rec.spec.operation)
    if noun is None:
        return None
    text = f"1 {noun} is running{_how_far(rec)}"
    waiting = sum(1 for r in queue.pending() if r.spec.operation in _NOUN)
    if waiting:
        text += f", {waiting} more {'is' if waiting == 1 else 'are'} queued"
    return text


def confirm_stop(parent: QWidget, queue: JobQueue, *, quitting: bool) -> bool:
    """True when nothing would be lost or the user agreed to stop it."""
    what = lost_work(queue)
    if what is None:
        return True
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Quit Sealcheck?" if quitting else "Cancel jobs?")
    box.setText(f"{what}. {'Stop it and quit?' if quitting else 'Stop it?'}")
    box.setInformativeText(
        "What it has done so far is lost: a restore's partial file is deleted, a restore "
        "test's server is stopped and removed."
    )
    stop = box.addButton(
        "Stop and quit" if quitting else "Stop it", QMessageBox.ButtonRole.DestructiveRole
    )
    keep = box.addButton("Keep running", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(keep)
    box.setEscapeButton(keep)
    box.setObjectName("confirm-stop")
    box.exec()
    agreed = box.clickedButton() is stop
    box.deleteLater()
    return agreed
